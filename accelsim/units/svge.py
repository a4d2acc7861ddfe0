"""Sparse voxel group engine (SVGE): kernel maps and gather-GEMM-scatter of voxel group tiles.

The engine has E = `svge.engines` identical engines, each with its own map builder and its own
matmul array of the `matmul` section's shape and MAC model. Instructions are issued in program
order (token waits are popped at issue, so tokens keep their one-producer, one-consumer FIFO
order); each runs on the engine named by its `engine` field, which the front end assigns to
the least-loaded engine per voxel group tile (list scheduling with the cost model below), so a
layer's SVGE time is the makespan over engines. An instruction starts at max(issue time, its
engine free) and *retires in order*: its signal tokens are pushed at max(its end, previous
instruction's retirement), so consumers see the same ordering as with a single in-order unit.
Engines work on disjoint buffer slots (the front end's job), so they never race each other.

Cost model, all from instruction fields (count_only gives the same):

    SVG_MAP   hash: ceil((n_in + n_out*K_vol) / hash_lanes) * probe_cycles
              sort: ceil(n*log2(n) / sort_width) + K_vol*ceil(n / merge_width), n = n_in + n_out
    SVG_CONV  max(matmul_cycles(P_k, cin, cout, a_bits, w_bits), ceil(P_k / gather_rows_per_cycle),
                  ceil(P_k / scatter_rows_per_cycle))

Buffers (counted in bits): COORD holds 16-bit (b, x, y, z) per voxel, MAP 16-bit (in, out,
offset) per pair (in, out are rows of the tile's input window / output tile). SVG_CONV reads the
whole INP window [n_in, cin] at a_bits (written by one or more consecutive LOADs), its offset's
weights [cin, cout] at w_bits and the tile's map; reset=1 zeroes the ACC tile [n_out, cout]
(int32) before adding. Datapath: SVG_MAP rebuilds the map from COORD with
`accelsim.sparse.map_builder.tile_map` (defined by its twin `tile_map_ref`) and checks it holds
`n_pairs` pairs; SVG_CONV checks its offset has `pairs` pairs and runs
`accelsim.kernels.gemm.gemm` on the gathered rows (overflow as `matmul.overflow`).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from accelsim.errors import IsaError
from accelsim.isa import MODE_NAMES, Buf, Op, Unit
from accelsim.kernels.gemm import gemm
from accelsim.memory import tile_rows
from accelsim.stats import MacWidths
from accelsim.units.base import UnitBase
from accelsim.units.matmul import array_macs_per_cycle, matmul_cycles

COORD_BITS = 16  # bits per coordinate value in COORD (4 per voxel)
MAP_BITS = 16  # bits per map value in MAP (3 per pair)


def map_cycles(cfg, n_in: int, n_out: int, kernel: int) -> int:
    """Cycles of one SVG_MAP over n_in input and n_out output voxels, kernel**3 offsets:

    cycles = ceil((n_in + n_out*kernel^3) / hash_lanes) * probe_cycles (hash), or
             ceil(n*log2(n) / sort_width) + kernel^3 * ceil(n / merge_width), n = n_in + n_out
             (sort)
    """
    s, k_vol = cfg.svge, kernel**3
    if s.map_method == "hash":
        return -(-map_ops(cfg, n_in, n_out, kernel)[1] // s.hash_lanes) * s.probe_cycles
    n = n_in + n_out
    return math.ceil(n * math.log2(n) / s.sort_width) + k_vol * -(-n // s.merge_width)


def map_ops(cfg, n_in: int, n_out: int, kernel: int) -> tuple[str, int]:
    """(counter, count) of the map builder's primitive operations in one SVG_MAP, the work
    `map_cycles` times and `accelsim.energy` costs:

    hash: svge_map_hash_ops = n_in inserts + n_out*kernel^3 probes of the hash table
    sort: svge_map_sort_ops = ceil(n*log2(n)) sorter steps + kernel^3*n merge steps,
          n = n_in + n_out
    """
    k_vol = kernel**3
    if cfg.svge.map_method == "hash":
        return "svge_map_hash_ops", n_in + n_out * k_vol
    n = n_in + n_out
    return "svge_map_sort_ops", math.ceil(n * math.log2(n)) + k_vol * n


def conv_cycles(cfg, pairs: int, cin: int, cout: int, a_bits: int = 8, w_bits: int = 8) -> int:
    """Cycles of one SVG_CONV: P_k pairs through gather, the array and scatter (overlapped):

    cycles = max(matmul_cycles(pairs, cin, cout, a_bits, w_bits),
                 ceil(pairs / gather_rows_per_cycle), ceil(pairs / scatter_rows_per_cycle))
    """
    s = cfg.svge
    return max(
        matmul_cycles(cfg, pairs, cin, cout, a_bits, w_bits),
        -(-pairs // s.gather_rows_per_cycle),
        -(-pairs // s.scatter_rows_per_cycle),
    )


def read_span(mem, buf, addr: int, n: int, bits: int, who: str) -> np.ndarray:
    """n elements from row `addr` on, possibly spread over consecutive tiles (a window loaded by
    several LOADs, each a whole number of rows). Row `addr` may also lie inside a tile: a LOAD
    into part of an older tile of the same width updates that tile (`accelsim.memory`)."""
    b = mem.bufs[buf]
    parts, row, left = [], addr, n
    while left > 0:
        start, tile = b._find(row)
        if tile is None:
            raise IsaError(f"{who}: {b.name} row {row} of the window holds no data")
        off_bits = (row - start) * b.row_bits
        take = min(left, tile[2].size - off_bits // bits)
        if take < 1:
            raise IsaError(f"{who}: {b.name} row {row} is past the data of its tile")
        parts.append(b.read(row, take, bits, who))
        left -= take
        row = start + tile[0]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


class Svge(UnitBase):
    """The sparse voxel group engine. Cost: `map_cycles` / `conv_cycles`; datapath above."""

    unit = Unit.SVGE
    timing = "engines"
    ADDR_FIELDS = ("coord_addr", "out_coord_addr", "map_addr", "inp_addr", "wgt_addr", "acc_addr")

    def __init__(self, env, cfg, stats):
        super().__init__(env, cfg, stats)
        self.mac_arrays = cfg.svge.engines  # one array of the matmul section's shape per engine

    def peak_macs_per_cycle(self, a_bits: int, w_bits: int) -> float:
        """E engines x R * C * f / passes of each engine's array."""
        return self.mac_arrays * array_macs_per_cycle(self.cfg, a_bits, w_bits)

    def cycles(self, insn) -> int:
        f = insn.f
        if insn.op == Op.SVG_MAP:
            return map_cycles(self.cfg, f["n_in"], f["n_out"], f["kernel"])
        return conv_cycles(self.cfg, f["pairs"], f["cin"], f["cout"], f["a_bits"], f["w_bits"])

    def profile(self, insn):
        f, rb = insn.f, self.row_bits
        if f["engine"] >= self.cfg.svge.engines:
            raise IsaError(
                f"insn {insn.index} {insn.op.name}: engine {f['engine']} but "
                f"svge.engines = {self.cfg.svge.engines}"
            )
        cyc = self.cycles(insn)
        eng = (f"svge_engine_cycles_e{f['engine']}", cyc)
        map_rows = tile_rows(3 * f["n_pairs"], MAP_BITS, rb)
        if insn.op == Op.SVG_MAP:
            c_in = tile_rows(4 * f["n_in"], COORD_BITS, rb)
            c_out = tile_rows(4 * f["n_out"], COORD_BITS, rb)
            acc = (
                (Buf.COORD, "coord_addr", c_in, False),
                (Buf.COORD, "out_coord_addr", c_out, False),
                (Buf.MAP, "map_addr", map_rows, True),
            )
            counts = (
                ("svge_map_cycles", cyc),
                map_ops(self.cfg, f["n_in"], f["n_out"], f["kernel"]),
                eng,
                ("svge_pairs", f["n_pairs"]),
                (f"svge_pairs_g{f['group']}", f["n_pairs"]),
                ("svge_used_inputs", f["used"]),
                ("svge_halo_inputs", f["halo"]),
                ("sram_read_bits_coord", (c_in + c_out) * rb),
                ("sram_write_bits_map", map_rows * rb),
            )
            return cyc, acc, counts
        p, cin, cout, a, w = f["pairs"], f["cin"], f["cout"], f["a_bits"], f["w_bits"]
        inp = tile_rows(f["n_in"] * cin, a, rb)
        wgt = tile_rows(cin * cout, w, rb)
        acc_rows = tile_rows(f["n_out"] * cout, 32, rb)
        acc = [
            (Buf.INP, "inp_addr", inp, False),
            (Buf.WGT, "wgt_addr", wgt, False),
            (Buf.MAP, "map_addr", map_rows, False),
        ]
        if not f["reset"]:
            acc.append((Buf.ACC, "acc_addr", acc_rows, False))
        acc.append((Buf.ACC, "acc_addr", acc_rows, True))
        row_bits = tile_rows(cout, 32, rb) * rb  # one scattered accumulator row
        counts = (
            (MacWidths(a, w), p * cin * cout),
            ("svge_gathers", p),
            ("svge_scatters", p),
            ("svge_conv_cycles", cyc),
            eng,
            ("sram_read_bits_inp", p * tile_rows(cin, a, rb) * rb),
            ("sram_read_bits_wgt", wgt * rb),
            ("sram_read_bits_map", tile_rows(3 * p, MAP_BITS, rb) * rb),
            ("sram_read_bits_acc", 0 if f["reset"] else p * row_bits),
            ("sram_write_bits_acc", p * row_bits + (acc_rows * rb if f["reset"] else 0)),
        )
        return cyc, tuple(acc), counts

    def run(self, insn, mem):
        f = insn.f
        who = f"insn {insn.index} {insn.op.name}"
        if insn.op == Op.SVG_MAP:
            from accelsim.sparse.map_builder import tile_map  # noqa: PLC0415 (start-up)

            cin = read_span(mem, Buf.COORD, f["coord_addr"], 4 * f["n_in"], COORD_BITS, who)
            cout = mem.read(Buf.COORD, f["out_coord_addr"], 4 * f["n_out"], COORD_BITS, who)
            pairs = tile_map(
                cin,
                cout,
                f["kernel"],
                f["stride"],
                f["dilation"],
                f["groups"],
                (f["ga"], f["gb"], f["gc"]),
                bool(f["transposed"]),
            )
            if pairs.shape[0] != f["n_pairs"]:
                raise IsaError(
                    f"{who}: the map has {pairs.shape[0]} pairs, the instruction "
                    f"says n_pairs = {f['n_pairs']}"
                )
            mem.write(Buf.MAP, f["map_addr"], pairs, MAP_BITS)
            return
        n_in, n_out, cin, cout = f["n_in"], f["n_out"], f["cin"], f["cout"]
        pairs = mem.read(Buf.MAP, f["map_addr"], 3 * f["n_pairs"], MAP_BITS, who).reshape(-1, 3)
        sel = pairs[pairs[:, 2] == f["offset"]]
        if sel.shape[0] != f["pairs"]:
            raise IsaError(
                f"{who}: offset {f['offset']} has {sel.shape[0]} pairs in the map, "
                f"the instruction says {f['pairs']}"
            )
        if f["reset"]:
            acc = np.zeros((n_out, cout), np.int32)
        else:
            acc = mem.read(Buf.ACC, f["acc_addr"], n_out * cout, 32, who).reshape(n_out, cout)
            acc = acc.copy()
        if sel.shape[0]:
            x = read_span(mem, Buf.INP, f["inp_addr"], n_in * cin, f["a_bits"], who)
            w = mem.read(Buf.WGT, f["wgt_addr"], cin * cout, f["w_bits"], who)
            rows = sel[:, 1]
            acc[rows] = gemm(
                x.reshape(n_in, cin)[sel[:, 0]],
                w.reshape(cin, cout),
                acc[rows],
                a_bits=f["a_bits"],
                w_bits=f["w_bits"],
                a_mode=MODE_NAMES[f["a_mode"]],
                w_mode=MODE_NAMES[f["w_mode"]],
                overflow=self.cfg.matmul.overflow,
            )
        mem.write(Buf.ACC, f["acc_addr"], acc, 32)

    def process(self):
        """In-order issue to E engines, in-order retirement (see module docstring)."""
        env, stats, races, mem, hook = self.env, self.stats, self.races, self.mem, self.on_event
        start, end = stats.start, stats.end
        free = [0] * self.cfg.svge.engines
        retire = 0
        uid = int(self.unit)
        for pos, (insn, cyc, waits, sigs, accesses) in enumerate(self.plan):
            self.pos = pos
            idx = insn.index
            if waits:
                yield from self.pop_tokens(waits, idx)
            snap = None
            if races is not None:
                races.check(insn, uid, accesses)
                snap = tuple(races.vc[uid])  # the clock this instruction's tokens carry
            if mem is not None:
                self.run(insn, mem)
            e = insn.f["engine"]
            t_start = max(env.now, free[e])
            free[e] = t_end = t_start + cyc
            start[idx], end[idx] = t_start, t_end
            retire = max(retire, t_end)
            if sigs:
                ev = env.timeout(retire - env.now)
                ev.callbacks.append(lambda _ev, s=sigs, c=snap: self._push(s, c))
            if hook is not None:
                hook()
        if retire > env.now:
            yield env.timeout(retire - env.now)
        self.pos = len(self.plan)
        self.done = True

    def _push(self, sigs, clock) -> None:
        for ch in sigs:
            if clock is not None:
                if ch.vcs is None:
                    ch.vcs = deque()
                ch.vcs.append(clock)
            ch.count += 1
            ch.pushed += 1
            w = ch.waiter
            if w is not None:
                ch.waiter = None
                w.succeed()
