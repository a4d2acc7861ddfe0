"""Running the compiled tile loop of a GEMM layer (`accelsim.frontend.gemm_kernel`) on an
`Emitter`: the layer, placement and slot state go in as integer arrays; the instructions come
back as `accelsim.insn_table` rows (`Emitter.add_rows`), with their regions, DRAM bytes and
the new slot state, equal to what `accelsim.frontend.gemm_layer.emit_gemm_layer_ref` appends."""

from __future__ import annotations

import functools

import numpy as np

from accelsim.frontend import gemm_kernel as K
from accelsim.frontend.emit import ACC_BITS, MAX_D2, MODE_CODE, PARAM_BITS, Emitter
from accelsim.frontend.padding import PAD_MAX
from accelsim.frontend.tiling import GemmLayer, Tiling
from accelsim.frontend.tokens import DRAM_SPACE, UNIT_CODE
from accelsim.insn_table import COLS, COLUMN, OP, TAG
from accelsim.isa import TABLE, Buf, Op
from accelsim.jit import jit_disabled, jit_loaded

BUFS = (Buf.INP, Buf.WGT, Buf.ACC, Buf.OUT, Buf.PARAM)  # rows of the kernel's slot state
IDS = np.array([*(int(b) for b in BUFS), DRAM_SPACE], np.int64)
OPS = {K.LOAD: Op.LOAD, K.STORE: Op.STORE, K.GEMM: Op.GEMM, K.RESCALE: Op.RESCALE}
UNITS = {kind: UNIT_CODE[op] for kind, op in OPS.items()}
NAMES = {kind: K.FIELDS[kind] for kind in OPS}
MIN_INSNS = 20000  # a layer this long takes the compiled loop even before Numba is loaded
# the kernel writes every field of the table row of each opcode (else it is not used)
MATCHES_TABLE = all(
    sorted(NAMES[k]) == sorted(f.name for f in TABLE[op].fields) for k, op in OPS.items()
)
# kind -> the table column of each of the kernel's columns after the kind (COLS: none, a
# column dropped), and the opcode and unit of each kind
_SCATTER = np.full((len(OPS), K.WIDTH - 1), COLS, np.int64)
for _k, _op in OPS.items():
    _SCATTER[_k, : len(NAMES[_k])] = [COLUMN[_op][name] for name in NAMES[_k]]
_OPCODE = np.array([int(OPS[k]) for k in range(len(OPS))], np.int64)
_UNIT = np.array([UNITS[k] for k in range(len(OPS))], np.int64)


def emit(em: Emitter, L: GemmLayer, t: Tiling, P, image: int) -> bool:
    """Emit the layer with the compiled loop; False (nothing emitted) where the Python
    emission must run instead: Numba not loaded for a short layer, weights read from an
    activation tensor (a MatMul), or a tile the emission rejects (it raises the error)."""
    n_oh, n_ow, n_n, n_ci = t.counts(L)
    steps = n_oh * n_ow * n_n
    most = steps * (3 * n_ci + 3)  # LOADs of weights and input and a GEMM per slice, then
    #                                 LOAD PARAM, RESCALE and STORE per output tile
    if not MATCHES_TABLE or jit_disabled() or not (jit_loaded() or most >= MIN_INSNS):
        return False
    wblk = _weight_blocks(L, t, P, n_n, n_ci)
    geo, place = _geo(L, em.row_bits), _place(P, image)  # geo: cached, never written
    if wblk is None or geo is None or place is None:
        return False
    state = [em.slots[b] for b in BUFS]
    n_slots = np.array([len(s.keys) for s in state], np.int64)
    keys = np.zeros((len(BUFS), int(n_slots.max()), 7), np.int64)
    lru = np.zeros((len(BUFS), int(n_slots.max())), np.int64)
    for i, s in enumerate(state):
        lru[i, : len(s.lru)] = s.lru
        for j, key in enumerate(s.keys):
            keys[i, j] = _encode(i, key, P, image)
    before = keys.copy()
    rec = np.empty((most, K.WIDTH), np.int64)
    reg = np.empty((4 * most, 4), np.int64)
    ptr = np.zeros(most + 1, np.int64)
    err, n, dram_bytes = K.gemm_tiles(
        geo,
        np.array([t.oh_t, t.ow_t, t.n_t, t.cin_t, int(t.order == "channel")], np.int64),
        place,
        wblk,
        IDS,
        np.array([s.rows for s in state], np.int64),
        n_slots,
        keys,
        lru,
        rec,
        reg,
        ptr,
    )
    if err != K.OK:
        return False  # the Python emission raises the error
    kinds = rec[:n, 0]
    em.add_rows(_rows(rec[:n], em.tag), reg[: ptr[n]].copy(), ptr[1 : n + 1], _UNIT[kinds].tolist())
    em.dram_bytes += int(dram_bytes)
    changed = (keys != before).any(axis=2).tolist()  # the slots the layer filled
    for i, s in enumerate(state):
        s.lru[:] = lru[i, : len(s.lru)].tolist()
        for j, old in enumerate(s.keys):
            if changed[i][j]:
                s.keys[j] = _decode(i, keys[i, j], old, P, image)
    return True


def _rows(rec: np.ndarray, tag: int) -> np.ndarray:
    """The kernel's records ([kind, fields in `gemm_kernel.FIELDS` order]) as
    `accelsim.insn_table` rows tagged `tag` (no tokens yet)."""
    n = len(rec)
    out = np.zeros((n, COLS + 1), np.int64)  # the last column takes the unused record columns
    kinds = rec[:, 0]
    out[np.arange(n)[:, None], _SCATTER[kinds]] = rec[:, 1:]
    out[:, OP] = _OPCODE[kinds]
    out[:, TAG] = tag
    return out[:, :COLS]


def _ints(values: list) -> np.ndarray | None:
    """`values` as an int64 array, or None if one is not an integer (the Python emission
    then keeps it as it is, for the validation to name)."""
    if all(type(v) is int or isinstance(v, (bool, np.integer)) for v in values):
        return np.array(values, np.int64)
    return None


@functools.lru_cache(maxsize=4096)
def _geo(L: GemmLayer, row_bits: int) -> np.ndarray | None:
    return _ints(
        [
            L.h,
            L.w,
            L.cin,
            L.oh,
            L.ow,
            L.cout,
            L.kh,
            L.kw,
            L.stride,
            L.dilation,
            L.sy,
            L.dy,
            L.pad_top,
            L.pad_left,
            L.a_bits,
            L.w_bits,
            L.out_bits,
            int(L.conv),
            int(L.depthwise),
            int(L.one_pixel),
            row_bits,
            MAX_D2,
            PAD_MAX,
            ACC_BITS,
            PARAM_BITS,
        ]
    )


def _place(P, image: int) -> np.ndarray | None:
    lo, hi = P.clip if P.clip is not None else (0, 0)
    return _ints(
        [
            P.in_addr,
            P.in_c,
            P.out_addr,
            P.out_c,
            P.p_addr,
            P.in_c_off,
            P.out_c_off,
            MODE_CODE[P.a_mode],
            MODE_CODE[P.w_mode],
            MODE_CODE[P.out_mode],
            P.pad_value,
            P.zp,
            int(P.relu),
            int(P.clip is not None),
            lo,
            hi,
            P.frac,
            image,
        ]
    )


def _weight_blocks(L: GemmLayer, t: Tiling, P, n_n: int, n_ci: int) -> np.ndarray | None:
    """DRAM address of each weight tile [channel tile, cin slice] (one column for depthwise);
    None if a tile is read in place from an activation tensor."""
    out = np.zeros((n_n, 1 if L.depthwise else n_ci), np.int64)
    if P.w_blocks is None:
        return out
    for nt in range(n_n):
        n0 = nt * t.n_t
        for ct in range(out.shape[1]):
            block = P.w_blocks[(n0, n0 if L.depthwise else ct * t.cin_t)]
            if isinstance(block, tuple):
                return None
            out[nt, ct] = block
    return out


def _encode(buf: int, key, P, image: int) -> list:
    """A slot key as the kernel's [kind, v0..v5] (see `accelsim.frontend.gemm_kernel`)."""
    if key is None:
        return [0] * 7
    if not isinstance(key, tuple):
        return [-1] * 7
    b = BUFS[buf]
    if b is Buf.INP and key[:2] == (P.in_addr, image):
        if len(key) == 10 and key[2] == "patch" and key[9] == P.pad_value:
            return [1, *key[3:9]]
        if len(key) == 7 and key[2] == "rows":
            return [2, *key[3:7], 0, 0]
    if b is Buf.WGT and len(key) == 4 and key[0] == P.key and key[1] == "w":
        return [1, key[2], key[3], 0, 0, 0, 0]
    if b is Buf.PARAM and len(key) == 3 and key[0] == P.key and key[1] == "param":
        return [1, key[2], 0, 0, 0, 0, 0]
    return [-1] * 7  # a key this layer never looks up


def _decode(buf: int, code: np.ndarray, old, P, image: int):
    """The slot key the Python emission would hold for the kernel's `code`."""
    kind = int(code[0])
    if kind == -1:
        return old
    if kind == 0:
        return None
    v = code[1:].tolist()
    b = BUFS[buf]
    if b is Buf.INP:
        if kind == 1:
            return (P.in_addr, image, "patch", *v, P.pad_value)
        return (P.in_addr, image, "rows", *v[:4])
    if b is Buf.WGT:
        return (P.key, "w", v[0], v[1])
    return (P.key, "param", v[0])
