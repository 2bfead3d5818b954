"""Header twins: the same simulated cohort stored the way other scanners and converters store it."""

import json

import nibabel as nib
import numpy as np

from dawm.simulate import acquisition as acq
from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import HeaderVariant, SimulationConfig
from dawm.simulate.scanners import scanner_profiles


def test_default_header_variant_changes_nothing() -> None:
    for profile in scanner_profiles(4):
        assert HeaderVariant().apply(profile) == profile
        other = HeaderVariant.other_converter().apply(profile)
        assert (other.storage, other.oblique_deg, other.integer_storage, other.t1map_units, other.mtr_units, other.nan_background) == (
            "LPS",
            12.0,
            True,
            "s",
            "fraction",
            True,
        )
        assert other.snr == profile.snr and other.flair == profile.flair  # acquisition physics untouched
    assert SimulationConfig().headers == HeaderVariant()


def test_random_draws_do_not_depend_on_the_grid_tilt() -> None:
    """The bias field's coarse grid (and so how many numbers it draws) must not depend on the
    rounding of an oblique affine's voxel sizes (5 degrees gave 2.0000000001 mm and one more plane)."""
    after = []
    for tilt in (5.0, 12.0):
        rng = np.random.default_rng(0)
        acq.smooth_field_on_grid(rng, acq.make_grid((2, 2, 2), (240.0, 240.0, 176.0), orientation="sagittal", oblique_deg=tilt), 0.2)
        after.append(rng.random())
    assert after[0] == after[1]


def test_header_twin_has_the_same_truth_and_other_headers(tmp_path) -> None:
    base = SimulationConfig(patients=1, controls=0, sessions=2, scanners=1, resolution_mm=3.0, seed=3)
    roots = {}
    for name, headers in (("orig", HeaderVariant()), ("twin", HeaderVariant.other_converter())):
        result = simulate_cohort(base.model_copy(update={"headers": headers}), tmp_path / name)
        assert not result.failures, result.failures
        roots[name] = tmp_path / name
    truth = sorted(p.relative_to(roots["orig"]) for p in (roots["orig"] / "derivatives/dawm-truth").rglob("*_space-subject_*.nii.gz"))
    assert len(truth) > 10
    for rel in truth:  # anatomy, pathology and tissue maps: identical
        a, b = (nib.load(roots[n] / rel) for n in ("orig", "twin"))
        assert np.array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj)), rel
    # Same head poses in every session: the random streams stay aligned (session 2 included).
    for xfm in sorted((roots["orig"] / "derivatives/dawm-truth").rglob("*_xfm.json")):
        rel = xfm.relative_to(roots["orig"])
        o, t = (json.loads((roots[n] / rel).read_text()) for n in ("orig", "twin"))
        assert o["SubjectToScanner"] == t["SubjectToScanner"] and o["QualityFactor"] == t["QualityFactor"], rel

    def img(name: str, suffix: str, ses: str = "01"):
        return nib.load(next(roots[name].glob(f"sub-*/ses-{ses}/anat/*_ses-{ses}_{suffix}.nii.gz")))

    for suffix in ("T1w", "FLAIR", "T1map", "MTRmap"):
        assert nib.aff2axcodes(img("orig", suffix).affine)[:2] != nib.aff2axcodes(img("twin", suffix).affine)[:2]
        assert img("orig", suffix).shape == img("twin", suffix).shape
    t1w = img("twin", "T1w")
    assert t1w.get_data_dtype() == np.int16 and t1w.dataobj.slope not in (None, 1.0)
    assert img("orig", "T1w").dataobj.slope in (None, 1.0)
    t1_o, t1_t = (np.asarray(img(n, "T1map").dataobj, np.float32) for n in ("orig", "twin"))
    assert np.isnan(t1_t).any() and not np.isnan(t1_o).any()
    assert np.nanmax(t1_t) < 10  # seconds
    mtr_o, mtr_t = (np.asarray(img(n, "MTRmap").dataobj, np.float32) for n in ("orig", "twin"))
    assert np.nanmax(mtr_o) > 10 and np.nanmax(mtr_t) <= 1.0 + 1e-6  # percent vs fraction
    side = json.loads(next(roots["twin"].glob("sub-*/ses-01/anat/*_MTRmap.json")).read_text())
    assert side["Units"] == "fraction"
    # The same head on the same slab: the profile's tilt is already 12 degrees, so the twin's sagittal
    # grid is the original's with the A-P and R-L array axes reversed (LPS), and its T1 map (other
    # noise draws per voxel, NaN background) matches the original's after undoing the flip.
    assert np.allclose(img("twin", "T1map").affine[:3, :3], img("orig", "T1map").affine[:3, :3] @ np.diag([-1, 1, -1]))
    flipped = t1_t[::-1, :, ::-1]
    brain = np.isfinite(flipped) & (t1_o > 0.5) & (t1_o < 2.0)
    assert brain.sum() > 1000 and np.corrcoef(flipped[brain], t1_o[brain])[0, 1] > 0.8
