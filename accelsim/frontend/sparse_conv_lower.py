"""Lowering of one sparse convolution (`SparseConvEmitter`): output tiles per voxel group,
input windows and their segments, weight blocks, SVG_MAP / SVG_CONV per tile and engine, and
the RESCALE / STORE of each tile. `accelsim.frontend.sparse_lower` lays the graph out and calls
it for every SparseConv (its docstring describes the whole scheme)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from accelsim import sparse as sp
from accelsim.errors import AccelsimError, HardwareLimitError
from accelsim.frontend.emit import (
    ACC_BITS,
    MODE_BY_NAME,
    PARAM_BITS,
    Emitter,
    check_operands,
    clip_bounds,
    rows_for,
)
from accelsim.frontend.tiling import halvings
from accelsim.ir.params import rescale_params
from accelsim.ir.sparse_ops import (
    SparseConv,
)
from accelsim.isa import Buf, Insn, Op, field_max
from accelsim.units.svge import COORD_BITS, MAP_BITS, conv_cycles, map_cycles

MAX_TILE = 4096  # largest output tile tried, voxels
GAP_BYTES = 2048  # unused input bytes between two used rows that start a new window segment
#                   (about what edge's DRAM moves during one transfer latency; measured
#                   better than scaling it with the configured latency * bandwidth)
N_IN_MAX = min(field_max(Op.SVG_MAP, "n_in"), field_max(Op.SVG_CONV, "n_in"))  # window voxels
N_PAIRS_MAX = min(field_max(Op.SVG_MAP, "n_pairs"), field_max(Op.SVG_CONV, "n_pairs"))
USED_MAX, HALO_MAX = field_max(Op.SVG_MAP, "used"), field_max(Op.SVG_MAP, "halo")  # saturate
WGT_ROW_MAX = field_max(Op.LOAD, "d2")  # elements of one offset's weight block (one DMA row)


def _coeff_fields(node: str, groups: int, coeffs) -> tuple[int, int, int]:
    """The SVG_MAP (ga, gb, gc) fields of group coefficients: taken mod G (the same groups),
    so negative coefficients and those above the fields work when G fits them."""
    if groups > field_max(Op.SVG_MAP, "groups"):
        raise HardwareLimitError(
            f"node {node!r}: {groups} voxel groups exceed the SVG_MAP groups field "
            f"(at most {field_max(Op.SVG_MAP, 'groups')})",
            "voxel groups beyond the SVG_MAP field",
        )
    fields = tuple(int(v) % groups for v in coeffs)
    hi = min(field_max(Op.SVG_MAP, f) for f in ("ga", "gb", "gc"))
    if max(fields) > hi:
        raise HardwareLimitError(
            f"node {node!r}: group coefficients {tuple(coeffs)} mod {groups} = {fields} exceed "
            f"the SVG_MAP coefficient fields (at most {hi})",
            "group coefficients beyond the SVG_MAP fields",
        )
    return fields


def _segments(rows: np.ndarray, block_of: np.ndarray, align: int, gap_rows: int) -> list[list[int]]:
    """Row ranges [lo, hi) covering `rows` (sorted unique): cut where the voxel-group block
    changes or more than `gap_rows` unused rows lie between two used ones (one LOAD per range
    is cheaper than loading the gap), merged when they overlap; every range but the last
    padded to a multiple of `align` rows (or to the tensor's end)."""
    if rows.size == 0:
        return []
    b = block_of[rows]
    cut = np.flatnonzero((np.diff(b) != 0) | (np.diff(rows) > gap_rows)) + 1
    segs = [[int(r[0]), int(r[-1]) + 1] for r in np.split(rows, cut)]
    out: list[list[int]] = []
    for seg in segs:
        if out:
            prev = out[-1]  # padded rows are real rows of the tensor, never past its end
            prev[1] = min(prev[0] + -(-(prev[1] - prev[0]) // align) * align, block_of.size)
            if prev[1] >= seg[0]:
                prev[1] = max(prev[1], seg[1])
                continue
        out.append(seg)
    return out


class SparseConvEmitter:
    """Emission of one sparse conv layer (see the module docstring)."""

    def __init__(self, em: Emitter, op: SparseConv, graph, dense, hw, coord_addr, places, cfg):
        self.em, self.op, self.cfg = em, op, cfg
        self.E = cfg.svge.engines
        src, dst = graph.tensors[op.inputs[0]], graph.tensors[op.output]
        self.src, self.dst = src, dst
        self.in_set, self.out_set = src.coord_set, dst.coord_set
        self.hw, self.coord_addr = hw, coord_addr
        self.pin, self.pout = places[op.inputs[0]], places[op.output]
        geo = op.geometry(cfg.svge.groups, cfg.svge.group_coeffs)
        self.geo = geo
        self.coeff_fields = _coeff_fields(op.name, geo["groups"], geo["group_coeffs"])
        cin_xyz, cout_xyz = hw[self.in_set], hw[self.out_set]
        sub = op.stride == 1 and not op.transposed
        self.kmap = sp.kernel_map(cin_xyz, **geo, out_coords=None if sub else cout_xyz)
        self.rp = rescale_params(op, dense, cfg.rescale.mult_bits)
        self.clip = clip_bounds(self.rp, dense.tensors[op.output].qrange)
        self.cin, self.cout, self.a, self.w = src.channels, op.cout, src.bits, op.w_bits
        check_operands(op.name, self.a, self.w, cfg)
        rb = em.row_bits
        self.rb = rb
        self.gap_rows = max(8, GAP_BYTES * 8 // (self.cin * self.a))
        self._slices(self.cin)
        g_in = sp.group_of(cin_xyz, cfg.svge.groups, cfg.svge.group_coeffs)
        g_out = sp.group_of(cout_xyz, cfg.svge.groups, cfg.svge.group_coeffs)
        self.block_in, self.g_out = g_in, g_out
        self._engines(self.E)
        self.used = np.flatnonzero(self.kmap.pairs_per_offset > 0)
        if self.used.size == 0:  # no pairs at all: keep one offset so tiles still reset ACC
            self.used = np.array([0])

    def _slices(self, cin_t: int) -> None:
        """Convolve `cin_t` input channels at a time (window rows of cin_t elements, padded
        segments aligned to whole rows of INP and COORD)."""
        rb = self.rb
        self.cin_t = cin_t
        self.align = math.lcm(rb // math.gcd(rb, cin_t * self.a), rb // math.gcd(rb, 64))

    def _engines(self, engines: int) -> None:
        """Use `engines` engines: cut the buffers into their slots."""
        self.E = engines
        for buf, n in (
            (Buf.INP, 2 * self.E),
            (Buf.MAP, 2 * self.E),
            (Buf.ACC, 2 * self.E),
            (Buf.COORD, 4 * self.E),
            (Buf.OUT, 2),
            (Buf.PARAM, 2),
        ):
            self.em.use_slots(buf, n)
        self.acc_count = [0] * self.E

    def _cap_bits(self, buf) -> int:
        return self.em.slots[buf].rows * self.rb

    def _n_tiles(self) -> list[int]:
        """Output-channel tile widths whose one-offset weight block fits a WGT slot."""
        e_cap, p_cap = self._cap_bits(Buf.WGT), self._cap_bits(Buf.PARAM)

        def fit(widths):
            return [
                n_t
                for n_t in dict.fromkeys([v for v in widths if v <= self.cout])
                if self._e_pad(n_t) * self.w <= e_cap
                and self._e_pad(n_t) <= WGT_ROW_MAX
                and rows_for(n_t, PARAM_BITS, self.rb) * self.rb <= p_cap
            ]

        out = fit([self.cout] + [v for v in (256, 128, 64, 32, 16, 8) if v < self.cout])
        out = out or fit((4, 2, 1))  # narrow tiles only when nothing wider fits
        if not out:
            raise HardwareLimitError(
                f"node {self.op.name!r}: one offset's weights or one channel's rescale "
                f"parameters do not fit half of WGT / PARAM",
                "buffers smaller than the smallest tile",
            )
        return out

    def _e_pad(self, n_t: int) -> int:
        unit = self.rb // math.gcd(self.rb, self.w)
        return -(-self.cin_t * n_t // unit) * unit

    def _tiles(self, T: int) -> list[tuple[int, int, int]]:
        """(group, first row, end row) output tiles of at most T voxels, group by group."""
        bounds = np.flatnonzero(np.diff(self.g_out)) + 1
        starts = np.concatenate(([0], bounds))
        ends = np.concatenate((bounds, [self.g_out.size]))
        return [
            (int(self.g_out[s]), r, min(r + T, int(e)))
            for s, e in zip(starts, ends)
            for r in range(int(s), int(e), T)
        ]

    def _items(self, T: int):
        """Work items of T-voxel tiles: (group, r0, r1, segments, n_in, P_k, used rows)."""
        if T not in self._item_cache:
            nbr = self.kmap.neighbors
            items = []
            for g, r0, r1 in self._tiles(T):
                part = nbr[:, r0:r1]
                rows = np.unique(part[part >= 0])
                if self.gap_rows is None:  # one contiguous range: no padded segments
                    segs = [[int(rows[0]), int(rows[-1]) + 1]] if rows.size else []
                else:
                    segs = _segments(rows, self.block_in, self.align, self.gap_rows)
                if not segs:  # no pairs at all: the map still needs an input voxel to read
                    n = self.hw[self.in_set].shape[0]
                    segs = [[0, 1 if self.gap_rows is None else min(self.align, n)]]
                n_in = sum(h - lo for lo, h in segs)
                items.append((g, r0, r1, segs, n_in, (part >= 0).sum(axis=1), rows))
            self._item_cache[T] = items
        return self._item_cache[T]

    def _fits(self, items, T: int, n_t: int) -> bool:
        rb = self.rb
        worst_in = max(it[4] for it in items)
        worst_pairs = max(int(it[5].sum()) for it in items)
        return (
            worst_in <= N_IN_MAX
            and worst_pairs <= N_PAIRS_MAX
            and worst_in * self.cin_t * self.a <= self._cap_bits(Buf.INP)
            and worst_in * 4 * COORD_BITS <= self._cap_bits(Buf.COORD)
            and T * 4 * COORD_BITS <= self._cap_bits(Buf.COORD)
            and rows_for(3 * worst_pairs, MAP_BITS, rb) * rb <= self._cap_bits(Buf.MAP)
            and T * n_t * ACC_BITS <= self._cap_bits(Buf.ACC)
            and T * n_t * self.dst.bits <= self._cap_bits(Buf.OUT)
        )

    def _dram_bytes(self, items, n_t: int) -> float:
        """Estimated DRAM bytes of the layer: windows, coordinates, and weights (once if they
        all stay resident in WGT, else once per tile)."""
        n_c = -(-self.cin // self.cin_t)
        wbits = n_c * sum(
            self._e_pad(min(n_t, self.cout - n0)) * self.w * self.used.size
            for n0 in range(0, self.cout, n_t)
        )
        resident = wbits <= self.cfg.buffers.capacity_bits("wgt")
        feats = self.cin * self.a / 8 * (1 if n_c == 1 else -(-self.cout // n_t))  # reloads
        windows = sum(it[4] * (feats + 8) + (it[2] - it[1]) * 8 for it in items)
        return windows + wbits / 8 * (1 if resident else len(items))

    def _choose(self):
        """(T, n_t, items) with the fewest estimated DRAM bytes among the largest fitting
        tile sizes of each channel-tile width."""
        best = None
        # windows load the gaps between their voxels when short; if even one-voxel tiles
        # then overflow a buffer, they load only the voxels they use (each range padded to
        # whole rows of INP and COORD), and failing that one range from their first voxel to
        # their last (no padding); failing all three, the layer runs on one engine, whose
        # slots are E times larger, and then on fewer input channels at a time
        gap_rows = self.gap_rows
        for cin_t, engines, gap in itertools.product(
            halvings(self.cin), dict.fromkeys((self.E, 1)), (gap_rows, 0, None)
        ):
            if engines != self.E:
                self._engines(engines)
            self._slices(cin_t)
            self.gap_rows, self._item_cache = gap, {}
            for n_t in self._n_tiles():
                T = min(MAX_TILE, max(1, self.kmap.n_out))
                while T >= 1 and not self._fits(self._items(T), T, n_t):
                    T //= 2
                if T >= 1:
                    cost = self._dram_bytes(self._items(T), n_t)
                    if best is None or cost < best[0]:
                        best = (cost, T, n_t)
            if best is not None:
                return best[1], best[2], self._items(best[1])
        raise HardwareLimitError(
            f"node {self.op.name!r}: the window of one output voxel does not fit the COORD / "
            f"MAP / INP slots of one engine, or one voxel's accumulators its ACC / OUT slots; "
            f"increase buffer sizes",
            "buffers smaller than the smallest tile",
        )

    def _weights(self, n_t: int) -> dict:
        """Pack the used-offset weight blocks of each output-channel tile and input-channel
        slice; returns chunk table (n0, c0, chunk index) -> (DRAM address, offsets, rows per
        offset block, n, elements per block)."""
        em, op = self.em, self.op
        chunks = {}
        cap_rows = self.em.slots[Buf.WGT].rows  # rows of one of two WGT slots
        for n0, c0 in itertools.product(range(0, self.cout, n_t), range(0, self.cin, self.cin_t)):
            n, cc = min(n_t, self.cout - n0), min(self.cin_t, self.cin - c0)
            e_pad = self._e_pad(n)
            blk_rows = rows_for(e_pad, self.w, self.rb)
            per = max(1, cap_rows // blk_rows)
            for ci, j in enumerate(range(0, self.used.size, per)):
                offs = self.used[j : j + per]
                data = np.zeros((offs.size, e_pad), np.int32)
                block = op.weight[offs, c0 : c0 + cc, n0 : n0 + n]
                data[:, : cc * n] = block.reshape(offs.size, -1)
                chunks[(n0, c0, ci)] = (em.alloc(data.size, data), offs, blk_rows, n, e_pad)
        return chunks

    def emit(self) -> None:
        em, op, cfg = self.em, self.op, self.cfg
        em.use_slots(Buf.WGT, 2)
        _, n_t, items = self._choose()
        chunks = self._weights(n_t)
        if len(chunks) > 2 and max(
            c[2] * c[1].size for c in chunks.values()
        ) <= cfg.buffers.capacity_rows("wgt") // len(chunks):
            em.use_slots(Buf.WGT, len(chunks))  # all resident
        p_addr = em.alloc_rescale_params(self.rp, op.name)
        tile_id = np.zeros(self.kmap.n_out, np.int64)
        for i, it in enumerate(items):
            tile_id[it[1] : it[2]] = i
        halo = self._halo(tile_id, len(items))
        load = [0] * self.E
        count = [0] * self.E
        for i, (g, r0, r1, segs, n_in, p_k, rows) in enumerate(items):
            cost = map_cycles(cfg, n_in, r1 - r0, self.kmap.kernel_size) + sum(
                conv_cycles(
                    cfg,
                    int(p),
                    min(self.cin_t, self.cin - c0),
                    min(n_t, self.cout - n0),
                    self.a,
                    self.w,
                )  # fmt: skip
                for n0 in range(0, self.cout, n_t)
                for c0 in range(0, self.cin, self.cin_t)
                for p in p_k
            )
            e = int(np.argmin(load))
            load[e] += cost
            self._item(
                e,
                count[e],
                g,
                r0,
                r1,
                segs,
                n_in,
                p_k,
                rows.size,
                int(halo[i]),
                n_t,
                chunks,
                p_addr,
            )
            count[e] += 1

    def _halo(self, tile_id, n_tiles) -> np.ndarray:
        km = self.kmap
        keys = np.unique(tile_id[km.out_index] * km.n_in + km.in_index)
        inputs = keys % max(km.n_in, 1)
        shared = np.bincount(inputs, minlength=km.n_in)[inputs] > 1
        return np.bincount(keys // max(km.n_in, 1), weights=shared, minlength=n_tiles)

    def _item(self, e, k, g, r0, r1, segs, n_in, p_k, used, halo, n_t, chunks, p_addr):
        em, rb, op = self.em, self.rb, self.op
        n_out = r1 - r0
        ca_in, ca_out = self.coord_addr[self.in_set], self.coord_addr[self.out_set]
        c_in_slot, c_out_slot = 4 * e + 2 * (k % 2), 4 * e + 2 * (k % 2) + 1
        cs = em.slots[Buf.COORD]
        c_in_base, c_out_base = cs.base(c_in_slot), cs.base(c_out_slot)
        self._load_rows(
            Buf.COORD,
            c_in_slot,
            [(ca_in + 4 * lo, hi - lo) for lo, hi in segs],
            4,
            COORD_BITS,
            "unsigned",
        )
        self._load_rows(
            Buf.COORD, c_out_slot, [(ca_out + 4 * r0, n_out)], 4, COORD_BITS, "unsigned"
        )
        n_pairs = int(p_k.sum())
        map_base = em.slots[Buf.MAP].base(2 * e + k % 2)
        map_rows = rows_for(3 * n_pairs, MAP_BITS, rb)
        geo = self.geo
        ga, gb, gc = self.coeff_fields
        em.emit(
            Insn(
                Op.SVG_MAP,
                coord_addr=c_in_base,
                out_coord_addr=c_out_base,
                map_addr=map_base,
                n_in=n_in,
                n_out=n_out,
                n_pairs=n_pairs,
                kernel=geo["kernel_size"],
                stride=geo["stride"],
                dilation=geo["dilation"],
                transposed=int(geo["transposed"]),
                groups=geo["groups"],
                ga=ga,
                gb=gb,
                gc=gc,
                group=g,
                engine=e,
                used=min(used, USED_MAX),
                halo=min(halo, HALO_MAX),
            ),
            reads=[
                (Buf.COORD, c_in_base, c_in_base + rows_for(4 * n_in, COORD_BITS, rb)),
                (Buf.COORD, c_out_base, c_out_base + rows_for(4 * n_out, COORD_BITS, rb)),
            ],
            writes=[(Buf.MAP, map_base, map_base + map_rows)],
        )
        inp_slot = 2 * e + k % 2
        inp_base = em.slots[Buf.INP].base(inp_slot)
        sliced = self.cin_t < self.cin  # one window load per input-channel slice
        if not sliced:
            self._window(inp_slot, segs, 0)
        todo = [int(j) for j in np.flatnonzero(p_k)] or [int(self.used[0])]
        for n0 in range(0, self.cout, n_t):
            n = min(n_t, self.cout - n0)
            acc_slot = 2 * e + self.acc_count[e] % 2
            self.acc_count[e] += 1
            acc_base = em.slots[Buf.ACC].base(acc_slot)
            acc_rows = rows_for(n_out * n, ACC_BITS, rb)
            steps = [(c0, off) for c0 in range(0, self.cin, self.cin_t) for off in todo]
            for idx, (c0, off) in enumerate(steps):
                cc = min(self.cin_t, self.cin - c0)
                if sliced and off == todo[0]:
                    self._window(inp_slot, segs, c0)
                inp_rows = rows_for(n_in * cc, self.a, rb)
                wbase, wrows = self._weight_tile(n0, c0, off, chunks)
                reads = [
                    (Buf.INP, inp_base, inp_base + inp_rows),
                    (Buf.WGT, wbase, wbase + wrows),
                    (Buf.MAP, map_base, map_base + map_rows),
                ]
                if idx:
                    reads.append((Buf.ACC, acc_base, acc_base + acc_rows))
                em.emit(
                    Insn(
                        Op.SVG_CONV,
                        inp_addr=inp_base,
                        wgt_addr=wbase,
                        acc_addr=acc_base,
                        map_addr=map_base,
                        n_in=n_in,
                        n_out=n_out,
                        n_pairs=n_pairs,
                        offset=off,
                        pairs=int(p_k[off]),
                        cin=cc,
                        cout=n,
                        a_bits=self.a,
                        w_bits=self.w,
                        a_mode=MODE_BY_NAME[self.src.mode],
                        w_mode=MODE_BY_NAME[op.w_mode],
                        reset=int(idx == 0),
                        group=g,
                        engine=e,
                    ),
                    reads,
                    [(Buf.ACC, acc_base, acc_base + acc_rows)],
                )
            em.rescale_store(
                acc_slot,
                (op.name, "param", n0),
                p_addr + 3 * n0,
                self.pout.dram_addr + r0 * self.cout + n0,
                1,
                n_out,
                n,
                0,
                self.cout,
                self.dst.bits,
                self.dst.mode,
                zp=self.rp.zp,
                relu=self.rp.relu,
                clip=self.clip,
                frac=self.rp.frac,
            )

    def _window(self, slot: int, segs, c0: int) -> None:
        """LOAD the window's feature rows (input channels c0 .. c0 + cin_t) into INP `slot`."""
        cc = min(self.cin_t, self.cin - c0)
        blocks = [(self.pin.dram_addr + lo * self.cin + c0, hi - lo) for lo, hi in segs]
        self._load_rows(Buf.INP, slot, blocks, cc, self.a, self.src.mode, pitch=self.cin)

    def _load_rows(self, buf, slot, blocks, row_elems, bits, mode, pitch=None) -> None:
        """LOAD blocks [(DRAM address, rows)] of `row_elems` contiguous elements per row (rows
        `pitch` elements apart in DRAM, default row_elems) one after the other into `slot` of
        `buf`."""
        offset = 0
        for addr, rows in blocks:
            offset += self.em.load(
                buf, slot, addr, 1, rows, row_elems, 0, pitch or row_elems, bits, mode,
                offset_rows=offset,
            )  # fmt: skip

    def _weight_tile(self, n0, c0, off, chunks):
        """Buffer rows of offset `off`'s weights for output-channel tile n0 and input-channel
        slice c0 (loading if needed)."""
        em = self.em
        for (n1, c1, ci), (addr, offs, blk_rows, n, e_pad) in chunks.items():
            if (n1, c1) != (n0, c0) or off not in offs:
                continue
            ws = em.slots[Buf.WGT]
            key = (self.op.name, "w", n0, c0, ci)
            slot = ws.lookup(key)
            if slot is None:
                slot = ws.take(key)
                em.load(Buf.WGT, slot, addr, 1, offs.size, e_pad, 0, e_pad, self.w, self.op.w_mode)
            j = int(np.flatnonzero(offs == off)[0])
            cc = min(self.cin_t, self.cin - c0)
            return ws.base(slot) + j * blk_rows, rows_for(cc * n, self.w, self.rb)
        raise AccelsimError(f"node {self.op.name!r}: offset {off} has no stored weights")
