import numpy as np
import pytest

from dawm.simulate.scanners import DEFAULT_PROFILES
from dawm.simulate.signal import MPRAGEParams, MPRAGESignal, flair_null_ti, flair_signal, mt_pair, mtr_map, t1_from_uni, uni

MP2 = DEFAULT_PROFILES[0].mp2rage
MPR = DEFAULT_PROFILES[0].mprage


def test_uni_lookup_inverts_the_signal_equations():
    t1 = np.array([600.0, 850.0, 1000.0, 1400.0, 2500.0, 4000.0])
    s1, s2 = MPRAGESignal(MP2)(t1)
    u = uni(s1, s2)
    assert np.all(np.diff(u) < 0), "UNI must fall with T1 over tissue values"
    assert np.all(np.abs(u) <= 0.5)
    np.testing.assert_allclose(t1_from_uni(u, MP2), t1, rtol=0.01)


def test_uni_cancels_proton_density_and_receive_field():
    t1 = np.full(4, 900.0)
    s1, s2 = MPRAGESignal(MP2)(t1)
    gain = np.array([0.5, 1.0, 2.0, 7.0])
    np.testing.assert_allclose(uni(s1 * gain, s2 * gain), uni(s1, s2), rtol=1e-5)


def test_transmit_field_biases_the_scanner_t1_map():
    t1 = np.full(3, 900.0)
    s1, s2 = MPRAGESignal(MP2)(t1, np.array([0.9, 1.0, 1.1]))
    est = t1_from_uni(uni(s1, s2), MP2)
    assert abs(est[1] - 900) < 10 and abs(est[0] - 900) > 10 and abs(est[2] - 900) > 10


def test_mprage_contrast_wm_gm_csf():
    pd = np.array([0.69, 0.8, 1.0])
    (s,) = MPRAGESignal(MPR)(np.array([850.0, 1400.0, 4000.0]))
    sig = np.abs(pd * s)
    assert sig[0] > 1.3 * sig[1] > 1.3 * sig[2]


def test_flair_nulls_csf_and_lesions_are_bright():
    ti = flair_null_ti(9000.0)
    s = flair_signal(
        np.array([850.0, 1400.0, 4000.0, 1300.0]),
        np.array([75.0, 90.0, 1500.0, 150.0]),
        np.array([0.69, 0.8, 1.0, 0.8]),
        tr_ms=9000.0,
        ti_ms=ti,
        te_ms=100.0,
    )
    wm, gm, csf, lesion = s
    assert csf < 0.01 * wm and lesion > 1.4 * wm and gm > wm


def test_mt_pair_gives_back_mtr():
    t1 = np.array([850.0, 1400.0])
    off, on = mt_pair(t1, np.array([0.7, 0.8]), np.array([40.0, 28.0]), tr_ms=30.0, flip_deg=10.0)
    np.testing.assert_allclose(mtr_map(off, on, min_signal=0.0), [40.0, 28.0], rtol=1e-5)
    assert mtr_map(off * 0, on * 0, min_signal=1e-3).max() == 0


def test_impossible_timing_is_refused():
    with pytest.raises(ValueError, match="too short"):
        MPRAGESignal(MPRAGEParams(tr_ms=1000.0, ti_ms=(300.0,), flip_deg=(9.0,), n_excitations=176, echo_spacing_ms=7.0))


def _traits(shape):
    from dawm.simulate.properties import SubjectTissueTraits

    zero = np.zeros(shape, np.float32)
    return SubjectTissueTraits(zero, zero, zero, dawm_t1=0.1, dawm_mtr_pu=3.0, nawm_mtr_shift_pu=0.0, nawm_t1_skew=0.0)


def test_partial_volume_with_csf_sums_compartment_signals_on_flair():
    """A voxel of 20 % CSF and 80 % cortex reads on FLAIR as 80 % of pure cortex (CSF nulled),
    darker than cortex: averaging relaxation times instead (T2 ~370 ms) would make every CSF
    border FLAIR-bright."""
    from dawm.simulate.properties import signal_compartments, tissue_properties

    csf = np.array([0.0, 0.2, 1.0], np.float32)
    fr = {"gm": 1 - csf, "csf": csf}
    zero = np.zeros(3, np.float32)
    common = dict(lesion_frac=zero, lesion_grade=zero, dawm=zero, traits=_traits(3), age_years=30.0)
    ti = flair_null_ti(9000.0)

    def flair(maps, magnitude=True):
        return flair_signal(maps.t1_ms, maps.t2_ms, maps.pd, tr_ms=9000.0, ti_ms=ti, te_ms=100.0, magnitude=magnitude)

    summed = np.abs(sum(flair(c, magnitude=False) for c in signal_compartments(fr, **common)))
    np.testing.assert_allclose(summed[1], 0.8 * summed[0], rtol=0.02)
    assert summed[2] < 0.01 * summed[0]
    averaged = flair(tissue_properties(fr, **common))
    assert averaged[1] > 1.3 * averaged[0], "the averaged-property voxel is the bright rim this replaces"
    # PD (so every PD-linear signal) splits between the compartments and sums to the voxel's.
    tissue, fluid = signal_compartments(fr, **common)
    np.testing.assert_allclose(tissue.pd + fluid.pd, tissue_properties(fr, **common).pd, rtol=1e-5)


def test_lesion_share_is_taken_within_the_tissue_compartment():
    from dawm.simulate.properties import LESION_MILD, signal_compartments

    fr = {"wm": np.array([0.5], np.float32), "csf": np.array([0.5], np.float32)}
    zero = np.zeros(1, np.float32)
    tissue, fluid = signal_compartments(
        fr, lesion_frac=np.array([0.5], np.float32), lesion_grade=zero, dawm=zero, traits=_traits(1), age_years=30.0
    )
    np.testing.assert_allclose(tissue.t2_ms, LESION_MILD[1], rtol=1e-5)  # the tissue half is all lesion
    assert fluid.t2_ms[0] == pytest.approx(1500.0)


def test_signed_flair_keeps_the_sign_of_mz():
    ti = flair_null_ti(9000.0)
    kw = dict(tr_ms=9000.0, ti_ms=ti, te_ms=100.0)
    s = flair_signal(np.array([4500.0, 850.0]), np.array([1500.0, 75.0]), np.ones(2), magnitude=False, **kw)
    assert s[0] < 0 < s[1]
    np.testing.assert_allclose(np.abs(s), flair_signal(np.array([4500.0, 850.0]), np.array([1500.0, 75.0]), np.ones(2), **kw))
