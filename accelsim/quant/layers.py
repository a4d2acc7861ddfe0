"""Trainable layers in NumPy (forward and backward) laid out the way the processor computes them.

Activations are NHWC. A convolution is an implicit GEMM: im2col gives a [M, K] matrix with
M = N*OH*OW and K = KH*KW*Cin ordered (kh, kw, cin), cin fastest, and the weight is stored as
the hardware stores it, a [K, N] matrix (N = Cout). Linear is x [M, K] @ w [K, N]. Linear and
Conv2d optionally carry a weight quantizer `wq` and an input activation quantizer `aq`
(`LsqQuantizer`, set by `models.quantize`); with them the layer computes on fake-quantized
values exactly as the integer hardware does, up to the final rescale.

Every layer has `forward(x, train)`, `backward(dy) -> dx` (which accumulates parameter
gradients into `Param.grad`) and `params()`. Layers are dtype-agnostic: float32 for training,
float64 for gradient checks.
"""

import numpy as np
from numpy.lib.stride_tricks import as_strided


class Param:
    """A trainable array with its gradient; `decay` says whether weight decay applies."""

    def __init__(self, value: np.ndarray, decay: bool = True):
        self.value = value
        self.grad = np.zeros_like(value)
        self.decay = decay


class Module:
    """Base layer: identity with no parameters. `name` is set by the model builder."""

    name = ""

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy

    def params(self) -> list[Param]:
        return []

    def quantizers(self) -> list:
        """The layer's LSQ quantizers (weights and input activations), if any."""
        return []


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if np.isscalar(v) else (int(v[0]), int(v[1]))


def conv_out_size(size: int, kernel: int, stride: int, pad: int) -> int:
    """Output length of a convolution or pool window along one axis."""
    return (size + 2 * pad - kernel) // stride + 1


def im2col(x: np.ndarray, kernel, stride, padding, pad_value: float = 0.0) -> np.ndarray:
    """NHWC input -> [N, OH, OW, KH, KW, C] window view (a copy), K ordered (kh, kw, cin)."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    if ph or pw:
        x = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), constant_values=pad_value)
    n, h, w, c = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    s_n, s_h, s_w, s_c = x.strides
    view = as_strided(x, (n, oh, ow, kh, kw, c), (s_n, s_h * sh, s_w * sw, s_h, s_w, s_c))
    return np.ascontiguousarray(view)


def col2im(cols: np.ndarray, x_shape, kernel, stride, padding) -> np.ndarray:
    """Adjoint of `im2col`: sum [N, OH, OW, KH, KW, C] window gradients into an NHWC array."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel), _pair(stride), _pair(padding)
    n, h, w, c = x_shape
    oh, ow = cols.shape[1], cols.shape[2]
    dx = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :] += cols[
                :, :, :, i, j, :
            ]
    return dx[:, ph : ph + h, pw : pw + w, :]


class _QuantGemm(Module):
    """Shared part of Linear and Conv2d: quantize input and weight, GEMM, bias."""

    def __init__(self, k: int, n: int, bias: bool, rng: np.random.Generator, dtype):
        std = np.sqrt(2.0 / k)  # He init for ReLU networks
        self.w = Param((rng.standard_normal((k, n)) * std).astype(dtype))
        self.b = Param(np.zeros(n, dtype=dtype), decay=False) if bias else None
        self.wq = None  # LsqQuantizer for weights [K, N] (per tensor or per output channel)
        self.aq = None  # LsqQuantizer for the input activations
        self.in_signed = True  # input may be negative (set False by builders after ReLU)
        # After batch-norm folding (`fold.fold_batchnorm`) the bias is fake-quantized to the
        # accumulator grid s_a*s_w[c]: the hardware adds it as an int32 in accumulator units.
        self.quant_bias = False

    def params(self) -> list[Param]:
        ps = [self.w] + ([self.b] if self.b is not None else [])
        return ps + [q.step for q in self.quantizers() if q.trainable]

    def quantizers(self) -> list:
        return [q for q in (self.wq, self.aq) if q is not None]

    def _weights(self, train: bool) -> np.ndarray:
        return self.w.value if self.wq is None else self.wq.forward(self.w.value, train)

    def _input(self, x: np.ndarray, train: bool) -> np.ndarray:
        return x if self.aq is None else self.aq.forward(x, train)

    def bias_value(self, dtype) -> np.ndarray | None:
        """The bias the layer adds, in `dtype`: the raw bias, or with `quant_bias` the bias
        rounded half to even to whole accumulator units s_a*s_w[c] (computed in float64 so the
        export and the int32 bias of the hardware round identically). Straight-through in
        backward. Needs initialised steps (call after `_input` and `_weights`)."""
        if self.b is None:
            return None
        if not (self.quant_bias and self.wq is not None and self.aq is not None):
            return self.b.value.astype(dtype, copy=False)
        n = self.b.value.shape[0]
        unit = float(self.aq.steps(1)[0]) * self.wq.steps(n)
        return (np.round(self.b.value.astype(np.float64) / unit) * unit).astype(dtype)

    def _gemm_backward(self, cols, wq_val, dy2):
        dwq = cols.T @ dy2
        self.w.grad += dwq if self.wq is None else self.wq.backward(dwq)
        if self.b is not None:
            self.b.grad += dy2.sum(axis=0)
        return dy2 @ wq_val.T

    def _input_backward(self, dxq: np.ndarray) -> np.ndarray:
        return dxq if self.aq is None else self.aq.backward(dxq)


class Linear(_QuantGemm):
    """y = x @ w + b with x [M, K], w [K, N] (hardware layout), optional quantizers."""

    def __init__(self, k: int, n: int, bias: bool = True, rng=None, dtype=np.float32):
        super().__init__(k, n, bias, rng if rng is not None else np.random.default_rng(0), dtype)
        self.in_features, self.out_features = k, n
        self._cache = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        xq = self._input(x, train)
        wq = self._weights(train)
        y = xq @ wq
        if self.b is not None:
            y = y + self.bias_value(y.dtype)
        self._cache = (xq, wq) if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xq, wq = self._cache
        return self._input_backward(self._gemm_backward(xq, wq, dy))


class Conv2d(_QuantGemm):
    """2D convolution on NHWC as implicit GEMM; weight [KH*KW*Cin, Cout], K order (kh,kw,cin)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel=3,
        stride=1,
        padding=0,
        bias: bool = True,
        rng=None,
        dtype=np.float32,
    ):
        self.kernel, self.stride, self.padding = _pair(kernel), _pair(stride), _pair(padding)
        k = self.kernel[0] * self.kernel[1] * cin
        super().__init__(k, cout, bias, rng if rng is not None else np.random.default_rng(0), dtype)
        self.cin, self.cout = cin, cout
        self._cache = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        xq = self._input(x, train)
        wq = self._weights(train)
        cols = im2col(xq, self.kernel, self.stride, self.padding)
        n, oh, ow = cols.shape[:3]
        cols = cols.reshape(n * oh * ow, -1)
        y = cols @ wq
        if self.b is not None:
            y += self.bias_value(y.dtype)
        self._cache = (cols, wq, x.shape, (n, oh, ow)) if train else None
        return y.reshape(n, oh, ow, self.cout)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        cols, wq, x_shape, (n, oh, ow) = self._cache
        dcols = self._gemm_backward(cols, wq, dy.reshape(n * oh * ow, self.cout))
        dcols = dcols.reshape(n, oh, ow, self.kernel[0], self.kernel[1], self.cin)
        dxq = col2im(dcols, x_shape, self.kernel, self.stride, self.padding)
        return self._input_backward(dxq)


class BatchNorm(Module):
    """Batch norm over the last (channel) axis; batch statistics in training, running in eval.

    Eval mode is y = gamma*(x - mean)/sqrt(var + eps) + beta, a per-channel affine map that
    folds into the preceding GEMM's per-channel weight scale and bias (`fold.fold_bn`).
    """

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5, dtype=np.float32):
        self.gamma = Param(np.ones(channels, dtype=dtype), decay=False)
        self.beta = Param(np.zeros(channels, dtype=dtype), decay=False)
        self.running_mean = np.zeros(channels, dtype=np.float64)
        self.running_var = np.ones(channels, dtype=np.float64)
        self.momentum, self.eps = momentum, eps
        self._cache = None

    def params(self) -> list[Param]:
        return [self.gamma, self.beta]

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        if not train:
            inv = 1.0 / np.sqrt(self.running_var + self.eps)
            scale = (self.gamma.value * inv).astype(x.dtype)
            shift = (self.beta.value - self.running_mean * self.gamma.value * inv).astype(x.dtype)
            return x * scale + shift
        axes = tuple(range(x.ndim - 1))
        mean = x.mean(axis=axes)
        var = x.var(axis=axes)
        m = x.size // x.shape[-1]
        self.running_mean += self.momentum * (mean - self.running_mean)
        self.running_var += self.momentum * (var * m / max(m - 1, 1) - self.running_var)
        inv = 1.0 / np.sqrt(var + self.eps)
        xhat = (x - mean) * inv
        self._cache = (xhat, inv, axes)
        return xhat * self.gamma.value + self.beta.value

    def backward(self, dy: np.ndarray) -> np.ndarray:
        xhat, inv, axes = self._cache
        self.gamma.grad += (dy * xhat).sum(axis=axes)
        self.beta.grad += dy.sum(axis=axes)
        dxhat = dy * self.gamma.value
        return inv * (dxhat - dxhat.mean(axis=axes) - xhat * (dxhat * xhat).mean(axis=axes))


class ReLU(Module):
    """max(x, 0); its output is the unsigned input of the next quantized layer."""

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        mask = x > 0
        self._mask = mask if train else None
        return x * mask

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy * self._mask
