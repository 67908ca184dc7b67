"""Generate the illustrative Pujiang-Wujing zone file (airspace/data/pujiang_wujing.geojson).

The coordinates are ILLUSTRATIVE: plausible WGS84 positions around the Huangpu between Wujing town
(west bank) and Pujiang town (east bank) in Minhang, drawn for the demonstration system, not an
official airspace publication. Corridors and circles are buffered in a local metric frame so that
widths and radii are true metres.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from shapely.geometry import LineString, Point, Polygon, mapping
import numpy as np
import shapely

from airspace.coords import M_PER_DEG_LAT, m_per_deg_lon

LAT0 = 31.05
M_PER_DEG_LON = m_per_deg_lon(LAT0)
NOTE = "ILLUSTRATIVE geometry for the Skylane demonstration; not an official airspace publication."


def to_m(lon, lat):
    return (lon - 121.48) * M_PER_DEG_LON, (lat - LAT0) * M_PER_DEG_LAT


def to_deg(geom):
    scale = np.array([M_PER_DEG_LON, M_PER_DEG_LAT])
    return shapely.transform(geom, lambda xy: xy / scale + np.array([121.48, LAT0]))


def rounded(geom):
    g = mapping(geom)
    def r(c):
        return [r(x) for x in c] if isinstance(c[0], (list, tuple)) else [round(c[0], 6), round(c[1], 6)]
    g["coordinates"] = r(g["coordinates"])
    return g


def feature(geom, **props):
    props.setdefault("alt_ref", "AGL")
    props.setdefault("illustrative", True)
    return {"type": "Feature", "id": props["id"], "properties": props, "geometry": rounded(geom)}


def circle(lon, lat, radius_m):
    return to_deg(Point(*to_m(lon, lat)).buffer(radius_m, 32))


def corridor(points, half_width_m):
    return to_deg(LineString([to_m(*p) for p in points]).buffer(half_width_m, 8, cap_style="flat"))


VERTIPORTS = {
    "V-WJ-N": ("Wujing North vertiport", 121.462, 31.078),
    "V-WJ-C": ("Wujing Central vertiport", 121.458, 31.056),
    "V-WJ-S": ("Wujing South vertiport", 121.455, 31.033),
    "V-PJ-N": ("Pujiang North vertiport", 121.522, 31.073),
    "V-PJ-C": ("Pujiang Central vertiport", 121.530, 31.051),
    "V-PJ-S": ("Pujiang South vertiport", 121.525, 31.030),
}

CORRIDORS = [
    ("C1", "Corridor 1 Wujing North - Pujiang North", "V-WJ-N", "V-PJ-N", 60, 120,
     [(121.462, 31.078), (121.480, 31.077), (121.500, 31.0745), (121.522, 31.073)]),
    ("C2", "Corridor 2 Wujing Central - Pujiang Central", "V-WJ-C", "V-PJ-C", 60, 100,
     [(121.458, 31.056), (121.478, 31.0555), (121.505, 31.053), (121.530, 31.051)]),
    ("C3", "Corridor 3 Wujing South - Pujiang South", "V-WJ-S", "V-PJ-S", 40, 90,
     [(121.455, 31.033), (121.475, 31.0335), (121.500, 31.0315), (121.525, 31.030)]),
]


def build() -> dict:
    feats = []
    area = Polygon([(121.438, 31.016), (121.470, 31.013), (121.500, 31.012), (121.545, 31.018),
                    (121.548, 31.060), (121.540, 31.096), (121.500, 31.100), (121.452, 31.098),
                    (121.436, 31.070)])
    feats.append(feature(area, id="PWZ", name="Pujiang-Wujing integrated flight demonstration zone",
                         kind="area", lower_m=0, upper_m=120,
                         description="Operating area; 120 m true-height ceiling of uncontrolled airspace."))
    for cid, name, a, b, lo, hi, pts in CORRIDORS:
        feats.append(feature(corridor(pts, 150), id=cid, name=name, kind="corridor", lower_m=lo, upper_m=hi,
                             width_m=300, from_vertiport=a, to_vertiport=b,
                             centerline=[[round(x, 6), round(y, 6)] for x, y in pts],
                             description="Crosses the Huangpu between Wujing (west bank) and Pujiang (east bank)."))
    for vid, (name, lon, lat) in VERTIPORTS.items():
        feats.append(feature(circle(lon, lat, 80), id=vid, name=name, kind="vertiport", lower_m=0, upper_m=60,
                             center=[lon, lat], radius_m=80))
    feats.append(feature(Polygon([(121.458, 31.015), (121.474, 31.0165), (121.476, 31.027), (121.460, 31.026)]),
                         id="R-WJ-IND", name="Wujing industrial area (chemical plants)", kind="restricted",
                         lower_m=0, upper_m=300, reason="Hazardous industry; no overflight."))
    feats.append(feature(circle(121.4885, 31.044, 350), id="R-BR-MP", name="Huangpu river bridge exclusion (south)",
                         kind="restricted", lower_m=0, upper_m=150, center=[121.4885, 31.044], radius_m=350,
                         reason="Bridge and river traffic protection."))
    feats.append(feature(circle(121.4955, 31.088, 300), id="R-BR-N", name="Huangpu river bridge exclusion (north)",
                         kind="restricted", lower_m=0, upper_m=150, center=[121.4955, 31.088], radius_m=300,
                         reason="Bridge and river traffic protection."))
    feats.append(feature(Polygon([(121.534, 31.038), (121.546, 31.039), (121.546, 31.046), (121.534, 31.045)]),
                         id="A-PJ-RES", name="Pujiang residential area", kind="authorization",
                         lower_m=0, upper_m=120, reason="Flights need a specific authorisation."))
    feats.append(feature(Polygon([(121.528, 31.021), (121.538, 31.021), (121.538, 31.027), (121.528, 31.027)]),
                         id="CND-PJ-SCH", name="Pujiang school campus (conditional)", kind="conditional",
                         lower_m=0, upper_m=60, restriction="CONDITIONAL",
                         reason="Flights allowed at or above 30 m only, no hovering over the playground."))
    feats.append(feature(Polygon([(121.441, 31.040), (121.448, 31.040), (121.448, 31.046), (121.441, 31.046)]),
                         id="R-WJ-MKT", name="Wujing weekend market (Sat-Sun 06:00-14:00)", kind="restricted",
                         lower_m=0, upper_m=120, restriction="PROHIBITED",
                         schedule={"tz": "Asia/Shanghai", "periods": [
                             {"windows": [{"days": ["SAT", "SUN"], "start": "06:00", "end": "14:00"}]}]},
                         reason="Crowds; no overflight while the market is open."))
    return {"type": "FeatureCollection", "name": "pujiang_wujing", "note": NOTE,
            "crs_note": "WGS84 lon/lat (RFC 7946)", "features": feats}


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "airspace/data/pujiang_wujing.geojson"
    out.write_text(json.dumps(build(), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
