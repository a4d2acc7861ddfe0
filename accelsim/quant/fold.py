"""Batch-norm folding of a quantized model, so training ends on the network the hardware runs.

The processor has no batch norm: in eval mode BN is a per-channel affine map
y = a[c]*x + (beta[c] - a[c]*mean[c]) with a[c] = gamma[c]/sqrt(var[c] + eps), which the export
folds into the GEMM's per-channel weight scale and an int32 bias in accumulator units. The
export of a model trained with BN and folded only there differed from its training model by
that bias rounding, which moved 1-6 of 359 predicted classes at 2 and 1 bits. `fold_batchnorm`
does the fold in the training model itself:

- weights w[:, c] <- a[c]*w[:, c] and the weight step s_w[c] <- |a[c]|*s_w[c] (per channel from
  then on), so the integer weight codes keep their magnitude (the sign flips with a[c] < 0,
  which symmetric and bipolar ranges allow);
- bias b[c] <- a[c]*(b[c] - mean[c]) + beta[c], and every GEMM's bias (the classifier's own
  too) fake-quantized from then on to whole accumulator units s_a*s_w[c]
  (`_QuantGemm.quant_bias`);
- the BN layer is dropped.

The folded model computes with exactly the arithmetic of the machine (integer codes, integer
bias, requantization at the next layer's step), so its predicted classes are the ones the
machine reproduces. The trainer folds at the end of every quantized run and can fine-tune the
folded model further (`TrainConfig.fold_epochs`, `fold_train`).
"""

import copy

import numpy as np

from accelsim.errors import AccelsimError
from accelsim.quant.layers import BatchNorm, Param, _QuantGemm
from accelsim.quant.pooling import Residual


def fold_bn(scale: np.ndarray, bias: np.ndarray, bn: BatchNorm):
    """Fold eval-mode batch norm after y = scale*acc + bias: returns (scale', bias') per channel."""
    a = bn.gamma.value.astype(np.float64) / np.sqrt(bn.running_var + bn.eps)
    return scale * a, a * (bias - bn.running_mean) + bn.beta.value.astype(np.float64)


def _fold_into(gemm: _QuantGemm, bn: BatchNorm) -> None:
    dtype = gemm.w.value.dtype
    n = bn.gamma.value.shape[0]
    b = gemm.b.value.astype(np.float64) if gemm.b is not None else np.zeros(n)
    a, bias = fold_bn(np.ones(n), b, bn)
    gemm.w.value = (gemm.w.value.astype(np.float64) * a).astype(dtype)
    gemm.b = Param(bias.astype(dtype), decay=False)
    wq = gemm.wq
    if wq is not None:
        if wq.initialized:
            if not wq.per_channel:  # N in the LSQ gradient scale drops from K*N to K weights
                wq.grad_scale *= np.sqrt(n)
            wq.step.value = (wq.steps(n) * np.abs(a)).astype(wq.step.value.dtype)
            wq.step.grad = np.zeros_like(wq.step.value)
        wq.per_channel = True


def _fold_seq(layers: list) -> list:
    out, i = [], 0
    while i < len(layers):
        layer = layers[i]
        nxt = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, Residual):
            layer.body = _fold_seq(layer.body)
        elif isinstance(layer, BatchNorm):
            raise AccelsimError(f"fold: batch norm {layer.name} does not follow a Linear or Conv2d")
        out.append(layer)
        if isinstance(layer, _QuantGemm) and isinstance(nxt, BatchNorm):
            _fold_into(layer, nxt)
            i += 1
        i += 1
    return out


def fold_batchnorm(model):
    """A copy of quantized `model` with every BatchNorm folded into the GEMM before it and that
    GEMM's bias on the int32 accumulator grid (see the module docstring). Eval-mode outputs are
    unchanged up to the bias rounding; `model.spec["folded"]` is set so `build_model` rebuilds
    the folded layout."""
    if not model.spec.get("quant"):
        raise AccelsimError("fold: model is not quantized (call quantize first)")
    folded = copy.deepcopy(model)
    folded.layers = _fold_seq(folded.layers)
    for gemm in folded.gemms():  # every bias, folded or the layer's own (the classifier's)
        gemm.quant_bias = True
    folded.spec = dict(model.spec, folded=True)
    return folded
