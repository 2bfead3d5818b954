"""The array core of ``dawm preprocess`` (:func:`dawm.preprocess.preprocess_arrays`): images + affines
+ config in, a :class:`PreprocessedSession` of session-grid arrays out, no file written."""

from __future__ import annotations

import builtins
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from phantoms import dice, head_phantom
from scipy import ndimage

import dawm
from dawm.bids.layout import ROLES
from dawm.errors import InputError
from dawm.image.io import Volume
from dawm.image.resample import resample, voxel_sizes
from dawm.image.template import load_template
from dawm.preprocess.config import PreprocessConfig
from dawm.preprocess.pipeline import PreprocessedSession, preprocess_arrays

FAST = PreprocessConfig(spacing_mm=3.0, qc_figure=False, mni_refine=False)


def _no_writes(monkeypatch: pytest.MonkeyPatch, where: Path) -> None:
    """Every way of writing a file raises; the working directory is ``where`` (checked empty after)."""
    real_open = builtins.open

    def read_only_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            raise AssertionError(f"preprocess_arrays opened {file} for writing")
        return real_open(file, mode, *args, **kwargs)

    def refuse(*args, **kwargs):
        raise AssertionError(f"preprocess_arrays wrote a file: {args[1:2]}")

    monkeypatch.setattr(builtins, "open", read_only_open)
    for module, name in ((nib, "save"), (sitk, "WriteTransform"), (sitk, "WriteImage")):
        monkeypatch.setattr(module, name, refuse)
    monkeypatch.chdir(where)


def _lesioned_head() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The 2 mm head phantoms (T1w, FLAIR) with one 7 mm-radius lesion in deep WM (dark T1w, bright FLAIR)."""
    t1, affine, brain = head_phantom("t1")
    flair, _, _ = head_phantom("flair")
    wm = np.pad(load_template(2).wm > 0.9, 8)
    depth = ndimage.distance_transform_edt(wm)
    centre = np.unravel_index(np.argmax(depth), wm.shape)
    r = np.sqrt(sum((np.indices(wm.shape)[a] - centre[a]) ** 2 for a in range(3))) * 2.0
    lesion = r <= 7.0
    t1, flair = t1.copy(), flair.copy()
    t1[lesion] *= 0.55
    flair[lesion] *= 2.2
    return t1, flair, affine, brain, lesion


def test_preprocess_arrays_on_a_phantom_head_without_io(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    t1, flair, affine, brain_true, lesion_true = _lesioned_head()
    load_template(FAST.template_resolution_mm)  # the bundled template (cached): the only file the core may read
    _no_writes(monkeypatch, tmp_path)
    done = preprocess_arrays({"T1w": Volume(t1, affine), "FLAIR": (flair, affine)}, FAST, key="phantom")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []

    assert isinstance(done, PreprocessedSession) and done.reference == "T1w"
    assert np.allclose(voxel_sizes(done.grid_affine), 3.0)
    for arr in (done.brain, done.fov, done.lesion, done.tissues.dseg, *done.corrected.values(), *done.on_grid.values()):
        assert arr.shape == done.grid_shape
    assert set(done.corrected) == {"T1w", "FLAIR"} and set(done.fields) == {"T1w", "FLAIR"}
    assert done.missing == tuple(r for r in ROLES if r not in ("T1w", "FLAIR"))
    # the FLAIR lies on the T1w's grid: its rigid coregistration is about the identity
    assert np.abs(done.coregistration["FLAIR"]["matrix"][:3, 3]).max() < 2.0
    assert np.allclose(done.coregistration["FLAIR"]["matrix"][:3, :3], np.eye(3), atol=0.03)
    # brain mask and tissues
    truth = resample(brain_true.astype(np.uint8), affine, done.grid_shape, done.grid_affine, interpolation="nearest") > 0
    assert dice(done.brain, truth) > 0.85
    assert 0.85 < done.brain_volume_ml / (truth.sum() * 27 / 1000) < 1.15
    assert set(np.unique(done.tissues.dseg)) == {0, 1, 2, 3}
    assert np.array_equal(done.tissues.dseg > 0, done.brain)
    assert done.agreement["TemplateCorrelation"] >= FAST.min_template_correlation
    assert isinstance(done.to_mni, sitk.Transform) and isinstance(done.from_mni, sitk.Transform)
    # the lesion: a candidate of the segmentation, not given
    lesion_grid = resample(lesion_true.astype(np.uint8), affine, done.grid_shape, done.grid_affine, interpolation="nearest") > 0
    assert not done.lesion_given and np.array_equal(done.lesion, done.tissues.lesion_candidates)
    assert (done.lesion & lesion_grid).sum() >= 0.5 * lesion_grid.sum()
    assert done.skipped["lesion_mask"] == "no lesion mask in derivatives/lesion-masks"
    assert {row["role"] for row in done.iqm} == {"T1w", "FLAIR"}
    assert set(done.timings_s) == {"coregister", "resample", "brain", "bias", "mni", "segment", "iqm"}


def test_preprocess_arrays_needs_a_reference_image() -> None:
    with pytest.raises(InputError, match="none of the reference images"):
        preprocess_arrays({"MTRmap": (np.ones((8, 8, 8), np.float32), np.eye(4))}, FAST, key="sub-x")
    with pytest.raises(InputError, match="no usable images"):
        preprocess_arrays({}, FAST, key="sub-x")


def test_preprocess_arrays_is_exported() -> None:
    assert dawm.preprocess.preprocess_arrays is preprocess_arrays
    assert dawm.preprocess.PreprocessedSession is PreprocessedSession
