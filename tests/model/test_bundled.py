"""The model bundled with dawm (package data): it loads and predicts when shipped; without it,
``dawm predict`` without ``--model`` says so."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dawm.cli import app
from dawm.model import bundled


def test_bundled_model_loads_and_predicts_a_tiny_volume() -> None:
    from dawm.model.inference import load_model, predict_probabilities

    if not (bundled.BUNDLED_MODEL_DIR / "model.json").exists():
        pytest.skip(
            f"no bundled model in this checkout ({bundled.BUNDLED_MODEL_DIR}); "
            "make one with `dawm export-model MODEL_DIR src/dawm/model/weights/default`"
        )
    model = load_model(bundled.bundled_model_dir(), device="cpu")
    assert model.info["bundled"] is True and model.folds
    shape = (40, 44, 36)  # 2 mm voxels: a small head
    grid = np.indices(shape).astype(np.float32)
    brain = sum(((g - (n - 1) / 2) / (0.4 * n)) ** 2 for g, n in zip(grid, shape)) <= 1.0
    rng = np.random.default_rng(0)
    images = {s: (brain * 600 + rng.normal(0, 20, shape)).astype(np.float32) for s in model.suffixes}
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    probs = predict_probabilities(model, images, brain, affine)
    assert probs.shape == (3, *shape) and probs.dtype == np.float32 and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    assert (probs[0, ~brain] == 1.0).all()


def test_a_missing_input_quotes_the_lesion_dice_measured_for_the_inputs_left(caplog) -> None:
    """model.json's ``input_accuracy`` (``benchmarks/simulated_test.py --record``): a session without
    FLAIR is told what the model's lesion maps from T1w alone were worth on the simulator."""
    from dawm.model.inference import LoadedModel

    info = {"input_accuracy": {"lesion_dice": {"T1w+FLAIR": 0.65, "FLAIR": 0.64, "T1w": 0.11}, "source": "a benchmark"}}
    model = LoadedModel(info, [], [0], ["T1w", "FLAIR"], (8, 8, 8), (8, 8, 8), 0.3, None)
    assert model.input_accuracy(["T1w"]) == {"inputs": "T1w", "lesion_dice": 0.11, "lesion_dice_all_inputs": 0.65, "source": "a benchmark"}
    assert model.input_accuracy(["FLAIR", "T1w"])["inputs"] == "T1w+FLAIR"  # the model's channel order
    with caplog.at_level("WARNING"):
        assert model.missing_inputs(["T1w"]) == ["FLAIR"]
    assert "lesion Dice from T1w was 0.11 (0.65 from T1w + FLAIR)" in caplog.text
    bare = LoadedModel({}, [], [0], ["T1w", "FLAIR"], (8, 8, 8), (8, 8, 8), 0.3, None)
    assert bare.input_accuracy(["T1w"]) is None  # a model without the record: the plain warning
    if (bundled.BUNDLED_MODEL_DIR / "model.json").exists():
        from dawm.model.modeldir import read_model_json

        recorded = read_model_json(bundled.bundled_model_dir()).get("input_accuracy", {}).get("lesion_dice", {})
        assert set(recorded) == {"T1w+FLAIR", "FLAIR", "T1w"} and all(0.0 <= v <= 1.0 for v in recorded.values())


def test_predict_without_model_needs_a_bundled_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(bundled, "BUNDLED_MODEL_DIR", tmp_path / "weights" / "default")
    res = CliRunner().invoke(app, ["predict", str(tmp_path), str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    assert "no bundled model in this installation" in res.output and "pass --model" in " ".join(res.output.split())
