"""Strategic deconfliction: approved clearances, their index, and exact 4D separation tests.

Two planned flights conflict when, at times t1 and t2 no more than `time_s` apart, they are
within `horizontal_m` horizontally AND `vertical_m` vertically. Each flight is a polyline
with a time at every waypoint, flown at constant velocity along each segment, so for one
pair of segments the question is a convex problem in (t1, t2): minimise the horizontal
distance (a convex quadratic) over the polygon cut out by both segments' time spans, the
time minimum and the vertical minimum (all linear). Its minimum lies at the unconstrained
stationary point, on an edge at the 1-D stationary point, or at a vertex; all 37 candidates
are evaluated at once for every pair with numpy, so the answer is exact, not sampled and not
a bounding-box overlap. Positions are in a local east/north frame in metres (equirectangular
around the request; over the ~10 km of the demonstration zone it errs by centimetres).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import combinations

import numpy as np

from protocol.times import parse_rfc3339, rfc3339

from .coords import M_PER_DEG_LAT, m_per_deg_lon
from .events import epoch_of, from_epoch


@dataclass(frozen=True)
class SeparationMinima:
    """Minimum distances two approved flights keep: a conflict needs all three to be infringed."""

    horizontal_m: float = 100.0
    vertical_m: float = 30.0
    time_s: float = 60.0


@dataclass(frozen=True)
class Tolerances:
    """How far a flight may stray from its cleared route before it is a route_deviation."""

    lateral_m: float = 50.0
    vertical_m: float = 20.0
    time_s: float = 60.0


def _time(value) -> float:
    if isinstance(value, datetime):
        return epoch_of(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, str):
        return parse_rfc3339(value).timestamp()
    raise ValueError(f"bad time {value!r}")


def _point(p: Mapping) -> dict:
    return {"lon": float(p["lon"]), "lat": float(p["lat"]), "alt_amsl": float(p["alt_amsl"]),
            "t": _time(p["t"])}


@dataclass(frozen=True)
class ApprovedClearance:
    """An approved 4D route: what deconfliction and the monitor hold a flight to.

    lon/lat/alt_amsl/t are per waypoint (t epoch seconds, strictly increasing); `corridors`
    are the legs flown inside corridors ({"zone_id", "entry", "exit"} with lon, lat, alt_amsl
    and t each) and `zones` every zone needing clearance the route passes through.
    """

    clearance_id: str
    uav_id: str
    lon: tuple[float, ...]
    lat: tuple[float, ...]
    alt_amsl: tuple[float, ...]
    t: tuple[float, ...]
    corridors: tuple[dict, ...] = ()
    zones: tuple[str, ...] = ()
    tolerances: Tolerances = field(default_factory=Tolerances)

    def __post_init__(self) -> None:
        n = len(self.lon)
        if n < 2 or not n == len(self.lat) == len(self.alt_amsl) == len(self.t):
            raise ValueError("a clearance needs at least 2 waypoints with lon, lat, alt_amsl and t each")
        vals = np.array([self.lon, self.lat, self.alt_amsl, self.t], dtype=float)
        if not np.isfinite(vals).all():
            raise ValueError("clearance waypoints must be finite")
        if not (np.diff(vals[3]) > 0).all():
            raise ValueError("clearance waypoint times must be strictly increasing")

    @property
    def start(self) -> float:
        return self.t[0]

    @property
    def end(self) -> float:
        return self.t[-1]

    def to_dict(self) -> dict:
        """The JSON payload of {root}/control/clearance/{uav_id} (times RFC 3339)."""
        def pt(p: Mapping) -> dict:
            return {**{k: p[k] for k in ("lon", "lat", "alt_amsl")}, "t": rfc3339(from_epoch(p["t"]))}
        return {"clearance_id": self.clearance_id, "uav_id": self.uav_id,
                "waypoints": [{"lon": x, "lat": y, "alt_amsl": a, "t": rfc3339(from_epoch(t))}
                              for x, y, a, t in zip(self.lon, self.lat, self.alt_amsl, self.t)],
                "corridors": [{"zone_id": c["zone_id"], "entry": pt(c["entry"]), "exit": pt(c["exit"])}
                              for c in self.corridors],
                "zones": list(self.zones),
                "tolerances": {"lateral_m": self.tolerances.lateral_m,
                               "vertical_m": self.tolerances.vertical_m, "time_s": self.tolerances.time_s}}

    @classmethod
    def from_dict(cls, obj: object) -> ApprovedClearance:
        """Read a to_dict() payload; ValueError naming the field for anything malformed."""
        if not isinstance(obj, dict):
            raise ValueError("clearance must be a JSON object")
        try:
            wps = obj["waypoints"]
            if not isinstance(wps, list):
                raise ValueError("'waypoints' must be a list")
            pts = [_point(w) for w in wps]
            legs = tuple({"zone_id": str(c["zone_id"]), "entry": _point(c["entry"]), "exit": _point(c["exit"])}
                         for c in obj.get("corridors", []))
            tol = obj.get("tolerances") or {}
            tolerances = Tolerances(**{k: float(tol[k]) for k in ("lateral_m", "vertical_m", "time_s") if k in tol})
            for key in ("clearance_id", "uav_id"):
                if not isinstance(obj.get(key), str) or not obj[key]:
                    raise ValueError(f"'{key}' must be a non-empty string")
            zones = obj.get("zones", [])
            if not isinstance(zones, list) or not all(isinstance(z, str) for z in zones):
                raise ValueError("'zones' must be a list of zone ids")
            return cls(obj["clearance_id"], obj["uav_id"], tuple(p["lon"] for p in pts),
                       tuple(p["lat"] for p in pts), tuple(p["alt_amsl"] for p in pts),
                       tuple(p["t"] for p in pts), legs, tuple(zones), tolerances)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"clearance field missing or mistyped: {exc}") from None


class ApprovedIndex:
    """Approved clearances as flat segment arrays with per-clearance 4D envelopes."""

    def __init__(self, clearances: Iterable[ApprovedClearance] = ()) -> None:
        self.clearances: tuple[ApprovedClearance, ...] = tuple(clearances)
        env, seg = [], []
        for k, c in enumerate(self.clearances):
            lon, lat, alt, t = (np.asarray(v, float) for v in (c.lon, c.lat, c.alt_amsl, c.t))
            env.append((lon.min(), lat.min(), lon.max(), lat.max(), alt.min(), alt.max(), t[0], t[-1]))
            n = lon.size - 1
            seg.append(np.column_stack([np.full(n, k), lon[:-1], lat[:-1], alt[:-1], t[:-1],
                                        lon[1:], lat[1:], alt[1:], t[1:]]))
        self.env = np.array(env, float).reshape(-1, 8)
        self.seg = np.concatenate(seg) if seg else np.zeros((0, 9))
        self.seg_owner = self.seg[:, 0].astype(np.int64)
        self.seg_first = np.concatenate([[0], np.cumsum([len(c.lon) - 1 for c in self.clearances])]).astype(int)
        lo = np.minimum(self.seg[:, [1, 2, 3]], self.seg[:, [5, 6, 7]])
        hi = np.maximum(self.seg[:, [1, 2, 3]], self.seg[:, [5, 6, 7]])
        self.seg_env = np.column_stack([lo, hi, self.seg[:, 4], self.seg[:, 8]])  # lon,lat,alt lo/hi, t0, t1
        self.legs: dict[str, list[tuple[float, float, int]]] = {}
        for k, c in enumerate(self.clearances):
            for leg in c.corridors:
                self.legs.setdefault(leg["zone_id"], []).append((leg["entry"]["t"], leg["exit"]["t"], k))

    def __len__(self) -> int:
        return len(self.clearances)

    def candidates(self, env: Sequence[float], minima: SeparationMinima, exclude_uav: str | None) -> np.ndarray:
        """Indices of clearances whose envelope, grown by the minima, meets env (same 8 fields)."""
        if not len(self.clearances):
            return np.zeros(0, int)
        dlat = minima.horizontal_m / M_PER_DEG_LAT
        dlon = minima.horizontal_m / m_per_deg_lon(max(abs(env[1]), abs(env[3])))
        e = self.env
        ok = ((e[:, 0] <= env[2] + dlon) & (e[:, 2] >= env[0] - dlon) & (e[:, 1] <= env[3] + dlat)
              & (e[:, 3] >= env[1] - dlat) & (e[:, 4] <= env[5] + minima.vertical_m)
              & (e[:, 5] >= env[4] - minima.vertical_m) & (e[:, 6] <= env[7] + minima.time_s)
              & (e[:, 7] >= env[6] - minima.time_s))
        idx = np.flatnonzero(ok)
        if exclude_uav is not None:
            idx = np.array([k for k in idx if self.clearances[k].uav_id != exclude_uav], dtype=int)
        return idx

    def occupancy(self, zone_id: str, t0: float, t1: float) -> int:
        """Most approved flights inside corridor `zone_id` at one time during [t0, t1]."""
        legs = [(a, b) for a, b, _ in self.legs.get(zone_id, ()) if a <= t1 and b >= t0]
        if not legs:
            return 0
        starts = sorted(max(a, t0) for a, _ in legs)
        ends = sorted(min(b, t1) for _, b in legs)
        best = cur = j = 0
        for s in starts:  # a flight leaving at s still counts (closed intervals)
            while j < len(ends) and ends[j] < s:
                cur -= 1
                j += 1
            cur += 1
            best = max(best, cur)
        return best


_K, _L = (np.array(v) for v in zip(*combinations(range(8), 2)))


def closest_approach(*args, **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """See _closest_approach; near-singular candidates overflow harmlessly (they are infeasible)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _closest_approach(*args, **kwargs)


def _closest_approach(pa, va, za, wa, ta, da, pb, vb, zb, wb, tb, db,
                     minima: SeparationMinima) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For P segment pairs: (min horizontal distance², u, w) subject to the time and vertical minima.

    Segment a is at pa + va*u (metres, u seconds after ta, 0 <= u <= da) at height za + wa*u;
    likewise b with w. Returns inf where no (u, w) meets |(ta+u)-(tb+w)| <= time_s and
    |height difference| <= vertical_m. Arrays: p*, v* (P, 2); the rest (P,).
    """
    T, V = minima.time_s, minima.vertical_m
    P = len(ta)
    c = pa - pb
    M = np.stack([va, -vb], axis=2)  # (P, 2, 2): d = c + M @ [u, w]
    D = ta - tb
    dz0 = za - zb
    one, zero = np.ones(P), np.zeros(P)
    # G x <= h, 8 constraints
    G = np.stack([np.stack([-one, zero], 1), np.stack([one, zero], 1), np.stack([zero, -one], 1),
                  np.stack([zero, one], 1), np.stack([one, -one], 1), np.stack([-one, one], 1),
                  np.stack([wa, -wb], 1), np.stack([-wa, wb], 1)], axis=1)  # (P, 8, 2)
    h = np.stack([zero, da, zero, db, T - D, T + D, V - dz0, V + dz0], axis=1)  # (P, 8)
    MtM = np.einsum("pki,pkj->pij", M, M)
    Mtc = np.einsum("pki,pk->pi", M, c)
    det = MtM[:, 0, 0] * MtM[:, 1, 1] - MtM[:, 0, 1] ** 2
    okdet = np.abs(det) > 1e-12 * (1 + MtM[:, 0, 0] * MtM[:, 1, 1])
    safe = np.where(okdet, det, 1.0)
    xu = -(MtM[:, 1, 1] * Mtc[:, 0] - MtM[:, 0, 1] * Mtc[:, 1]) / safe
    xw = -(-MtM[:, 0, 1] * Mtc[:, 0] + MtM[:, 0, 0] * Mtc[:, 1]) / safe
    interior = np.stack([xu, xw], 1)
    interior[~okdet] = np.nan
    # the 1-D minimum on each constraint line g.x = h (all 8 at once)
    gg = (G ** 2).sum(2)
    x0 = G * (h / np.where(gg > 0, gg, 1.0))[:, :, None]                 # (P, 8, 2)
    e = np.stack([-G[:, :, 1], G[:, :, 0]], 2)
    Me = np.einsum("pij,pkj->pki", M, e)
    r0 = c[:, None, :] + np.einsum("pij,pkj->pki", M, x0)
    den = (Me ** 2).sum(2)
    big = den > 1e-18
    sv = np.where(big, -(Me * r0).sum(2) / np.where(big, den, 1.0), 0.0)
    lines = x0 + e * sv[:, :, None]
    # the vertices: every pair of constraint lines (28 at once)
    a_, b_ = G[:, _K], G[:, _L]                                            # (P, 28, 2)
    dd = a_[:, :, 0] * b_[:, :, 1] - a_[:, :, 1] * b_[:, :, 0]
    okv = np.abs(dd) > 1e-15
    dd = np.where(okv, dd, 1.0)
    hk, hl = h[:, _K], h[:, _L]
    verts = np.stack([(hk * b_[:, :, 1] - a_[:, :, 1] * hl) / dd, (a_[:, :, 0] * hl - hk * b_[:, :, 0]) / dd], 2)
    verts[~okv] = np.nan
    X = np.concatenate([interior[:, None, :], lines, verts], axis=1)    # (P, 37, 2)
    slack = np.einsum("pkj,pcj->pck", G, X) - h[:, None, :]  # (P, 37, 8)
    scale = 1e-7 * (1.0 + np.abs(h)).max(1)
    feasible = (slack <= scale[:, None, None]).all(2) & np.isfinite(X).all(2)
    d = c[:, None, :] + np.einsum("pij,pcj->pci", M, np.nan_to_num(X))
    f = np.where(feasible, (d ** 2).sum(2), np.inf)
    best = np.argmin(f, axis=1)
    rows = np.arange(P)
    return f[rows, best], X[rows, best, 0], X[rows, best, 1]
