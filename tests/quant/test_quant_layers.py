"""Layer backward passes against central finite differences (float64, small shapes)."""

import numpy as np
import pytest

from accelsim.quant.layers import BatchNorm, Conv2d, Linear, ReLU, col2im, im2col
from accelsim.quant.pooling import Flatten, GlobalAvgPool, MaxPool2d, Residual
from accelsim.quant.quantizer import LsqQuantizer

EPS = 1e-6


def _loss(layer, x, r):
    return float((layer.forward(x, train=True) * r).sum())


def _fd_check(layer, x, seed=0):
    """Compare backward's dx and parameter gradients with central differences of sum(y * r)."""
    rng = np.random.default_rng(seed)
    y = layer.forward(x, train=True)
    r = rng.standard_normal(y.shape)
    for p in layer.params():
        p.grad = np.zeros_like(p.value)
    layer.forward(x, train=True)
    dx = layer.backward(r)
    num_dx = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + EPS
        up = _loss(layer, x, r)
        x[i] = old - EPS
        down = _loss(layer, x, r)
        x[i] = old
        num_dx[i] = (up - down) / (2 * EPS)
    np.testing.assert_allclose(dx, num_dx, rtol=1e-5, atol=1e-7)
    for p in layer.params():
        num = np.zeros_like(p.value)
        for i in np.ndindex(p.value.shape):
            old = p.value[i]
            p.value[i] = old + EPS
            up = _loss(layer, x, r)
            p.value[i] = old - EPS
            down = _loss(layer, x, r)
            p.value[i] = old
            num[i] = (up - down) / (2 * EPS)
        np.testing.assert_allclose(p.grad, num, rtol=1e-5, atol=1e-7)


def test_linear_grad():
    rng = np.random.default_rng(1)
    _fd_check(Linear(5, 3, rng=rng, dtype=np.float64), rng.standard_normal((4, 5)))


@pytest.mark.parametrize("stride, padding", [(1, 1), (2, 1), (2, 0)])
def test_conv2d_grad(stride, padding):
    rng = np.random.default_rng(2)
    layer = Conv2d(2, 3, 3, stride, padding, rng=rng, dtype=np.float64)
    _fd_check(layer, rng.standard_normal((2, 5, 5, 2)))


def test_conv2d_matches_direct_nhwc_convolution():
    """Implicit GEMM with K order (kh, kw, cin) equals a direct loop over the window."""
    rng = np.random.default_rng(3)
    layer = Conv2d(2, 3, (3, 2), (2, 1), (1, 0), bias=False, rng=rng, dtype=np.float64)
    x = rng.standard_normal((1, 5, 4, 2))
    y = layer.forward(x)
    w = layer.w.value.reshape(3, 2, 2, 3)
    xp = np.pad(x, ((0, 0), (1, 1), (0, 0), (0, 0)))
    ref = np.zeros_like(y)
    for oh in range(y.shape[1]):
        for ow in range(y.shape[2]):
            win = xp[0, 2 * oh : 2 * oh + 3, ow : ow + 2, :]
            ref[0, oh, ow] = np.einsum("ijc,ijco->o", win, w)
    np.testing.assert_allclose(y, ref, rtol=1e-12)


def test_im2col_col2im_adjoint():
    """<im2col(x), c> == <x, col2im(c)> for stride 2, padding 1."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 5, 6, 3))
    cols = im2col(x, 3, 2, 1)
    c = rng.standard_normal(cols.shape)
    np.testing.assert_allclose((cols * c).sum(), (x * col2im(c, x.shape, 3, 2, 1)).sum())


def test_batchnorm_grad_and_eval():
    rng = np.random.default_rng(5)
    bn = BatchNorm(3, dtype=np.float64)
    bn.gamma.value = rng.standard_normal(3)
    bn.beta.value = rng.standard_normal(3)
    _fd_check(bn, rng.standard_normal((2, 2, 2, 3)))
    bn.running_mean, bn.running_var = np.array([1.0, 0.0, -1.0]), np.array([4.0, 1.0, 0.25])
    x = rng.standard_normal((4, 3))
    ref = bn.gamma.value * (x - bn.running_mean) / np.sqrt(bn.running_var + bn.eps) + bn.beta.value
    np.testing.assert_allclose(bn.forward(x), ref)


def test_relu_grad():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((3, 4))
    x[np.abs(x) < 0.01] = 0.5  # keep away from the kink
    _fd_check(ReLU(), x)


@pytest.mark.parametrize("kernel, stride", [(2, 2), (3, 2)])
def test_maxpool_grad(kernel, stride):
    rng = np.random.default_rng(7)
    _fd_check(MaxPool2d(kernel, stride), rng.standard_normal((2, 5, 5, 2)))


def test_gap_and_flatten_grad():
    rng = np.random.default_rng(8)
    _fd_check(GlobalAvgPool(), rng.standard_normal((2, 3, 3, 2)))
    _fd_check(Flatten(), rng.standard_normal((2, 3, 3, 2)))


def test_residual_grad():
    rng = np.random.default_rng(9)
    body = [Conv2d(2, 2, 3, 1, 1, rng=rng, dtype=np.float64), BatchNorm(2, dtype=np.float64)]
    _fd_check(Residual(body), rng.standard_normal((2, 3, 3, 2)))


def test_quantized_linear_straight_through():
    """With quantizers: y = Q(x) @ Q(w); dx = (dy @ Q(w).T) masked to the input range;
    dw = Q(x).T @ dy masked to the weight range."""
    rng = np.random.default_rng(10)
    layer = Linear(6, 4, rng=rng, dtype=np.float64)
    layer.wq = LsqQuantizer(3, "symmetric", "weight", per_channel=True)
    layer.aq = LsqQuantizer(2, "unsigned", "act")
    x = np.abs(rng.standard_normal((5, 6)))
    y = layer.forward(x, train=True)
    xq, wq = layer.aq.forward(x), layer.wq.forward(layer.w.value)
    np.testing.assert_allclose(y, xq @ wq + layer.b.value)
    dy = rng.standard_normal(y.shape)
    layer.forward(x, train=True)
    dx = layer.backward(dy)
    sa, sw = layer.aq.step.value[0], layer.wq.step.value
    np.testing.assert_allclose(dx, (dy @ wq.T) * (x / sa <= 3))
    inside_w = np.abs(layer.w.value / sw) <= 3
    np.testing.assert_allclose(layer.w.grad, (xq.T @ dy) * inside_w)
    assert layer.aq.step.grad[0] != 0 and np.all(layer.wq.step.grad != 0)
