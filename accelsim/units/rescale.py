"""Rescale unit: int32 accumulators -> b-bit outputs with per-channel fixed-point scales.

Cost of one RESCALE of an m x n accumulator tile::

    cycles = latency_cycles + ceil(m*n / lanes) + ceil(n / param_channels_per_cycle)

(the last term loads the n channels' parameters from PARAM before the tile streams through).

PARAM layout (the lowering writes it, a LOAD with bits=32 brings it on chip): per output
channel c, three int32 values in a row, channel-major::

    PARAM[param_addr] as a flat int32 array: [bias_0, mult_0, shift_0, bias_1, mult_1, ...]

so a RESCALE over n channels reads 3*n int32 elements (ceil(96*n / row_bits) rows) at
param_addr. A PARAM tile may hold more channels than one RESCALE uses; a RESCALE may start
inside it where 96*c bits is a multiple of row_bits (see `accelsim.memory`). `mult` must fit
`rescale.mult_bits` (mult < 2**(mult_bits-1)), `shift` in 0..62.

Datapath: `accelsim.kernels.rescale.rescale` with `rescale.round_mode` and `rescale.mult_bits`,
the instruction's zp, bits, mode, relu, clip and frac (F: the bias counts 2^-F accumulator
units, the accumulator enters the bias adder shifted left by F and the total right shift is
shift_c + F; `shift` in PARAM is shift_c alone). In datapath mode the unit also runs the `rne`
reference and counts outputs that differ (`rescale_mismatch_vs_rne`).

F costs no cycles (the shift is wiring selected per instruction); the bias adder is 32 + F
bits wide, which `rescale_bias_frac_bits` (F per rescaled element) lets the energy model charge.
"""

from __future__ import annotations

import numpy as np

from accelsim.isa import Buf, Mode, Unit
from accelsim.kernels.rescale import rescale
from accelsim.memory import tile_rows
from accelsim.units.base import UnitBase

PARAM_WORDS = 3  # int32 values per channel in PARAM: bias, mult, shift


def rescale_cycles(cfg, m: int, n: int) -> int:
    """Cycles of one RESCALE of an m x n tile (the last term loads the channels' parameters):

    cycles = latency_cycles + ceil(m*n / lanes) + ceil(n / param_channels_per_cycle)
    """
    r = cfg.rescale
    return r.latency_cycles + -(-m * n // r.lanes) + -(-n // r.param_channels_per_cycle)


class Rescale(UnitBase):
    """The rescale unit. Cost: `rescale_cycles`; datapath: kernels.rescale."""

    unit = Unit.RESCALE
    ADDR_FIELDS = ("acc_addr", "param_addr", "out_addr")

    def cycles(self, insn) -> int:
        return rescale_cycles(self.cfg, insn.m, insn.n)

    def profile(self, insn):
        f = insn.f
        m, n, rb = f["m"], f["n"], self.row_bits
        acc_rows = tile_rows(m * n, 32, rb)
        par_rows = tile_rows(PARAM_WORDS * n, 32, rb)
        out_rows = tile_rows(m * n, f["bits"], rb)
        accesses = (
            (Buf.ACC, "acc_addr", acc_rows, False),
            (Buf.PARAM, "param_addr", par_rows, False),
            (Buf.OUT, "out_addr", out_rows, True),
        )
        counts = (
            ("rescale_ops", m * n),
            ("sram_read_bits_acc", acc_rows * rb),
            ("sram_read_bits_param", par_rows * rb),
            ("sram_write_bits_out", out_rows * rb),
        )
        if f["frac"]:  # counted only when used, so F = 0 programs keep their counter set
            counts += (("rescale_bias_frac_bits", m * n * f["frac"]),)
        return rescale_cycles(self.cfg, m, n), accesses, counts

    def run(self, insn, mem):
        f = insn.f
        m, n = f["m"], f["n"]
        who = f"insn {insn.index} RESCALE"
        acc = mem.read(Buf.ACC, f["acc_addr"], m * n, 32, who).reshape(m, n)
        par = mem.read(Buf.PARAM, f["param_addr"], PARAM_WORDS * n, 32, who).reshape(n, 3)
        rc = self.cfg.rescale
        kw = dict(
            zp=f["zp"],
            bits=f["bits"],
            signed=f["mode"] == Mode.SIGNED,
            relu=bool(f["relu"]),
            clip_lo=f["clip_lo"] if f["clip"] else None,
            clip_hi=f["clip_hi"] if f["clip"] else None,
            frac=f["frac"],
        )
        bias, mult, shift = par[:, 0], par[:, 1], par[:, 2]
        out = rescale(acc, bias, mult, shift, mode=rc.round_mode, mult_bits=rc.mult_bits, **kw)
        if rc.round_mode != "rne":
            ref = rescale(acc, bias, mult, shift, mode="rne", mult_bits=rc.mult_bits, **kw)
            bad = int(np.count_nonzero(out != ref))
            if bad:
                self.stats.add(insn, "rescale_mismatch_vs_rne", bad)
        mem.write(Buf.OUT, f["out_addr"], out, f["bits"])
