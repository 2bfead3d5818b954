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
