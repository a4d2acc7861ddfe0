"""MAC-array work of one kernel-map pair: `acc[:] += x @ W` with float32 products, int32 sums.

`acc_dot_f32(x, w, acc)` adds `x @ w` (x [c_in] of any integer or float dtype, w float32
[c_in, c_out], both C-contiguous) into the int32 accumulator row `acc` [c_out]; x elements
are converted to float32 as they are loaded, so int8 activations are gathered 1 byte each.
The operands hold small integers and the caller guarantees
c_in * max|x| * max|w| <= 2**24, so every float32 partial sum is an exact integer and the
conversion to int32 loses nothing.

The inner loop is a register-blocked LLVM vector kernel: 8, 4, 2 or 1 vectors of 8 output
channels stay in registers while the input channels stream past (one broadcast and one
`llvm.fmuladd` per vector per input channel), which Numba's loop vectoriser does not achieve
on its own because it keeps the accumulators in memory. The IR is target independent
(`<8 x float>`; LLVM splits or fuses it for the host). Leftover channels (c_out mod 8) use a
plain loop. With NUMBA_DISABLE_JIT=1 a NumPy fallback with the same result is used.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

LANES = 8  # float32 lanes per LLVM vector in the kernel


def _to_f32(builder, value, dtype, f32):
    """Convert one x element (any integer or float type) to float32 in LLVM IR."""
    if isinstance(dtype, types.Float):
        return value if dtype.bitwidth == 32 else builder.fptrunc(value, f32)
    return builder.sitofp(value, f32) if dtype.signed else builder.uitofp(value, f32)


def _make_block(n_vec: int):
    """Intrinsic adding x[0:n] @ w[0:n, 0:8*n_vec] (row stride `stride` floats) into acc.

    x is a contiguous 1-D array of any integer or float dtype (converted to float32 as it is
    loaded, so int8 activations are gathered as 1 byte each); w and acc are addresses."""

    @intrinsic
    def block(typingctx, x_row, w_addr, acc_addr, n, stride):
        if not isinstance(x_row, types.Array) or x_row.ndim != 1 or x_row.layout != "C":
            return None
        sig = types.void(x_row, types.intp, types.intp, types.intp, types.intp)
        x_dtype = x_row.dtype

        def codegen(context, builder, signature, args):
            x_arr, wa, aa, count, row = args
            f32, i32 = ir.FloatType(), ir.IntType(32)
            vf, vi = ir.VectorType(f32, LANES), ir.VectorType(i32, LANES)
            intp = count.type
            fma = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(vf, [vf, vf, vf]), f"llvm.fmuladd.v{LANES}f32"
            )
            xp = context.make_array(signature.args[0])(context, builder, x_arr).data
            wp = builder.inttoptr(wa, f32.as_pointer())
            ap = builder.inttoptr(aa, i32.as_pointer())
            zero_v = ir.Constant(vf, None)
            zero_i = ir.Constant(intp, 0)
            entry = builder.basic_block
            loop = builder.append_basic_block("mk.loop")
            done = builder.append_basic_block("mk.done")
            builder.cbranch(builder.icmp_signed(">", count, zero_i), loop, done)

            builder.position_at_end(loop)
            ci = builder.phi(intp)
            accs = [builder.phi(vf) for _ in range(n_vec)]
            a = _to_f32(builder, builder.load(builder.gep(xp, [ci])), x_dtype, f32)
            splat = builder.shuffle_vector(
                builder.insert_element(ir.Constant(vf, ir.Undefined), a, ir.Constant(i32, 0)),
                ir.Constant(vf, ir.Undefined),
                ir.Constant(vi, None),
            )
            base = builder.mul(ci, row)
            new = []
            for j in range(n_vec):
                p = builder.gep(wp, [builder.add(base, ir.Constant(intp, LANES * j))])
                wv = builder.load(builder.bitcast(p, vf.as_pointer()), align=4)
                new.append(builder.call(fma, [splat, wv, accs[j]]))
            nxt = builder.add(ci, ir.Constant(intp, 1))
            ci.add_incoming(zero_i, entry)
            ci.add_incoming(nxt, loop)
            for j in range(n_vec):
                accs[j].add_incoming(zero_v, entry)
                accs[j].add_incoming(new[j], loop)
            builder.cbranch(builder.icmp_signed("<", nxt, count), loop, done)

            builder.position_at_end(done)
            totals = [builder.phi(vf) for _ in range(n_vec)]  # LLVM wants phis first
            for j in range(n_vec):
                totals[j].add_incoming(zero_v, entry)
                totals[j].add_incoming(new[j], loop)
            for j in range(n_vec):
                q = builder.bitcast(
                    builder.gep(ap, [ir.Constant(intp, LANES * j)]), vi.as_pointer()
                )
                old = builder.load(q, align=4)
                builder.store(builder.add(old, builder.fptosi(totals[j], vi)), q, align=4)
            return context.get_dummy_value()

        return sig, codegen

    return block


_block8 = _make_block(8)
_block4 = _make_block(4)
_block2 = _make_block(2)
_block1 = _make_block(1)


@njit(cache=True)
def _acc_dot_f32_jit(x, w, acc):
    c_in, c_out = w.shape
    wa, aa = w.ctypes.data, acc.ctypes.data
    cb = 0
    while cb + 64 <= c_out:
        _block8(x, wa + 4 * cb, aa + 4 * cb, c_in, c_out)
        cb += 64
    if cb + 32 <= c_out:
        _block4(x, wa + 4 * cb, aa + 4 * cb, c_in, c_out)
        cb += 32
    if cb + 16 <= c_out:
        _block2(x, wa + 4 * cb, aa + 4 * cb, c_in, c_out)
        cb += 16
    if cb + 8 <= c_out:
        _block1(x, wa + 4 * cb, aa + 4 * cb, c_in, c_out)
        cb += 8
    for co in range(cb, c_out):
        s = np.float32(0)
        for ci in range(c_in):
            s += np.float32(x[ci]) * w[ci, co]
        acc[co] += np.int32(s)


def _acc_dot_f32_py(x, w, acc):
    acc += (np.asarray(x, dtype=np.int64) @ np.asarray(w, dtype=np.int64)).astype(np.int32)


acc_dot_f32 = _acc_dot_f32_py if numba.config.DISABLE_JIT else _acc_dot_f32_jit


def acc_dot_ref(x, w, acc) -> np.ndarray:
    """NumPy twin of `acc_dot_f32`: returns `acc + x @ w` computed exactly in int64."""
    return np.asarray(acc, dtype=np.int64) + np.asarray(x, np.int64) @ np.asarray(w, np.int64)
