"""Effect of the voxel group count G on a LiDAR scene: pairs and MACs (from the kernel maps)
and simulated cycles / energy of MinkUNet on the edge preset (count-only simulation).

    python benchmarks/sparse_groups.py [--voxel 0.05] [--sim-voxel 0.2 --sim-crop 25.6]
                                       [--config edge]

Writes benchmarks/results/sparse_groups_<config>.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from accelsim import sparse as sp
from accelsim.config import load_config
from accelsim.energy import energy_report, load_energy_table
from accelsim.ir.sparse_ops import SparseConv, conv_map, coord_sets, prepare_input
from accelsim.runner import run_model
from workloads.sparse_nets import make_scene, minkunet

GROUPS = (1, 2, 4, 8)
RESULTS = Path(__file__).parent / "results"


def map_figures(voxel_m: float, crop_m, seed: int) -> dict:
    """Pairs of one 3x3x3 submanifold conv and MinkUNet's MACs per G on one scene."""
    coords, feats = make_scene(seed, voxel_m, crop_m)
    coords, feats = prepare_input(coords, feats)
    g = minkunet(8, 8, seed)
    sets = coord_sets(g, coords)
    rows = {}
    for G in GROUPS:
        kmap = sp.kernel_map(coords, 3, groups=G)
        macs = 0
        for op in g.nodes:
            if isinstance(op, SparseConv):
                macs += conv_map(op, g, sets, G).n_pairs * op.weight.shape[1] * op.cout
        rows[G] = {
            "pairs_subm3": kmap.n_pairs,
            "offsets_kept": int(sp.group_offsets(3, 1, G).size),
            "minkunet_macs": macs,
        }
    return {"voxels": int(coords.shape[0]), "voxel_m": voxel_m, "crop_m": crop_m, "by_G": rows}


def sim_figures(voxel_m: float, crop_m, seed: int, config: str = "edge") -> dict:
    """MinkUNet simulated on `config` (count-only) per G: cycles, MACs, DRAM bytes, energy."""
    x = make_scene(seed, voxel_m, crop_m)
    g = minkunet(8, 8, seed, voxel_size_m=voxel_m, crop_m=crop_m)
    rows = {}
    for G in GROUPS:
        cfg = load_config(config, [f"svge.groups={G}"])
        t0 = time.perf_counter()
        res = run_model(g, cfg, x, count_only=True)
        s = res.stats
        e = energy_report(s, load_energy_table(cfg.energy.table))
        rows[G] = {
            "latency_cycles": s.latency_cycles,
            "macs": s.macs(),
            "svge_pairs": s.total("svge_pairs"),
            "svge_map_cycles": s.total("svge_map_cycles"),
            "svge_conv_cycles": s.total("svge_conv_cycles"),
            "dram_bytes": s.totals()["dram_bytes"],
            "energy_uj": e.total_pj / 1e6,
            "instructions": res.program.n_insns,
            "wall_s": round(time.perf_counter() - t0, 1),
        }
    return {
        "voxels": int(x[0].shape[0]),
        "voxel_m": voxel_m,
        "crop_m": crop_m,
        "config": config,
        "by_G": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--voxel", type=float, default=0.05)
    ap.add_argument("--sim-voxel", type=float, default=0.2)
    ap.add_argument("--config", default="edge")
    ap.add_argument("--sim-crop", type=float, default=25.6)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    res = {
        "maps": map_figures(a.voxel, None, a.seed),
        "sim": sim_figures(a.sim_voxel, a.sim_crop, a.seed, a.config),
    }
    (RESULTS / f"sparse_groups_{a.config}.json").write_text(json.dumps(res, indent=2) + "\n")
    m, s = res["maps"], res["sim"]
    base = m["by_G"][1]
    print(f"scene {m['voxels']} voxels at {m['voxel_m']} m")
    print("| G | offsets | pairs (3x3x3) | pair cut | MinkUNet MACs | MAC cut |")
    print("|---|---|---|---|---|---|")
    for G, r in m["by_G"].items():
        print(
            f"| {G} | {r['offsets_kept']} | {r['pairs_subm3']:,} | "
            f"{base['pairs_subm3'] / r['pairs_subm3']:.2f}x | {r['minkunet_macs'] / 1e9:.2f} G"
            f" | {base['minkunet_macs'] / r['minkunet_macs']:.2f}x |"
        )
    print(
        f"\nsimulated MinkUNet on {s['config']}, {s['voxels']} voxels ({s['voxel_m']} m, "
        f"{s['crop_m']} m crop)"
    )
    print("| G | cycles | MACs | DRAM bytes | energy uJ | map / conv cycles |")
    print("|---|---|---|---|---|---|")
    for G, r in s["by_G"].items():
        print(
            f"| {G} | {r['latency_cycles']:,} | {r['macs'] / 1e6:.1f} M | "
            f"{r['dram_bytes']:,} | {r['energy_uj']:.0f} | "
            f"{r['svge_map_cycles']:,} / {r['svge_conv_cycles']:,} |"
        )


if __name__ == "__main__":
    main()
