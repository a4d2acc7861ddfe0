"""SGD, Adam and the cosine schedule against hand-computed updates."""

import numpy as np

from accelsim.quant.layers import Param
from accelsim.quant.optim import SGD, Adam, cosine_lr


def test_sgd_momentum_and_decay_by_hand():
    """lr 0.1, mu 0.9, wd 0.5, p = 2, grad 1: g = 1 + 0.5*2 = 2; v = 2; p = 2 - 0.2 = 1.8.
    Second step, grad 1: g = 1 + 0.9 = 1.9; v = 0.9*2 + 1.9 = 3.7; p = 1.8 - 0.37 = 1.43.
    The bias (decay False) ignores weight decay: 0 - 0.1*1 = -0.1."""
    p, b = Param(np.array([2.0])), Param(np.array([0.0]), decay=False)
    opt = SGD([p, b], lr=0.1, momentum=0.9, weight_decay=0.5)
    for expected in (1.8, 1.43):
        opt.zero_grad()
        p.grad += 1.0
        b.grad += 1.0
        opt.step()
        np.testing.assert_allclose(p.value, [expected])
    np.testing.assert_allclose(b.value, [-0.1 - 0.1 * 1.9])


def test_adam_first_step_is_lr_times_sign():
    p = Param(np.array([1.0, -1.0, 0.5]))
    opt = Adam([p], lr=0.01)
    p.grad[...] = [3.0, -0.2, 0.0]
    opt.step()
    np.testing.assert_allclose(p.value, [0.99, -0.99, 0.5], atol=1e-6)


def test_cosine_schedule():
    assert cosine_lr(0, 100, 1.0) == 1.0
    np.testing.assert_allclose(cosine_lr(50, 100, 1.0), 0.5)
    np.testing.assert_allclose(cosine_lr(100, 100, 1.0), 0.0, atol=1e-12)
    np.testing.assert_allclose(cosine_lr(0, 100, 1.0, warmup_steps=4), 0.25)
    np.testing.assert_allclose(cosine_lr(4, 100, 1.0, warmup_steps=4), 1.0)
