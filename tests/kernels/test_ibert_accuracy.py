"""How far I-BERT's integer softmax, GELU and layer norm are from the float functions.

The integer ops are exact on the machine by definition; this measures their approximation
error on 16-bit inputs (the width of the tensors they read in `bert_base`), with the
constants `accelsim.ir.transformer_params` makes. `python tests/kernels/test_ibert_accuracy.py`
prints the table the README quotes. The bounds asserted are the measured errors rounded up.
"""

import numpy as np

from accelsim.ir.transformer_builder import gelu_float, layernorm_float, softmax_float
from accelsim.ir.transformer_params import erf_constants, exp_constants, norm_constants
from accelsim.kernels import ibert
from accelsim.kernels.rescale import quantize_multiplier

IN_RANGE = 12.0  # real value of the largest 16-bit input
S_IN = IN_RANGE / 32767  # 16-bit input step
S_OUT16 = 8.0 / 32767  # 16-bit output step (GELU, layer norm): output rounding ~1e-4


def softmax_error(bits: int, rows: int = 256) -> float:
    """Max |integer - float| softmax over rows of 128 scores ~ N(0, 2), output at `bits`."""
    rng = np.random.default_rng(0)
    q = np.round(rng.normal(0.0, 2.0, (rows, 128)) / S_IN).astype(np.int32)
    k, q_ln2, q_b, q_c = exp_constants(S_IN)
    y = ibert.softmax(q, shift=k, q_ln2=q_ln2, q_b=q_b, q_c=q_c, bits=bits) * 2.0**-bits
    return float(np.abs(y - softmax_float(q * S_IN)).max())


def gelu_error() -> float:
    """Max |integer - float| GELU over inputs in [-8, 8] (16-bit output)."""
    q = np.round(np.linspace(-8.0, 8.0, 20001) / S_IN).astype(np.int32)
    k, q_b, q_c = erf_constants(S_IN, -32768, 32767)
    mult, t = quantize_multiplier(S_IN * 2**k / (2 * q_c) / S_OUT16)
    y = ibert.gelu(q, zx=0, shift=k, q_b=q_b, q_c=q_c, mult=mult, t=t, zp=0, bits=16,
                   signed=True, mode="rne")  # fmt: skip
    return float(np.abs(y * S_OUT16 - gelu_float(q * S_IN)).max())


def layernorm_error(rows: int = 64) -> float:
    """Max |integer - float| layer norm over rows of 768 values ~ N(0.5, 3), gamma in
    [0.5, 1.5], beta ~ N(0, 0.1) (16-bit output)."""
    rng = np.random.default_rng(1)
    q = np.round(rng.normal(0.5, 3.0, (rows, 768)) / S_IN).astype(np.int32)
    gamma, beta = rng.uniform(0.5, 1.5, 768), rng.normal(0.0, 0.1, 768)
    gain, offset, t = norm_constants(gamma, beta, S_OUT16)
    y = ibert.layernorm(q, gain=gain, offset=offset, t=t, zp=0, bits=16, signed=True, mode="rne")
    return float(np.abs(y * S_OUT16 - layernorm_float(q * S_IN, gamma, beta)).max())


def test_softmax_error():
    """Measured 0.0045 (8-bit output) and 0.0048 (16-bit): the polynomial's own error
    (exp(0) comes out 0.990) dominates the output rounding."""
    assert softmax_error(8) < 0.006
    assert softmax_error(16) < 0.006


def test_gelu_error():
    """Measured 0.0188, the erf polynomial's own error."""
    assert gelu_error() < 0.02


def test_layernorm_error():
    """Measured 0.0006: the rounded mean and the square root's floor."""
    assert layernorm_error() < 0.001


if __name__ == "__main__":
    print(f"softmax, 8-bit output   max abs error {softmax_error(8):.4f}")
    print(f"softmax, 16-bit output  max abs error {softmax_error(16):.4f}")
    print(f"GELU on [-8, 8]         max abs error {gelu_error():.4f}")
    print(f"layer norm, 768 wide    max abs error {layernorm_error():.4f}")
