"""The shapely-only classifier a user would write: STRtree.query(points, predicate="intersects") + numpy masks.

Same answer as ZoneSet.contains_pairs(lon, lat, alt_amsl, t) (outline with boundary, band with limits,
schedule in force at t; no UA class): the tree gives the 2D (point, zone) pairs, numpy keeps those within
the zone's band, and each scheduled zone's schedule (airspace.schedule, already vectorized: the peer gets
it for free) is evaluated on its pairs' times.
"""
from __future__ import annotations

import numpy as np
import shapely
from shapely import STRtree


class StrtreeClassifier:
    name = "strtree"

    def __init__(self, zones) -> None:
        self.tree = STRtree([z.geometry for z in zones])
        self.lower = np.asarray(zones.lower_amsl, dtype=float)
        self.upper = np.asarray(zones.upper_amsl, dtype=float)
        self.schedules = {j: z.schedule for j, z in enumerate(zones) if z.schedule is not None}
        self.scheduled = np.zeros(len(zones), dtype=bool)
        self.scheduled[list(self.schedules)] = True

    def pairs(self, lon, lat, alt, t) -> tuple[np.ndarray, np.ndarray]:
        """(point_idx, zone_idx) of every position inside a zone in 3D and in force at its time."""
        p, z = self.tree.query(shapely.points(lon, lat), predicate="intersects")
        keep = (alt[p] >= self.lower[z]) & (alt[p] <= self.upper[z])
        p, z = p[keep], z[keep]
        timed = np.flatnonzero(self.scheduled[z])
        if timed.size:
            ok = np.ones(p.size, dtype=bool)
            zt = z[timed]
            for j in np.unique(zt):
                sel = timed[zt == j]
                ok[sel] = self.schedules[int(j)].active(t[p[sel]])
            p, z = p[ok], z[ok]
        return p, z
