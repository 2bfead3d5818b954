"""End to end on the tiny cohort: train (tiny preset, a few iterations), exact resume, predict with
all outputs, orientation invariance, missing modality, model/data mismatch, weights-only loading,
export of a slim (bundled) copy, sessions failing preprocessing, CLI."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage
from tiny_model import TINY, add_empty_t1_session
from typer.testing import CliRunner

from dawm.cli import app
from dawm.errors import InputError
from dawm.image.io import load_volume
from dawm.image.resample import resample_to_grid
from dawm.model import bundled
from dawm.model.bundled import export_model
from dawm.model.inference import load_model, predict_probabilities
from dawm.model.predict import predict_dataset
from dawm.model.train import train

pytestmark = pytest.mark.slow


def _rows(path: Path, fold: int = 0) -> list[dict]:
    with path.open() as fh:
        return [r for r in csv.DictReader(fh) if int(r["fold"]) == fold]


def test_model_dir_is_self_describing(trained: Path) -> None:
    info = json.loads((trained / "model.json").read_text())
    for key in (
        "inputs",
        "normalisation",
        "patch_size",
        "labels",
        "dawm_version",
        "config",
        "split",
        "data_fingerprint",
        "preprocess_config",
        "git_commit",
    ):
        assert key in info, key
    assert info["inputs"] == ["t1w", "flair"] and info["labels"] == {"0": "normal", "1": "lesion", "2": "DAWM"}
    assert info["preprocess_config"]["spacing_mm"] == 3.0
    assert (trained / "fold-0" / "best.pt").exists() and (trained / "fold-0" / "last.pt").exists()
    assert json.loads((trained / "split.json").read_text()) == info["split"]
    rows = _rows(trained / "log.csv")
    assert [int(r["epoch"]) for r in rows] == [0, 1] and all(np.isfinite(float(r["train_loss"])) for r in rows)
    assert info["folds"]["0"]["epochs"] == 2
    with pytest.raises(InputError, match="--resume"):
        train(trained.parent / "x", trained, TINY, folds=[0])


def test_ddp_under_torchrun_writes_one_model(model_cohort: Path, tmp_path: Path) -> None:
    """``torchrun`` with two CPU processes (gloo): the cache and split are written once (the main rank
    first), one log row per epoch, and the model loads. The DDP path of ``dawm train`` (sharded
    patches, averaged gradients, rank-0 checkpoints, broadcast early stop) as a cluster would run it."""
    model_dir, config = tmp_path / "model", tmp_path / "train.json"
    TINY.save(config)
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "dawm.cli",
            "train",
            str(model_cohort),
            "--model-dir",
            str(model_dir),
            "--config",
            str(config),
            "--folds",
            "0,",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    info = json.loads((model_dir / "model.json").read_text())
    assert info["preset"] == "tiny"  # the --config file is not overridden by the CLI's defaults
    assert info["folds"]["0"]["epochs"] == TINY.max_epochs and info["folds"]["0"]["best_epoch"] >= 0
    assert [int(r["epoch"]) for r in _rows(model_dir / "log.csv")] == list(range(TINY.max_epochs))
    assert len(list((model_dir / "cache").iterdir())) == 1  # one fingerprint folder
    loaded = load_model(model_dir, folds=[0], device="cpu")  # the saved state fits the plain network
    assert all(torch.isfinite(p).all() for p in loaded.nets[0].parameters())


def test_resume_is_exact(model_cohort: Path, trained: Path, tmp_path: Path) -> None:
    part = tmp_path / "model"
    train(model_cohort, part, TINY, folds=[0], cache_dir=trained.parent / "cache", epoch_budget=1)  # "interrupted"
    assert torch.load(part / "fold-0" / "last.pt", weights_only=True)["epoch"] == 1  # resume files need no pickle either
    train(model_cohort, part, TINY, folds=[0], resume=True, cache_dir=trained.parent / "cache")
    a = torch.load(trained / "fold-0" / "last.pt", weights_only=True)
    b = torch.load(part / "fold-0" / "last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    ra, rb = _rows(trained / "log.csv"), _rows(part / "log.csv")
    assert [r["train_loss"] for r in ra] == [r["train_loss"] for r in rb]
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()


def _flip_storage(src: Path, dst: Path) -> None:
    """Same image, voxels stored in the opposite in-plane order (RAS <-> LPS); world unchanged."""
    img = nib.load(src)
    data = np.asarray(img.dataobj)[::-1, ::-1, :]
    flip = np.eye(4)
    flip[0, 0] = flip[1, 1] = -1
    flip[0, 3], flip[1, 3] = img.shape[0] - 1, img.shape[1] - 1
    out = nib.Nifti1Image(data, img.affine @ flip)
    dst.parent.mkdir(parents=True, exist_ok=True)
    nib.save(out, dst)


@pytest.fixture(scope="module")
def clinical(model_cohort: Path, tmp_path_factory) -> Path:
    """A clinical dataset: sub-ms001 (its preprocessing reused) and sub-flip (ms001 stored flipped, not preprocessed)."""
    root = tmp_path_factory.mktemp("clin") / "bids"
    root.mkdir()
    shutil.copy(model_cohort / "dataset_description.json", root)
    shutil.copytree(model_cohort / "sub-ms001", root / "sub-ms001")
    for role in ("T1w", "FLAIR"):
        src = model_cohort / "sub-ms001" / "ses-01" / "anat" / f"sub-ms001_ses-01_{role}.nii.gz"
        _flip_storage(src, root / "sub-flip" / "ses-01" / "anat" / f"sub-flip_ses-01_{role}.nii.gz")
    pp = root / "derivatives" / "dawm-preprocess"
    shutil.copytree(model_cohort / "derivatives" / "dawm-preprocess" / "sub-ms001", pp / "sub-ms001")
    shutil.copy(model_cohort / "derivatives" / "dawm-preprocess" / "preprocess_config.json", pp)
    return root


def test_predict_writes_everything_and_ignores_storage_orientation(clinical: Path, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    result = CliRunner().invoke(app, ["predict", str(clinical), str(out), "--model", str(trained)])
    assert result.exit_code == 0, result.output
    for key in ("sub-ms001_ses-01", "sub-flip_ses-01"):
        d = out / key.split("_")[0] / "ses-01" / "anat"
        for suffix in (
            "space-session_desc-dawm_dseg.nii.gz",
            "space-session_label-lesion_probseg.nii.gz",
            "space-session_label-DAWM_probseg.nii.gz",
            "space-T1w_desc-dawm_dseg.nii.gz",
            "desc-dawm_volumes.tsv",
        ):
            assert (d / f"{key}_{suffix}").exists(), suffix
        native = nib.load(d / f"{key}_space-T1w_desc-dawm_dseg.nii.gz")
        raw = nib.load(clinical / key.split("_")[0] / "ses-01" / "anat" / f"{key}_T1w.nii.gz")
        assert native.shape == raw.shape and np.allclose(native.affine, raw.affine, atol=1e-4)
        vol = pd.read_csv(d / f"{key}_desc-dawm_volumes.tsv", sep="\t")
        assert list(vol.location) == ["all", "periventricular", "juxtacortical", "deep", "infratentorial"]
        assert (vol.wm_ml > 0).iloc[0]
    for name in ("dataset_description.json", "volumes.tsv", "desc-dawm_dseg.tsv", "provenance.json"):
        assert (out / name).exists(), name
    assert len(pd.read_csv(out / "volumes.tsv", sep="\t")) == 10
    assert (out / "derivatives" / "dawm-preprocess" / "sub-flip").is_dir() and not (
        out / "derivatives" / "dawm-preprocess" / "sub-ms001"
    ).exists()
    # orientation: sub-flip is sub-ms001 stored flipped and preprocessed on its own (its session grid is
    # shifted by a fraction of a voxel). The 2-epoch network is voxel-noisy, so compare the probability
    # maps in world space after a 2-voxel Gaussian; the inference itself is exact (next test).
    d1, d2 = out / "sub-ms001" / "ses-01" / "anat", out / "sub-flip" / "ses-01" / "anat"
    for label in ("lesion", "DAWM"):
        p1 = load_volume(d1 / f"sub-ms001_ses-01_space-session_label-{label}_probseg.nii.gz", allow_empty=True)
        p2 = load_volume(d2 / f"sub-flip_ses-01_space-session_label-{label}_probseg.nii.gz", allow_empty=True)
        p2_on_1 = resample_to_grid(p2.data, p2.affine, p1.shape, p1.affine)
        both = (p1.data > 0) & (p2_on_1 > 0)
        a, b = (ndimage.gaussian_filter(x * both, 2.0)[both] for x in (p1.data, p2_on_1))
        assert np.corrcoef(a, b)[0, 1] > 0.95, label


def test_inference_is_exactly_invariant_to_storage_orientation(model_cohort: Path, trained: Path) -> None:
    from dawm.model.data import discover_cases

    case = next(c for c in discover_cases(model_cohort) if c.subject == "ms002")  # stored LPS by its scanner
    brain = load_volume(case.brain)
    images = {s: load_volume(p).data for s, p in case.images.items()}
    model = load_model(trained)
    p = predict_probabilities(model, images, brain.data > 0.5, brain.affine)
    flip = np.eye(4)
    flip[0, 0] = flip[1, 1] = -1
    flip[0, 3], flip[1, 3] = brain.shape[0] - 1, brain.shape[1] - 1
    q = predict_probabilities(model, {s: v[::-1, ::-1] for s, v in images.items()}, brain.data[::-1, ::-1] > 0.5, brain.affine @ flip)
    np.testing.assert_allclose(q[:, ::-1, ::-1], p, atol=1e-5)


def test_missing_modality_uses_dropout_path_or_fails_clearly(model_cohort: Path, trained: Path) -> None:
    from dawm.model.data import discover_cases

    case = next(c for c in discover_cases(model_cohort) if c.subject == "ms001")
    brain = load_volume(case.brain)
    model = load_model(trained)
    t1 = load_volume(case.images["T1w"]).data
    probs = predict_probabilities(model, {"T1w": t1}, brain.data > 0.5, brain.affine)
    assert probs.shape == (3, *brain.shape) and np.allclose(probs.sum(0), 1, atol=1e-4)
    assert model.missing_inputs({"T1w"}) == ["FLAIR"]
    model.dropout = 0.0
    with pytest.raises(InputError, match="without modality dropout"):
        predict_probabilities(model, {"T1w": t1}, brain.data > 0.5, brain.affine)
    with pytest.raises(InputError, match="none of them"):
        model.missing_inputs(set())


def test_model_data_mismatch_is_refused(clinical: Path, trained: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(trained, old, ignore=shutil.ignore_patterns("cache", "last.pt"))
    info = json.loads((old / "model.json").read_text())
    info["dawm_version"] = "7.0.0"
    (old / "model.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="incompatible"):
        load_model(old)
    nodrop = tmp_path / "nodrop"
    shutil.copytree(trained, nodrop, ignore=shutil.ignore_patterns("cache", "last.pt"))
    info = json.loads((nodrop / "model.json").read_text())
    info["modality_dropout"] = 0.0
    (nodrop / "model.json").write_text(json.dumps(info))
    t1only = tmp_path / "t1only"
    shutil.copytree(clinical, t1only, ignore=shutil.ignore_patterns("sub-flip", "*FLAIR*"))
    with pytest.raises(InputError, match="lacks FLAIR"):
        predict_dataset(t1only, tmp_path / "out", nodrop, participant_label=["ms001"])
    assert not (tmp_path / "out" / "sub-ms001").exists()
    with pytest.raises(InputError, match="not a dawm model"):
        load_model(tmp_path)
    with pytest.raises(InputError, match="--drop T2w: not an input of this model"):
        predict_dataset(clinical, tmp_path / "out", trained, participant_label=["ms001"], drop=("T2w",))


def test_cli_help_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    for cmd in ("train", "predict"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0 and "--model" in res.output
    res = runner.invoke(app, ["train", str(tmp_path), "--model-dir", str(tmp_path / "m")])
    assert res.exit_code == 2 and "no preprocess derivative" in res.output
    res = runner.invoke(app, ["train", str(tmp_path), "--model-dir", str(tmp_path / "m"), "--patch-size", "40"])
    assert res.exit_code == 2 and "divisible" in res.output


def test_validation_dice_ignores_a_class_absent_from_the_validation_labels() -> None:
    """A network predicting DAWM where the validation labels hold none is not scored 0 for it."""
    from dawm.model.cache import CachedCase
    from dawm.model.train import validate

    class Fixed(torch.nn.Module):  # lesion where the first channel is high, DAWM where the second is, else normal
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.zeros_like(x[:, :1]), 10 * x[:, :1], 10 * x[:, 1:2]], dim=1)

    image = np.zeros((2, 16, 16, 16), np.float32)
    image[0, 4:8, 4:8, 4:8] = 1.0  # lesion, as in the labels
    image[1, 10:12, 10:12, 10:12] = 1.0  # DAWM, absent from the labels
    label = np.zeros((16, 16, 16), np.uint8)
    label[4:8, 4:8, 4:8] = 1
    case = CachedCase(
        key="v",
        image=image,
        label=label,
        dawm=(label == 2).astype(np.float32),
        tissue=np.full_like(label, 3),
        brain=np.ones_like(label),
        locations={},
        affine=np.eye(4),
    )
    scores = validate(Fixed(), [case], (16, 16, 16), torch.device("cpu"))
    assert scores["val_dice_lesion"] == pytest.approx(1.0) and np.isnan(scores["val_dice_dawm"])
    assert scores["val_dice"] == pytest.approx(1.0)  # was 0.5: the mean with the absent class
    assert scores["dawm_threshold"] is None  # nothing to calibrate the DAWM threshold on
    label[10:12, 10:12, 10:12] = 2  # now the labels hold that DAWM: both classes count
    scores = validate(Fixed(), [case], (16, 16, 16), torch.device("cpu"))
    assert scores["val_dice"] == pytest.approx(1.0) and scores["val_dice_dawm"] == pytest.approx(1.0)
    assert 0.05 <= scores["dawm_threshold"] <= 0.95


class _Touch:
    """Unpickling it creates ``marker``: code that a weights-only load must never run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_weights_that_need_pickle_are_refused(model_cohort: Path, trained: Path, tmp_path: Path) -> None:
    assert set(torch.load(trained / "fold-0" / "best.pt", weights_only=True)) == {"model", "optimizer", "scheduler", "epoch", "state"}
    evil = tmp_path / "evil"
    shutil.copytree(trained, evil, ignore=shutil.ignore_patterns("cache", "last.pt"))
    marker = tmp_path / "code-ran"
    torch.save({"model": _Touch(marker), "epoch": 1}, evil / "fold-0" / "best.pt")
    with pytest.raises(InputError, match=r"fold-0/best.pt: refused.*dawm loads weights only, without pickle"):
        load_model(evil)
    torch.save({"model": _Touch(marker), "epoch": 1}, evil / "fold-0" / "last.pt")  # a resume file too
    with pytest.raises(InputError, match=r"fold-0/last.pt: refused"):
        train(model_cohort, evil, TINY, folds=[0], resume=True, cache_dir=trained.parent / "cache")
    assert not marker.exists()


def test_export_model_round_trips_and_is_used_as_the_bundled_model(
    model_cohort: Path, clinical: Path, trained: Path, tmp_path: Path, monkeypatch
) -> None:
    from dawm.model.data import discover_cases

    slim = tmp_path / "slim"
    res = CliRunner().invoke(app, ["export-model", str(trained), str(slim), "--folds", "0"])
    assert res.exit_code == 0, res.output
    assert sorted(p.relative_to(slim).as_posix() for p in slim.rglob("*") if p.is_file()) == ["fold-0/best.pt", "model.json"]
    info = json.loads((slim / "model.json").read_text())
    assert info["bundled"] is True and info["exported_from"] == trained.resolve().name and info["weights_dtype"] == "float16"
    state = torch.load(slim / "fold-0" / "best.pt", weights_only=True)["model"]
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    full = sum(v.numel() * 4 for v in torch.load(trained / "fold-0" / "best.pt", weights_only=True)["model"].values())
    assert (slim / "fold-0" / "best.pt").stat().st_size < 0.6 * full  # float16: about half of the float32 weights

    case = next(c for c in discover_cases(model_cohort) if c.subject == "ms001")
    brain = load_volume(case.brain)
    images = {s: load_volume(p).data for s, p in case.images.items()}
    p = predict_probabilities(load_model(trained, device="cpu"), images, brain.data > 0.5, brain.affine)
    q = predict_probabilities(load_model(slim, device="cpu"), images, brain.data > 0.5, brain.affine)
    assert np.abs(q - p).max() < 1e-2 and np.abs(q - p).mean() < 1e-4
    assert (q.argmax(0) != p.argmax(0)).mean() < 1e-3

    monkeypatch.setattr(bundled, "MAX_EXPORT_BYTES", 1000)
    with pytest.raises(InputError, match="a bundled model may hold"):
        export_model(trained, tmp_path / "big")
    with pytest.raises(InputError, match="holds a trained model folder"):
        export_model(slim, trained)

    monkeypatch.setattr(bundled, "BUNDLED_MODEL_DIR", slim)  # what a wheel with weights in it ships
    out = tmp_path / "pred"
    res = CliRunner().invoke(app, ["predict", str(clinical), str(out), "--participant-label", "ms001"])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "provenance.json").read_text())
    assert record["config"]["bundled_model"] is True and record["config"]["model_dir"] == str(slim.resolve())


def test_predict_reports_sessions_that_fail_preprocessing(clinical: Path, trained: Path, tmp_path: Path) -> None:
    """A session whose T1w is empty fails preprocessing: ``dawm predict`` names it and exits 1; the
    other session is still predicted; with only the failing session, its reason is still shown."""
    bids = tmp_path / "bids"
    shutil.copytree(clinical, bids, ignore=shutil.ignore_patterns("sub-flip"))
    add_empty_t1_session(bids / "sub-ms001" / "ses-01" / "anat", bids)

    out = tmp_path / "pred"
    res = CliRunner().invoke(app, ["predict", str(bids), str(out), "--model", str(trained)])
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "failed sub-bad_ses-01: preprocessing failed:" in text and "image is empty" in text
    assert (out / "sub-ms001" / "ses-01" / "anat" / "sub-ms001_ses-01_space-session_desc-dawm_dseg.nii.gz").exists()
    assert not (out / "sub-bad").exists()
    sessions = json.loads((out / "provenance.json").read_text())["sessions"]
    assert sessions["sub-ms001_ses-01"] == "ok" and sessions["sub-bad_ses-01"].startswith("failed: preprocessing failed:")
    assert list(pd.read_csv(out / "volumes.tsv", sep="\t").participant_id.unique()) == ["sub-ms001"]

    res = CliRunner().invoke(app, ["predict", str(bids), str(tmp_path / "none"), "--model", str(trained), "--participant-label", "bad"])
    text = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    assert "failed sub-bad_ses-01: preprocessing failed:" in text and "image is empty" in text
