"""The public API: ``import dawm`` is light and gives the six stage modules; a short run through them."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import dawm

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("simulate", "preprocess", "label", "train", "predict", "evaluate")
HEAVY = ("torch", "monai", "SimpleITK", "matplotlib", "pandas", "nilearn")


def _modules_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_dawm_imports_no_stage_and_no_torch() -> None:
    loaded = _modules_after("import dawm")
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []
    assert [m for m in loaded if m.startswith("dawm.")] == []
    # the sub-packages resolve their entry points lazily too: importing them pulls no torch either
    loaded = _modules_after("import dawm, dawm.simulate, dawm.preprocess, dawm.label, dawm.evaluate")
    assert not any(m.split(".")[0] == "torch" for m in loaded)
    assert "dawm.evaluate.pipeline" not in loaded and "dawm.preprocess.pipeline" not in loaded


def test_the_six_stages_resolve_with_their_entry_points() -> None:
    assert dawm.__all__ == ["__version__", *STAGES]
    assert set(STAGES) <= set(dir(dawm))
    for name in STAGES:
        module = getattr(dawm, name)
        assert module.__name__ == f"dawm.{name}"
        assert module.__all__, name
        for public in module.__all__:
            assert public in dir(module)
            value = getattr(module, public)
            assert callable(value) or isinstance(value, dict), f"dawm.{name}.{public}"
    # the entry points are the functions the command line calls, not copies
    from dawm.evaluate.pipeline import evaluate_dataset
    from dawm.label.pipeline import label_dataset
    from dawm.model.predict import predict_dataset
    from dawm.model.train import train
    from dawm.preprocess.pipeline import preprocess_dataset
    from dawm.simulate.cohort import simulate_cohort

    assert dawm.simulate.simulate_cohort is simulate_cohort
    assert dawm.preprocess.preprocess_dataset is preprocess_dataset
    assert dawm.label.label_dataset is label_dataset
    assert dawm.train.train_model is train
    assert dawm.predict.predict_dataset is predict_dataset
    assert dawm.evaluate.evaluate_dataset is evaluate_dataset
    from dawm import metrics

    assert dawm.evaluate.dice is metrics.dice and dawm.evaluate.pooled_dice is metrics.pooled_dice


def test_a_deep_import_keeps_the_stage_a_module() -> None:
    import dawm.label.rules
    import dawm.simulate.config

    assert dawm.simulate.__name__ == "dawm.simulate" and callable(dawm.simulate.simulate_cohort)
    assert callable(dawm.label.label_dawm)
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        dawm.nothing  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        dawm.evaluate.nothing  # noqa: B018


def synthetic_session(shape=(40, 48, 40), spacing=3.0):
    """A 3 mm ellipsoid brain (GM rim, WM core) with one 4-voxel-wide lesion: dark on T1w, bright on
    FLAIR; returns ``(t1w, flair, brain, wm, lesion, affine)``."""
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -np.array(shape) * spacing / 2
    idx = np.indices(shape) - (np.array(shape) / 2)[:, None, None, None]
    r = np.sqrt(((idx / np.array([16, 20, 15])[:, None, None, None]) ** 2).sum(0))
    brain, wm = r < 1, r < 0.7
    lesion = np.zeros(shape, bool)
    lesion[24:28, 20:24, 18:22] = True
    rng = np.random.default_rng(0)
    t1 = np.where(brain, np.where(wm, 1.0, 0.7), 0.0) - 0.3 * lesion + 0.02 * rng.standard_normal(shape)
    flair = np.where(brain, np.where(wm, 0.6, 0.8), 0.0) + 0.8 * lesion + 0.02 * rng.standard_normal(shape)
    return t1.astype(np.float32), flair.astype(np.float32), brain, wm, lesion, affine


def test_arrays_through_the_public_api() -> None:
    t1, flair, brain, wm, lesion, affine = synthetic_session()
    model = dawm.predict.load_model()  # the bundled model
    pred = dawm.predict.predict_arrays({"T1w": t1, "FLAIR": flair}, brain, affine, model)
    assert pred.labels.shape == brain.shape and pred.labels.dtype == np.uint8
    assert pred.probabilities.shape == (3, *brain.shape) and pred.probabilities.dtype == np.float32
    np.testing.assert_allclose(pred.probabilities.sum(0), 1.0, atol=1e-4)
    assert set(np.unique(pred.labels)) <= {0, 1, 2} and not pred.labels[~brain].any()
    found = pred.labels == 1
    metrics = dawm.evaluate.overlap_metrics(found, lesion, 3.0)
    assert metrics.dice == dawm.evaluate.dice(found, lesion) > 0.3  # the bright FLAIR blob is found
    assert dawm.evaluate.lesion_detection(found, lesion, 3.0)["tp_ref"] == 1
    counts = dawm.evaluate.class_counts(pred.labels, lesion.astype(np.uint8))
    assert dawm.evaluate.pooled_dice([counts])[1] == dawm.evaluate.mean_dice([counts])[1] == metrics.dice  # one session: the same
    # FLAIR alone: the model's missing-modality path
    flair_only = dawm.predict.predict_arrays({"FLAIR": flair}, brain, affine, model)
    assert flair_only.labels.shape == brain.shape
    # the label stage's array rule: a lesion is never DAWM, DAWM only where eligible and abnormal
    abnormal = np.zeros(brain.shape, bool)
    abnormal[10:20, 14:26, 12:24] = True
    labels = dawm.label.label_dawm(wm, abnormal, lesion, 3.0, min_cluster_mm3=0.0)
    assert (labels[lesion] == 1).all() and ((labels == 2) == (abnormal & wm & ~lesion)).all()
    volumes = dawm.predict.volume_table(labels, np.where(wm, 3, np.where(brain, 2, 0)).astype(np.uint8), brain, affine)
    total = volumes[volumes.location == "all"].iloc[0]
    assert total.lesion_ml == pytest.approx(lesion.sum() * 27 / 1000) and total.dawm_ml == pytest.approx((labels == 2).sum() * 27 / 1000)


def test_simulate_through_the_public_api(tmp_path: Path) -> None:
    config = dawm.simulate.SimulationConfig.small(resolution_mm=3.0, patients=1, controls=0, sessions=1, scanners=1)
    result = dawm.simulate.simulate_cohort(config, tmp_path / "bids")
    assert isinstance(result, dawm.simulate.CohortResult) and not result.failures
    assert list(result.participants.participant_id) == ["sub-ms001"]
    assert sorted(p.name for p in (tmp_path / "bids" / "sub-ms001" / "ses-01" / "anat").glob("*_FLAIR.nii.gz"))


def test_the_readme_example_runs() -> None:
    """The first ``python`` block of the README's "Python API" section, as a user would paste it."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    assert namespace["pred"].labels.shape == namespace["brain"].shape
