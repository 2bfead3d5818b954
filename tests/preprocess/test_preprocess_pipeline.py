"""End-to-end tests of the ``dawm preprocess`` stage on a tiny simulated cohort (2 mm).

Two patients on two scanners: sub-ms001 (prisma3t: 3D FLAIR, RAS float, T1 map in s, MTR in
percent) and sub-ms002 (achieva3t: 2D FLAIR, LPS int16 with scl_slope, T1 map in ms with NaNs,
MTR as a fraction). Three full session runs in all (two in the main run, one in the hostile run).
"""

from __future__ import annotations

import gzip
import json
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from dawm.bids.derivative_files import PreprocessFiles
from dawm.bids.layout import discover_sessions
from dawm.cli import app
from dawm.errors import InputError
from dawm.image.io import load_volume, save_volume
from dawm.preprocess.config import PreprocessConfig
from dawm.preprocess.pipeline import (
    load_session,
    load_session_images,
    log_path,
    preprocess_arrays,
    preprocess_dataset,
    preprocess_session,
)
from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import SimulationConfig
from dawm.simulate.preprocess_accuracy import evaluate_session

pytestmark = pytest.mark.slow

# The 2 mm cohort keeps a 2 mm session grid (defaults otherwise: a shorter N4 costs WM Dice on the 2D-FLAIR site).
CONFIG = PreprocessConfig(spacing_mm=2.0)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pp") / "bids"
    result = simulate_cohort(SimulationConfig.small(patients=2, controls=0, sessions=1, scanners=2), root)
    assert not result.failures
    return root


@pytest.fixture(scope="module")
def processed(cohort: Path, tmp_path_factory) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("pp_out") / "dawm-preprocess"
    outcomes = preprocess_dataset(cohort, output=out, config=CONFIG)
    return out, outcomes


def _session(cohort: Path, subject: str):
    return next(s for s in discover_sessions(cohort) if s.subject == subject)


def test_outputs_exist_with_session_grid(cohort: Path, processed) -> None:
    out, outcomes = processed
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    for o in outcomes:
        d = o.result.out_dir
        key = o.name
        assert o.result.missing == ()
        assert set(o.result.timings_s) >= {"load", "coregister", "brain", "bias", "mni", "segment", "iqm", "write", "qc"}
        brain = nib.load(d / f"{key}_space-session_desc-brain_mask.nii.gz")
        assert np.allclose(np.linalg.norm(brain.affine[:3, :3], axis=0), 2.0)
        for suffix in (
            "desc-preproc_T1w",
            "desc-preproc_FLAIR",
            "desc-preproc_UNIT1",
            "T1map",
            "MTRmap",
            "dseg",
            "label-CSF_probseg",
            "label-GM_probseg",
            "label-WM_probseg",
            "label-NAWM_mask",
            "label-lesion_mask",
        ):
            img = nib.load(d / f"{key}_space-session_{suffix}.nii.gz")
            assert img.shape == brain.shape and np.allclose(img.affine, brain.affine), suffix
        for name in (
            "from-FLAIR_to-session_mode-image_xfm.json",
            "from-MP2RAGE_to-session_mode-image_xfm.json",
            "from-MT_to-session_mode-image_xfm.json",
            "from-session_to-MNI152NLin2009cSym_mode-image_xfm.h5",
            "from-MNI152NLin2009cSym_to-session_mode-image_xfm.h5",
            "desc-iqm_metrics.tsv",
            "desc-qc_T1w.png",
            "desc-preproc_log.json",
        ):
            assert (d / f"{key}_{name}").exists(), name
        assert json.loads((d / f"{key}_space-session_T1map.json").read_text())["Units"] == "ms"
    for name in ("dataset_description.json", "dseg.tsv", "group_iqm.tsv", "provenance.json", "preprocess_config.json"):
        assert (out / name).exists(), name
    assert PreprocessConfig.load(out / "preprocess_config.json") == CONFIG
    group = (out / "group_iqm.tsv").read_text().splitlines()
    assert len(group) == 1 + 2 * 7  # 7 weighted images per session


def test_accuracy_against_truth(cohort: Path, processed) -> None:
    out, _ = processed
    for subject in ("ms001", "ms002"):
        metrics = evaluate_session(cohort, out, _session(cohort, subject))
        for group in ("FLAIR", "MP2RAGE", "MT"):
            assert metrics[f"coreg_error_mm_{group}"] < 2.0, (subject, metrics)
        assert metrics["brain_dice"] >= 0.88, (subject, metrics)
        assert metrics["wm_dice"] >= 0.8, (subject, metrics)
        assert metrics["wm_cov_n4"] < metrics["wm_cov_raw"], (subject, metrics)


def test_session_files_are_the_array_core_s_result(cohort: Path, processed) -> None:
    """preprocess_session = load_session + preprocess_arrays + write_preprocessed: the core run again on
    the loaded images gives exactly the arrays written (ms001: 3D FLAIR, T1 map in s, a given lesion mask)."""
    out, _ = processed
    inputs = _session(cohort, "ms001")
    volumes, notes, masks = load_session(inputs, CONFIG, cohort)
    assert notes["T1map"]["found_units"] == "s" and masks["brain"] is None
    done = preprocess_arrays(volumes, CONFIG, key=inputs.key, brain_mask=masks["brain"], lesion_mask=masks["lesion"])
    files = PreprocessFiles(out)
    brain = nib.load(files.brain_mask(inputs))
    assert brain.shape == done.grid_shape and np.allclose(brain.affine, done.grid_affine)
    written = {
        files.brain_mask(inputs): done.brain,
        files.tissue_dseg(inputs): done.tissues.dseg,
        files.lesion_mask(inputs): done.lesion,
        files.image(inputs, "T1w"): done.corrected["T1w"],
        files.image(inputs, "FLAIR"): done.corrected["FLAIR"],
        files.image(inputs, "T1map"): done.on_grid["T1map"],
        files.tissue_probseg(inputs, "WM"): done.tissues.probabilities["WM"],
    }
    for path, array in written.items():
        on_disk = np.asarray(nib.load(path).dataobj)
        np.testing.assert_array_equal(on_disk, np.asarray(array).astype(on_disk.dtype), err_msg=path.name)
    info = json.loads(log_path(out, inputs).read_text())
    assert info["LesionMask"] == ("given" if done.lesion_given else "candidates") and info["MNIRegistration"] == done.mni_how
    assert info["BrainVolume_ml"] == pytest.approx(done.brain_volume_ml)


def test_quantitative_maps_in_ms_and_percent(processed) -> None:
    out, outcomes = processed
    for o in outcomes:  # ms001 T1 in s / MTR percent; ms002 T1 in ms / MTR fraction
        d, key = o.result.out_dir, o.name
        wm = load_volume(d / f"{key}_space-session_dseg.nii.gz").data == 3
        t1 = np.median(load_volume(d / f"{key}_space-session_T1map.nii.gz").data[wm])
        mtr = np.median(load_volume(d / f"{key}_space-session_MTRmap.nii.gz").data[wm])
        assert 500 < t1 < 1500, (key, t1)
        assert 20 < mtr < 70, (key, mtr)


def _rewrite(path: Path, factor: float, units: str) -> None:
    vol = load_volume(path)
    save_volume(vol.data * factor, vol.affine, path)
    sidecar = path.with_name(path.name.replace(".nii.gz", ".json"))
    meta = json.loads(sidecar.read_text())
    meta["Units"] = units
    sidecar.write_text(json.dumps(meta))


def _copy_session(cohort: Path, subject: str, dest: Path) -> Path:
    shutil.copytree(cohort / f"sub-{subject}", dest / f"sub-{subject}")
    shutil.copy(cohort / "dataset_description.json", dest / "dataset_description.json")
    return dest


def test_units_do_not_change_the_result(cohort: Path, tmp_path: Path) -> None:
    original, _ = load_session_images(_session(cohort, "ms001"))  # T1 in s, MTR in percent
    copy = _copy_session(cohort, "ms001", tmp_path)
    anat = copy / "sub-ms001" / "ses-01" / "anat"
    _rewrite(anat / "sub-ms001_ses-01_T1map.nii.gz", 1000.0, "ms")
    _rewrite(anat / "sub-ms001_ses-01_MTRmap.nii.gz", 0.01, "fraction")
    converted, notes = load_session_images(_session(copy, "ms001"))
    assert notes["T1map"]["found_units"] == "ms" and notes["MTRmap"]["found_units"] == "fraction"
    np.testing.assert_allclose(converted["T1map"].data, original["T1map"].data, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(converted["MTRmap"].data, original["MTRmap"].data, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", ["4d", "zero"])
def test_unusable_image_gives_clear_error(cohort: Path, tmp_path: Path, kind: str) -> None:
    copy = _copy_session(cohort, "ms001", tmp_path)
    target = copy / "sub-ms001" / "ses-01" / "anat" / "sub-ms001_ses-01_FLAIR.nii.gz"
    vol = load_volume(target)
    data = np.stack([vol.data, vol.data], axis=-1) if kind == "4d" else np.zeros_like(vol.data)
    nib.save(nib.Nifti1Image(data, vol.affine), str(target))
    with pytest.raises(InputError, match="FLAIR.nii.gz"):
        preprocess_session(_session(copy, "ms001"), CONFIG, tmp_path / "out")
    assert not log_path(tmp_path / "out", _session(copy, "ms001")).exists()


def test_rerun_skips_complete_sessions(cohort: Path, processed) -> None:
    out, _ = processed
    start = time.perf_counter()
    outcomes = preprocess_dataset(cohort, output=out, config=CONFIG)
    assert time.perf_counter() - start < 20
    assert all(o.ok and o.result.reused for o in outcomes)


def test_cli_hostile_dataset_with_dask_and_force(cohort: Path, processed, tmp_path: Path) -> None:
    """Missing FLAIR (recomputed with --force over an earlier complete run, on Dask) and a truncated
    gzip in another subject: the first finishes and reports the skip, the second fails by name."""
    out, _ = processed
    bids = tmp_path / "bids"
    bids.mkdir()
    for subject in ("ms001", "ms002"):
        _copy_session(cohort, subject, bids)
    (bids / "sub-ms001" / "ses-01" / "anat" / "sub-ms001_ses-01_FLAIR.nii.gz").unlink()
    corrupt = bids / "sub-ms002" / "ses-01" / "anat" / "sub-ms002_ses-01_T1w.nii.gz"
    raw = corrupt.read_bytes()
    corrupt.write_bytes(raw[: len(raw) // 2])
    with pytest.raises((EOFError, OSError)):
        gzip.decompress(corrupt.read_bytes())
    new_out = tmp_path / "out"
    shutil.copytree(out / "sub-ms001", new_out / "sub-ms001")  # a complete earlier run (with FLAIR)
    CONFIG.save(tmp_path / "config.json")

    result = CliRunner().invoke(
        app,
        [
            "preprocess",
            str(bids),
            "--output",
            str(new_out),
            "--config",
            str(tmp_path / "config.json"),
            "--backend",
            "dask",
            "--jobs",
            "1",
            "--force",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "sub-ms002_ses-01_T1w.nii.gz" in result.output
    assert "Traceback" not in result.output
    info = json.loads(log_path(new_out, _session(bids, "ms001")).read_text())
    assert info["MissingModalities"] == ["FLAIR"]  # recomputed, not the copied log
    assert not (new_out / "sub-ms001" / "ses-01" / "anat" / "sub-ms001_ses-01_space-session_desc-preproc_FLAIR.nii.gz").exists()
    assert not (new_out / "sub-ms001" / "ses-01" / "anat" / "sub-ms001_ses-01_from-FLAIR_to-session_mode-image_xfm.json").exists()
    assert not log_path(new_out, _session(bids, "ms002")).exists()


def test_cli_help_and_not_bids(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["preprocess", "--help"])
    assert result.exit_code == 0 and "--participant-label" in result.output
    result = runner.invoke(app, ["preprocess", str(tmp_path)])
    assert result.exit_code != 0
    assert "dataset_description.json" in result.output and "Traceback" not in result.output
