"""BERT-base: one encoder layer with random quantized weights, all of it on the machine.

The layer (post-layer-norm, as in BERT) on a [seq, hidden] input of token embeddings:

    q, k, v   = x Wq, x Wk, x Wv                       linear, hidden -> hidden each
    scores_h  = q_h k_h^T / sqrt(d)                    MatMul per head, [heads, seq, seq]
    probs     = softmax(scores)                        vector unit, I-BERT i-exp
    context_h = probs_h v_h                            MatMul per head, [seq, hidden]
    h1        = layernorm(x + context Wo)              linear, add, vector unit
    out       = layernorm(h1 + gelu(h1 W1) W2)         linear (hidden -> ffn), GELU, linear

Widths: the matmul operands (x, q, k, v, probs, context, h1, the GELU output) are `bits_a`-bit
activations and every weight is `bits_w`-bit; the tensors that only the vector unit reads (the
scores, the projection and FFN outputs before their residual add, the two sums, the FFN's
hidden layer before GELU) are 16-bit, as I-BERT keeps its nonlinearities' inputs wide. The
biases of the linear layers are the builder's random folded biases.
"""

from __future__ import annotations

import math

import numpy as np

from accelsim.ir import Graph
from accelsim.ir.transformer_builder import TransformerBuilder
from workloads.dense import Workload

WIDE_BITS = 16  # tensors read only by the vector unit (softmax, GELU, add, layer norm inputs)


def bert_base(
    bits_a: int = 8,
    bits_w: int = 8,
    seed: int = 0,
    *,
    seq: int = 128,
    hidden: int = 768,
    heads: int = 12,
    ffn: int = 3072,
    name: str = "bert_base",
) -> Graph:
    """One BERT encoder layer on a [seq, hidden] float input (module docstring); by default
    BERT-base's: sequence 128, hidden 768, 12 heads of 64, FFN 3072. MACs: seq * hidden *
    (4 * hidden + 2 * ffn) + 2 * seq^2 * hidden (931,135,488 for BERT-base)."""
    if hidden % heads:
        raise ValueError(f"hidden {hidden} is not a multiple of heads {heads}")
    b = TransformerBuilder(name, (seq, hidden), np.random.default_rng(seed), calib_batch=seq)
    lin = {"w_bits": bits_w, "signed": True}
    x = b.quantize(bits_a, signed=True, name="x")
    q = b.linear(x, hidden, bits=bits_a, name="query", **lin)
    k = b.linear(x, hidden, bits=bits_a, name="key", **lin)
    v = b.linear(x, hidden, bits=bits_a, name="value", **lin)
    alpha = 1.0 / math.sqrt(hidden // heads)
    s = b.matmul(q, k, heads=heads, transpose_b=True, alpha=alpha, bits=WIDE_BITS, name="scores")
    p = b.softmax(s, bits=bits_a, name="softmax")
    c = b.matmul(p, v, heads=heads, concat_heads=True, bits=bits_a, name="context")
    o = b.linear(c, hidden, bits=WIDE_BITS, name="attn_out", **lin)
    r1 = b.add(x, o, bits=WIDE_BITS, signed=True, relu=False, name="attn_residual")
    h1 = b.layernorm(r1, bits=bits_a, name="attn_layernorm")
    f1 = b.linear(h1, ffn, bits=WIDE_BITS, name="ffn_in", **lin)
    g = b.gelu(f1, bits=bits_a, name="gelu")
    f2 = b.linear(g, hidden, bits=WIDE_BITS, name="ffn_out", **lin)
    r2 = b.add(h1, f2, bits=WIDE_BITS, signed=True, relu=False, name="ffn_residual")
    return b.finish(b.layernorm(r2, bits=bits_a, name="out_layernorm"))


WORKLOADS = {
    "bert_base": Workload(
        bert_base,
        "BERT-base encoder layer, seq 128, hidden 768, 12 heads, FFN 3072: QKV, attention, "
        "FFN on the array; I-BERT softmax, GELU, layer norm on the vector unit",
    ),
}
