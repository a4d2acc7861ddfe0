"""The instruction set: one opcode table and binary encode/decode (the text assembler and
disassembler are `accelsim.asm`, the table as Markdown `accelsim.docs.table_markdown`).

Every instruction starts with a 32-bit header `opcode:5 | wait:8 | signal:8 | tag:11` (bit 0 is
the least significant bit of the first word). `tag` is the layer id that statistics are kept by.
Words are 128 bits; an opcode whose fields do not fit in one word takes two (256 bits) -- the
`words` column of the table decides, and only FINISH fits in one.

Tokens (dependencies). Units are numbered (see `Unit`); between every ordered pair of units
there is one token FIFO, a counting semaphore with exactly one producer and one consumer. Bit j
of `signal` pushes one token, when the instruction ends, into the FIFO from this unit to unit j;
bit j of `wait` pops one token from the FIFO from unit j into this unit before the instruction
starts. Example: a LOAD with signal=0b1000 (bit 3 = matmul) lets a later GEMM with wait=0b0001
(bit 0 = load) start once the load is done. (Addressing the FIFOs by peer unit, rather than by
a few global channel numbers, gives every channel one producer and one consumer by
construction.)

Memory addressing: DRAM addresses and strides count elements (one integer value each; the
`bits` field says how many bits it occupies in DRAM and in the buffer). Buffer addresses count
rows of `buffers.row_bits` bits; sizes count elements.

Worked example (edge config, row_bits = 128): LOAD buf=INP sram_addr=0 dram_addr=4096 d0=8 d1=8
d2=16 s0=1024 s1=16 bits=4 loads an 8x8x16 NHWC patch of 4-bit activations whose image rows are
1024 elements apart; it occupies ceil(8*8*16*4 / 128) = 32 rows of INP.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from accelsim.errors import IsaError
from accelsim.numeric import (
    BIAS_FRAC_MAX,
    ELEMENT_MAX_BITS,
    MAC_MAX_BITS,
    MODES,
    TENSOR_MAX_BITS,
)

WORD_BITS = 128  # bits per instruction word
HEADER_BITS = 32  # opcode:5 | wait:8 | signal:8 | tag:11


class Op(IntEnum):
    """Opcodes. 0 is not an opcode, so an all-zero word is rejected."""

    LOAD = 1
    STORE = 2
    GEMM = 3
    QUANT = 4
    RESCALE = 5
    ALU = 6
    SVG_MAP = 7
    SVG_CONV = 8
    FINISH = 9


class Unit(IntEnum):
    """Hardware units; the value is the unit's bit in `wait` / `signal` masks."""

    LOAD = 0  # DMA load engine (DRAM -> buffers)
    STORE = 1  # DMA store engine (buffers -> DRAM)
    QUANTIZER = 2
    MATMUL = 3
    RESCALE = 4
    VECTOR = 5
    SVGE = 6  # sparse voxel group engine


class Buf(IntEnum):
    """On-chip buffers."""

    INP = 0  # input activations
    WGT = 1  # weights
    ACC = 2  # int32 accumulators
    OUT = 3  # output activations
    PARAM = 4  # per-channel rescale parameters (bias, multiplier, shift), int32 each
    COORD = 5  # voxel coordinates
    MAP = 6  # kernel maps (in_index, out_index, offset)


# How an integer operand's bits are read: SIGNED = 0, UNSIGNED = 1, BIPOLAR = 2 (1-bit -1 / +1),
# named and ordered by `accelsim.numeric.MODES`.
Mode = IntEnum("Mode", [(name.upper(), code) for code, name in enumerate(MODES)])
Mode.__doc__ = "How an integer operand's bits are read (names: accelsim.numeric.MODES)."
MODE_NAMES = {Mode(code): name for code, name in enumerate(MODES)}  # Mode -> "signed" / ...
MODE_BY_NAME = {name: m for m, name in MODE_NAMES.items()}
_MODE_MAX = len(Mode) - 1
OUT_MODE_MAX = int(Mode.UNSIGNED)  # QUANT, RESCALE and ALU write signed or unsigned, not bipolar


class AluOp(IntEnum):
    """Vector ALU operations (see accelsim/kernels/alu.py for their exact meaning)."""

    ADD = 0  # y = clamp(zp + R((a - za)*ma + (b - zb)*mb; t)), params from PARAM
    MAX = 1
    MIN = 2
    SHIFT = 3  # arithmetic shift by imm (positive = right, rounding half up)
    CLIP = 4  # clamp to the output range and [params] bounds
    MAXPOOL = 5  # kh x kw window, stride, over an NHWC patch of h x w x c
    AVGPOOL = 6  # window sum then R(sum*m; t), (m, t) from PARAM
    GAP = 7  # global average pool of an h x w x c patch
    SOFTMAX = 8  # integer softmax along c (I-BERT i-exp), unsigned output of scale 2^-bits
    GELU = 9  # integer GELU (I-BERT i-erf), requantized like AVGPOOL
    LAYERNORM = 10  # integer layer norm along c (I-BERT integer square root), per-channel affine


@dataclass(frozen=True)
class Field:
    """One instruction field: name, width in bits, allowed range, enum type, meaning."""

    name: str
    bits: int
    lo: int = 0
    hi: int | None = None  # default: the largest value that fits
    signed: bool = False
    enum: type | None = None
    doc: str = ""

    @property
    def max(self) -> int:
        if self.hi is not None:
            return self.hi
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed and self.lo == 0 else self.lo


def _fields(*spec):
    return tuple(Field(*s[:2], **(s[2] if len(s) > 2 else {})) for s in spec)


_ADDR = 24  # buffer row address width: 2**24 rows of row_bits
_DMA = (
    ("buf", 3, dict(hi=6, enum=Buf, doc="buffer")),
    ("sram_addr", _ADDR, dict(doc="buffer row address")),
    ("dram_addr", 32, dict(doc="DRAM element address of the block's first element")),
    ("d0", 16, dict(lo=1, doc="block rows (outer dimension)")),
    ("d1", 16, dict(lo=1, doc="block middle dimension")),
    ("d2", 16, dict(lo=1, doc="contiguous elements per (d0, d1) position")),
    ("s0", 32, dict(doc="DRAM stride of d0 in elements")),
    ("s1", 32, dict(doc="DRAM stride of d1 in elements")),
    ("bits", 6, dict(lo=1, hi=ELEMENT_MAX_BITS, doc="bits per element in DRAM and buffer")),
    ("mode", 2, dict(hi=_MODE_MAX, enum=Mode, doc="signedness of the elements")),
)
_PAD = (
    ("pad_top", 4, dict(doc="rows of pad_value added before d0")),
    ("pad_bottom", 4, dict(doc="rows of pad_value added after d0")),
    ("pad_left", 4, dict(doc="pad_value columns added before d1")),
    ("pad_right", 4, dict(doc="pad_value columns added after d1")),
    ("pad_value", 16, dict(signed=True, doc="padding value (the zero point)")),
)
_OPERANDS = (
    ("a_bits", 4, dict(lo=1, hi=MAC_MAX_BITS, doc="activation operand bits")),
    ("w_bits", 4, dict(lo=1, hi=MAC_MAX_BITS, doc="weight operand bits")),
    ("a_mode", 2, dict(hi=_MODE_MAX, enum=Mode)),
    ("w_mode", 2, dict(hi=_MODE_MAX, enum=Mode)),
    ("reset", 1, dict(doc="1: acc = product; 0: acc += product")),
)
_OUTPUT = (
    ("bits", 5, dict(lo=1, hi=TENSOR_MAX_BITS, doc="output bits")),
    ("mode", 2, dict(hi=OUT_MODE_MAX, enum=Mode, doc="output signedness")),
    ("zp", 16, dict(signed=True, doc="output zero point")),
)


@dataclass(frozen=True)
class OpSpec:
    """One row of the opcode table: the encoding (words, fields), the unit, the meaning, and
    where the opcode's other two views live, as "package.module:function" paths (this module
    imports neither): `cost`, the unit's pure cost model (cycles of one instruction; its
    docstring gives the formula), and `datapath`, the function(s) computing the result, each
    defined by a NumPy `<name>_ref` twin where it is compiled."""

    op: Op
    unit: Unit | None  # None: every unit (FINISH)
    words: int
    fields: tuple[Field, ...]
    meaning: str
    cost: str = ""
    datapath: tuple[str, ...] = ()


TABLE: dict[Op, OpSpec] = {
    s.op: s
    for s in (
        OpSpec(
            Op.LOAD,
            Unit.LOAD,
            2,
            _fields(*_DMA, *_PAD),
            "buffer[sram_addr] <- padded DRAM block d0 x d1 x d2 (strides s0, s1)",
            cost="accelsim.units.dma:dma_cycles",
            datapath=("accelsim.units.dma:load_block",),
        ),
        OpSpec(
            Op.STORE,
            Unit.STORE,
            2,
            _fields(*_DMA),
            "DRAM block d0 x d1 x d2 (strides s0, s1) <- buffer[sram_addr]",
            cost="accelsim.units.dma:dma_cycles",
            datapath=("accelsim.units.dma:store_block",),
        ),
        OpSpec(
            Op.GEMM,
            Unit.MATMUL,
            2,
            _fields(
                ("inp_addr", _ADDR),
                ("wgt_addr", _ADDR),
                ("acc_addr", _ADDR),
                ("m", 16, dict(lo=1)),
                ("k", 16, dict(lo=1)),
                ("n", 16, dict(lo=1)),
                *_OPERANDS,
                ("conv", 1, dict(doc="1: INP holds an NHWC patch read as im2col (implicit GEMM)")),
                ("depthwise", 1, dict(doc="1: output channel j uses only input channel j")),
                ("kh", 4, dict(lo=1)),
                ("kw", 4, dict(lo=1)),
                ("stride", 4, dict(lo=1)),
                ("dilation", 4, dict(lo=1)),
                ("ow", 16, dict(lo=1, doc="output width of the tile (conv); m = oh * ow")),
                ("patch_w", 16, dict(lo=1, doc="width of the INP patch in pixels (conv)")),
            ),
            "ACC[acc_addr] (+)= INP(m x k) . WGT(k x n) at a_bits x w_bits",
            cost="accelsim.units.matmul:matmul_cycles",
            datapath=(
                "accelsim.kernels.gemm:gemm",
                "accelsim.kernels.gemm:im2col",
            ),
        ),
        OpSpec(
            Op.QUANT,
            Unit.QUANTIZER,
            2,
            _fields(
                ("src_buf", 3, dict(hi=6, enum=Buf)),
                ("src_addr", _ADDR),
                ("dst_buf", 3, dict(hi=6, enum=Buf)),
                ("dst_addr", _ADDR),
                ("n", 24, dict(lo=1, doc="elements")),
                ("in_bits", 6, dict(lo=1, hi=ELEMENT_MAX_BITS)),
                *_OUTPUT,
                ("mult", 32, dict(doc="fixed-point multiplier m of 1/s")),
                ("shift", 6, dict(hi=62)),
            ),
            "dst = clamp(zp + round(src * mult / 2^shift)) at bits",
            cost="accelsim.units.quantizer:quant_cycles",
            datapath=("accelsim.kernels.quant:quant",),
        ),
        OpSpec(
            Op.RESCALE,
            Unit.RESCALE,
            2,
            _fields(
                ("acc_addr", _ADDR),
                ("param_addr", _ADDR),
                ("out_addr", _ADDR),
                ("m", 16, dict(lo=1)),
                ("n", 16, dict(lo=1)),
                *_OUTPUT,
                ("relu", 1),
                ("clip", 1, dict(doc="1: also clamp to [clip_lo, clip_hi]")),
                ("clip_lo", 16, dict(signed=True)),
                ("clip_hi", 16, dict(signed=True)),
                (
                    "frac",
                    4,
                    dict(
                        hi=BIAS_FRAC_MAX,
                        doc="bias fractional bits F: bias_c counts 2^-F accumulator units",
                    ),
                ),
            ),
            "OUT = clamp(zp + R(((ACC << F) + bias_c) * m_c, sh_c + F)), F = frac, params per "
            "channel from PARAM",
            cost="accelsim.units.rescale:rescale_cycles",
            datapath=("accelsim.kernels.rescale:rescale",),
        ),
        OpSpec(
            Op.ALU,
            Unit.VECTOR,
            2,
            _fields(
                ("alu_op", 4, dict(hi=max(AluOp), enum=AluOp)),
                ("a_buf", 3, dict(hi=6, enum=Buf)),
                ("a_addr", _ADDR),
                ("b_buf", 3, dict(hi=6, enum=Buf)),
                ("b_addr", _ADDR),
                ("dst_buf", 3, dict(hi=6, enum=Buf)),
                ("dst_addr", _ADDR),
                ("param_addr", _ADDR),
                ("h", 16, dict(lo=1)),
                ("w", 16, dict(lo=1)),
                ("c", 16, dict(lo=1)),
                ("kh", 4, dict(lo=1)),
                ("kw", 4, dict(lo=1)),
                ("stride", 4, dict(lo=1)),
                ("in_bits", 5, dict(lo=1, hi=TENSOR_MAX_BITS)),
                ("in_mode", 2, dict(hi=_MODE_MAX, enum=Mode)),
                *_OUTPUT,
                ("imm", 16, dict(signed=True, doc="shift amount or constant")),
            ),
            "elementwise / pooling / row (softmax, layer norm) op on h x w x c integer tensors",
            cost="accelsim.units.vector:vector_cycles",
            datapath=(
                "accelsim.kernels.alu:add",
                "accelsim.kernels.alu:maximum",
                "accelsim.kernels.alu:minimum",
                "accelsim.kernels.alu:shift",
                "accelsim.kernels.alu:clip",
                "accelsim.kernels.alu:maxpool",
                "accelsim.kernels.alu:avgpool",
                "accelsim.kernels.alu:global_avgpool",
                "accelsim.kernels.ibert:softmax",
                "accelsim.kernels.ibert:gelu",
                "accelsim.kernels.ibert:layernorm",
            ),
        ),
        OpSpec(
            Op.SVG_MAP,
            Unit.SVGE,
            2,
            _fields(
                (
                    "coord_addr",
                    _ADDR,
                    dict(doc="COORD rows of the n_in input voxels (16-bit b,x,y,z)"),
                ),
                ("out_coord_addr", _ADDR, dict(doc="COORD rows of the n_out output voxels")),
                (
                    "map_addr",
                    _ADDR,
                    dict(doc="MAP rows receiving the pairs (in, out, offset), 16 bit"),
                ),
                ("n_in", 16, dict(lo=1)),
                ("n_out", 16, dict(lo=1)),
                ("n_pairs", 21, dict(doc="pairs the map holds (cost and capacity; checked)")),
                ("kernel", 3, dict(lo=1)),
                ("stride", 2, dict(lo=1)),
                ("dilation", 3, dict(lo=1)),
                ("transposed", 1),
                ("groups", 8, dict(lo=1)),
                ("ga", 4),
                ("gb", 4),
                ("gc", 4, dict(doc="group coefficients (a, b, c)")),
                ("group", 8, dict(doc="voxel group of the output voxels (statistics)")),
                ("engine", 3, dict(doc="engine of the sparse voxel group engine that runs it")),
                ("used", 16, dict(doc="distinct input voxels the pairs read (statistics)")),
                ("halo", 16, dict(doc="of those, voxels also read by another tile (statistics)")),
            ),
            "MAP[map_addr] <- kernel map (in, out, offset) of one voxel group tile",
            cost="accelsim.units.svge:map_cycles",
            datapath=("accelsim.sparse.map_builder:tile_map",),
        ),
        OpSpec(
            Op.SVG_CONV,
            Unit.SVGE,
            2,
            _fields(
                ("inp_addr", _ADDR),
                ("wgt_addr", _ADDR),
                ("acc_addr", _ADDR),
                ("map_addr", _ADDR),
                ("n_in", 16, dict(lo=1)),
                ("n_out", 16, dict(lo=1)),
                ("n_pairs", 21),
                ("offset", 9, dict(doc="kernel offset k whose pairs this instruction runs")),
                ("pairs", 16, dict(doc="P_k: pairs of offset k in the map (checked)")),
                ("cin", 12, dict(lo=1)),
                ("cout", 12, dict(lo=1)),
                *_OPERANDS,
                ("group", 8),
                ("engine", 3),
            ),
            "ACC (+)= scatter(gather(INP, MAP[k]) . WGT[k]) over offset k of one group tile",
            cost="accelsim.units.svge:conv_cycles",
            datapath=("accelsim.kernels.gemm:gemm",),
        ),
        OpSpec(Op.FINISH, None, 1, (), "end of program (every unit)"),
    )
}


def _check_table():
    for spec in TABLE.values():
        used = HEADER_BITS + sum(f.bits for f in spec.fields)
        assert used <= spec.words * WORD_BITS, (spec.op, used)
        for f in spec.fields:  # a limit taken from accelsim.numeric must fit its field
            assert f.max < 1 << f.bits, (spec.op, f.name)
            # every value in [min, max] encodes and decodes to itself (the stream check
            # relies on it): signed fields hold two's complement, unsigned ones no sign
            low = -(1 << (f.bits - 1)) if f.signed else 0
            high = (1 << (f.bits - 1)) - 1 if f.signed else (1 << f.bits) - 1
            assert low <= f.min <= f.max <= high, (spec.op, f.name)


_check_table()


def field_max(op: Op, name: str) -> int:
    """Largest value field `name` of opcode `op` holds (from `TABLE`): the front end sizes
    tiles, DMA blocks and padding by it instead of repeating the field widths."""
    for f in TABLE[op].fields:
        if f.name == name:
            return f.max
    raise IsaError(f"{op.name} has no field {name!r}")


_FIELD_LO = {op: {f.name: f.lo for f in spec.fields} for op, spec in TABLE.items()}


class Insn:
    """A decoded instruction: `op`, `wait`, `signal`, `tag` and one attribute per table field."""

    __slots__ = ("op", "wait", "signal", "tag", "f", "index")

    def __init__(self, op: Op, wait: int = 0, signal: int = 0, tag: int = 0, **fields):
        lows = _FIELD_LO.get(op)
        if lows is None:
            raise IsaError(f"unknown opcode {op!r}")
        self.op = op if type(op) is Op else Op(op)
        self.wait, self.signal, self.tag = wait, signal, tag
        f = dict(lows)  # fields not given take their lowest legal value
        f.update(fields)
        if len(f) != len(lows):
            unknown = sorted(set(fields) - set(lows))
            raise IsaError(f"{self.op.name}: unknown field(s) {', '.join(unknown)}")
        for name, value in fields.items():
            if type(value) is not int:  # enums, bools and numpy integers become plain ints
                f[name] = int(value)
        self.f = f
        self.index = -1  # position in the program, set by the simulator

    @classmethod
    def of(cls, op: Op, fields: dict, tag: int = 0) -> Insn:
        """An instruction from `fields`, a dict holding every field of `op`'s table row as an
        int, taken as is: the front end's fast path (`Insn(...)` checks names and converts
        values; `accelsim.frontend.validate.validate_stream` checks a lowered stream)."""
        insn = object.__new__(cls)
        insn.op, insn.wait, insn.signal, insn.tag, insn.f, insn.index = op, 0, 0, tag, fields, -1
        return insn

    def __getattr__(self, name):
        try:
            return self.f[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def unit(self) -> Unit | None:
        return TABLE[self.op].unit

    def __eq__(self, other):
        return isinstance(other, Insn) and (self.op, self.wait, self.signal, self.tag, self.f) == (
            other.op,
            other.wait,
            other.signal,
            other.tag,
            other.f,
        )

    def __repr__(self):
        return f"Insn({disasm_one(self)})"


_MASK_MAX = (1 << len(Unit)) - 1  # wait/signal bits above the last unit must be zero
TAG_MAX = (1 << 11) - 1  # the header's tag field
# legal (lowest, highest) of the header values of every instruction
HEADER_RANGES = {"wait": (0, _MASK_MAX), "signal": (0, _MASK_MAX), "tag": (0, TAG_MAX)}


def _check_range(op: Op, name: str, value: int, lo: int, hi: int):
    if not lo <= value <= hi:
        raise IsaError(f"{op.name}.{name} = {value} is out of range [{lo}, {hi}]")


def validate(insn: Insn) -> None:
    """Raise `IsaError` if any field of `insn` does not fit the table."""
    for name, (lo, hi) in HEADER_RANGES.items():
        _check_range(insn.op, name, getattr(insn, name), lo, hi)
    for f in TABLE[insn.op].fields:
        _check_range(insn.op, f.name, insn.f[f.name], f.min, f.max)


def encode(insn: Insn) -> list[int]:
    """Encode to 128-bit words (Python ints), least significant word first."""
    validate(insn)
    spec = TABLE[insn.op]
    value = int(insn.op) | insn.wait << 5 | insn.signal << 13 | insn.tag << 21
    pos = HEADER_BITS
    for f in spec.fields:
        value |= (insn.f[f.name] & ((1 << f.bits) - 1)) << pos
        pos += f.bits
    mask = (1 << WORD_BITS) - 1
    return [(value >> (WORD_BITS * i)) & mask for i in range(spec.words)]


def decode(words, start: int = 0) -> tuple[Insn, int]:
    """Decode the instruction at `words[start]`; returns (insn, number of words used).

    Raises `IsaError` for a bad opcode, a truncated instruction, a field out of range or
    nonzero unused bits."""
    first = words[start]
    code = first & 0x1F
    if code not in TABLE:
        raise IsaError(f"word {start}: bad opcode {code}")
    spec = TABLE[Op(code)]
    if start + spec.words > len(words):
        raise IsaError(f"word {start}: {spec.op.name} needs {spec.words} words, program ends")
    value = 0
    for i in range(spec.words):
        value |= int(words[start + i]) << (WORD_BITS * i)
    insn = Insn.__new__(Insn)
    insn.op, insn.index = spec.op, -1
    insn.wait, insn.signal, insn.tag = (
        (value >> 5) & 0xFF,
        (value >> 13) & 0xFF,
        value >> 21 & 0x7FF,
    )
    if insn.wait > _MASK_MAX or insn.signal > _MASK_MAX:
        raise IsaError(
            f"word {start}: {spec.op.name} wait/signal name unit bits beyond {len(Unit) - 1}"
        )
    fields, pos = {}, HEADER_BITS
    for f in spec.fields:
        raw = (value >> pos) & ((1 << f.bits) - 1)
        if f.signed and raw >> (f.bits - 1):
            raw -= 1 << f.bits
        if not f.min <= raw <= f.max:
            raise IsaError(
                f"word {start}: {spec.op.name}.{f.name} = {raw} is out of range [{f.min}, {f.max}]"
            )
        fields[f.name] = raw
        pos += f.bits
    if value >> pos:
        raise IsaError(f"word {start}: {spec.op.name} has nonzero unused bits")
    insn.f = fields
    return insn, spec.words


def encode_program(insns) -> bytes:
    """Binary program: each 128-bit word little endian, 16 bytes."""
    out = bytearray()
    for insn in insns:
        for word in encode(insn):
            out += word.to_bytes(16, "little")
    return bytes(out)


def decode_program(data: bytes) -> list[Insn]:
    """Inverse of `encode_program`; raises `IsaError` naming the word that is malformed."""
    if len(data) % 16:
        raise IsaError(f"program is {len(data)} bytes, not a whole number of 128-bit words")
    words = [int.from_bytes(data[i : i + 16], "little") for i in range(0, len(data), 16)]
    insns, i = [], 0
    while i < len(words):
        insn, n = decode(words, i)
        insn.index = len(insns)
        insns.append(insn)
        i += n
    return insns


def _mask_text(mask: int) -> str:
    return ",".join(Unit(j).name.lower() for j in range(7) if mask >> j & 1) or "-"


def disasm_one(insn: Insn) -> str:
    """One line of assembly, `OP wait=.. signal=.. tag=N field=value ...`."""
    parts = [
        insn.op.name,
        f"wait={_mask_text(insn.wait)}",
        f"signal={_mask_text(insn.signal)}",
        f"tag={insn.tag}",
    ]
    for f in TABLE[insn.op].fields:
        v = insn.f[f.name]
        parts.append(f"{f.name}={f.enum(v).name if f.enum and v <= max(f.enum) else v}")
    return " ".join(parts)
