"""The tile loop of `accelsim.frontend.gemm_layer.emit_gemm_layer_ref` compiled with Numba.

`gemm_tiles` follows the Python emission step by step (`emit_gemm_layer_ref`, `_load_input`,
`_load_weights`, `Emitter.load` / `store` / `param_slot` / `rescale_store`, `coalesce`, the
slots' LRU) over integer arrays, and writes each instruction as a row of `rec` (opcode, then
its fields in the order of `FIELDS`) and its regions as rows of `reg` (space, start, end,
is_write), with the kinds LOAD / STORE / GEMM / RESCALE below in column 0 (the caller,
`accelsim.frontend.gemm_compiled`, maps them to opcodes and builds the instructions). Slot keys
are encoded as [kind, v0..v5] rows: kind 0 is no key, -1 a key this
layer never looks up (another tensor, layer or image), 1 an input patch (iy0, ix0, ph, pw,
channel, cin) or a weight tile (n0, c0) or a parameter block (n0), 2 input rows (oy0, oh,
channel, cin). `tests/frontend/test_gemm_kernel.py` holds both emissions equal.
"""

from __future__ import annotations

import numpy as np

from accelsim.jit import lazy_njit

# kinds of the rows of `rec` (the caller maps them to opcodes: no enum value is compiled in)
LOAD, STORE, GEMM, RESCALE = 0, 1, 2, 3
# fields of each opcode, in the order of the columns after the opcode
FIELDS = {
    LOAD: (
        "buf",
        "sram_addr",
        "dram_addr",
        "d0",
        "d1",
        "d2",
        "s0",
        "s1",
        "bits",
        "mode",
        "pad_top",
        "pad_bottom",
        "pad_left",
        "pad_right",
        "pad_value",
    ),
    STORE: ("buf", "sram_addr", "dram_addr", "d0", "d1", "d2", "s0", "s1", "bits", "mode"),
    GEMM: (
        "a_bits",
        "w_bits",
        "a_mode",
        "w_mode",
        "conv",
        "depthwise",
        "kh",
        "kw",
        "stride",
        "dilation",
        "inp_addr",
        "wgt_addr",
        "acc_addr",
        "m",
        "k",
        "n",
        "reset",
        "ow",
        "patch_w",
    ),
    RESCALE: (
        "acc_addr",
        "param_addr",
        "out_addr",
        "m",
        "n",
        "bits",
        "mode",
        "zp",
        "relu",
        "clip",
        "clip_lo",
        "clip_hi",
        "frac",
    ),
}
WIDTH = 1 + max(len(f) for f in FIELDS.values())
# the slot state's buffer rows; `ids` maps them (and DRAM, index 5) to the ids written out
INP, WGT, ACC, OUT, PARAM, DRAM = 0, 1, 2, 3, 4, 5
# geo: the GemmLayer and row width; place: the GemmPlace and image (gemm_compiled._geo, _place)
(G_H, G_W, G_CIN, G_OH, G_OW, G_COUT, G_KH, G_KW, G_SX, G_DX, G_SY, G_DY, G_PT, G_PL) = range(14)
(G_ABITS, G_WBITS, G_OBITS, G_CONV, G_DW, G_ONEPIX, G_RB, G_MAXD2, G_PADMAX) = range(14, 23)
G_ACCB, G_PRMB = 23, 24  # accumulator bits, PARAM bits per channel (emit.ACC_BITS, PARAM_BITS)
(P_IN, P_INC, P_OUT, P_OUTC, P_PRM, P_INOFF, P_OUTOFF, P_AMODE, P_WMODE, P_OMODE) = range(10)
(P_PADV, P_ZP, P_RELU, P_CLIP, P_LO, P_HI, P_FRAC, P_IMG) = range(10, 18)
# error codes: the Python emission raises the matching error
OK, ERR_SLOT, ERR_PAD = 0, 1, 2


@lazy_njit(cache=True)
def _merged_rows(count, row, max_d2):
    q = min(count, max_d2 // row)
    while q > 1:
        if count % q == 0:
            return q
        q -= 1
    return 1


@lazy_njit(cache=True)
def _coalesce(d0, d1, d2, s0, s1, pt, pb, pl, pr, max_d2):
    if d1 > 1 and s1 == d2 and pl == 0 and pr == 0:
        q = _merged_rows(d1, d2, max_d2)
        if q > 1:
            d1, d2, s1 = d1 // q, q * d2, q * d2
    if d0 > 1 and d1 == 1 and s0 == d2 and pt == 0 and pb == 0 and pl == 0 and pr == 0:
        q = _merged_rows(d0, d2, max_d2)
        if q > 1:
            d0, d2, s0 = d0 // q, q * d2, q * d2
    return d0, d1, d2, s0, s1


@lazy_njit(cache=True)
def _touch(lru, buf, n, slot):
    j = 0
    while lru[buf, j] != slot:
        j += 1
    while j < n - 1:
        lru[buf, j] = lru[buf, j + 1]
        j += 1
    lru[buf, n - 1] = slot


@lazy_njit(cache=True)
def _lookup(keys, lru, nslots, buf, key):
    """The slot of `buf` holding `key` (touched), or -1."""
    for s in range(nslots[buf]):
        same = True
        for v in range(7):
            if keys[buf, s, v] != key[v]:
                same = False
                break
        if same:
            _touch(lru, buf, nslots[buf], s)
            return s
    return -1


@lazy_njit(cache=True)
def _take(keys, lru, nslots, buf, key):
    """The least recently used slot of `buf`, now holding `key`."""
    s = lru[buf, 0]
    keys[buf, s, :] = key
    _touch(lru, buf, nslots[buf], s)
    return s


@lazy_njit(cache=True)
def _put(reg, r, space, start, end, is_write):
    """Region r: (space, start, end, is_write)."""
    reg[r, 0] = space
    reg[r, 1] = start
    reg[r, 2] = end
    reg[r, 3] = is_write


@lazy_njit(cache=True)
def _rows(elements, bits, rb):
    return -(-elements * bits // rb)


@lazy_njit(cache=True)
def _dma(rec, reg, cnt, ids, op, buf, slot, size, dram_addr, blk, bits, mode, pads, pad_v, rows):
    """Append a LOAD (op LOAD) or STORE of the coalesced block `blk`; returns DRAM bytes."""
    d0, d1, d2, s0, s1 = blk
    i, r = cnt[0], cnt[1]
    base = slot * size
    end = dram_addr + (d0 - 1) * s0 + (d1 - 1) * s1 + d2
    b, dram = ids[buf], ids[DRAM]
    rec[i, 0], rec[i, 1], rec[i, 2], rec[i, 3] = op, b, base, dram_addr
    rec[i, 4], rec[i, 5], rec[i, 6], rec[i, 7], rec[i, 8] = d0, d1, d2, s0, s1
    rec[i, 9], rec[i, 10] = bits, mode
    if op == LOAD:
        rec[i, 11], rec[i, 12], rec[i, 13], rec[i, 14] = pads[0], pads[1], pads[2], pads[3]
        rec[i, 15] = pad_v
        _put(reg, r, dram, dram_addr, end, 0)
        _put(reg, r + 1, b, base, base + rows, 1)
    else:
        _put(reg, r, b, base, base + rows, 0)
        _put(reg, r + 1, dram, dram_addr, end, 1)
    cnt[0], cnt[1] = i + 1, r + 2
    return d0 * d1 * -(-d2 * bits // 8)


@lazy_njit(cache=True)
def gemm_tiles(geo, t, place, wblk, ids, size, nslots, keys, lru, rec, reg, ptr):
    """Emit the tiles of one GEMM layer for one image (see the module docstring): fills rec,
    reg and ptr (instruction i's regions are reg[ptr[i]:ptr[i + 1]]), updates the slot
    state keys / lru in place, and returns (error code, instructions, DRAM bytes)."""
    rb, max_d2, pad_max = geo[G_RB], geo[G_MAXD2], geo[G_PADMAX]
    oh_t, ow_t, n_t, cin_t, channel_order = t[0], t[1], t[2], t[3], t[4]
    n_oh = -(-geo[G_OH] // oh_t)
    n_ow = -(-geo[G_OW] // ow_t)
    n_n = -(-geo[G_COUT] // n_t)
    n_ci = -(-geo[G_CIN] // cin_t)
    kh, kw, dw, conv = geo[G_KH], geo[G_KW], geo[G_DW], geo[G_CONV]
    cnt = np.zeros(2, np.int64)  # instructions, regions
    key = np.zeros(7, np.int64)
    pads = np.zeros(4, np.int64)
    no_pads = np.zeros(4, np.int64)
    dram_bytes = 0
    n_sp = n_oh * n_ow
    for step in range(n_sp * n_n):
        if channel_order:
            nt, sp = step // n_sp, step % n_sp
        else:
            sp, nt = step // n_n, step % n_n
        i, j = sp // n_ow, sp % n_ow
        oy0, ox0, n0 = i * oh_t, j * ow_t, nt * n_t
        oh = min(oh_t, geo[G_OH] - oy0)
        ow = min(ow_t, geo[G_OW] - ox0)
        n = min(n_t, geo[G_COUT] - n0)
        m = oh * ow
        key[:] = 0
        acc_slot = _take(keys, lru, nslots, ACC, key)
        acc_rows = _rows(m * n, geo[G_ACCB], rb)
        for ct in range(n_ci):
            c0 = n0 if dw else ct * cin_t
            cin = n if dw else min(cin_t, geo[G_CIN] - c0)
            # weights
            taps_k = kh * kw * (1 if dw else cin)
            wgt_rows = _rows(taps_k * n, geo[G_WBITS], rb)
            key[:] = 0
            key[0], key[1], key[2] = 1, n0, c0
            wgt_slot = _lookup(keys, lru, nslots, WGT, key)
            if wgt_slot < 0:
                wgt_slot = _take(keys, lru, nslots, WGT, key)
                rows = _rows(taps_k * n, geo[G_WBITS], rb)
                if rows > size[WGT]:
                    return ERR_SLOT, cnt[0], dram_bytes
                blk = _coalesce(1, taps_k, n, 0, n, 0, 0, 0, 0, max_d2)
                addr = wblk[nt, 0 if dw else ct]
                dram_bytes += _dma(
                    rec, reg, cnt, ids, LOAD, WGT, wgt_slot, size[WGT], addr, blk,
                    geo[G_WBITS], place[P_WMODE], no_pads, 0, rows,
                )  # fmt: skip
                ptr[cnt[0]] = cnt[1]
            # input
            c_abs = place[P_INOFF] + c0
            key[:] = 0
            if not conv:
                key[0], key[1], key[2], key[3], key[4] = 2, oy0, oh, c_abs, cin
                inp_rows = _rows(oh * cin, geo[G_ABITS], rb)
                pw = 1
                inp_slot = _lookup(keys, lru, nslots, INP, key)
                if inp_slot < 0:
                    inp_slot = _take(keys, lru, nslots, INP, key)
                    if inp_rows > size[INP]:
                        return ERR_SLOT, cnt[0], dram_bytes
                    blk = _coalesce(1, oh, cin, 0, place[P_INC], 0, 0, 0, 0, max_d2)
                    addr = place[P_IN] + oy0 * place[P_INC] + c_abs
                    dram_bytes += _dma(
                        rec, reg, cnt, ids, LOAD, INP, inp_slot, size[INP], addr, blk,
                        geo[G_ABITS], place[P_AMODE], no_pads, 0, inp_rows,
                    )  # fmt: skip
                    ptr[cnt[0]] = cnt[1]
            else:
                if geo[G_ONEPIX]:
                    ph, pw = kh, kw
                else:
                    ph = (oh - 1) * geo[G_SY] + (kh - 1) * geo[G_DY] + 1
                    pw = (ow - 1) * geo[G_SX] + (kw - 1) * geo[G_DX] + 1
                iy0 = oy0 * geo[G_SY] - geo[G_PT]
                ix0 = ox0 * geo[G_SX] - geo[G_PL]
                if geo[G_ONEPIX]:
                    d0, d1 = ph, pw
                    pads[:] = 0
                    s0 = geo[G_DY] * geo[G_W] * place[P_INC]
                    s1 = geo[G_DX] * place[P_INC]
                else:
                    pads[0], pads[2] = max(0, -iy0), max(0, -ix0)
                    pads[1], pads[3] = max(0, iy0 + ph - geo[G_H]), max(0, ix0 + pw - geo[G_W])
                    d0, d1 = ph - pads[0] - pads[1], pw - pads[2] - pads[3]
                    s0, s1 = geo[G_W] * place[P_INC], place[P_INC]
                if d0 < 1 or d1 < 1 or pads.max() > pad_max:
                    return ERR_PAD, cnt[0], dram_bytes
                key[0], key[1], key[2], key[3] = 1, iy0, ix0, ph
                key[4], key[5], key[6] = pw, c_abs, cin
                inp_rows = _rows(ph * pw * cin, geo[G_ABITS], rb)
                inp_slot = _lookup(keys, lru, nslots, INP, key)
                if inp_slot < 0:
                    inp_slot = _take(keys, lru, nslots, INP, key)
                    padded = (d0 + pads[0] + pads[1]) * (d1 + pads[2] + pads[3]) * cin
                    rows = _rows(padded, geo[G_ABITS], rb)
                    if rows > size[INP]:
                        return ERR_SLOT, cnt[0], dram_bytes
                    blk = _coalesce(d0, d1, cin, s0, s1, pads[0], pads[1], pads[2], pads[3], max_d2)
                    pixel = (iy0 + pads[0]) * geo[G_W] + ix0 + pads[2]
                    addr = place[P_IN] + pixel * place[P_INC] + c_abs
                    dram_bytes += _dma(
                        rec, reg, cnt, ids, LOAD, INP, inp_slot, size[INP], addr, blk,
                        geo[G_ABITS], place[P_AMODE], pads, place[P_PADV], rows,
                    )  # fmt: skip
                    ptr[cnt[0]] = cnt[1]
            # GEMM
            if inp_rows > size[INP] or wgt_rows > size[WGT] or acc_rows > size[ACC]:
                return ERR_SLOT, cnt[0], dram_bytes
            g, r = cnt[0], cnt[1]
            rec[g, 0] = GEMM
            rec[g, 1], rec[g, 2] = geo[G_ABITS], geo[G_WBITS]
            rec[g, 3], rec[g, 4] = place[P_AMODE], place[P_WMODE]
            rec[g, 5], rec[g, 6], rec[g, 7], rec[g, 8] = conv, dw, kh, kw
            rec[g, 9] = 1 if geo[G_ONEPIX] else geo[G_SX]
            rec[g, 10] = 1 if geo[G_ONEPIX] else geo[G_DX]
            inp_base, wgt_base, acc_base = (
                inp_slot * size[INP],
                wgt_slot * size[WGT],
                acc_slot * size[ACC],
            )
            rec[g, 11], rec[g, 12], rec[g, 13] = inp_base, wgt_base, acc_base
            rec[g, 14], rec[g, 15], rec[g, 16] = m, taps_k, n
            rec[g, 17] = 1 if ct == 0 else 0
            rec[g, 18] = ow if conv else 1
            rec[g, 19] = pw
            _put(reg, r, ids[INP], inp_base, inp_base + inp_rows, 0)
            _put(reg, r + 1, ids[WGT], wgt_base, wgt_base + wgt_rows, 0)
            r += 2
            if ct:
                _put(reg, r, ids[ACC], acc_base, acc_base + acc_rows, 0)
                r += 1
            _put(reg, r, ids[ACC], acc_base, acc_base + acc_rows, 1)
            cnt[0], cnt[1] = g + 1, r + 1
            ptr[cnt[0]] = cnt[1]
        # output block in DRAM
        c = place[P_OUTC]
        if conv:
            o_addr = place[P_OUT] + (oy0 * geo[G_OW] + ox0) * c + place[P_OUTOFF] + n0
            b0, b1, b2, bs0, bs1 = oh, ow, n, geo[G_OW] * c, c
        else:
            o_addr = place[P_OUT] + oy0 * c + place[P_OUTOFF] + n0
            b0, b1, b2, bs0, bs1 = 1, oh, n, 0, c
        # parameters
        key[:] = 0
        key[0], key[1] = 1, n0
        p_slot = _lookup(keys, lru, nslots, PARAM, key)
        if p_slot < 0:
            p_slot = _take(keys, lru, nslots, PARAM, key)
            rows = _rows(n * 3, 32, rb)  # (bias, multiplier, shift) as signed int32 (mode 0)
            if rows > size[PARAM]:
                return ERR_SLOT, cnt[0], dram_bytes
            blk = _coalesce(1, n, 3, 3 * n, 3, 0, 0, 0, 0, max_d2)
            p_addr = place[P_PRM] + 3 * (place[P_OUTOFF] + n0)
            dram_bytes += _dma(
                rec, reg, cnt, ids, LOAD, PARAM, p_slot, size[PARAM], p_addr, blk, 32, 0, no_pads,
                0, rows,
            )  # fmt: skip
            ptr[cnt[0]] = cnt[1]
        key[:] = 0
        out_slot = _take(keys, lru, nslots, OUT, key)
        if acc_rows > size[ACC]:
            return ERR_SLOT, cnt[0], dram_bytes
        g, r = cnt[0], cnt[1]
        acc_base, p_base = acc_slot * size[ACC], p_slot * size[PARAM]
        out_base = out_slot * size[OUT]
        out_rows = _rows(m * n, geo[G_OBITS], rb)
        rec[g, 0] = RESCALE
        rec[g, 1], rec[g, 2], rec[g, 3], rec[g, 4], rec[g, 5] = acc_base, p_base, out_base, m, n
        rec[g, 6], rec[g, 7], rec[g, 8] = geo[G_OBITS], place[P_OMODE], place[P_ZP]
        rec[g, 9], rec[g, 10] = place[P_RELU], place[P_CLIP]
        rec[g, 11], rec[g, 12], rec[g, 13] = place[P_LO], place[P_HI], place[P_FRAC]
        _put(reg, r, ids[ACC], acc_base, acc_base + acc_rows, 0)
        _put(reg, r + 1, ids[PARAM], p_base, p_base + _rows(n, geo[G_PRMB], rb), 0)
        _put(reg, r + 2, ids[OUT], out_base, out_base + out_rows, 1)
        cnt[0], cnt[1] = g + 1, r + 3
        ptr[cnt[0]] = cnt[1]
        # STORE
        if out_rows > size[OUT]:
            return ERR_SLOT, cnt[0], dram_bytes
        blk = _coalesce(b0, b1, b2, bs0, bs1, 0, 0, 0, 0, max_d2)
        dram_bytes += _dma(
            rec, reg, cnt, ids, STORE, OUT, out_slot, size[OUT], o_addr, blk, geo[G_OBITS],
            place[P_OMODE], no_pads, 0, out_rows,
        )  # fmt: skip
        ptr[cnt[0]] = cnt[1]
    return OK, cnt[0], dram_bytes
