"""Parameter-free layers run by the vector unit: max pool, global average pool, flatten, and the
residual add.

Max pool and flatten commute with a later activation quantizer (quantization is monotone and
elementwise), so the integer hardware may pool the quantized integers. Global average pooling
does not commute with rounding; a model that pools then quantizes is rescaled after the sum.
"""

import numpy as np

from accelsim.quant.layers import Module, _pair, col2im, im2col


class MaxPool2d(Module):
    """Max over KH x KW windows of an NHWC tensor (stride defaults to the kernel size)."""

    def __init__(self, kernel=2, stride=None, padding=0):
        self.kernel = _pair(kernel)
        self.stride = _pair(stride if stride is not None else kernel)
        self.padding = _pair(padding)
        self._cache = None

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        win = im2col(x, self.kernel, self.stride, self.padding, pad_value=-np.inf)
        n, oh, ow, kh, kw, c = win.shape
        flat = win.reshape(n, oh, ow, kh * kw, c)
        idx = flat.argmax(axis=3)
        y = np.take_along_axis(flat, idx[:, :, :, None, :], axis=3)[:, :, :, 0, :]
        self._cache = (idx, x.shape) if train else None
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        idx, x_shape = self._cache
        kh, kw = self.kernel
        n, oh, ow, c = dy.shape
        onehot = idx[:, :, :, None, :] == np.arange(kh * kw)[None, None, None, :, None]
        cols = (onehot * dy[:, :, :, None, :]).reshape(n, oh, ow, kh, kw, c)
        return col2im(cols.astype(dy.dtype), x_shape, self.kernel, self.stride, self.padding)


class GlobalAvgPool(Module):
    """Mean over H and W: NHWC [N, H, W, C] -> [N, C]."""

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self._shape = x.shape
        return x.mean(axis=(1, 2))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        _n, h, w, _c = self._shape
        return np.broadcast_to(dy[:, None, None, :] / (h * w), self._shape).copy()


class Flatten(Module):
    """[N, H, W, C] -> [N, H*W*C] in NHWC order (c fastest), the K order of the next Linear."""

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self._shape)


class Residual(Module):
    """Residual add: y = skip(x) + body(x), `body` a list of layers keeping the shape of x.

    On the machine the skip operand is the integer tensor the body's first GEMM reads, i.e. x
    on that GEMM's input quantizer grid. So once the body is quantized, `skip(x)` is x
    fake-quantized with that quantizer's step (straight-through gradient inside its range; the
    step learns from the body's use only); before, it is x itself.
    """

    def __init__(self, body: list):
        self.body = list(body)
        self._skip_mask = None

    def _skip(self, x: np.ndarray, train: bool) -> np.ndarray:
        aq = getattr(self.body[0], "aq", None) if self.body else None
        if aq is None or not aq.initialized:  # float body, or steps not yet initialised
            self._skip_mask = None
            return x
        skip, (_, _, inside) = aq.fake_quant(x)
        self._skip_mask = inside if train else None
        return skip

    def forward(self, x: np.ndarray, train: bool = False) -> np.ndarray:
        h = x
        for layer in self.body:
            h = layer.forward(h, train)
        return self._skip(x, train) + h

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dh = dy
        for layer in reversed(self.body):
            dh = layer.backward(dh)
        return (dy if self._skip_mask is None else dy * self._skip_mask) + dh

    def params(self) -> list:
        return [p for layer in self.body for p in layer.params()]

    def quantizers(self) -> list:
        return [q for layer in self.body for q in layer.quantizers()]
