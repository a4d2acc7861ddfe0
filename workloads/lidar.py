"""Procedural LiDAR scenes: a 64-beam spinning sensor ray-cast into ground, boxes and poles.

Stands in for a KITTI/SemanticKITTI frame with no download. The sensor sits 1.73 m above a
slightly sloped ground plane and has 64 beams spread evenly from +2 to -24.8 degrees (the
HDL-64E's vertical field of view). Cars and buildings are oriented boxes, poles are vertical
cylinders. Each ray returns its nearest hit (within `max_range_m`) with Gaussian range noise;
the points are cropped to a 102.4 m x 102.4 m x 8 m box and voxelised (default 5 cm), which
gives about 82k to 87k active voxels per frame. The ray cast is a Numba kernel (about 0.1 s
for 64 x 2200 rays; voxelising takes most of the 0.5 s); everything is seeded by `seed`.
"""

from __future__ import annotations

import numpy as np

from accelsim.jit import lazy_njit, prange
from accelsim.sparse.ops import voxelize

SENSOR_HEIGHT_M = 1.73  # KITTI's Velodyne mount height above the road
CROP_MIN_M = (-51.2, -51.2, -3.0)  # scene box lower corner (x, y, z), metres from the sensor
CROP_MAX_M = (51.2, 51.2, 5.0)  # scene box upper corner


def make_objects(rng, n_cars=40, n_buildings=14, n_poles=60):
    """Random scene objects: boxes [m, 8] (cx, cy, z0, yaw, hx, hy, hz, reflectance) on the
    ground and poles [p, 5] (cx, cy, radius, height, reflectance); all in metres/radians."""
    boxes = []
    for kind, n in (("car", n_cars), ("building", n_buildings)):
        for _ in range(n):
            if kind == "car":
                r, hx, hy, hz = (
                    rng.uniform(5, 45),
                    rng.uniform(1.9, 2.4),
                    0.9,
                    rng.uniform(0.7, 0.9),
                )
            else:
                r = rng.uniform(18, 48)
                hx, hy, hz = rng.uniform(4, 14), rng.uniform(3, 8), rng.uniform(3, 8)
            phi = rng.uniform(-np.pi, np.pi)
            boxes.append(
                [
                    r * np.cos(phi),
                    r * np.sin(phi),
                    0.0,
                    rng.uniform(-np.pi, np.pi),
                    hx,
                    hy,
                    hz,
                    rng.uniform(0.1, 0.9),
                ]
            )
    poles = []
    for _ in range(n_poles):
        r, phi = rng.uniform(4, 45), rng.uniform(-np.pi, np.pi)
        poles.append(
            [
                r * np.cos(phi),
                r * np.sin(phi),
                rng.uniform(0.08, 0.2),
                rng.uniform(3, 8),
                rng.uniform(0.3, 0.9),
            ]
        )
    return np.array(boxes, dtype=np.float64), np.array(poles, dtype=np.float64)


@lazy_njit(cache=True)
def _ground_z(x, y, ground):
    return ground[0] + ground[1] * x + ground[2] * y


@lazy_njit(cache=True, parallel=True)
def _cast(dirs, origin, ground, boxes, poles, max_range_m):
    """Nearest hit distance (metres, inf = none) and reflectance per ray."""
    n = dirs.shape[0]
    dist = np.full(n, np.inf)
    refl = np.zeros(n)
    for r in prange(n):
        dx, dy, dz = dirs[r, 0], dirs[r, 1], dirs[r, 2]
        best, rho = max_range_m, 0.0
        den = dz - ground[1] * dx - ground[2] * dy
        if den < 0:  # ground plane z = g0 + sx*x + sy*y seen from above
            t = (_ground_z(origin[0], origin[1], ground) - origin[2]) / den
            if 0 < t < best:
                best, rho = t, 0.2
        for b in range(boxes.shape[0]):
            c, s = np.cos(boxes[b, 3]), np.sin(boxes[b, 3])
            base = _ground_z(boxes[b, 0], boxes[b, 1], ground) + boxes[b, 2]
            ox, oy = origin[0] - boxes[b, 0], origin[1] - boxes[b, 1]
            o = (c * ox + s * oy, -s * ox + c * oy, origin[2] - base - boxes[b, 6])
            d = (c * dx + s * dy, -s * dx + c * dy, dz)
            h = (boxes[b, 4], boxes[b, 5], boxes[b, 6])
            t0, t1 = 0.0, best
            for a in range(3):  # slab test in the box frame
                if abs(d[a]) < 1e-12:
                    if abs(o[a]) > h[a]:
                        t0, t1 = 1.0, 0.0
                else:
                    ta, tb = (-h[a] - o[a]) / d[a], (h[a] - o[a]) / d[a]
                    t0, t1 = max(t0, min(ta, tb)), min(t1, max(ta, tb))
            if t0 < t1 and t0 > 0:
                best, rho = t0, boxes[b, 7]
        for p in range(poles.shape[0]):
            ox, oy = origin[0] - poles[p, 0], origin[1] - poles[p, 1]
            qa = dx * dx + dy * dy
            qb = 2 * (ox * dx + oy * dy)
            qc = ox * ox + oy * oy - poles[p, 2] ** 2
            disc = qb * qb - 4 * qa * qc
            if qa > 0 and disc >= 0:
                t = (-qb - np.sqrt(disc)) / (2 * qa)
                z = origin[2] + t * dz
                zg = _ground_z(poles[p, 0], poles[p, 1], ground)
                if 0 < t < best and zg <= z <= zg + poles[p, 3]:
                    best, rho = t, poles[p, 4]
        if best < max_range_m:
            dist[r], refl[r] = best, rho
    return dist, refl


def sensor_rays(n_beams=64, n_azimuth=2200, fov_up_deg=2.0, fov_down_deg=-24.8):
    """Unit ray directions [n_beams * n_azimuth, 3] of a spinning multi-beam sensor."""
    elev = np.deg2rad(np.linspace(fov_up_deg, fov_down_deg, n_beams))
    azim = np.linspace(-np.pi, np.pi, n_azimuth, endpoint=False)
    e, a = np.meshgrid(elev, azim, indexing="ij")
    return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1).reshape(-1, 3)


def generate_points(seed=0, n_beams=64, n_azimuth=2200, max_range_m=80.0, range_noise_m=0.02):
    """Ray-cast one frame; returns (points [m, 3] metres in the sensor-ground frame,
    reflectance [m]). The sensor is at (0, 0, SENSOR_HEIGHT_M) above the ground at origin."""
    rng = np.random.default_rng(seed)
    ground = np.array([0.0, rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02)])
    boxes, poles = make_objects(rng)
    dirs = sensor_rays(n_beams, n_azimuth)
    # jitter each beam's elevation a little, as real lasers are not evenly spaced
    dirs[:, 2] += np.repeat(rng.normal(0, 0.002, n_beams), n_azimuth)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origin = np.array([0.0, 0.0, SENSOR_HEIGHT_M])
    dist, refl = _cast(dirs, origin, ground, boxes, poles, max_range_m)
    hit = np.isfinite(dist)
    rng_m = dist[hit] + rng.normal(0, range_noise_m, hit.sum())
    return origin + dirs[hit] * rng_m[:, None], refl[hit]


def generate_scene(seed=0, voxel_size_m=0.05, n_beams=64, n_azimuth=2200, batch_index=0):
    """A voxelised LiDAR frame: (coords int32 [n, 4] (batch, x, y, z), features float32 [n, 4]).

    Features are the per-voxel mean of (x, y, z, reflectance), metres. Voxel (x, y, z) counts
    from CROP_MIN_M in steps of `voxel_size_m`; n is about 80k to 110k at 5 cm.
    """
    pts, refl = generate_points(seed, n_beams, n_azimuth)
    lo, hi = np.array(CROP_MIN_M), np.array(CROP_MAX_M)
    keep = ((pts >= lo) & (pts < hi)).all(axis=1)
    pts, refl = pts[keep], refl[keep]
    coords, feats = voxelize(
        pts,
        voxel_size_m,
        origin=CROP_MIN_M,
        batch_index=batch_index,
        values=np.column_stack([pts, refl]),
    )
    return coords, feats.astype(np.float32)
