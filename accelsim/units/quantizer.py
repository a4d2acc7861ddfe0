"""Quantizer unit: wide integers -> b-bit activations, y = clamp(zp + R(x * mult / 2^shift)).

Cost of one QUANT of n elements::

    cycles = latency_cycles + ceil(n / lanes)

Datapath: `accelsim.kernels.quant.quant` (the rescale rounding with zero bias and no ReLU). The
quantizer shares the rescale unit's rounding mode (`rescale.round_mode`) and has a 32-bit
multiplier of its own: the instruction's `mult` must be below 2**31, `shift` in 0..62. The
source tile holds n elements of `in_bits` bits; the result is written as n elements of `bits`.
"""

from __future__ import annotations

from accelsim.isa import Mode, Unit
from accelsim.kernels.quant import quant
from accelsim.memory import tile_rows
from accelsim.units.base import SRAM_READ, SRAM_WRITE, UnitBase

QUANT_MULT_BITS = 32  # width of the quantizer's multiplier (sign included)


def quant_cycles(cfg, n: int) -> int:
    """Cycles of one QUANT of `n` elements:

    cycles = latency_cycles + ceil(n / lanes)
    """
    q = cfg.quantizer
    return q.latency_cycles + -(-n // q.lanes)


class Quantizer(UnitBase):
    """The quantizer. Cost: `quant_cycles`; datapath: kernels.quant."""

    unit = Unit.QUANTIZER
    ADDR_FIELDS = ("src_addr", "dst_addr")

    def cycles(self, insn) -> int:
        return quant_cycles(self.cfg, insn.n)

    def profile(self, insn):
        f = insn.f
        n, rb = f["n"], self.row_bits
        src_rows, dst_rows = tile_rows(n, f["in_bits"], rb), tile_rows(n, f["bits"], rb)
        accesses = (
            (f["src_buf"], "src_addr", src_rows, False),
            (f["dst_buf"], "dst_addr", dst_rows, True),
        )
        counts = (
            ("quant_ops", n),
            (SRAM_READ[f["src_buf"]], src_rows * rb),
            (SRAM_WRITE[f["dst_buf"]], dst_rows * rb),
        )
        return quant_cycles(self.cfg, n), accesses, counts

    def run(self, insn, mem):
        f = insn.f
        x = mem.read(f["src_buf"], f["src_addr"], f["n"], f["in_bits"], f"insn {insn.index} QUANT")
        y = quant(
            x.astype("int32"),
            f["mult"],
            f["shift"],
            zp=f["zp"],
            bits=f["bits"],
            signed=f["mode"] == Mode.SIGNED,
            mode=self.cfg.rescale.round_mode,
            mult_bits=QUANT_MULT_BITS,
        )
        mem.write(f["dst_buf"], f["dst_addr"], y, f["bits"])
