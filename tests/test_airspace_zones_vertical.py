"""Units, references, terrain and the uncontrolled-airspace ceiling, held to plain arithmetic."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from airspace.vertical import VerticalModel, from_metres, normalize_uom, to_metres
from airspace.zones import ZoneSet

heights = st.floats(-500, 20_000, allow_nan=False)


@given(h=heights)
def test_feet_round_trip_and_exact_factor(h):
    assert to_metres(h, "FT") == pytest.approx(h * 0.3048)
    assert from_metres(to_metres(h, "ft"), "FT") == pytest.approx(h, abs=1e-6)
    assert to_metres(h, "m") == h


def test_published_feet_values_come_back_exactly():
    for ft in (0, 250, 400, 500, 1000, 3280):
        assert from_metres(to_metres(ft, "FT"), "FT") == ft
    with pytest.raises(ValueError, match="unit"):
        normalize_uom("yd")


@given(h=heights, ground=st.floats(-50, 500), und=st.floats(-100, 100), ref=st.sampled_from(["AGL", "AMSL", "WGS84"]))
def test_to_and_from_amsl_are_inverse(h, ground, und, ref):
    vm = VerticalModel(ground_amsl_m=ground, geoid_undulation_m=und)
    assert vm.from_amsl(vm.to_amsl(h, ref), ref) == pytest.approx(h, abs=1e-6)
    assert vm.to_amsl(h, ref, uom="FT") == pytest.approx(vm.to_amsl(h * 0.3048, ref))


@given(lon=st.floats(121.40, 121.60), lat=st.floats(31.0, 31.1), h=st.floats(0, 300))
def test_terrain_moves_agl_only(lon, lat, h):
    vm = VerticalModel(ground=lambda x, y: 10.0 + (np.asarray(x) - 121.4) * 100.0)
    g = 10.0 + (lon - 121.4) * 100.0
    assert vm.to_amsl(h, "AGL", [lon], [lat])[0] == pytest.approx(h + g)
    assert vm.to_amsl(h, "AMSL", [lon], [lat]) == h
    assert vm.ceiling_amsl([lon], [lat])[0] == pytest.approx(120.0 + g)
    assert not vm.flat and VerticalModel().flat


def test_terrain_changes_which_agl_band_applies():
    doc = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"id": "A", "kind": "restricted", "lower_m": 0, "upper_m": 50,
                                          "alt_ref": "AGL"},
        "geometry": {"type": "Polygon", "coordinates": [[[121.4, 31.0], [121.6, 31.0], [121.6, 31.1],
                                                         [121.4, 31.1], [121.4, 31.0]]]}}]}
    hills = ZoneSet.from_geojson(doc, VerticalModel(ground=lambda x, y: (np.asarray(x) - 121.4) * 1000.0))
    # ground 0 m at 121.4, 100 m at 121.5: 80 m AMSL is 80 m AGL (outside) there, but -20 m AGL here
    assert hills.zones_at(121.40, 31.05, 40.0) == [0]
    assert hills.zones_at(121.40, 31.05, 80.0) == []
    assert hills.zones_at(121.50, 31.05, 140.0) == [0] and hills.zones_at(121.50, 31.05, 151.0) == []
    p, _ = hills.contains_pairs([121.4, 121.4, 121.5, 121.5], [31.05] * 4, [40.0, 80.0, 140.0, 151.0])
    assert p.tolist() == [0, 2]
    assert ZoneSet.from_geojson(doc).with_vertical(VerticalModel(ceiling_agl_m=None)).vertical.ceiling_agl_m is None
