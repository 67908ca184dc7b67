"""Altitude reference conversion: the one place where AGL/AMSL/WGS84 meet."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from airspace import ALT_REFS, VerticalModel


def test_default_model_offsets_for_flat_minhang():
    vm = VerticalModel()
    assert vm.to_amsl(100.0, "AGL") == pytest.approx(104.0)
    assert vm.to_amsl(100.0, "AMSL") == pytest.approx(100.0)
    assert vm.to_amsl(100.0, "WGS84") == pytest.approx(90.0)


def test_refs_are_case_insensitive_and_listed():
    vm = VerticalModel(ground_amsl_m=7.5, geoid_undulation_m=11.0)
    assert ALT_REFS == ("AGL", "AMSL", "WGS84")
    assert vm.to_amsl(10, "agl") == pytest.approx(17.5)
    assert vm.to_amsl(10, "Wgs84") == pytest.approx(-1.0)


def test_arrays_convert_elementwise():
    out = VerticalModel().to_amsl(np.array([0.0, 60.0, 120.0]), "AGL")
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [4.0, 64.0, 124.0])


@pytest.mark.parametrize("ref", ["MSL", "", "agl ", None, 3])
def test_unknown_ref_raises(ref):
    with pytest.raises(ValueError, match="altitude reference"):
        VerticalModel().to_amsl(1.0, ref)


@given(alt=st.floats(-500, 10_000), ground=st.floats(-50, 500), und=st.floats(-100, 100))
def test_refs_are_consistent(alt, ground, und):
    vm = VerticalModel(ground_amsl_m=ground, geoid_undulation_m=und)
    # one physical height, stated three ways, is one AMSL height
    amsl = vm.to_amsl(alt, "AMSL")
    assert vm.to_amsl(amsl - ground, "AGL") == pytest.approx(amsl, abs=1e-6)
    assert vm.to_amsl(amsl + und, "WGS84") == pytest.approx(amsl, abs=1e-6)
