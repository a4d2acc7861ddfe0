"""The token pass compiled with Numba: `insert_tokens_ref` of `accelsim.frontend.tokens` over
flat arrays (compiled, or loaded from Numba's cache, on first call: `accelsim.jit`)."""

from __future__ import annotations

import numpy as np

from accelsim.jit import lazy_njit


@lazy_njit(cache=True)
def tokens(unit, ptr, regions, n_spaces, n_units):
    """`accelsim.frontend.tokens.insert_tokens_ref` over arrays: unit [n] (-1: FINISH); the
    regions of instruction i are rows ptr[i]:ptr[i + 1] of regions [r, 4] = (space, start,
    end, is_write). Each space keeps its written intervals sorted in st/en with their writer
    (wu, ws) and, per unit, the latest seq that read them since (rd; 0: none), so a write
    needs the writer and those readers. Returns the (wait, signal) masks [n]."""
    n = unit.shape[0]
    cap = 16
    count = np.zeros(n_spaces, np.int64)
    st = np.zeros((n_spaces, cap), np.int64)
    en = np.zeros((n_spaces, cap), np.int64)
    wu = np.zeros((n_spaces, cap), np.int64)
    ws = np.zeros((n_spaces, cap), np.int64)
    rd = np.zeros((n_spaces, cap, n_units), np.int64)
    clock = np.zeros((n_units, n_units), np.int64)
    seq = np.zeros(n_units, np.int64)
    done = np.zeros((n + 1, n_units), np.int64)  # clock of each instruction when it ran
    insn_of = np.zeros((n_units, n + 1), np.int64)  # (unit, seq) -> instruction
    wait = np.zeros(n, np.int64)
    signal = np.zeros(n, np.int64)
    needs = np.zeros(n_units, np.int64)
    needed = np.zeros(n_units, np.bool_)
    for i in range(n):
        c = unit[i]
        if c < 0:
            continue
        needs[:] = 0
        for r in range(ptr[i], ptr[i + 1]):
            sp, a, b, write = regions[r, 0], regions[r, 1], regions[r, 2], regions[r, 3]
            k = max(np.searchsorted(st[sp, : count[sp]], a, side="right") - 1, 0)
            while k < count[sp] and st[sp, k] < b:
                if en[sp, k] > a:
                    if ws[sp, k] > needs[wu[sp, k]]:
                        needs[wu[sp, k]] = ws[sp, k]
                    if write:
                        for u in range(n_units):
                            if rd[sp, k, u] > needs[u]:
                                needs[u] = rd[sp, k, u]
                k += 1
        for p in range(n_units):  # producers not yet ordered before this instruction
            needed[p] = p != c and needs[p] > clock[c, p]
        for p in range(n_units):
            if not needed[p]:
                continue
            # no token if another needed producer already follows this one
            covered = False
            for q in range(n_units):
                if q != p and needed[q] and done[insn_of[q, needs[q]], p] >= needs[p]:
                    covered = True
                    break
            if not covered:
                signal[insn_of[p, needs[p]]] |= 1 << c
                wait[i] |= 1 << p
        for p in range(n_units):
            if needed[p]:
                pc = done[insn_of[p, needs[p]]]
                for u in range(n_units):
                    if pc[u] > clock[c, u]:
                        clock[c, u] = pc[u]
        seq[c] += 1
        clock[c, c] = seq[c]
        done[i] = clock[c]
        insn_of[c, seq[c]] = i
        for r in range(ptr[i], ptr[i + 1]):  # the reads, then the writes, in region order
            sp, a, b, write = regions[r, 0], regions[r, 1], regions[r, 2], regions[r, 3]
            if write:
                continue
            k = max(np.searchsorted(st[sp, : count[sp]], a, side="right") - 1, 0)
            while k < count[sp] and st[sp, k] < b:
                if en[sp, k] > a:
                    rd[sp, k, c] = seq[c]
                k += 1
        for r in range(ptr[i], ptr[i + 1]):
            sp, a, b, write = regions[r, 0], regions[r, 1], regions[r, 2], regions[r, 3]
            if not write:
                continue
            if count[sp] + 3 > st.shape[1]:  # room for the pieces of one write
                cap = 2 * st.shape[1]
                st, en, wu, ws, rd = _grow(st, en, wu, ws, rd, cap)
            _write(st[sp], en[sp], wu[sp], ws[sp], rd[sp], count, sp, a, b, c, seq[c])
    return wait, signal


@lazy_njit(cache=True)
def _grow(st, en, wu, ws, rd, cap):
    out = []
    for arr in (st, en, wu, ws):
        new = np.zeros((arr.shape[0], cap), np.int64)
        new[:, : arr.shape[1]] = arr
        out.append(new)
    r = np.zeros((rd.shape[0], cap, rd.shape[2]), np.int64)
    r[:, : rd.shape[1]] = rd
    return out[0], out[1], out[2], out[3], r


@lazy_njit(cache=True)
def _write(st, en, wu, ws, rd, count, sp, a, b, unit, seq):
    """`_Space.write` on the arrays of one space: [a, b) now written by (unit, seq); the parts
    of overlapped intervals outside it keep their writer and readers."""
    m = count[sp]
    lo = max(np.searchsorted(st[:m], a, side="right") - 1, 0)
    hi = lo
    n_units = rd.shape[1]
    p_st = np.empty(2 * (m - lo) + 1, np.int64)  # pieces replacing items lo:hi
    p_en = np.empty_like(p_st)
    p_src = np.empty_like(p_st)  # the item whose writer and readers a piece keeps (-1: new)
    n_p = 0
    while hi < m and st[hi] < b:
        if en[hi] > a:
            if st[hi] < a:
                p_st[n_p], p_en[n_p], p_src[n_p] = st[hi], a, hi
                n_p += 1
            if b < en[hi]:
                p_st[n_p], p_en[n_p], p_src[n_p] = b, en[hi], hi
                n_p += 1
        else:
            p_st[n_p], p_en[n_p], p_src[n_p] = st[hi], en[hi], hi
            n_p += 1
        hi += 1
    p_st[n_p], p_en[n_p], p_src[n_p] = a, b, -1
    n_p += 1
    order = np.argsort(p_st[:n_p], kind="mergesort")  # stable, as list.sort
    p_wu = np.empty(n_p, np.int64)
    p_ws = np.empty(n_p, np.int64)
    p_rd = np.zeros((n_p, n_units), np.int64)
    for j in range(n_p):
        src = p_src[j]
        if src < 0:
            p_wu[j], p_ws[j] = unit, seq
        else:
            p_wu[j], p_ws[j] = wu[src], ws[src]
            p_rd[j] = rd[src]
    shift = n_p - (hi - lo)
    if shift > 0:  # move the tail right, from its end
        for k in range(m - 1, hi - 1, -1):
            st[k + shift], en[k + shift], wu[k + shift], ws[k + shift] = st[k], en[k], wu[k], ws[k]
            rd[k + shift] = rd[k]
    elif shift < 0:
        for k in range(hi, m):
            st[k + shift], en[k + shift], wu[k + shift], ws[k + shift] = st[k], en[k], wu[k], ws[k]
            rd[k + shift] = rd[k]
    for j in range(n_p):
        o = order[j]
        st[lo + j], en[lo + j], wu[lo + j], ws[lo + j] = p_st[o], p_en[o], p_wu[o], p_ws[o]
        rd[lo + j] = p_rd[o]
    count[sp] = m + shift
