"""A program for the processor: instruction stream plus DRAM image plus tensor placement.

`Program` is what the front end produces and the simulator runs. The DRAM image is a flat int32
array addressed in elements (see `accelsim.isa`); `inputs` and `outputs` say where named tensors
live in it, so a caller can place inputs and read outputs without knowing the lowering. A program
is saved as one `.npz` file (no pickle): the encoded instruction words as uint8 bytes, the DRAM
image, and the metadata as JSON bytes. `ProgramBuilder` is a small helper for writing programs by
hand (tests, benchmarks).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accelsim import insn_table
from accelsim.errors import AccelsimError, IsaError, ModelFormatError
from accelsim.fileio import atomic_write
from accelsim.isa import Insn, Op, decode_program, encode_program
from accelsim.numeric import storage_dtype, value_range

FORMAT_VERSION = 1  # bumped when the file layout changes


@dataclass
class TensorPlace:
    """Where a named tensor lives in DRAM: contiguous, row-major, `bits` per element."""

    dram_addr: int
    shape: tuple
    bits: int
    mode: str

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def to_list(self):
        return [self.dram_addr, list(self.shape), self.bits, self.mode]


def _place(name, value, where) -> TensorPlace:
    if isinstance(value, TensorPlace):
        return value
    try:
        addr, shape, bits, mode = value
        place = TensorPlace(int(addr), tuple(int(s) for s in shape), int(bits), str(mode))
    except (TypeError, ValueError):
        raise ModelFormatError(
            f"{where}: tensor {name!r} must be (dram_addr, shape, bits, mode), got {value!r}"
        ) from None
    try:
        value_range(place.bits, place.mode)
    except AccelsimError as exc:
        raise ModelFormatError(f"{where}: tensor {name!r}: {exc}") from None
    if place.dram_addr < 0:
        raise ModelFormatError(f"{where}: tensor {name!r} has a negative address {value!r}")
    return place


@dataclass
class Program:
    """Instructions, DRAM image and the placement of named inputs and outputs.

    `insns`: decoded instructions in program order, or None when `table` holds them: the
    lowered stream as an `accelsim.insn_table` table, turned into `Insn` objects only when
    `insns` is first read (from then on the list is the program: the table is dropped).
    `dram`: flat int32 DRAM image (element addressed), or None for a timing-only program,
    which keeps only the image's size, `dram_size` (elements). `inputs` / `outputs`: name ->
    `TensorPlace` (or a (dram_addr, shape, bits, mode) tuple, converted on construction).
    `tags`: instruction tag -> layer name. `meta`: free JSON-serialisable metadata (config
    name, workload, ...).
    """

    insns: list | None = field(repr=False)
    dram: np.ndarray | None
    inputs: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    dram_size: int | None = None
    table: np.ndarray | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.insns is None:
            if self.table is None:
                raise AccelsimError("a program needs its instructions (insns or table)")
            del self.insns  # read through __getattr__, which builds the list once
        else:
            self.table = None
            for i, insn in enumerate(self.insns):
                insn.index = i
        if self.dram is None:
            if self.dram_size is None or self.dram_size < 0:
                raise AccelsimError("a program without a DRAM image needs its dram_size")
        else:
            self.dram = np.ascontiguousarray(self.dram, dtype=np.int32).reshape(-1)
            if self.dram_size not in (None, self.dram.size):
                raise AccelsimError(
                    f"dram_size {self.dram_size} differs from the {self.dram.size}-element image"
                )
            self.dram_size = self.dram.size
        self.inputs = {k: _place(k, v, "program inputs") for k, v in self.inputs.items()}
        self.outputs = {k: _place(k, v, "program outputs") for k, v in self.outputs.items()}
        self.tags = {int(k): str(v) for k, v in self.tags.items()}
        for kind, table in (("input", self.inputs), ("output", self.outputs)):
            for name, p in table.items():
                if p.dram_addr + p.size > self.dram_size:
                    raise ModelFormatError(
                        f"{kind} {name!r} at DRAM [{p.dram_addr}, "
                        f"{p.dram_addr + p.size}) lies beyond the "
                        f"{self.dram_size}-element DRAM image"
                    )

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        if name == "insns" and "table" in self.__dict__:  # a new list is the program now
            object.__setattr__(self, "table", None)

    def __getattr__(self, name):
        # reached only for `insns` while the instructions live in `table` alone
        if name != "insns" or "table" not in self.__dict__:
            raise AttributeError(name)
        self.insns = insn_table.insns(self.table)  # the list is the program from here on
        return self.insns

    @property
    def n_insns(self) -> int:
        """Instructions in the program (FINISH included), without building `insns`."""
        return len(self.table) if self.table is not None else len(self.insns)

    def rows(self) -> np.ndarray:
        """The instructions as an `accelsim.insn_table` table (the lowered one as it is, else
        made from `insns`; raises `IsaError` if a value is not a table integer)."""
        return self.table if self.table is not None else insn_table.rows_of(self.insns)

    def place_inputs(self, dram: np.ndarray, arrays: dict) -> None:
        """Write named input arrays into `dram` (range-checked against their bits and mode)."""
        for name, arr in arrays.items():
            if name not in self.inputs:
                raise AccelsimError(f"unknown input {name!r}; inputs: {', '.join(self.inputs)}")
            p = self.inputs[name]
            arr = np.asarray(arr)
            if arr.shape != p.shape:
                raise AccelsimError(f"input {name!r}: expected shape {p.shape}, got {arr.shape}")
            lo, hi = value_range(p.bits, p.mode)
            if arr.size and (arr.min() < lo or arr.max() > hi):
                raise AccelsimError(
                    f"input {name!r}: values outside the {p.bits}-bit {p.mode} range [{lo}, {hi}]"
                )
            dram[p.dram_addr : p.dram_addr + p.size] = arr.reshape(-1)

    def read_outputs(self, dram: np.ndarray) -> dict:
        """Named output arrays read from `dram`, in their storage dtype and shape."""
        return {
            name: dram[p.dram_addr : p.dram_addr + p.size]
            .astype(storage_dtype(p.bits, p.mode))
            .reshape(p.shape)
            for name, p in self.outputs.items()
        }

    def _metadata(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "inputs": {k: v.to_list() for k, v in self.inputs.items()},
            "outputs": {k: v.to_list() for k, v in self.outputs.items()},
            "tags": {str(k): v for k, v in self.tags.items()},
            "meta": self.meta,
        }

    def save(self, path) -> None:
        """Write the program to one `.npz` file atomically (temporary file, then rename)."""
        if self.dram is None:
            raise AccelsimError(
                f"cannot save {path}: the program was lowered timing-only and has no DRAM image"
            )
        words = np.frombuffer(encode_program(self.insns), dtype=np.uint8)
        meta = np.frombuffer(json.dumps(self._metadata()).encode(), dtype=np.uint8)
        atomic_write(path, lambda fh: np.savez(fh, words=words, dram=self.dram, meta=meta))

    @classmethod
    def load(cls, path) -> Program:
        """Read a program written by `save`; raises `ModelFormatError` naming the file and fault."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"words", "dram", "meta"} - set(data.files)
                if missing:
                    raise ModelFormatError(f"{path}: missing array(s) {', '.join(sorted(missing))}")
                words, dram, meta = data["words"], data["dram"], data["meta"]
        except FileNotFoundError:
            raise ModelFormatError(f"{path}: no such file") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ModelFormatError(f"{path}: not a program .npz file ({exc})") from None
        if words.dtype != np.uint8 or meta.dtype != np.uint8 or dram.dtype != np.int32:
            raise ModelFormatError(
                f"{path}: expected uint8 words and meta and int32 dram, got "
                f"{words.dtype}, {meta.dtype}, {dram.dtype}"
            )
        try:
            info = json.loads(meta.tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFormatError(f"{path}: metadata is not valid JSON ({exc})") from None
        if not isinstance(info, dict) or info.get("format_version") != FORMAT_VERSION:
            raise ModelFormatError(
                f"{path}: unsupported format version "
                f"{info.get('format_version') if isinstance(info, dict) else None!r}"
                f" (expected {FORMAT_VERSION})"
            )
        try:
            insns = decode_program(words.tobytes())
        except IsaError as exc:
            raise ModelFormatError(f"{path}: bad instruction stream: {exc}") from None
        try:
            return cls(
                insns,
                dram,
                info.get("inputs", {}),
                info.get("outputs", {}),
                info.get("tags", {}),
                info.get("meta", {}),
            )
        except (ModelFormatError, AttributeError, TypeError, ValueError) as exc:
            raise ModelFormatError(f"{path}: {exc}") from None


class ProgramBuilder:
    """Append instructions and DRAM tensors by hand; `build()` returns a `Program`.

    `add_tensor(name, array_or_shape, bits, mode, kind)` allocates a contiguous DRAM region
    (kind 'input', 'output' or 'const') and returns its element address.
    """

    def __init__(self):
        self.insns: list[Insn] = []
        self.chunks: list[np.ndarray] = []
        self.size = 0
        self.inputs, self.outputs, self.tags, self.meta = {}, {}, {}, {}

    def alloc(self, n: int, data=None) -> int:
        """Reserve `n` DRAM elements (holding `data`, which must have n elements, if given);
        returns their address."""
        addr = self.size
        chunk = np.zeros(n, np.int32) if data is None else np.asarray(data, np.int32).reshape(-1)
        if chunk.size != n:
            raise ValueError(f"alloc({n}) given {chunk.size} elements of data")
        self.chunks.append(chunk)
        self.size += n
        return addr

    def add_tensor(self, name, data, bits, mode="signed", kind="const") -> int:
        shape = tuple(data) if kind == "output" else np.asarray(data).shape
        n = int(np.prod(shape, dtype=np.int64))
        addr = self.alloc(n, None if kind == "output" else data)
        if kind in ("input", "output"):
            getattr(self, kind + "s")[name] = TensorPlace(addr, shape, bits, mode)
        return addr

    def emit(self, op: Op, **fields) -> Insn:
        insn = Insn(op, **fields)
        self.insns.append(insn)
        return insn

    def build(self) -> Program:
        dram = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int32)
        return Program(
            list(self.insns),
            dram,
            dict(self.inputs),
            dict(self.outputs),
            dict(self.tags),
            dict(self.meta),
        )
