"""Optimizers (SGD with momentum, Adam) and the cosine learning-rate schedule.

Weight decay (L2, added to the gradient) applies only to `Param`s with `decay=True`: weights, not
biases, batch-norm parameters or quantizer step sizes.
"""

import math

import numpy as np


class SGD:
    """SGD with (optionally Nesterov) momentum: v = mu*v + g; p -= lr*v (or lr*(g + mu*v))."""

    def __init__(
        self,
        params: list,
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay, self.nesterov = (
            lr,
            momentum,
            weight_decay,
            nesterov,
        )
        self._vel = [np.zeros_like(p.value) for p in self.params]

    def zero_grad(self) -> None:
        """Reset every parameter's gradient to zero."""
        for p in self.params:
            p.grad[...] = 0

    def step(self) -> None:
        """Apply one update with the current `lr`."""
        for p, v in zip(self.params, self._vel):
            g = p.grad + self.weight_decay * p.value if p.decay else p.grad
            v *= self.momentum
            v += g
            p.value -= (self.lr * (g + self.momentum * v) if self.nesterov else self.lr * v).astype(
                p.value.dtype
            )


class Adam:
    """Adam (Kingma and Ba) with bias correction; weight decay is added to the gradient."""

    def __init__(
        self,
        params: list,
        lr: float,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.params = list(params)
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self._m = [np.zeros_like(p.value) for p in self.params]
        self._v = [np.zeros_like(p.value) for p in self.params]
        self._t = 0

    def zero_grad(self) -> None:
        """Reset every parameter's gradient to zero."""
        for p in self.params:
            p.grad[...] = 0

    def step(self) -> None:
        """Apply one update with the current `lr`."""
        self._t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self._t, 1 - b2**self._t
        for p, m, v in zip(self.params, self._m, self._v):
            g = p.grad + self.weight_decay * p.value if p.decay else p.grad
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p.value -= (self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)).astype(p.value.dtype)


def cosine_lr(
    step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, final_lr: float = 0.0
) -> float:
    """Learning rate at `step` (0-based): linear warm-up, then cosine decay to `final_lr`."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    t = min(step - warmup_steps, span) / span
    return final_lr + 0.5 * (base_lr - final_lr) * (1.0 + math.cos(math.pi * t))
