"""A grid cover of the zones: which zones contain a 4D position, fast and exact.

The area is cut into square cells. For each zone, a cell is FULL (wholly inside: no exact test
needed), PARTIAL (the zone's boundary passes through it: run the exact shapely test on the
prepared geometry) or absent. Cells are bitsets over the zones (64 zones per uint64 word), so a
batch gathers a row per position and ANDs it with the altitude-band, schedule and UA-class masks,
which are tables too: altitudes fall into slabs between the distinct band limits (a limit itself
is its own slab, since limits count as inside), times into slabs between the schedule changes.
Only the partial bits that survive the masks reach shapely.

Boundary cells are found exactly: every boundary segment is sampled at most half a cell apart and
each pair of consecutive samples marks the (at most 2x2) cells spanned by its bounding box, which
contains the segment between them; a small margin absorbs rounding. Every other cell of a zone's
bounding box is then wholly inside or wholly outside, decided by one point test per run of such
cells along a row. Points exactly on a boundary land in a partial cell and get the exact
(boundary-inclusive) test, like the naive reference.
"""
from __future__ import annotations

import math
import sys
from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING

import numpy as np
import shapely

if TYPE_CHECKING:
    from .zones import ZoneSet

CHUNK = 16_384            # positions per vectorized pass (bounds the temporary memory)
MAX_TABLE_BYTES = 48 << 20  # full + partial bitsets together
DAY_S = 86_400.0
_EPS = 1e-6               # margin, in cells, when marking boundary cells
_LITTLE = sys.byteorder == "little"
# the ufunc itself: half the per-call cost of the public wrapper, which matters for one point
_intersects_xy = getattr(getattr(shapely, "lib", None), "intersects_xy", shapely.intersects_xy)


_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.int64)
_BITPOS = np.array([[b for b in range(8) if v >> b & 1] + [0] * (8 - bin(v).count("1"))
                    for v in range(256)], dtype=np.int64)


def bits_to_pairs(bits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, bit) index pairs of the set bits of a (n, W) uint64 array, sorted by row then bit.

    Nonzero words, then their nonzero bytes, then a byte -> bit positions table: the work
    follows the number of set bits, not n * 64 * W. (nonzero on a bool mask is many times
    faster than on integers, hence the explicit `!= 0`.)
    """
    n, w = bits.shape
    words = np.ascontiguousarray(bits).reshape(-1)
    if not _LITTLE:
        words = words.byteswap()
    wnz = np.flatnonzero(words != 0)
    wb = words[wnz].view(np.uint8)
    bnz = np.flatnonzero(wb != 0)
    bv = wb[bnz]
    cnt = _POPCOUNT[bv]
    starts = np.cumsum(cnt) - cnt
    rowrep = np.repeat(np.arange(bnz.size), cnt)
    rank = np.arange(rowrep.size) - starts[rowrep]
    bit = _BITPOS[bv[rowrep], rank]
    b = bnz[rowrep]
    gw = wnz[b >> 3]
    return gw // w, (gw % w) * 64 + (b & 7) * 8 + bit


def _set_bits(n_words: int, idx: np.ndarray) -> np.ndarray:
    """One (W,) uint64 row with the bits of zone indices `idx` set."""
    row = np.zeros(n_words, dtype=np.uint64)
    for j in np.asarray(idx, dtype=np.int64):
        row[j >> 6] |= np.uint64(1) << np.uint64(j & 63)
    return row


def _rows_from_bool(mask: np.ndarray, n_words: int) -> np.ndarray:
    """(m, n_zones) bool -> (m, W) uint64 bitset rows."""
    m, nz = mask.shape
    padded = np.zeros((m, n_words * 64), dtype=bool)
    padded[:, :nz] = mask
    packed = np.packbits(padded, axis=1, bitorder="little")  # (m, 8W) bytes, zone 0 = bit 0
    rows = packed.view(np.uint64) if _LITTLE else packed.view(np.uint64).byteswap()
    return np.ascontiguousarray(rows.reshape(m, n_words))


def _as_int(row: np.ndarray) -> int:
    return int.from_bytes(np.ascontiguousarray(row).astype("<u8").tobytes(), "little")


class ZoneIndex:
    """The grid cover plus band/schedule/class tables of one ZoneSet (built once, read-only)."""

    def __init__(self, zs: ZoneSet, max_cells: int | None = None) -> None:
        self.n = n = len(zs)
        self.words = w = max(1, (n + 63) // 64)
        self.geoms = np.array([z.geometry for z in zs.zones], dtype=object)
        self.lower = np.asarray(zs.lower_amsl, dtype=float)
        self.upper = np.asarray(zs.upper_amsl, dtype=float)
        self.vertical = zs.vertical
        self._build_grid(zs, max_cells)
        self._build_bands()
        self.scheduled = [j for j, z in enumerate(zs.zones) if z.schedule is not None]
        self.schedules = [z.schedule for z in zs.zones]
        self._time_cache: tuple | None = None
        self.class_rows: dict[str, np.ndarray] = {}
        self.class_ints: dict[str, int] = {}
        classes = {c for z in zs.zones for c in z.ua_classes}
        for c in classes | {"micro", "light", "small", "medium", "large"}:
            idx = [j for j, z in enumerate(zs.zones) if not z.ua_classes or c in z.ua_classes]
            self.class_rows[c] = _set_bits(w, idx)
            self.class_ints[c] = _as_int(self.class_rows[c])
        self.all_ones = _set_bits(w, range(n))
        self.all_int = _as_int(self.all_ones)
        self._agl_lower = np.array([z.alt_ref == "AGL" for z in zs.zones], dtype=float)
        self._agl_upper = np.array([(z.upper_ref or z.alt_ref) == "AGL" for z in zs.zones], dtype=float)

    # ---------------------------------------------------------------- build
    def _build_grid(self, zs: ZoneSet, max_cells: int | None) -> None:
        w = self.words
        if self.n == 0:
            self.x0 = self.y0 = 0.0
            self.inv_dx = self.inv_dy = 1.0
            self.dx = self.dy = 1.0
            self.nx = self.ny = 1
        else:
            b = np.array([g.bounds for g in self.geoms], dtype=float)
            x0, y0, x1, y1 = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
            cap = max_cells or max(4096, min(MAX_TABLE_BYTES // (16 * w), 8192 * self.n))
            kx = math.cos(math.radians(min(max((y0 + y1) / 2, -80.0), 80.0)))  # square cells in metres
            width, height = max(x1 - x0, 1e-9) * kx, max(y1 - y0, 1e-9)
            cell = math.sqrt(width * height / cap)
            self.nx = max(1, min(int(math.ceil(width / cell)) + 2, 1 << 15))
            self.ny = max(1, min(int(math.ceil(height / cell)) + 2, 1 << 15))
            self.dx = max(cell / kx, (x1 - x0) / max(self.nx - 2, 1))
            self.dy = max(cell, (y1 - y0) / max(self.ny - 2, 1))
            self.x0 = x0 - self.dx / 2
            self.y0 = y0 - self.dy / 2
            self.inv_dx, self.inv_dy = 1.0 / self.dx, 1.0 / self.dy
        cells = self.nx * self.ny
        # one row per cell (last row: outside the grid): W words of FULL bits, then W of PARTIAL
        # bits, side by side so that a position costs one contiguous gather
        self.table = np.zeros((cells + 1, 2 * w), dtype=np.uint64)
        for j, g in enumerate(self.geoms):
            self._cover_zone(j, g)
        self._table_mv = memoryview(self.table).cast("B")
        self.row_bytes = 8 * w

    @property
    def full(self) -> np.ndarray:
        return self.table[:, :self.words]

    @property
    def partial(self) -> np.ndarray:
        return self.table[:, self.words:]

    def _cell_xy(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x - self.x0) * self.inv_dx, (y - self.y0) * self.inv_dy

    def _cover_zone(self, j: int, geom) -> None:
        bx0, by0, bx1, by1 = geom.bounds
        (fx0, fx1), (fy0, fy1) = (self._cell_xy(np.array([bx0, bx1]), np.array([by0, by1])))
        ix0, ix1 = max(int(math.floor(fx0 - _EPS)), 0), min(int(math.floor(fx1 + _EPS)), self.nx - 1)
        iy0, iy1 = max(int(math.floor(fy0 - _EPS)), 0), min(int(math.floor(fy1 + _EPS)), self.ny - 1)
        h, wd = iy1 - iy0 + 1, ix1 - ix0 + 1
        boundary = np.zeros((h, wd), dtype=bool)
        coords, ring = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(geom)),
                                               return_index=True)
        a, b = coords[:-1], coords[1:]
        same = ring[:-1] == ring[1:]
        a, b = a[same], b[same]
        ca = np.column_stack(self._cell_xy(a[:, 0], a[:, 1]))
        cb = np.column_stack(self._cell_xy(b[:, 0], b[:, 1]))
        steps = np.maximum(1, np.ceil(np.abs(cb - ca).max(axis=1) * 2.0)).astype(np.int64)
        seg = np.repeat(np.arange(len(a)), steps)
        k = np.arange(seg.size) - np.repeat(np.cumsum(steps) - steps, steps)
        t0 = k / steps[seg]
        t1 = (k + 1) / steps[seg]
        p = a[seg] + (b[seg] - a[seg]) * t0[:, None]
        q = np.where((k + 1 == steps[seg])[:, None], b[seg], a[seg] + (b[seg] - a[seg]) * t1[:, None])
        cpx, cpy = self._cell_xy(p[:, 0], p[:, 1])
        cqx, cqy = self._cell_xy(q[:, 0], q[:, 1])
        lox = np.floor(np.minimum(cpx, cqx) - _EPS).astype(np.int64) - ix0
        hix = np.floor(np.maximum(cpx, cqx) + _EPS).astype(np.int64) - ix0
        loy = np.floor(np.minimum(cpy, cqy) - _EPS).astype(np.int64) - iy0
        hiy = np.floor(np.maximum(cpy, cqy) + _EPS).astype(np.int64) - iy0
        for ox in range(int((hix - lox).max(initial=0)) + 1):
            for oy in range(int((hiy - loy).max(initial=0)) + 1):
                cx, cy = lox + ox, loy + oy
                ok = (cx <= hix) & (cy <= hiy) & (cx >= 0) & (cx < wd) & (cy >= 0) & (cy < h)
                boundary[cy[ok], cx[ok]] = True
        # runs of non-boundary cells along each row share one state: test one centre per run
        free = ~boundary
        prev_free = np.zeros_like(free)
        prev_free[:, 1:] = free[:, :-1]
        starts = free & ~prev_free
        sy, sx = np.nonzero(starts)
        inside = np.zeros((h, wd), dtype=bool)
        if sy.size:
            centres_x = self.x0 + (sx + ix0 + 0.5) * self.dx
            centres_y = self.y0 + (sy + iy0 + 0.5) * self.dy
            state = shapely.intersects_xy(geom, centres_x, centres_y)
            run_id = np.cumsum(starts.ravel()) - 1
            inside = (free.ravel() & state[np.maximum(run_id, 0)]).reshape(h, wd)
        rows = (np.arange(iy0, iy1 + 1)[:, None] * self.nx + np.arange(ix0, ix1 + 1)[None, :])
        word, bit = j >> 6, np.uint64(1) << np.uint64(j & 63)
        self.table[rows[inside], word] |= bit
        self.table[rows[boundary], self.words + word] |= bit

    def _build_bands(self) -> None:
        finite = np.concatenate([self.lower, self.upper])
        self.edges = np.unique(finite[np.isfinite(finite)])
        k = self.edges.size
        reps = np.empty(2 * k + 1)
        reps[1::2] = self.edges
        if k:
            reps[0] = self.edges[0] - 1.0
            reps[-1] = self.edges[-1] + 1.0
            reps[2:-1:2] = (self.edges[:-1] + self.edges[1:]) / 2
        else:
            reps[0] = 0.0
        in_band = (reps[:, None] >= self.lower[None, :]) & (reps[:, None] <= self.upper[None, :])
        rows = _rows_from_bool(in_band, self.words)
        self.band_rows = np.vstack([rows, np.zeros((1, self.words), dtype=np.uint64)])  # last: NaN
        self.band_ints = [_as_int(r) for r in self.band_rows]
        self.edge_list = self.edges.tolist()

    # ---------------------------------------------------------------- masks
    def band_slab(self, alt: np.ndarray) -> np.ndarray:
        k = self.edges.size
        i = np.searchsorted(self.edges, alt, side="left")
        exact = np.zeros(alt.shape, dtype=bool)
        if k:
            exact = self.edges[np.minimum(i, k - 1)] == alt
        slab = 2 * i + exact
        return np.where(np.isnan(alt), 2 * k + 1, slab)

    def _time_table(self, t0: float, t1: float) -> tuple:
        """Per-slab active rows covering [t0, t1] (cached; widened to whole days).

        Returns (lo, breakpoints, rows, ints, minute_rows): slab i is [points[i-1], points[i]);
        when every change falls on a whole minute (the usual case), minute_rows[k] is the row
        of minute k after lo, so a batch needs one gather instead of a binary search.
        """
        c = self._time_cache
        if c is not None and c[0] <= t0 and t1 < c[1]:
            return c[0], c[2], c[3], c[4], c[5]
        lo = math.floor(t0 / DAY_S) * DAY_S - DAY_S
        hi = max(math.floor(t1 / DAY_S) * DAY_S + 2 * DAY_S, lo + 9 * DAY_S)
        br: set[float] = set()
        for j in self.scheduled:
            br.update(self.schedules[j].breakpoints(lo, hi))
        points = sorted(br)
        reps = np.array([lo] + points, dtype=float)
        active = np.ones((reps.size, self.n), dtype=bool)
        for j in self.scheduled:
            active[:, j] = self.schedules[j].active(reps)
        rows = _rows_from_bool(active, self.words)
        ints = [_as_int(r) for r in rows]
        minute_rows = None
        if all((b - lo) % 60.0 == 0.0 for b in points):
            starts = lo + 60.0 * np.arange(int((hi - lo) // 60.0) + 1)
            minute_rows = rows[np.searchsorted(np.asarray(points), starts, side="right")]
        self._time_cache = (lo, hi, points, rows, ints, minute_rows)
        return lo, points, rows, ints, minute_rows

    def active_rows(self, t: np.ndarray) -> np.ndarray:
        """(n, W) rows of the zones whose schedule is in force at each time."""
        if not self.scheduled:
            return np.broadcast_to(self.all_ones, (t.size, self.words))
        finite = t[np.isfinite(t)]
        if finite.size == 0 or float(finite.max() - finite.min()) > 800 * DAY_S:
            active = np.ones((t.size, self.n), dtype=bool)
            for j in self.scheduled:
                active[:, j] = self.schedules[j].active(t)
            return _rows_from_bool(active, self.words)
        lo, points, rows, _, minute_rows = self._time_table(float(finite.min()), float(finite.max()))
        bad = ~np.isfinite(t)
        if minute_rows is not None:
            minute = ((np.where(bad, lo, t) - lo) // 60.0).astype(np.int64)
            out = np.take(minute_rows, minute, axis=0)
        else:
            out = np.take(rows, np.searchsorted(np.asarray(points), t, side="right"), axis=0)
        if bad.any():
            out[bad] = 0
        return out

    def class_row(self, ua_class: str | None) -> np.ndarray:
        if ua_class is None:
            return self.all_ones
        return self.class_rows.get(ua_class, self.all_ones)

    # ---------------------------------------------------------------- queries
    def cells(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        fx = np.floor((lon - self.x0) * self.inv_dx)
        fy = np.floor((lat - self.y0) * self.inv_dy)
        ok = (fx >= 0) & (fx < self.nx) & (fy >= 0) & (fy < self.ny)
        return np.where(ok, fy * self.nx + fx, self.nx * self.ny).astype(np.int64)

    def pairs(self, lon: np.ndarray, lat: np.ndarray, alt: np.ndarray | None = None,
              t: np.ndarray | None = None, ua_class=None) -> tuple[np.ndarray, np.ndarray]:
        """(point, zone) pairs containing each position; alt None = horizontal only."""
        ps, zs_ = [], []
        for s in range(0, lon.size, CHUNK):
            sl = slice(s, s + CHUNK)
            p, z = self._pairs_chunk(lon[sl], lat[sl], None if alt is None else alt[sl],
                                     None if t is None else t[sl],
                                     ua_class[sl] if isinstance(ua_class, np.ndarray) else ua_class)
            ps.append(p + s)
            zs_.append(z)
        if not ps:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        return np.concatenate(ps), np.concatenate(zs_)

    def _pairs_chunk(self, lon, lat, alt, t, ua_class):
        rows = np.take(self.table, self.cells(lon, lat), axis=0)
        full = np.ascontiguousarray(rows[:, :self.words])
        part = np.ascontiguousarray(rows[:, self.words:])
        mask = None
        flat_band = alt is not None and self.vertical.flat
        if flat_band:
            mask = self.band_rows[self.band_slab(alt)]
        if t is not None:
            act = self.active_rows(t)
            mask = act if mask is None else mask & act
        if ua_class is not None:
            if isinstance(ua_class, np.ndarray):
                cls = np.vstack([self.class_row(c) for c in ua_class]) if ua_class.size else None
            else:
                cls = self.class_row(ua_class)
            if cls is not None:
                mask = np.broadcast_to(cls, full.shape) if mask is None else mask & cls
        if mask is not None:
            full &= mask
            part &= mask
        pp, pz = bits_to_pairs(part)
        if pp.size:
            hit = shapely.intersects_xy(self.geoms[pz], lon[pp], lat[pp])
            pp, pz = pp[hit], pz[hit]
            if pp.size:
                byte_view = full.view(np.uint8).reshape(full.shape[0], -1)
                byte_idx = (pz >> 6) * 8 + ((pz & 63) >> 3)
                if not _LITTLE:
                    byte_idx = (pz >> 6) * 8 + 7 - ((pz & 63) >> 3)
                np.bitwise_or.at(byte_view, (pp, byte_idx), (1 << (pz & 7)).astype(np.uint8))
        p, z = bits_to_pairs(full)
        if alt is not None and not flat_band:
            ok = self.band_ok_terrain(p, z, lon, lat, alt)
            p, z = p[ok], z[ok]
        return p, z

    def band_ok_terrain(self, p, z, lon, lat, alt) -> np.ndarray:
        """Band test per pair with the ground elevation of a terrain model (AGL limits move)."""
        d = self.vertical.ground_at(lon, lat) - self.vertical.ground_amsl_m
        lo = self.lower[z] + self._agl_lower[z] * d[p]
        hi = self.upper[z] + self._agl_upper[z] * d[p]
        return (alt[p] >= lo) & (alt[p] <= hi)

    def one(self, lon: float, lat: float, alt: float, t: float | None = None,
            ua_class: str | None = None) -> list[int]:
        """Zone indices containing one position: the scalar fast path (plain Python, no arrays)."""
        if not self.vertical.flat or alt != alt:
            p, z = self.pairs(np.array([lon], float), np.array([lat], float), np.array([alt], float),
                              None if t is None else np.array([t], float), ua_class)
            return z.tolist()
        fx = (lon - self.x0) * self.inv_dx
        fy = (lat - self.y0) * self.inv_dy
        if not (0.0 <= fx < self.nx and 0.0 <= fy < self.ny):
            return []
        start = (int(fy) * self.nx + int(fx)) * 2 * self.row_bytes
        mid = start + self.row_bytes
        full = int.from_bytes(self._table_mv[start:mid], "little")
        part = int.from_bytes(self._table_mv[mid:mid + self.row_bytes], "little")
        if not (full or part):
            return []
        edges = self.edge_list
        i = bisect_left(edges, alt)
        mask = self.band_ints[2 * i + (i < len(edges) and edges[i] == alt)]
        if t is not None and self.scheduled:
            mask &= self._active_int(t)
        if ua_class is not None:
            mask &= self.class_ints.get(ua_class, self.all_int)
        full &= mask
        part &= mask
        geoms = self.geoms
        while part:
            low = part & -part
            j = low.bit_length() - 1
            part ^= low
            if _intersects_xy(geoms[j], lon, lat):
                full |= low
        out = []
        while full:
            low = full & -full
            out.append(low.bit_length() - 1)
            full ^= low
        return out

    def _active_int(self, t: float) -> int:
        if t != t or t in (math.inf, -math.inf):
            return 0
        _, points, _, ints, _ = self._time_table(t, t)
        return ints[bisect_right(points, t)]
