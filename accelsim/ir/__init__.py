"""Graph IR of quantized networks: tensors, op nodes, shared integer parameters, and the exact
integer reference execution.

    from accelsim.ir import Graph, TensorInfo, QuantConv2d, run_reference
"""

from accelsim.ir.fold import fold_batchnorm
from accelsim.ir.graph import Graph, TensorInfo
from accelsim.ir.ops import (
    OP_TYPES,
    Add,
    AvgPool,
    BatchNorm,
    Clip,
    Concat,
    Flatten,
    Gelu,
    GlobalAvgPool,
    LayerNorm,
    MatMul,
    MaxPool,
    Op,
    QuantConv2d,
    Quantize,
    QuantLinear,
    Softmax,
    Trunc,
    Upsample,
)
from accelsim.ir.params import (
    AddParams,
    PoolParams,
    RescaleParams,
    add_params,
    concat_params,
    pool_params,
    rescale_params,
)
from accelsim.ir.reference import conv_acc, pad_nhwc, run_node, run_reference

__all__ = [
    "OP_TYPES",
    "Add",
    "AddParams",
    "AvgPool",
    "BatchNorm",
    "Clip",
    "Concat",
    "Flatten",
    "Gelu",
    "GlobalAvgPool",
    "Graph",
    "LayerNorm",
    "MatMul",
    "MaxPool",
    "Op",
    "PoolParams",
    "QuantConv2d",
    "QuantLinear",
    "Quantize",
    "RescaleParams",
    "Softmax",
    "TensorInfo",
    "Trunc",
    "Upsample",
    "add_params",
    "concat_params",
    "conv_acc",
    "fold_batchnorm",
    "pad_nhwc",
    "pool_params",
    "rescale_params",
    "run_node",
    "run_reference",
]
