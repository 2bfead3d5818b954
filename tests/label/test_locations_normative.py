"""Location classes on a simple phantom; the controls model (fit, recentring, save/load)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from conftest import make_phantom

from dawm.label.config import LabelConfig
from dawm.label.locations import location_classes
from dawm.label.normative import ControlsNormativeModel, SelfNormativeModel
from dawm.label.pipeline import apply_rule
from dawm.metrics import dice


def test_location_classes_on_a_phantom() -> None:
    shape, sp = (60, 60, 60), 2.0
    idx = np.indices(shape).astype(float)
    c = (np.array(shape) - 1) / 2
    r = np.sqrt(((idx - c[:, None, None, None]) ** 2).sum(0)) * sp
    dseg = np.zeros(shape, np.uint8)
    dseg[r <= 56] = 2  # cortex shell 50-56 mm
    dseg[r <= 50] = 3  # WM
    dseg[r <= 8] = 1  # central ventricle
    brain = r <= 56
    mni = (idx - c[:, None, None, None]) * sp  # MNI mm = offset from the centre
    loc = location_classes(dseg, brain, sp, mni_xyz=mni)
    at = lambda mm: loc[tuple(np.round(c + np.array(mm) / sp).astype(int))]  # noqa: E731
    assert at((0, 0, 14)) == 1  # 6 mm from the ventricle wall
    assert at((0, 30, 0)) == 3  # deep
    assert at((0, 48, 0)) == 2  # 2 mm below the cortex
    assert at((0, 20, -30)) == 4  # below MNI z = -24
    assert at((0, 0, 0)) == 0 and at((0, 53, 0)) == 0  # ventricle, cortex: not WM


def test_controls_model_tolerates_a_global_nawm_shift_and_round_trips(tmp_path: Path) -> None:
    config = LabelConfig(smoothing_fwhm_mm=0.0, threshold=2.0)
    controls = [make_phantom(0.0, seed=s, config=config).prepared.maps for s in (10, 11)]
    for i, m in enumerate(controls):
        m.subject, m.key = f"hc{i}", f"sub-hc{i}"
    model = ControlsNormativeModel(config).fit(controls)
    patient = make_phantom(4.0, seed=5, config=config, mtr_shift=-2.0)  # MS NAWM: MTR 2 pu lower
    ref = model.transform(patient.prepared.maps)
    assert abs(ref.shift["MTR"] + 2.0) < 0.3  # recentring absorbed the 2 SD shift
    dawm = apply_rule(patient.prepared, ref, config) == 2
    assert dice(dawm, patient.patch) > 0.8
    no_recenter = config.model_copy(update={"recenter": False})
    ref_raw = ControlsNormativeModel(no_recenter).fit(controls).transform(patient.prepared.maps)
    assert (apply_rule(patient.prepared, ref_raw, no_recenter.model_copy(update={"rule": "mtr"})) == 2).sum() > 5 * dawm.sum()
    model.save(tmp_path / "normative_model.json")
    loaded = ControlsNormativeModel.load(tmp_path / "normative_model.json")
    np.testing.assert_allclose(loaded.transform(patient.prepared.maps).z["T1"], ref.z["T1"], atol=1e-5)
    assert not model.without("hc0").without("hc1").has("scannerA")


def test_self_model_trend_option_runs() -> None:
    config = LabelConfig(reference="self", trend_fwhm_mm=30.0, smoothing_fwhm_mm=0.0, threshold=2.0)
    ph = make_phantom(4.0, config=config)
    ref = SelfNormativeModel(config).fit_transform(ph.prepared.maps)
    assert dice(apply_rule(ph.prepared, ref, config) == 2, ph.patch) > 0.7


def _with_mni(maps, subject: str, norm_key: str):
    """Give a phantom's maps a subject, a normative group and an identity "MNI" coordinate map (voxel centres, mm)."""
    maps.subject, maps.key, maps.norm_key = subject, f"sub-{subject}", norm_key
    maps.mni_xyz = (np.indices(maps.region.shape).astype(np.float32) * 2.0).astype(np.float32)
    return maps


def test_groups_with_two_controls_borrow_the_spatial_trend_of_all_controls(tmp_path: Path) -> None:
    """Healthy WM with an anatomy-bound pattern (the phantom's patch raised by 4 SD in every control):
    three scanners of two controls each are too few for a voxel-wise term per scanner, but their six
    controls together give the spatial trend, so a new control's pattern is no DAWM; without the
    pooled trend it is."""
    config = LabelConfig(smoothing_fwhm_mm=0.0, threshold=2.0, voxelwise_fwhm_mm=4.0, pooled_trend=True)
    grid = dict(mni_shape=(36, 36, 36), mni_affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    controls = [
        _with_mni(make_phantom(4.0, seed=20 + i, config=config).prepared.maps, f"hc{i}", f"scanner{'ABC'[i // 2]}") for i in range(6)
    ]
    new = make_phantom(4.0, seed=40, config=config)
    _with_mni(new.prepared.maps, "hcnew", "scannerA")

    model = ControlsNormativeModel(config, **grid).fit(controls)
    assert not model.groups_["scannerA"].voxelwise and len(model.groups_["scannerA"].trend_from) == 6
    assert all(w > 0.8 for w in model.groups_["scannerA"].trend_weight.values())  # the left-out controls share the pattern
    ref = model.transform(new.prepared.maps)
    assert "spatial trend of 6 controls, weight MTR 1.00, T1 1.00" in ref.how
    pooled = (apply_rule(new.prepared, ref, config) == 2) & new.patch

    strict = config.model_copy(update={"min_controls_voxelwise": 7})
    alone = ControlsNormativeModel(strict, **grid).fit(controls)
    assert not alone.groups_["scannerA"].trend_from
    unpooled = (apply_rule(new.prepared, alone.transform(new.prepared.maps), strict) == 2) & new.patch
    assert unpooled.sum() > 0.5 * new.patch.sum() and pooled.sum() < 0.1 * new.patch.sum()
    assert not ControlsNormativeModel(config.model_copy(update={"pooled_trend": False}), **grid).fit(controls).groups_["scannerA"].trend
    # Leaving one control out keeps five: still pooled; the pooled trend survives save/load.
    assert model.without("hc0").groups_["scannerA"].trend_from == [f"hc{i}" for i in range(1, 6)]
    model.save(tmp_path / "normative_model.json")
    loaded = ControlsNormativeModel.load(tmp_path / "normative_model.json")
    assert loaded.groups_["scannerA"].trend_from == model.groups_["scannerA"].trend_from
    assert loaded.groups_["scannerA"].trend_weight == model.groups_["scannerA"].trend_weight
    np.testing.assert_allclose(loaded.transform(new.prepared.maps).z["T1"], ref.z["T1"], atol=1e-4)


def test_a_pooled_trend_that_does_not_predict_left_out_controls_gets_no_weight() -> None:
    """Six controls without a shared pattern (noise only): each one's residuals are not predicted by
    the others' trend, so its cross-validated weight is near 0 and the z maps stay those of the
    regional norm; the same controls with a shared pattern give a weight near 1 (test above)."""
    config = LabelConfig(smoothing_fwhm_mm=0.0, threshold=2.0, voxelwise_fwhm_mm=4.0, pooled_trend=True)
    grid = dict(mni_shape=(36, 36, 36), mni_affine=np.diag([2.0, 2.0, 2.0, 1.0]))
    controls = [
        _with_mni(make_phantom(0.0, seed=60 + i, config=config).prepared.maps, f"hc{i}", f"scanner{'ABC'[i // 2]}") for i in range(6)
    ]
    new = _with_mni(make_phantom(0.0, seed=80, config=config).prepared.maps, "hcnew", "scannerA")
    pooled = ControlsNormativeModel(config, **grid).fit(controls)
    weights = pooled.groups_["scannerA"].trend_weight
    assert set(weights) == {"T1", "MTR"} and all(0 <= w < 0.2 for w in weights.values())
    regional = ControlsNormativeModel(config.model_copy(update={"pooled_trend": False}), **grid).fit(controls)
    z_pooled, z_regional = pooled.transform(new).z["T1"], regional.transform(new).z["T1"]
    assert np.abs(z_pooled - z_regional)[new.reference].mean() < 0.1 * np.abs(z_regional)[new.reference].mean()
