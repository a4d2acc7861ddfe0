"""LSQ step-size quantizers as the training sees them (forward and backward).

The processor's quantizer unit turns a real tensor `v` into integers `q = round(clip(v/s))` with
one step size `s` per tensor or per output channel, and the integer matrix multiplier works on
`q`. Training (learned step size quantization, LSQ) sees the dequantized value `q*s` and learns
`s` by gradient descent:

- forward: `v_hat = round(clip(v/s, -Q_N, Q_P)) * s`
- gradient for v (straight-through estimator): `1` where `-Q_N <= v/s <= Q_P`, else `0`
- gradient for s: `round(v/s) - v/s` inside the range, `-Q_N` or `Q_P` outside, multiplied by the
  gradient scale `g = 1/sqrt(N*Q_P)` (N = weights per step size, or activation elements per
  sample)
- step initialisation: `s = 2*mean(|v|)/sqrt(Q_P)`

Rounding is round half to even (`np.round`), the same as `torch.round` used by the LSQ paper.

Integer ranges (`q_range`) by mode:

- `unsigned` (activations after ReLU): `[0, 2**b - 1]`
- `signed` (other activations): `[-2**(b-1), 2**(b-1) - 1]`
- `symmetric` (weights, b >= 2): `[-(2**(b-1) - 1), 2**(b-1) - 1]`; 2 bits is ternary
  {-1, 0, +1}. A symmetric range keeps negation in range, so folding a batch norm with a negative
  scale into the weights is a sign flip of the integers.
- `bipolar` (1-bit weights): `sign(v/s)` in {-1, +1} (sign(0) = +1), gradient for v is the
  straight-through `1` for `|v/s| <= 1`; the step initialises to `mean(|v|)`, the L2-optimal
  scale of a sign code (XNOR-Net), because `2*mean|v|` would be twice too large.
"""

import numpy as np

from accelsim.numeric import MODES as INT_MODES
from accelsim.numeric import TENSOR_MAX_BITS, value_range
from accelsim.quant.layers import Param

MODES = (*INT_MODES, "symmetric")  # the machine's integer modes plus symmetric weights
MIN_STEP = 1e-8  # smallest step size kept after an optimizer update (keeps v/s finite)


def q_range(bits: int, mode: str) -> tuple[int, int]:
    """Return (Q_N, Q_P): integer codes lie in [-Q_N, Q_P] for `bits` and `mode` (see module)."""
    if mode not in MODES:
        raise ValueError(f"quantizer mode must be one of {MODES}, got {mode!r}")
    if not 1 <= bits <= TENSOR_MAX_BITS:
        raise ValueError(f"quantizer bits must be 1..{TENSOR_MAX_BITS}, got {bits}")
    if mode == "bipolar" and bits != 1:
        raise ValueError(f"bipolar quantizer is 1-bit, got {bits} bits")
    if mode in ("signed", "symmetric") and bits == 1:
        # A 1-bit two's-complement code is {-1, 0}: Q_P = 0 leaves the step initialisation
        # 2*mean|v|/sqrt(Q_P) and the gradient scale 1/sqrt(N*Q_P) undefined.
        raise ValueError(f"1-bit {mode} quantizer is not defined; use mode 'bipolar'")
    lo, hi = value_range(bits, "signed" if mode == "symmetric" else mode)
    return (hi if mode == "symmetric" else -lo), hi


def weight_mode(bits: int) -> str:
    """Quantizer mode used for weights of `bits` bits: bipolar at 1 bit, symmetric above."""
    return "bipolar" if bits == 1 else "symmetric"


def lsq_forward(v: np.ndarray, s: np.ndarray, q_n: int, q_p: int, bipolar: bool = False):
    """Integer codes and range mask of `v` with step `s` (broadcast on v's last axis).

    Returns (q, r, inside): q the integer codes as floats, r = v/s, inside the mask where the
    straight-through gradient passes.
    """
    r = v / s
    if bipolar:
        q = np.where(r >= 0, 1.0, -1.0).astype(v.dtype)
        inside = np.abs(r) <= 1.0
    else:
        q = np.round(np.clip(r, -q_n, q_p))
        inside = (r >= -q_n) & (r <= q_p)
    return q, r, inside


def lsq_step_grad_elements(q: np.ndarray, r: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Per-element d(v_hat)/ds before the gradient scale: q - v/s inside, q (= -Q_N or Q_P) out.

    For the round quantizer q - r = round(v/s) - v/s; for the bipolar one it is sign(v/s) - v/s.
    """
    return np.where(inside, q - r, q)


class LsqQuantizer:
    """A learned-step quantizer for one tensor, with a trainable step `Param`.

    kind: "weight" (N in the gradient scale = weights per step) or "act" (N = elements per
    sample). per_channel: one step per index of the last axis (output channels of a [K, N]
    weight), else one step. The step initialises from the first tensor seen by `forward`
    (`init_step`) unless `init_step` fixes it (1/255 suits 8-bit pixels in [0, 1]); with
    `trainable=False` the step is not learned (not listed by the layer's `params()`).
    `set_bits` changes the width and re-initialises it on the next forward.
    """

    def __init__(
        self,
        bits: int,
        mode: str,
        kind: str = "act",
        per_channel: bool = False,
        init_step: float | None = None,
        trainable: bool = True,
    ):
        if kind not in ("weight", "act"):
            raise ValueError(f"quantizer kind must be 'weight' or 'act', got {kind!r}")
        self.kind = kind
        self.per_channel = per_channel
        self.init_value = init_step  # fixed initial step (e.g. 1/255 for [0, 1] pixels) or None
        self.trainable = trainable  # False: the step stays at its initial value
        self.step = Param(np.ones(1), decay=False)
        self.initialized = False
        self.grad_scale = 1.0
        self._cache = None
        self.set_bits(bits, mode)

    def set_bits(self, bits: int, mode: str) -> None:
        """Change the bit width and mode; the step re-initialises from the next tensor seen."""
        self.q_n, self.q_p = q_range(bits, mode)
        self.bits = bits
        self.mode = mode
        self.initialized = False

    def init_step(self, v: np.ndarray) -> None:
        """Set the step from `v`: 2*mean|v|/sqrt(Q_P) (mean|v| for bipolar), per channel or not."""
        axes = tuple(range(v.ndim - 1)) if self.per_channel else None
        mean_abs = np.mean(np.abs(v), axis=axes)
        if self.init_value is not None:
            s = np.full(np.shape(mean_abs), self.init_value)
        elif self.mode == "bipolar":
            s = mean_abs
        else:
            s = 2.0 * mean_abs / np.sqrt(self.q_p)
        s = np.maximum(np.asarray(s, dtype=v.dtype).reshape(-1), MIN_STEP)
        self.step.value = s
        self.step.grad = np.zeros_like(s)
        n_steps = s.size
        per_step = v.size / n_steps if self.kind == "weight" else v[0].size / n_steps
        self.grad_scale = 1.0 / np.sqrt(per_step * self.q_p)
        self.initialized = True

    def _s(self, v: np.ndarray) -> np.ndarray:
        if not self.initialized:
            self.init_step(v)
        np.maximum(self.step.value, MIN_STEP, out=self.step.value)
        return self.step.value.astype(v.dtype) if self.per_channel else self.step.value[0]

    def fake_quant(self, v: np.ndarray):
        """(round(clip(v/s)) * s in v's dtype, (q, r, inside)) without touching the backward
        cache; `inside` is where the straight-through gradient passes."""
        s = self._s(v)
        q, r, inside = lsq_forward(v, s, self.q_n, self.q_p, self.mode == "bipolar")
        return (q * s).astype(v.dtype), (q, r, inside)

    def forward(self, v: np.ndarray, train: bool = False) -> np.ndarray:
        """Fake-quantized `v` (same shape and dtype): round(clip(v/s)) * s."""
        v_hat, cache = self.fake_quant(v)
        self._cache = cache if train else None
        return v_hat

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """Accumulate the step gradient into `step.grad`; return the straight-through dv."""
        q, r, inside = self._cache
        ds_el = dy * lsq_step_grad_elements(q, r, inside)
        if self.per_channel:
            ds = ds_el.reshape(-1, ds_el.shape[-1]).sum(axis=0)
        else:
            ds = np.array([ds_el.sum()])
        if self.trainable:
            self.step.grad += ds * self.grad_scale
        return dy * inside

    def int_codes(self, v: np.ndarray) -> np.ndarray:
        """Integer codes of `v` (int64): round(clip(v/s)), or sign for bipolar."""
        q, _, _ = lsq_forward(v, self._s(v), self.q_n, self.q_p, self.mode == "bipolar")
        return q.astype(np.int64)

    def steps(self, channels: int) -> np.ndarray:
        """Step sizes as a float64 array of length `channels` (a per-tensor step is repeated)."""
        s = np.asarray(self.step.value, dtype=np.float64)
        return np.broadcast_to(s, (channels,)).copy() if s.size == 1 else s.copy()
