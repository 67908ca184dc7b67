"""A grid cover of the zones: which zones contain a 4D position, fast and exact.

The area is cut into square cells. For each zone, a cell is FULL (wholly inside: no exact test
needed), PARTIAL (the zone's boundary passes through it: run the exact shapely test on the
prepared geometry) or absent. Cells are bitsets over the zones (64 zones per uint64 word), so a
batch gathers a row per position and ANDs it with the altitude-band, schedule and UA-class masks,
which are tables too: altitudes fall into slabs between the distinct band limits (a limit itself
is its own slab, since limits count as inside), times into slabs between the schedule changes.
Partial cells are cut once more into 4 x 4 subcells (2 bits each: outside, inside, boundary), so
only the partial bits that survive the masks AND fall in a boundary subcell reach shapely.

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
from array import array
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
SUB = 4                   # partial cells are cut into SUB x SUB subcells (2 bits each: out, in, boundary)
_LITTLE = sys.byteorder == "little"
_intersects_xy = shapely.lib.intersects_xy  # the ufunc itself: half the wrapper's per-call cost, for one point


_POPCOUNT = np.array([bin(v).count("1") for v in range(256)], dtype=np.int64)
_BITPOS = np.array([[b for b in range(8) if v >> b & 1] + [0] * (8 - bin(v).count("1"))
                    for v in range(256)], dtype=np.int64)
_BITFLAT = _BITPOS.reshape(-1)


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
    ends = np.cumsum(cnt)
    rowrep = np.repeat(np.arange(bnz.size), cnt)
    rank = np.arange(rowrep.size) - (ends - cnt)[rowrep]
    bit = _BITFLAT[(bv.astype(np.int64) * 8)[rowrep] + rank]
    b = bnz[rowrep]
    gw = wnz[b >> 3]
    if w & (w - 1) == 0:  # a power of two words per row: shifts instead of division
        sh = w.bit_length() - 1
        return gw >> sh, ((gw & (w - 1)) << 6) + ((b & 7) << 3) + bit
    row, word = np.divmod(gw, w)
    return row, word * 64 + (b & 7) * 8 + bit


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


def _blocks(fine: np.ndarray, h: int, wd: int, any_: bool) -> np.ndarray:
    """(h, wd): any (or all) of each SUB x SUB block of a (h*SUB, wd*SUB) bool array."""
    assert SUB == 4  # four bools are one uint32
    words = np.ascontiguousarray(fine).view(np.uint32)  # (h*SUB, wd): one word per block row
    rows = (words != 0) if any_ else (words == 0x01010101)
    out = rows[0::SUB].copy()
    for k in range(1, SUB):
        if any_:
            out |= rows[k::SUB]
        else:
            out &= rows[k::SUB]
    return out


class ZoneIndex:
    """The grid cover plus band/schedule/class tables of one ZoneSet (built once, read-only)."""

    def __init__(self, zs: ZoneSet, max_cells: int | None = None) -> None:
        self.n = n = len(zs)
        self.words = w = max(1, (n + 63) // 64)
        self.geoms = zs.geometries
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
        # at an unknown (NaN) time only the permanent zones are known to be in force
        self.permanent = _set_bits(w, [j for j, z in enumerate(zs.zones) if z.schedule is None])
        self.permanent_int = _as_int(self.permanent)
        self.agl_lower = np.array([z.alt_ref == "AGL" for z in zs.zones], dtype=float)
        self.agl_upper = np.array([(z.upper_ref or z.alt_ref) == "AGL" for z in zs.zones], dtype=float)

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
        # one row of W words per cell (last row: outside the grid) in each table
        self.full = np.zeros((cells + 1, w), dtype=np.uint64)
        self.partial = np.zeros((cells + 1, w), dtype=np.uint64)
        keys, codes = [np.zeros(0, np.int64)], [np.zeros(0, np.uint32)]
        for j, g in enumerate(self.geoms):
            k, c = self._cover_zone(j, g)
            keys.append(k)
            codes.append(c)
        key = np.concatenate(keys)
        order = np.argsort(key, kind="stable")
        # subcell codes of the partial (cell, zone) pairs, cell-major then zone: the code of zone z
        # in cell c sits at sub_offset[c] + (number of partial bits of c below z)
        key = key[order]
        self.sub_codes = np.concatenate(codes)[order]
        self.sub_offset = np.zeros(cells + 2, dtype=np.int64)
        np.cumsum(np.bincount(key // max(self.n, 1), minlength=cells + 1), out=self.sub_offset[1:])
        self._sub_offset_arr = array("q", self.sub_offset.tobytes())
        self._sub_codes_arr = array("I", self.sub_codes.astype(np.uint32).tobytes())
        self._full_mv = memoryview(self.full).cast("B")
        self._part_mv = memoryview(self.partial).cast("B")
        self.row_bytes = 8 * w

    def _cell_xy(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x - self.x0) * self.inv_dx, (y - self.y0) * self.inv_dy

    def _cover_zone(self, j: int, geom) -> tuple[np.ndarray, np.ndarray]:
        """Set zone j's FULL and PARTIAL bits; return (keys, codes) of its partial cells' subcells."""
        bx0, by0, bx1, by1 = geom.bounds
        (fx0, fx1), (fy0, fy1) = (self._cell_xy(np.array([bx0, bx1]), np.array([by0, by1])))
        ix0, ix1 = max(int(math.floor(fx0 - _EPS)), 0), min(int(math.floor(fx1 + _EPS)), self.nx - 1)
        iy0, iy1 = max(int(math.floor(fy0 - _EPS)), 0), min(int(math.floor(fy1 + _EPS)), self.ny - 1)
        h, wd = iy1 - iy0 + 1, ix1 - ix0 + 1
        rings = shapely.get_coordinates(shapely.get_rings(shapely.get_parts(geom)), return_index=True)
        # marked at SUB x SUB per cell: a cell is partial when one of its subcells is, else all of
        # its subcells share one state (no boundary point in the cell), which is the cell's
        fb, fi = self._mark(geom, rings, ix0, iy0, h, wd, SUB)
        boundary = _blocks(fb, h, wd, any_=True)
        inside = _blocks(fi, h, wd, any_=False) & ~boundary
        state = (fb.view(np.uint8) * 2 + fi.view(np.uint8)).reshape(h, SUB, wd, SUB).transpose(0, 2, 1, 3)
        rows = (np.arange(iy0, iy1 + 1)[:, None] * self.nx + np.arange(ix0, ix1 + 1)[None, :])
        word, bit = j >> 6, np.uint64(1) << np.uint64(j & 63)
        self.full[rows[inside], word] |= bit
        self.partial[rows[boundary], word] |= bit
        blocks = state[boundary].reshape(-1, SUB * SUB).astype(np.uint32)  # subcell (sy, sx) at sy*SUB+sx
        codes = (blocks << (2 * np.arange(SUB * SUB, dtype=np.uint32))).sum(axis=1, dtype=np.uint32)
        return rows[boundary] * self.n + j, codes

    def _mark(self, geom, rings, ix0: int, iy0: int, h: int, wd: int, s: int) -> tuple[np.ndarray, np.ndarray]:
        """(boundary, inside) over the zone's bounding box of cells, each cut into s x s."""
        coords, ring = rings
        h, wd = h * s, wd * s
        ox0, oy0 = ix0 * s, iy0 * s
        boundary = np.zeros((h, wd), dtype=bool)
        a, b = coords[:-1], coords[1:]
        same = ring[:-1] == ring[1:]
        a, b = a[same], b[same]
        ca = np.column_stack(self._cell_xy(a[:, 0], a[:, 1])) * s
        cb = np.column_stack(self._cell_xy(b[:, 0], b[:, 1])) * s
        steps = np.maximum(1, np.ceil(np.abs(cb - ca).max(axis=1) * 2.0)).astype(np.int64)
        seg = np.repeat(np.arange(len(a)), steps)
        k = np.arange(seg.size) - np.repeat(np.cumsum(steps) - steps, steps)
        t0 = k / steps[seg]
        t1 = (k + 1) / steps[seg]
        p = a[seg] + (b[seg] - a[seg]) * t0[:, None]
        q = np.where((k + 1 == steps[seg])[:, None], b[seg], a[seg] + (b[seg] - a[seg]) * t1[:, None])
        cpx, cpy = self._cell_xy(p[:, 0], p[:, 1])
        cqx, cqy = self._cell_xy(q[:, 0], q[:, 1])
        cpx, cpy, cqx, cqy = cpx * s, cpy * s, cqx * s, cqy * s
        lox = np.floor(np.minimum(cpx, cqx) - _EPS).astype(np.int64) - ox0
        hix = np.floor(np.maximum(cpx, cqx) + _EPS).astype(np.int64) - ox0
        loy = np.floor(np.minimum(cpy, cqy) - _EPS).astype(np.int64) - oy0
        hiy = np.floor(np.maximum(cpy, cqy) + _EPS).astype(np.int64) - oy0
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
            centres_x = self.x0 + (sx + ox0 + 0.5) * (self.dx / s)
            centres_y = self.y0 + (sy + oy0 + 0.5) * (self.dy / s)
            state = shapely.intersects_xy(geom, centres_x, centres_y)
            run_id = np.cumsum(starts.ravel(), dtype=np.int32) - 1
            inside = (free.ravel() & state[np.maximum(run_id, 0)]).reshape(h, wd)
        return boundary, inside

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
        # 1 m buckets: a bucket without a limit in it is one slab (floor is monotonic, so the
        # order against every limit follows from the buckets); only buckets holding a limit
        # need the binary search, for the "exactly at the limit" slab
        self._bbase, self._nb = 0.0, 0
        if k and self.edges[-1] - self.edges[0] < 1e6:
            self._bbase = math.floor(self.edges[0]) - 1.0
            eb = np.floor(self.edges - self._bbase).astype(np.int64)
            self._nb = int(eb[-1]) + 2
            self._bucket_flag = np.zeros(self._nb, dtype=bool)
            self._bucket_flag[eb] = True
            self._bucket_slab = 2 * np.searchsorted(eb, np.arange(self._nb), side="left")

    # ---------------------------------------------------------------- masks
    def band_slab(self, alt: np.ndarray) -> np.ndarray:
        """Slab index per altitude: 2i between limit i-1 and i, 2i+1 exactly at limit i."""
        if not self._nb:
            return self._band_slab_search(alt)
        k = self.edges.size
        bf = np.floor(alt - self._bbase)
        ok = (bf >= 0) & (bf < self._nb)
        bi = np.where(ok, bf, 0).astype(np.int64)
        slab = np.where(ok, self._bucket_slab[bi], np.where(bf >= self._nb, 2 * k, 0))
        slow = np.flatnonzero((ok & self._bucket_flag[bi]) | np.isnan(alt))
        if slow.size:
            slab[slow] = self._band_slab_search(alt[slow])
        return slab

    def _band_slab_search(self, alt: np.ndarray) -> np.ndarray:
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
        if minute_rows is not None:
            with np.errstate(invalid="ignore"):  # NaN minutes are fixed below
                minute = ((t - lo) / 60.0).astype(np.int64)  # t >= lo: truncation is floor
            out = np.take(minute_rows, minute, axis=0, mode="clip")
        else:
            out = np.take(rows, np.searchsorted(np.asarray(points), t, side="right"), axis=0)
        if finite.size < t.size:
            out[~np.isfinite(t)] = self.permanent
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
        n = lon.size
        out_p = out_z = np.zeros(0, dtype=np.int64)
        used = 0
        for s in range(0, n, CHUNK):
            sl = slice(s, s + CHUNK)
            p, z = self._pairs_chunk(lon[sl], lat[sl], None if alt is None else alt[sl],
                                     None if t is None else t[sl],
                                     ua_class[sl] if isinstance(ua_class, np.ndarray) else ua_class)
            if used + p.size > out_p.size:  # written in place: no concatenation pass at the end
                per_point = (used + p.size) / min(s + CHUNK, n)
                size = max(int(per_point * n * 1.1) + 64, used + p.size, 2 * out_p.size)
                out_p, out_z = np.resize(out_p, size), np.resize(out_z, size)
            np.add(p, s, out=out_p[used:used + p.size])
            out_z[used:used + p.size] = z
            used += p.size
        return out_p[:used], out_z[:used]

    def _pairs_chunk(self, lon, lat, alt, t, ua_class):
        cell = self.cells(lon, lat)
        full = np.take(self.full, cell, axis=0)
        every_part = np.take(self.partial, cell, axis=0)
        part = every_part
        mask = None
        flat_band = alt is not None and self.vertical.flat
        if flat_band:
            mask = self.band_rows[self.band_slab(alt)]
        if t is not None:
            act = self.active_rows(t)
            if mask is None:
                mask = act
            else:
                mask &= act
        if ua_class is not None:
            if isinstance(ua_class, np.ndarray):
                cls = np.vstack([self.class_row(c) for c in ua_class]) if ua_class.size else None
            else:
                cls = self.class_row(ua_class)
            if cls is not None:
                mask = np.broadcast_to(cls, full.shape) if mask is None else mask & cls
        if mask is not None:
            full &= mask
            part = every_part & mask
        pp, pz = bits_to_pairs(part)
        if pp.size:
            state = self.sub_state(cell[pp], pz, lon[pp], lat[pp], every_part[pp])
            hit = state == 1
            exact = np.flatnonzero(state == 2)
            if exact.size:
                hit[exact] = _intersects_xy(self.geoms[pz[exact]], lon[pp[exact]], lat[pp[exact]])
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

    def sub_state(self, cell: np.ndarray, zone: np.ndarray, lon: np.ndarray, lat: np.ndarray,
                  part_rows: np.ndarray) -> np.ndarray:
        """0 (outside), 1 (inside) or 2 (boundary: test exactly) for points in partial cells;
        part_rows are the cells' (unmasked) PARTIAL rows, whose bits below `zone` give the rank."""
        w = part_rows.shape[1]
        word = zone >> 6
        at = np.arange(zone.size) * w
        counts = np.bitwise_count(part_rows).reshape(-1)
        running = np.cumsum(counts, dtype=np.int64)  # 1-D: much faster than along axis 1
        before = (running[at + word] - counts[at + word]) - (running[at] - counts[at])
        m = at // w
        low = part_rows[m, word] & ((np.uint64(1) << (zone & 63).astype(np.uint64)) - np.uint64(1))
        code = self.sub_codes[self.sub_offset[cell] + before + np.bitwise_count(low)].astype(np.int64)
        fx, fy = self._cell_xy(lon, lat)
        sx = np.clip(np.floor(fx * SUB) - np.floor(fx) * SUB, 0, SUB - 1).astype(np.int64)
        sy = np.clip(np.floor(fy * SUB) - np.floor(fy) * SUB, 0, SUB - 1).astype(np.int64)
        return (code >> (2 * (sy * SUB + sx))) & 3

    def band_ok_terrain(self, p, z, lon, lat, alt) -> np.ndarray:
        """Band test per pair with the ground elevation of a terrain model (AGL limits move)."""
        d = self.vertical.ground_at(lon, lat) - self.vertical.ground_amsl_m
        lo = self.lower[z] + self.agl_lower[z] * d[p]
        hi = self.upper[z] + self.agl_upper[z] * d[p]
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
        ix, iy = int(fx), int(fy)
        cell = iy * self.nx + ix
        start = cell * self.row_bytes
        end = start + self.row_bytes
        full = int.from_bytes(self._full_mv[start:end], "little")
        part = int.from_bytes(self._part_mv[start:end], "little")
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
        every_part, part = part, part & mask
        if part:
            geoms, codes = self.geoms, self._sub_codes_arr
            sx = min(max(math.floor(fx * SUB) - ix * SUB, 0), SUB - 1)
            sy = min(max(math.floor(fy * SUB) - iy * SUB, 0), SUB - 1)
            shift = 2 * (sy * SUB + sx)
            base = self._sub_offset_arr[cell]
            while part:
                low = part & -part
                part ^= low
                state = codes[base + (every_part & (low - 1)).bit_count()] >> shift & 3
                if state == 1 or (state == 2 and _intersects_xy(geoms[low.bit_length() - 1], lon, lat)):
                    full |= low
        out = []
        while full:
            low = full & -full
            out.append(low.bit_length() - 1)
            full ^= low
        return out

    def _active_int(self, t: float) -> int:
        if t != t or t in (math.inf, -math.inf):
            return self.permanent_int
        _, points, _, ints, _ = self._time_table(t, t)
        return ints[bisect_right(points, t)]
