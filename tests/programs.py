"""Hand-written programs for tests and benchmarks (the front end writes the real ones).

`tiled_gemm_program` computes Y = rescale(X @ W) for X [M, K] and W [K, N] with a token protocol
a lowering can copy:

- INP/WGT tiles are double buffered: LOAD of step s (s counts (i, j, kk) steps) reuses the
  slot of step s-2, so it waits for a matmul->load token, which GEMM s-2 pushes when done.
  The second LOAD of a step (WGT) signals load->matmul; the GEMM waits for it.
- ACC and OUT are double buffered per output tile t: the first GEMM of tile t >= 2 waits for
  rescale->matmul (RESCALE t-2 has read its ACC slot); RESCALE t >= 2 waits store->rescale.
- The last GEMM of a tile signals matmul->rescale; RESCALE signals rescale->store; the
  per-channel PARAM block is loaded once up front and signals load->rescale for RESCALE 0.
- Producers stop signalling when no consumer is left, so every FIFO ends empty.
"""

from __future__ import annotations

import numpy as np

from accelsim.isa import MODE_BY_NAME, Buf, Op, Unit
from accelsim.memory import tile_rows
from accelsim.program import Program, ProgramBuilder

L, S, MM, RS = (1 << Unit.LOAD, 1 << Unit.STORE, 1 << Unit.MATMUL, 1 << Unit.RESCALE)


def tiled_gemm_program(
    cfg,
    x,
    w,
    bias,
    mult,
    shift,
    *,
    a_bits,
    w_bits,
    out_bits=8,
    tm=16,
    tk=16,
    tn=16,
    zp=0,
    relu=False,
    a_mode="signed",
    w_mode="signed",
    tag=0,
) -> Program:
    """Program computing `rescale(x @ w + bias; mult, shift)` to `out_bits` signed outputs.

    x may be an array or a shape (M, K) (then zeros: enough for count_only timing runs).
    Tiles are tm x tk (INP), tk x tn (WGT), tm x tn (ACC, OUT). Requires 96*tn to be a multiple
    of row_bits so each RESCALE starts on a PARAM row."""
    row_bits = cfg.buffers.row_bits
    if (96 * tn) % row_bits:
        raise ValueError(f"tn = {tn}: 96*tn must be a multiple of row_bits = {row_bits}")
    x = np.zeros(x, np.int8) if isinstance(x, tuple) else np.asarray(x)
    w = np.asarray(w)
    M, K = x.shape
    N = w.shape[1]
    b = ProgramBuilder()
    b.tags[tag] = "gemm"
    xa = b.add_tensor("x", x, a_bits, a_mode, kind="input")
    wa = b.add_tensor("w", w, w_bits, w_mode)
    params = np.stack(
        [np.broadcast_to(bias, N), np.broadcast_to(mult, N), np.broadcast_to(shift, N)], axis=1
    )
    pa = b.add_tensor("params", params, 32)
    ya = b.add_tensor("y", (M, N), out_bits, "signed", kind="output")
    inp_slot = tile_rows(tm * tk, a_bits, row_bits)
    wgt_slot = tile_rows(tk * tn, w_bits, row_bits)
    acc_slot = tile_rows(tm * tn, 32, row_bits)
    out_slot = tile_rows(tm * tn, out_bits, row_bits)
    am, wm = MODE_BY_NAME[a_mode], MODE_BY_NAME[w_mode]
    mi, nj, kk_n = -(-M // tm), -(-N // tn), -(-K // tk)
    n_tiles, n_steps = mi * nj, mi * nj * kk_n
    b.emit(
        Op.LOAD,
        signal=RS,
        tag=tag,
        buf=Buf.PARAM,
        sram_addr=0,
        dram_addr=pa,
        d0=1,
        d1=1,
        d2=3 * N,
        s0=0,
        s1=0,
        bits=32,
    )
    step = 0
    for t in range(n_tiles):
        i, j = divmod(t, nj)
        m = min(tm, M - i * tm)
        n = min(tn, N - j * tn)
        for kk in range(kk_n):
            k = min(tk, K - kk * tk)
            slot = step % 2
            wait = MM if step >= 2 else 0
            b.emit(
                Op.LOAD,
                wait=wait,
                tag=tag,
                buf=Buf.INP,
                sram_addr=slot * inp_slot,
                dram_addr=xa + i * tm * K + kk * tk,
                d0=m,
                d1=1,
                d2=k,
                s0=K,
                s1=0,
                bits=a_bits,
                mode=am,
            )
            b.emit(
                Op.LOAD,
                signal=MM,
                tag=tag,
                buf=Buf.WGT,
                sram_addr=slot * wgt_slot,
                dram_addr=wa + kk * tk * N + j * tn,
                d0=k,
                d1=1,
                d2=n,
                s0=N,
                s1=0,
                bits=w_bits,
                mode=wm,
            )
            last = kk == kk_n - 1
            b.emit(
                Op.GEMM,
                wait=L | (RS if kk == 0 and t >= 2 else 0),
                signal=(L if step < n_steps - 2 else 0) | (RS if last else 0),
                tag=tag,
                inp_addr=slot * inp_slot,
                wgt_addr=slot * wgt_slot,
                acc_addr=(t % 2) * acc_slot,
                m=m,
                k=k,
                n=n,
                a_bits=a_bits,
                w_bits=w_bits,
                a_mode=am,
                w_mode=wm,
                reset=int(kk == 0),
            )
            step += 1
        b.emit(
            Op.RESCALE,
            wait=MM | (L if t == 0 else 0) | (S if t >= 2 else 0),
            signal=S | (MM if t < n_tiles - 2 else 0),
            tag=tag,
            acc_addr=(t % 2) * acc_slot,
            param_addr=tile_rows(3 * j * tn, 32, row_bits),
            out_addr=(t % 2) * out_slot,
            m=m,
            n=n,
            bits=out_bits,
            mode=0,
            zp=zp,
            relu=int(relu),
        )
        b.emit(
            Op.STORE,
            wait=RS,
            signal=RS if t < n_tiles - 2 else 0,
            tag=tag,
            buf=Buf.OUT,
            sram_addr=(t % 2) * out_slot,
            dram_addr=ya + i * tm * N + j * tn,
            d0=m,
            d1=1,
            d2=n,
            s0=N,
            s1=0,
            bits=out_bits,
        )
    b.emit(Op.FINISH)
    return b.build()


BAD_STREAMS = (
    "capacity",
    "dram",
    "self",
    "finish_wait",
    "after_finish",
    "svge",
    "uncostable",
    "huge",
)


def bad_stream(case: str, cfg) -> Program:
    """A short program the simulator must refuse (`case` from BAD_STREAMS): rows past a
    buffer, a DMA block past the DRAM image, a unit signalling itself, FINISH with a token, an
    instruction after FINISH, an SVGE engine beyond `svge.engines`, rows past a buffer before
    a GEMM no cost model can cost (a 0-tap conv), a block too large for int64 arithmetic."""
    b = ProgramBuilder()
    b.alloc(64)
    rows = cfg.buffers.capacity_rows("inp")
    if case == "capacity":  # the second LOAD's rows run past the buffer
        b.emit(Op.LOAD, buf=Buf.INP, d0=1, d1=1, d2=16, bits=8)
        b.emit(Op.LOAD, buf=Buf.INP, sram_addr=rows - 1, d0=2, d1=1, d2=16, bits=8)
    elif case == "dram":
        b.emit(Op.LOAD, buf=Buf.INP, dram_addr=60, d0=1, d1=1, d2=16, bits=8)
    elif case == "self":
        b.emit(Op.LOAD, signal=L, buf=Buf.INP, d0=1, d1=1, d2=1, bits=8)
    elif case == "finish_wait":
        b.emit(Op.FINISH, wait=L)
    elif case == "after_finish":
        b.emit(Op.FINISH)
        b.emit(Op.LOAD, buf=Buf.INP, d0=1, d1=1, d2=1, bits=8)
    elif case == "svge":
        b.emit(Op.SVG_MAP, engine=7)
    elif case == "uncostable":
        b.emit(Op.GEMM, inp_addr=10**6, m=1, k=1, n=1)
        b.emit(Op.GEMM, m=1, k=1, n=1, conv=1, kh=0)
    elif case == "huge":
        b.emit(Op.LOAD, buf=Buf.INP, d0=1 << 40, d1=1 << 40, d2=1, bits=8)
    else:
        raise ValueError(case)
    return b.build()
