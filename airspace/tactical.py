"""Tactical separation on arrays: which pairs of airborne tracks are inside their minima now, and which will be
within the look-ahead if both fly straight on.

Positions and velocities are in a local east/north/up frame in metres (airspace.coords.to_local; the altitude
is metres AMSL, NaN when unknown). A pair is inside its minima when it is within `horizontal_m` horizontally
AND `vertical_m` vertically (a cylinder around each aircraft); an unknown altitude counts as co-altitude (the
horizontal test alone decides), which errs towards an alert.

Finding the pairs (`candidate_pairs`) never loops over pairs in Python: every track's motion over the
look-ahead is a segment, its axis-aligned box grown by the track's share of the minima (half the drone–drone
minimum for a drone, the rest of the drone–manned minimum for a manned aircraft, so the two shares of any pair
add up to its minimum); the look-ahead is cut into spans, boxed one span at a time. Boxes go into a uniform grid; a pair is generated in the first cell both boxes cover
(so once), kept when the boxes overlap in x, y and z, and never for two manned aircraft (their separation is
air traffic control's, not ours). Then `encounters` solves each candidate exactly: the times at which the
straight-line relative motion is inside the horizontal circle (a quadratic) and inside the vertical band
(linear), intersected with [0, look-ahead], and the closest point of approach.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPS = 1e-9
SLICES = 2  # spans of the look-ahead boxed separately (2 halves the candidates of one box per track)


@dataclass(frozen=True)
class Minima:
    """Distances two aircraft keep: separation is lost when both are infringed at once."""

    horizontal_m: float
    vertical_m: float

    def __post_init__(self) -> None:
        if not (self.horizontal_m > 0 and self.vertical_m > 0):
            raise ValueError(f"minima must be positive, got {self.horizontal_m} m / {self.vertical_m} m")

    def scaled(self, factor: float) -> Minima:
        return Minima(self.horizontal_m * factor, self.vertical_m * factor)


@dataclass(frozen=True)
class Motion:
    """Aircraft at one instant, as columns: position (x, y east/north metres, z metres AMSL or NaN) and velocity
    (metres per second; zero where unknown)."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    vx: np.ndarray
    vy: np.ndarray
    vz: np.ndarray


@dataclass(frozen=True)
class Kinematics(Motion):
    """The tracks a pair check looks at: their motion and whether each is a manned aircraft."""

    manned: np.ndarray

    def __len__(self) -> int:
        return int(self.x.size)


@dataclass(frozen=True)
class Encounters:
    """What straight-line motion gives for pairs (i, j): separation now, the first time inside the minima within
    the look-ahead (NaN: not within it), and the closest point of approach (time and distances)."""

    i: np.ndarray
    j: np.ndarray
    horizontal_m: np.ndarray
    vertical_m: np.ndarray      # NaN when an altitude is unknown
    inside: np.ndarray          # inside the minima now
    loss_in_s: np.ndarray       # first time inside within the look-ahead, NaN when not
    cpa_s: np.ndarray           # time of closest horizontal approach, clamped to [0, look-ahead]
    cpa_horizontal_m: np.ndarray
    cpa_vertical_m: np.ndarray

    @property
    def predicted(self) -> np.ndarray:
        """Not inside now, but inside within the look-ahead."""
        return ~self.inside & ~np.isnan(self.loss_in_s)

    def select(self, mask: np.ndarray) -> Encounters:
        return Encounters(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def pair_minima(manned_i: np.ndarray, manned_j: np.ndarray, drone_drone: Minima,
                drone_manned: Minima) -> tuple[np.ndarray, np.ndarray]:
    """(horizontal, vertical) minima of each pair: drone–manned when either is manned, else drone–drone."""
    dm = manned_i | manned_j
    return (np.where(dm, drone_manned.horizontal_m, drone_drone.horizontal_m),
            np.where(dm, drone_manned.vertical_m, drone_drone.vertical_m))


def shares(manned: np.ndarray, drone_drone: Minima, drone_manned: Minima) -> tuple[np.ndarray, np.ndarray]:
    """Each track's (horizontal, vertical) share of the minima: any pair's shares add up to at least its minima."""
    hd, vd = drone_drone.horizontal_m / 2, drone_drone.vertical_m / 2
    hm, vm = max(drone_manned.horizontal_m - hd, hd), max(drone_manned.vertical_m - vd, vd)
    return np.where(manned, hm, hd), np.where(manned, vm, vd)


def swept_boxes(k: Kinematics, t0: float, t1: float, drone_drone: Minima, drone_manned: Minima) -> np.ndarray:
    """(n, 6) boxes xmin, xmax, ymin, ymax, zmin, zmax: each track's straight-line motion from t0 to t1 seconds
    ahead, grown by its share of the minima; an unknown altitude spans every height."""
    rh, rv = shares(k.manned, drone_drone, drone_manned)
    out = np.empty((len(k), 6))
    for c, (p, v, r) in enumerate(((k.x, k.vx, rh), (k.y, k.vy, rh), (k.z, k.vz, rv))):
        q0, q1 = p + v * t0, p + v * t1
        out[:, 2 * c] = np.minimum(q0, q1) - r
        out[:, 2 * c + 1] = np.maximum(q0, q1) + r
    unknown = np.isnan(k.z)
    out[unknown, 4], out[unknown, 5] = -np.inf, np.inf
    return out


def grid_cell(boxes: np.ndarray) -> float:
    """A cell size for the pair grid: the median box extent, so a typical box covers about four cells."""
    if not len(boxes):
        return 1.0
    ext = np.maximum(boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2])
    return float(np.clip(np.median(ext), 10.0, 50_000.0))


def candidate_pairs(boxes: np.ndarray, manned: np.ndarray, cell_m: float | None = None,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i < j) whose boxes overlap in x, y and z, at least one of them not manned, each once.

    Each box is entered in every grid cell it covers and pairs with the later entries of each cell; a pair is
    kept only in the first cell both cover (the cell is then the first column of one box and the first row of
    one box, told by flags per entry, so no pair is looked up twice), then tested axis by axis."""
    n = len(boxes)
    empty = np.zeros(0, np.int64)
    if n < 2:
        return empty, empty
    cell = cell_m or grid_cell(boxes)
    ox, oy = boxes[:, 0].min(), boxes[:, 2].min()
    cx0 = np.floor((boxes[:, 0] - ox) / cell).astype(np.int64)
    cx1 = np.floor((boxes[:, 1] - ox) / cell).astype(np.int64)
    cy0 = np.floor((boxes[:, 2] - oy) / cell).astype(np.int64)
    cy1 = np.floor((boxes[:, 3] - oy) / cell).astype(np.int64)
    nx, ny = cx1 - cx0 + 1, cy1 - cy0 + 1
    count = nx * ny
    owner = np.repeat(np.arange(n), count)
    k = np.arange(owner.size) - np.repeat(np.cumsum(count) - count, count)
    kx, ky = k % nx[owner], k // nx[owner]
    width = int(cx1.max()) + 1
    cells = (cy0[owner] + ky) * width + cx0[owner] + kx
    order = np.argsort(cells, kind="stable")
    owner = owner[order]
    first_col, first_row, crewed = kx[order] == 0, ky[order] == 0, manned[owner]
    # each entry pairs with the later entries of its cell
    start = np.flatnonzero(np.r_[True, np.diff(cells[order]) != 0])
    sizes = np.diff(np.r_[start, cells.size])
    after = np.repeat(start + sizes, sizes) - np.arange(cells.size) - 1
    left = np.repeat(np.arange(cells.size), after)
    right = left + 1 + np.arange(left.size) - np.repeat(np.cumsum(after) - after, after)
    # the first cell both cover is, for each axis, the first of one of the two boxes
    keep = ((first_col[left] | first_col[right]) & (first_row[left] | first_row[right])
            & ~(crewed[left] & crewed[right]))
    a, b = owner[left[keep]], owner[right[keep]]
    for lo, hi in ((0, 1), (2, 3), (4, 5)):
        blo, bhi = boxes[:, lo], boxes[:, hi]
        keep = (blo[a] <= bhi[b]) & (blo[b] <= bhi[a])
        a, b = a[keep], b[keep]
    return np.minimum(a, b), np.maximum(a, b)


def swept_pairs(k: Kinematics, look_ahead_s: float, drone_drone: Minima, drone_manned: Minima,
                slices: int = SLICES) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (i < j, sorted, each once) of tracks that may come inside their minima within the
    look-ahead: the look-ahead is cut into `slices` spans and a pair is kept when its boxes overlap in the same
    span (a conflict in that span needs both aircraft there then), which is far tighter than one box each."""
    n = len(k)
    keys = []
    for s in range(max(1, slices)):
        boxes = swept_boxes(k, look_ahead_s * s / slices, look_ahead_s * (s + 1) / slices, drone_drone, drone_manned)
        i, j = candidate_pairs(boxes, k.manned)
        keys.append(i * n + j)
    key = np.unique(np.concatenate(keys)) if len(keys) > 1 else np.sort(keys[0])
    return key // max(n, 1), key % max(n, 1)


def encounters(k: Kinematics, i: np.ndarray, j: np.ndarray, horizontal_m, vertical_m,
               look_ahead_s: float) -> Encounters:
    """Pairs (i, j) solved exactly under straight-line motion against their minima (scalars or per pair)."""
    H = np.broadcast_to(np.asarray(horizontal_m, float), i.shape)
    V = np.broadcast_to(np.asarray(vertical_m, float), i.shape)
    dx, dy, dz = k.x[j] - k.x[i], k.y[j] - k.y[i], k.z[j] - k.z[i]
    dvx, dvy, dvz = k.vx[j] - k.vx[i], k.vy[j] - k.vy[i], k.vz[j] - k.vz[i]
    h_now = np.hypot(dx, dy)
    v_now = np.abs(dz)
    unknown_z = np.isnan(dz)
    inside = (h_now <= H) & (unknown_z | (v_now <= V))
    # horizontal: |d + dv t| <= H  <=>  a t^2 + b t + c <= 0
    a = dvx * dvx + dvy * dvy
    b = 2.0 * (dx * dvx + dy * dvy)
    c = dx * dx + dy * dy - H * H
    moving = a > EPS
    disc = b * b - 4.0 * a * c
    sq = np.sqrt(np.where(moving & (disc >= 0), disc, 0.0))
    two_a = np.where(moving, 2.0 * a, 1.0)
    h_lo = np.where(moving, np.where(disc >= 0, (-b - sq) / two_a, np.inf), np.where(c <= 0, -np.inf, np.inf))
    h_hi = np.where(moving, np.where(disc >= 0, (-b + sq) / two_a, -np.inf), np.where(c <= 0, np.inf, -np.inf))
    # vertical: |dz + dvz t| <= V
    climbing = np.abs(dvz) > EPS
    safe_dvz = np.where(climbing, dvz, 1.0)
    r1, r2 = (-V - dz) / safe_dvz, (V - dz) / safe_dvz
    level_in = v_now <= V
    v_lo = np.where(climbing, np.minimum(r1, r2), np.where(level_in, -np.inf, np.inf))
    v_hi = np.where(climbing, np.maximum(r1, r2), np.where(level_in, np.inf, -np.inf))
    v_lo = np.where(unknown_z, -np.inf, v_lo)
    v_hi = np.where(unknown_z, np.inf, v_hi)
    lo = np.maximum(np.maximum(h_lo, v_lo), 0.0)
    hi = np.minimum(np.minimum(h_hi, v_hi), look_ahead_s)
    loss_in = np.where(inside, 0.0, np.where(lo <= hi, lo, np.nan))
    cpa = np.where(moving, np.clip(-b / two_a, 0.0, look_ahead_s), 0.0)
    cpa_h = np.hypot(dx + dvx * cpa, dy + dvy * cpa)
    cpa_v = np.abs(dz + dvz * cpa)
    return Encounters(i, j, h_now, v_now, inside, loss_in, cpa, cpa_h, cpa_v)


def separation_check(k: Kinematics, look_ahead_s: float, drone_drone: Minima, drone_manned: Minima,
                     slices: int = SLICES) -> Encounters:
    """Every pair inside its minima now or within the look-ahead (the full pair check of one instant)."""
    i, j = swept_pairs(k, look_ahead_s, drone_drone, drone_manned, slices)
    H, V = pair_minima(k.manned[i], k.manned[j], drone_drone, drone_manned)
    enc = encounters(k, i, j, H, V, look_ahead_s)
    return enc.select(enc.inside | ~np.isnan(enc.loss_in_s))



def nearest_pairs(i: np.ndarray, j: np.ndarray, order_keys: tuple[np.ndarray, ...], ids: np.ndarray,
                  cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Which pairs (i, j) to list when each aircraft names at most `cap` of its own: its first `cap` pairs in the
    order of `order_keys` (per pair, numpy lexsort keys, the first most significant), ties broken by the partner's
    place after its own in the cyclic order of `ids` (so in a crowd at one point each aircraft picks different
    partners rather than all the same few). A pair is listed when either aircraft picks it: nobody within minima
    goes unreported, and N aircraft give at most N * cap pairs rather than N(N-1)/2. A function of the set of
    pairs, not of their order. Returns (keep mask, pairs of each index not listed: n_over)."""
    m = len(i)
    if m == 0:
        return np.zeros(0, bool), np.zeros(0, np.int64)
    node = np.concatenate([i, j])
    other = np.concatenate([j, i])
    span = int(ids.max()) + 1
    tie = (ids[other] - ids[node]) % span
    keys = [np.concatenate([k, k]) for k in order_keys]
    order = np.lexsort((tie, *reversed(keys), node))
    sorted_node = node[order]
    start = np.flatnonzero(np.r_[True, sorted_node[1:] != sorted_node[:-1]])
    size = np.diff(np.r_[start, len(order)])
    rank = np.empty(2 * m, np.int64)
    rank[order] = np.arange(2 * m) - np.repeat(start, size)
    keep = (rank[:m] < cap) | (rank[m:] < cap)
    n = int(node.max()) + 1
    count, listed = np.bincount(node, minlength=n), np.bincount(node[np.concatenate([keep, keep])], minlength=n)
    return keep, count - listed
