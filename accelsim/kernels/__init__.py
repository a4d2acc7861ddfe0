"""Integer datapaths of the processor's units, each a Numba kernel with a NumPy `*_ref` twin.

The `_ref` functions are the executable definitions of the instructions (integer rounding and
saturation written out); the Numba / BLAS versions must match them bit for bit.

- `gemm`:    MATMUL unit, exact low-bit GEMM with int32 accumulation and overflow check; im2col
- `rescale`: RESCALE unit, per-channel fixed-point requantization (single / tflite / rne)
- `quant`:   QUANT unit, int32 or float -> b-bit
- `alu`:     VECTOR unit, add / max / min / shift / clip and pooling (`pool`)
- `common`:  value ranges and storage dtypes shared by all
"""
