"""The simulated cohort: files, geometry, literature ranges, separability, determinism, CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dawm.cli import app
from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import SimulationConfig
from dawm.simulate.scanners import DEFAULT_PROFILES

ROLES = [
    "T1w",
    "FLAIR",
    "UNIT1",
    "T1map",
    "MTRmap",
    "inv-1_part-mag_MP2RAGE",
    "inv-2_part-mag_MP2RAGE",
    "flip-1_mt-on_MTS",
    "flip-1_mt-off_MTS",
]
PROFILE = {p.name: p for p in DEFAULT_PROFILES}


def _image(root: Path, sub: str, ses: str, role: str) -> Path:
    return root / f"sub-{sub}" / f"ses-{ses}" / "anat" / f"sub-{sub}_ses-{ses}_{role}.nii.gz"


def _participants(result) -> pd.DataFrame:
    return pd.read_csv(result.root / "participants.tsv", sep="\t", na_values="n/a")


def test_every_session_has_every_modality_with_metadata(small_cohort):
    root = small_cohort.root
    part = _participants(small_cohort)
    assert set(part.columns) >= {"participant_id", "age", "sex", "group", "disease_duration", "edss", "scanner"}
    assert (part.group == "HC").sum() == 1 and set(part.group) <= {"HC", "RRMS", "SPMS", "PPMS"}
    assert part.participant_id.str.match(r"^sub-(ms|hc)\d{3}$").all()
    for row in part.itertuples():
        sub = row.participant_id[4:]
        sessions = pd.read_csv(root / row.participant_id / f"{row.participant_id}_sessions.tsv", sep="\t")
        assert list(sessions.session_id) == ["ses-01", "ses-02"]
        for ses in ("01", "02"):
            for role in ROLES:
                path = _image(root, sub, ses, role)
                side = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
                for key in ("Manufacturer", "ManufacturersModelName", "MagneticFieldStrength"):
                    assert key in side, (path.name, key)
            t1w = json.loads(_image(root, sub, ses, "T1w").with_suffix("").with_suffix(".json").read_text())
            assert {"RepetitionTime", "InversionTime", "FlipAngle", "EchoTime", "SliceThickness"} <= set(t1w)
            mt_on = json.loads(_image(root, sub, ses, "flip-1_mt-on_MTS").with_suffix("").with_suffix(".json").read_text())
            assert mt_on["MTState"] is True


def test_declared_orientation_spacing_and_storage(small_cohort):
    root = small_cohort.root
    for row in _participants(small_cohort).itertuples():
        prof = PROFILE[row.scanner]
        sub = row.participant_id[4:]
        t1w = nib.load(_image(root, sub, "01", "T1w"))
        codes = nib.aff2axcodes(t1w.affine)
        assert codes == (("A", "S", "R") if prof.storage == "RAS" else ("P", "S", "L"))
        np.testing.assert_allclose(t1w.header.get_zooms()[:3], [2.0, 2.0, 2.0], atol=1e-4)
        assert t1w.get_data_dtype() == np.int16, "weighted images are stored as scanners do"
        assert (float(t1w.dataobj.slope) != 1.0) == prof.integer_storage, "int16 with scl_slope on some scanners"
        flair = nib.load(_image(root, sub, "01", "FLAIR"))
        zooms = np.array(flair.header.get_zooms()[:3])
        side = json.loads(_image(root, sub, "01", "FLAIR").with_suffix("").with_suffix(".json").read_text())
        if prof.flair.dims == "2D":
            assert side["MRAcquisitionType"] == "2D"
            assert zooms[2] >= prof.flair.voxel_mm[2] and zooms[2] > 1.5 * zooms[0], "2D FLAIR has thick slices"
            assert nib.aff2axcodes(flair.affine)[2] == "S"
        else:
            assert np.ptp(zooms) < 0.5


def test_quantitative_map_units_follow_the_profile(small_cohort):
    root = small_cohort.root
    for row in _participants(small_cohort).itertuples():
        prof = PROFILE[row.scanner]
        sub = row.participant_id[4:]
        path = _image(root, sub, "01", "T1map")
        t1 = nib.load(path).get_fdata()
        units = json.loads(path.with_suffix("").with_suffix(".json").read_text())["Units"]
        assert units == prof.t1map_units
        brain = np.nanmedian(np.where(t1 > 0, t1, np.nan))
        assert (0.3 < brain < 3.0) if units == "s" else (300 < brain < 3000)
        assert np.isnan(t1).any() == prof.nan_background
        mtr = nib.load(_image(root, sub, "01", "MTRmap")).get_fdata()
        assert (mtr.max() <= 1.0) == (prof.mtr_units == "fraction")


def _report(result) -> pd.DataFrame:
    rep = pd.read_csv(result.root / "derivatives" / "dawm-truth" / "simulation_report.tsv", sep="\t", na_values="n/a")
    return rep


def _pooled(rep, modality, tissue):
    rows = rep[(rep.kind == "tissue") & (rep.modality == modality) & (rep.tissue == tissue)]
    return float(np.average(rows["mean"], weights=rows["n"]))


def test_tissue_values_within_literature_ranges(small_cohort):
    """At 3 T (literature.md): WM T1 800-900 ms (+ ageing, MS skew), GM 1300-1450, CSF 3500-4500,
    lesions 1100-1600; MTR WM 37-43, GM ~28, lesions 25-35. 1.5 T and partial volume at 2 mm widen these."""
    rep = _report(small_cohort)
    assert 780 <= _pooled(rep, "T1map", "NAWM") <= 1000
    assert 1250 <= _pooled(rep, "T1map", "GM") <= 1650
    assert 2800 <= _pooled(rep, "T1map", "CSF") <= 4800
    assert 1050 <= _pooled(rep, "T1map", "lesion") <= 1700
    assert 34 <= _pooled(rep, "MTR", "NAWM") <= 44
    assert 24 <= _pooled(rep, "MTR", "GM") <= 32
    assert 24 <= _pooled(rep, "MTR", "lesion") <= 36
    for modality, sign in (("T1map", 1), ("MTR", -1), ("FLAIR", 1), ("T1w", -1)):
        nawm, dawm, lesion = (_pooled(rep, modality, t) for t in ("NAWM", "DAWM", "lesion"))
        assert sign * nawm < sign * dawm, f"{modality}: DAWM departs from NAWM"
        assert sign * dawm < sign * lesion + 0.05 * abs(lesion), f"{modality}: DAWM milder than lesions"
    # FLAIR: lesions bright, CSF dark, DAWM close to grey matter.
    assert _pooled(rep, "FLAIR", "lesion") > 1.15 and _pooled(rep, "FLAIR", "CSF") < 0.6
    assert abs(_pooled(rep, "FLAIR", "DAWM") - _pooled(rep, "FLAIR", "GM")) < 0.25
    # T1w: WM > GM > CSF.
    assert _pooled(rep, "T1w", "NAWM") > _pooled(rep, "T1w", "GM") > _pooled(rep, "T1w", "CSF")


def test_dawm_subtle_on_flair_clear_on_t1_map(small_cohort):
    """One physics (``dawm_visibility`` 1): FLAIR sees DAWM's full T2/PD change through its own signal
    equation, resolution and noise, which keep it below the T1 map's separability and far from 1."""
    rep = _report(small_cohort)
    auc = rep[(rep.kind == "auc") & (rep.scanner == "all")].set_index("modality")["mean"]
    assert 0.55 < auc["FLAIR"] < 0.9, "FLAIR separates DAWM from NAWM, far from perfectly"
    assert auc["T1map"] > auc["FLAIR"] + 0.05
    assert 0.55 < auc["MTR"] < 0.95 and 0.55 < auc["T1w"] < 0.9


def test_brains_are_adult_sized(small_cohort):
    """Subjects are scaled from the MNI152 brain (1.88 L) to adult brain volumes (1.1-1.6 L)."""
    vols = small_cohort.volumes
    assert vols.brain_ml.between(1000, 1700).all(), vols.brain_ml.tolist()


def test_truth_volumes_and_transitions(small_cohort):
    vols = small_cohort.volumes
    hc = vols[vols.group == "HC"]
    ms = vols[vols.group != "HC"]
    assert (hc.lesion_ml == 0).all() and (hc.dawm_ml == 0).all() and hc.edss.isna().all()
    assert (ms.lesion_ml > 0).all() and ms.dawm_ml.max() > 0 and ms.edss.notna().all()
    truth = small_cohort.root / "derivatives" / "dawm-truth"
    for tsv in ("dseg.tsv", "desc-pathology_dseg.tsv", "desc-transition_dseg.tsv", "desc-location_dseg.tsv"):
        assert (truth / tsv).exists()
    sub = ms.participant_id.iloc[0]
    trans = nib.load(truth / sub / "ses-02" / "anat" / f"{sub}_ses-02_space-subject_desc-transition_dseg.nii.gz").get_fdata()
    assert set(np.unique(trans)) <= set(range(7)) and (trans == 6).any()
    assert not (truth / sub / "ses-01" / "anat" / f"{sub}_ses-01_space-subject_desc-transition_dseg.nii.gz").exists()
    patho = nib.load(truth / sub / "ses-01" / "anat" / f"{sub}_ses-01_space-subject_desc-pathology_dseg.nii.gz").get_fdata()
    tissue = nib.load(truth / sub / "ses-01" / "anat" / f"{sub}_ses-01_space-subject_dseg.nii.gz").get_fdata()
    assert np.all(tissue[patho > 0] == 3), "lesions and DAWM lie in white matter"
    pose = json.loads((truth / sub / "ses-01" / "anat" / f"{sub}_ses-01_from-subject_to-scanner_mode-image_xfm.json").read_text())
    assert set(pose["SubjectToScanner"]) == {"T1w", "FLAIR", "MP2RAGE", "MT"}


def test_the_edss_model_is_written_as_data(small_cohort):
    """``dawm evaluate`` reads the simulator's EDSS coefficients from the truth's ``edss_model.json``,
    not from the words of ``participants.json`` (whose bytes stay as they were)."""
    from dawm.bids.derivative_files import TruthFiles
    from dawm.simulate.clinical import EDSS_MODEL

    model = json.loads(TruthFiles.in_dataset(small_cohort.root).edss_model.read_text())
    assert model["Coefficients"] == EDSS_MODEL
    words = json.loads((small_cohort.root / "participants.json").read_text())["edss"]["Description"]
    assert words.endswith("(simulated: " + ", ".join(f"{k}={v}" for k, v in EDSS_MODEL.items()) + ")")


def test_rerun_resumes_without_rewriting(small_cohort, caplog):
    t1w = next(small_cohort.root.glob("sub-*/ses-01/anat/*_T1w.nii.gz"))
    before = t1w.stat().st_mtime_ns
    again = simulate_cohort(SimulationConfig.small(), small_cohort.root, jobs=1)
    assert t1w.stat().st_mtime_ns == before
    pd.testing.assert_frame_equal(again.volumes, small_cohort.volumes, check_like=True)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and "provenance" not in p.name}


def test_same_seed_same_bytes_other_seed_other_brain(tmp_path):
    cfg = dict(patients=1, controls=0, sessions=1, scanners=1, resolution_mm=3.0)
    a = simulate_cohort(SimulationConfig(seed=7, **cfg), tmp_path / "a")
    b = simulate_cohort(SimulationConfig(seed=7, **cfg), tmp_path / "b", jobs=2)
    c = simulate_cohort(SimulationConfig(seed=8, **cfg), tmp_path / "c")
    fa, fb = _files(a.root), _files(b.root)
    assert fa.keys() == fb.keys()
    assert [k for k in fa if fa[k] != fb[k]] == []
    wm = lambda r: nib.load(next(r.glob("derivatives/dawm-truth/sub-*/ses-01/anat/*_space-subject_dseg.nii.gz"))).get_fdata() == 3
    dice = 2 * (wm(a.root) & wm(c.root)).sum() / (wm(a.root).sum() + wm(c.root).sum())
    assert dice < 0.9, "another seed gives another brain"


@pytest.mark.validator
def test_dataset_passes_the_bids_validator(small_cohort):
    validator = os.environ.get("DAWM_BIDS_VALIDATOR")
    if not validator or not Path(validator).exists():
        pytest.skip("bids-validator not installed (make test installs it)")
    proc = subprocess.run(
        [validator, str(small_cohort.root), "--json", "--ignoreNiftiHeaders"], capture_output=True, text=True, timeout=600
    )
    report = json.loads(proc.stdout)
    errors = [(e["code"], e["key"], e.get("reason")) for e in report["issues"]["errors"]]
    assert errors == [], errors


def test_cli_simulate_and_bad_options(tmp_path):
    runner = CliRunner()
    out = runner.invoke(
        app, ["simulate", str(tmp_path / "cli"), "--small", "--patients", "1", "--controls", "0", "--sessions", "1", "--resolution", "3"]
    )
    assert out.exit_code == 0, out.output
    assert (tmp_path / "cli" / "participants.tsv").exists()
    bad = runner.invoke(app, ["simulate", str(tmp_path / "x"), "--resolution", "7"])
    assert bad.exit_code == 2 and "resolution" in bad.output
    version = runner.invoke(app, ["--version"])
    assert version.exit_code == 0 and "dawm" in version.output
