"""The array core of ``dawm label`` (:func:`dawm.label.prepare_arrays`, :func:`dawm.label.label_arrays`):
session-grid maps, tissues and masks + affine + config + reference in, labels out, no file written."""

from __future__ import annotations

import builtins
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import SHAPE, SPACING, make_phantom

import dawm
from dawm.errors import InputError
from dawm.label.config import LabelConfig
from dawm.label.pipeline import LabelledSession, label_arrays, prepare_arrays


def _no_writes(monkeypatch: pytest.MonkeyPatch, where: Path) -> None:
    """Every way of writing a file raises; the working directory is ``where`` (checked empty after)."""
    real_open = builtins.open

    def read_only_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            raise AssertionError(f"the label core opened {file} for writing")
        return real_open(file, mode, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError("the label core wrote a NIfTI file")

    monkeypatch.setattr(builtins, "open", read_only_open)
    monkeypatch.setattr(nib, "save", refuse)
    monkeypatch.chdir(where)


def test_label_arrays_finds_the_patch_and_the_lesion_without_io(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = LabelConfig(reference="self")
    _no_writes(monkeypatch, tmp_path)
    ph = make_phantom(4.0, lesion=True, config=config)  # conftest's phantom goes through prepare_arrays
    done = label_arrays(ph.prepared, config)
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []

    assert isinstance(done, LabelledSession) and done.reference.how == "self"
    lesion = ph.prepared.lesion
    assert lesion.any() and ph.prepared.lesion_source == "given"
    for arr in (done.dseg, done.probability, done.eligible, done.location, *done.z.values()):
        assert arr.shape == SHAPE
    assert set(done.z) == {"T1", "MTR"}
    assert set(np.unique(done.dseg)) == {0, 1, 2}
    assert np.array_equal(done.dseg == 1, lesion)  # the lesion, labelled as such
    assert not (done.eligible & lesion).any()
    # the raised-T1 / lowered-MTR patch around it is DAWM, the rest of the WM ball hardly
    patch = ph.patch & done.eligible
    dawm_mask = done.dseg == 2
    assert dawm_mask[patch].mean() > 0.8
    assert dawm_mask[done.eligible & ~ph.patch].mean() < 0.02
    assert np.median(done.z["T1"][patch]) > 2.5 and np.median(done.z["MTR"][patch]) < -2.5
    # probability: 0-1, zero outside the eligible WM, high in the patch, low elsewhere
    p = done.probability
    assert p.dtype == np.float32 and p.min() >= 0 and p.max() <= 1
    assert not p[~done.eligible].any()
    assert np.median(p[patch]) > 0.9 and np.median(p[done.eligible & ~ph.patch]) < 0.1
    # location classes in the WM, volumes consistent with the maps
    assert set(np.unique(done.location[ph.prepared.maps.wm])) - {0} and not done.location[~ph.prepared.maps.wm].any()
    voxel_ml = SPACING**3 / 1000
    assert done.voxel_ml == pytest.approx(voxel_ml)
    totals = done.totals
    assert totals["lesion_ml"] == pytest.approx(lesion.sum() * voxel_ml)
    assert totals["dawm_ml"] == pytest.approx(dawm_mask.sum() * voxel_ml)
    assert totals["dawm_expected_ml"] == pytest.approx(float(p.sum(dtype=np.float64)) * voxel_ml)
    assert list(done.volumes.location) == ["all", "periventricular", "juxtacortical", "deep", "infratentorial"]


def test_prepare_arrays_automatic_lesion_from_flair_and_t1() -> None:
    config = LabelConfig(reference="self")
    ph = make_phantom(0.0, lesion=True, config=config)
    given = ph.prepared
    rng = np.random.default_rng(1)
    wm = given.dseg == 3
    flair = np.where(wm, 1.0 + 0.05 * rng.standard_normal(SHAPE), 0.3).astype(np.float32)
    flair[given.lesion] = 2.0
    affine = np.diag([SPACING, SPACING, SPACING, 1.0])
    auto = prepare_arrays(
        {"T1": given.maps.raw["T1"], "MTR": given.maps.raw["MTR"]},
        given.dseg,
        given.wm_prob,
        np.ones(SHAPE, bool),
        affine,
        config,
        lesion=None,
        flair=flair,
        key="sub-p",
        subject="p",
    )
    assert auto.lesion_source == "automatic (FLAIR and T1)"
    overlap = (auto.lesion & given.lesion).sum()
    assert overlap >= 0.8 * given.lesion.sum() and auto.lesion.sum() <= 2 * given.lesion.sum()
    assert auto.maps.key == "sub-p" and auto.maps.subject == "p" and auto.maps.mni_xyz is None and "mni" in auto.notes
    never = prepare_arrays(
        {"T1": given.maps.raw["T1"]},
        given.dseg,
        given.wm_prob,
        np.ones(SHAPE, bool),
        affine,
        LabelConfig(reference="self", auto_lesion="never"),
        flair=flair,
    )
    assert never.lesion_source == "none" and not never.lesion.any() and set(never.maps.maps) == {"T1"}
    with pytest.raises(InputError, match="neither a T1 map nor an MTR map"):
        prepare_arrays({}, given.dseg, given.wm_prob, np.ones(SHAPE, bool), affine, config)


def test_label_cores_are_exported() -> None:
    assert dawm.label.prepare_arrays is prepare_arrays and dawm.label.label_arrays is label_arrays
    assert dawm.label.LabelledSession is LabelledSession
