"""Emission of a MatMul between two activations (attention's Q . K^T and P . V), head by head.

Each head is one linear GEMM layer (`GemmLayer` with conv=False: M rows of K features times a
[K, N] operand), emitted by `emit_gemm_layer` with the tiling `choose_tiling` picks for it, as
for a QuantLinear. What differs is where the [K, N] operand comes from: not packed weights but
the second activation tensor, which the LOAD into WGT reads in place with DRAM strides
(`GemmPlace.w_blocks` holds the strided blocks):

- not transposed (P . V, B is [K, H*N]): K rows of n contiguous elements, one DMA row each;
- transposed (Q . K^T, B is [N, H*K]): WGT must hold K^T in [k, n] layout, so the LOAD gathers
  it one element per DMA row (d0 = k rows of the tile, d1 = n keys, d2 = 1, strides 1 and the
  row pitch of B). The DMA pays a whole burst per element (`accelsim.units.dma`), the honest
  cost of transposing with a strided DMA and no transpose hardware. Every element of K is
  fetched once per head when the operand tile stays resident (the tiler's usual case), which
  is the traffic a transposing STORE of K by its producer would cost, while K stays in its
  natural layout for every other reader and for `--check`.

The heads' outputs go to [H, M, N] (head h at h*M*N) or, with `concat_heads`, to the columns
h*N:(h+1)*N of [M, H*N]; one per-tensor rescale (`transformer_params.matmul_params`) finishes
every tile.
"""

from __future__ import annotations

from accelsim.config import HwConfig
from accelsim.frontend.emit import Emitter
from accelsim.frontend.gemm_layer import GemmPlace, emit_gemm_layer
from accelsim.frontend.tiling import GemmLayer, Tiling
from accelsim.ir.graph import Graph
from accelsim.ir.transformer_ops import MatMul
from accelsim.ir.transformer_params import matmul_params
from accelsim.program import TensorPlace


def matmul_gemm_layer(op: MatMul, g: Graph) -> GemmLayer:
    """The GEMM of one head of `op`, as a linear layer of M rows."""
    a, b, out = (g.tensors[n] for n in (*op.inputs, op.output))
    m, k, n = op.gemm_shape(g)
    return GemmLayer(
        h=m, w=1, cin=k, oh=m, ow=1, cout=n, conv=False,
        a_bits=a.bits, w_bits=b.bits, out_bits=out.bits,
    )  # fmt: skip


def head_place(place: TensorPlace, h: int, heads: int) -> tuple[int, int, int]:
    """(first element of head h's rows, row pitch, first column) of a tensor in DRAM:
    [H, R, X] holds head h at h*R*X; [R, H*X] holds it in columns h*X:(h+1)*X."""
    if len(place.shape) == 3:
        _, rows, cols = place.shape
        return place.dram_addr + h * rows * cols, cols, 0
    pitch = place.shape[1]
    return place.dram_addr, pitch, h * (pitch // heads)


def operand_blocks(op: MatMul, L: GemmLayer, t: Tiling, place: TensorPlace, h: int) -> dict:
    """(n0, c0) -> the strided DMA block (dram_addr, d0, d1, d2, s0, s1) of head h's [cin, n]
    operand tile, read in place from the second input (module docstring)."""
    base, pitch, col = head_place(place, h, op.heads)
    blocks = {}
    for n0 in range(0, L.cout, t.n_t):
        n = min(t.n_t, L.cout - n0)
        for c0 in range(0, L.cin, t.cin_t):
            cin = min(t.cin_t, L.cin - c0)
            if op.transpose_b:  # element (kk, j) is B[n0 + j, c0 + kk]: one per DMA row
                blocks[(n0, c0)] = (base + n0 * pitch + col + c0, cin, n, 1, 1, pitch)
            else:  # element (kk, j) is B[c0 + kk, n0 + j]: rows of n elements
                blocks[(n0, c0)] = (base + c0 * pitch + col + n0, 1, cin, n, 0, pitch)
    return blocks


def emit_matmul(em: Emitter, op: MatMul, g: Graph, t: Tiling, places, cfg: HwConfig) -> None:
    """Emit every head of `op` with tiling `t` (one head's GEMM, `matmul_gemm_layer`)."""
    a, b, out = (g.tensors[n] for n in (*op.inputs, op.output))
    L = matmul_gemm_layer(op, g)
    rp = matmul_params(op, g, cfg.rescale.mult_bits)
    p_addr = em.alloc_rescale_params(rp, op.name)
    for h in range(op.heads):
        in_addr, in_c, in_off = head_place(places[op.inputs[0]], h, op.heads)
        out_addr, out_c, out_off = head_place(places[op.output], h, op.heads)
        P = GemmPlace(
            in_addr=in_addr,
            in_c=in_c,
            out_addr=out_addr,
            out_c=out_c,
            p_addr=p_addr,
            w_blocks=operand_blocks(op, L, t, places[op.inputs[1]], h),
            in_c_off=in_off,
            out_c_off=out_off,
            a_mode=a.mode,
            w_mode=b.mode,
            out_mode=out.mode,
            zp=rp.zp,
            key=(op.name, h),
        )
        emit_gemm_layer(em, L, t, P)
