"""Matrix-multiply unit: an R x C systolic array of low-bit MACs running GEMM tiles.

Precision. A MAC model gives a fusion factor f (MACs per PE per cycle) and a pass count:
- `fusion` (Bit Fusion): a', w' = operand bits rounded up to {1, 2, 4, 8};
  f = floor(8/a') * floor(8/w'), passes = 1.
- `serial_act` (Stripes): f = 1, passes = ceil(a / serial_bits).
- `serial_both` (Loom): f = 1, passes = ceil(a / serial_bits) * ceil(w / serial_bits).
- `fixed`: f = passes = 1.
Operands wider than `matmul.max_bits` are rejected (IsaError) under every model.

Cycles of one GEMM (M x K) . (K x N), R x C array, R along K::

    os: ceil(M/R) * ceil(N/C) * (passes*ceil(K/f) + R + C - 2)
    ws: ceil(K/(R*f)) * ceil(N/C) * (passes*M + 2R + C - 2)
    is: ceil(K/(R*f)) * ceil(M/C) * (passes*N + 2R + C - 2)

The fill/drain terms (R + C - 2, 2R + C - 2) are dropped when `matmul.fill_drain` is false.
With f = passes = 1 these are SCALE-Sim's compute-cycle formulas.

Depthwise GEMM (`depthwise=1`): output channel j reduces only input channel j over K = kh*kw
taps. It is costed as N independent one-column problems (M x K) . (K x 1) packed side by side
on the C columns, which gives the same formula as a dense GEMM of (M, K, N): each column holds
one channel, and the array's K rows see only that channel's K taps. MACs = M*K*N.

SRAM traffic (for energy): the array re-reads operand tiles that do not stay resident:
os reads INP ceil(N/C) times and WGT ceil(M/R) times; ws reads WGT once and INP ceil(N/C)
times; is reads INP once and WGT ceil(M/C) times. ACC is read (unless reset) and written once.

Datapath: `accelsim.kernels.gemm` (`gemm`, `im2col`). conv=1 reads the INP tile as an NHWC patch
[ph, patch_w, cin] (cin = k/(kh*kw), or n when depthwise) turned into [m, k] by im2col with
the tile's kh, kw, stride and dilation (m = oh*ow, ow given). depthwise=0/conv=0: INP is [m, k].
depthwise=1/conv=0: INP is [m, k, n] (the per-channel columns already gathered).
"""

from __future__ import annotations

import numpy as np

from accelsim.errors import IsaError
from accelsim.isa import MODE_NAMES, Buf, Unit
from accelsim.kernels.gemm import gemm, im2col
from accelsim.stats import MacWidths
from accelsim.units.base import UnitBase


def _round_pow2(bits: int) -> int:
    return 1 if bits <= 1 else 2 if bits <= 2 else 4 if bits <= 4 else 8


def precision(cfg, a_bits: int, w_bits: int) -> tuple[int, int]:
    """(f, passes) of the configured MAC model at a_bits x w_bits; IsaError if too wide."""
    mm = cfg.matmul
    if a_bits > mm.max_bits or w_bits > mm.max_bits:
        raise IsaError(f"{a_bits}x{w_bits}-bit operands exceed matmul.max_bits = {mm.max_bits}")
    model = mm.mac_model
    if model == "fusion":
        return (8 // _round_pow2(a_bits)) * (8 // _round_pow2(w_bits)), 1
    s = mm.serial_bits
    if model == "serial_act":
        return 1, -(-a_bits // s)
    if model == "serial_both":
        return 1, -(-a_bits // s) * -(-w_bits // s)
    return 1, 1


def array_macs_per_cycle(cfg, a_bits: int, w_bits: int) -> float:
    """Peak MACs per cycle of one R x C array at a_bits x w_bits: R * C * f / passes."""
    f, passes = precision(cfg, a_bits, w_bits)
    return cfg.matmul.rows * cfg.matmul.cols * f / passes


def matmul_cycles(
    cfg, m: int, k: int, n: int, a_bits: int = 8, w_bits: int = 8, dataflow: str | None = None
) -> int:
    """Cycles of one (m x k) . (k x n) GEMM on the configured R x C array (module docstring):

    cycles = ceil(m/R) * ceil(n/C) * (passes*ceil(k/f) + R + C - 2) (os; ws and is: see
             accelsim/units/matmul.py), (f, passes) from the MAC model at a_bits x w_bits
    """
    mm = cfg.matmul
    f, passes = precision(cfg, a_bits, w_bits)
    R, C = mm.rows, mm.cols
    df = dataflow or mm.dataflow
    fd = mm.fill_drain
    if df == "os":
        return -(-m // R) * -(-n // C) * (passes * -(-k // f) + (R + C - 2 if fd else 0))
    if df == "ws":
        return -(-k // (R * f)) * -(-n // C) * (passes * m + (2 * R + C - 2 if fd else 0))
    if df == "is":
        return -(-k // (R * f)) * -(-m // C) * (passes * n + (2 * R + C - 2 if fd else 0))
    raise IsaError(f"unknown dataflow {df!r}")


def operand_reads(cfg, m: int, k: int, n: int) -> tuple[int, int]:
    """How many times the array reads the INP and WGT tiles of one GEMM (dataflow reuse)."""
    mm = cfg.matmul
    if mm.dataflow == "os":
        return -(-n // mm.cols), -(-m // mm.rows)
    if mm.dataflow == "ws":
        return -(-n // mm.cols), 1
    return 1, -(-m // mm.cols)


def conv_patch(insn) -> tuple[int, int, int]:
    """(ph, pw, cin) of the INP patch a conv GEMM reads; IsaError if the fields disagree."""
    f = insn.f
    m, k, n = f["m"], f["k"], f["n"]
    taps = f["kh"] * f["kw"]
    if f["depthwise"]:
        if k != taps:
            raise IsaError(f"insn {insn.index} GEMM: depthwise k = {k} must equal kh*kw = {taps}")
        cin = n
    else:
        if k % taps:
            raise IsaError(f"insn {insn.index} GEMM: k = {k} is not a multiple of kh*kw = {taps}")
        cin = k // taps
    if m % f["ow"]:
        raise IsaError(f"insn {insn.index} GEMM: m = {m} is not a multiple of ow = {f['ow']}")
    oh = m // f["ow"]
    s, d = f["stride"], f["dilation"]
    ph = (oh - 1) * s + (f["kh"] - 1) * d + 1
    if (f["ow"] - 1) * s + (f["kw"] - 1) * d + 1 > f["patch_w"]:
        raise IsaError(
            f"insn {insn.index} GEMM: ow = {f['ow']} needs a wider patch than "
            f"patch_w = {f['patch_w']}"
        )
    return ph, f["patch_w"], cin


def inp_elems(insn) -> int:
    """Elements of the INP tile a GEMM reads."""
    f = insn.f
    if f["conv"]:
        ph, pw, cin = conv_patch(insn)
        return ph * pw * cin
    return f["m"] * f["k"] * (f["n"] if f["depthwise"] else 1)


class Matmul(UnitBase):
    """The systolic array. Cost: `matmul_cycles`; datapath: kernels.gemm."""

    unit = Unit.MATMUL
    ADDR_FIELDS = ("inp_addr", "wgt_addr", "acc_addr")
    mac_arrays = 1

    def cycles(self, insn) -> int:
        return matmul_cycles(self.cfg, insn.m, insn.k, insn.n, insn.a_bits, insn.w_bits)

    def peak_macs_per_cycle(self, a_bits: int, w_bits: int) -> float:
        """R * C * f / passes of the one array."""
        return array_macs_per_cycle(self.cfg, a_bits, w_bits)

    def profile(self, insn):
        f = insn.f
        m, k, n, a, w = f["m"], f["k"], f["n"], f["a_bits"], f["w_bits"]
        try:
            cyc = matmul_cycles(self.cfg, m, k, n, a, w)
            n_inp = inp_elems(insn) if f["conv"] or f["depthwise"] else m * k
        except IsaError as exc:
            raise IsaError(f"insn {insn.index} GEMM: {exc}") from None
        rb = self.row_bits
        inp_rows, wgt_rows = -(-n_inp * a // rb), -(-k * n * w // rb)
        acc_rows = -(-m * n * 32 // rb)
        ri, rw = operand_reads(self.cfg, m, k, n)
        acc_bits = acc_rows * rb
        if f["reset"]:
            accesses = (
                (Buf.INP, "inp_addr", inp_rows, False),
                (Buf.WGT, "wgt_addr", wgt_rows, False),
                (Buf.ACC, "acc_addr", acc_rows, True),
            )
        else:
            accesses = (
                (Buf.INP, "inp_addr", inp_rows, False),
                (Buf.WGT, "wgt_addr", wgt_rows, False),
                (Buf.ACC, "acc_addr", acc_rows, False),
                (Buf.ACC, "acc_addr", acc_rows, True),
            )
        counts = (
            (MacWidths(a, w), m * k * n),
            ("sram_read_bits_inp", ri * inp_rows * rb),
            ("sram_read_bits_wgt", rw * wgt_rows * rb),
            ("sram_read_bits_acc", 0 if f["reset"] else acc_bits),
            ("sram_write_bits_acc", acc_bits),
        )
        return cyc, accesses, counts

    def run(self, insn, mem):
        f = insn.f
        m, k, n = f["m"], f["k"], f["n"]
        who = f"insn {insn.index} GEMM"
        x = mem.read(Buf.INP, f["inp_addr"], inp_elems(insn), f["a_bits"], who)
        w = mem.read(Buf.WGT, f["wgt_addr"], k * n, f["w_bits"], who).reshape(k, n)
        acc = None if f["reset"] else mem.read(Buf.ACC, f["acc_addr"], m * n, 32, who).reshape(m, n)
        kw = dict(
            a_bits=f["a_bits"],
            w_bits=f["w_bits"],
            a_mode=MODE_NAMES[f["a_mode"]],
            w_mode=MODE_NAMES[f["w_mode"]],
            overflow=self.cfg.matmul.overflow,
        )
        if f["conv"]:
            ph, pw, cin = conv_patch(insn)
            patch = x.reshape(ph, pw, cin)
            cols = im2col(patch, f["kh"], f["kw"], f["stride"], f["dilation"])
            ow_full = (pw - (f["kw"] - 1) * f["dilation"] - 1) // f["stride"] + 1
            if ow_full != f["ow"]:  # patch wider than needed: keep the first ow columns
                cols = cols.reshape(-1, ow_full, cols.shape[1])[:, : f["ow"]].reshape(m, -1)
            x = cols
        if f["depthwise"]:
            x = x.reshape(m, k, n)
            out = np.empty((m, n), np.int32)
            for j in range(n):  # one column of the array per channel
                out[:, j : j + 1] = gemm(
                    x[:, :, j], w[:, j : j + 1], None if acc is None else acc[:, j : j + 1], **kw
                )
        else:
            out = gemm(x.reshape(m, k), w, acc, **kw)
        mem.write(Buf.ACC, f["acc_addr"], out, 32)
