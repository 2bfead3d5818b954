"""``dawm.evaluate.baselines.fit_predict``: a baseline fitted on cases against their own targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dawm.evaluate import baselines
from dawm.evaluate.baselines import BaselineSession, FlairThreshold, fit_predict
from dawm.model.data import Case


def _session(seed: int, target: bool) -> BaselineSession:
    rng = np.random.default_rng(seed)
    shape = (16, 16, 16)
    labels = np.zeros(shape, np.uint8)
    labels[2:8, 2:9, 2:9] = 2
    labels[10:13, 10:13, 10:13] = 1
    flair = 100 + rng.normal(0, 4, shape) + np.where(labels == 2, 14, 0) + np.where(labels == 1, 45, 0)
    return BaselineSession(
        images={"FLAIR": flair},
        dseg=np.full(shape, 3, np.uint8),
        brain=np.ones(shape, bool),
        spacing_mm=(2.0, 2.0, 2.0),
        target=labels if target else None,
    )


def _case(subject: str, label: bool) -> Case:
    d = Path("/nowhere") / subject
    return Case(
        subject=subject,
        session="01",
        images={"FLAIR": d / "flair.nii.gz"},
        brain=d / "brain.nii.gz",
        dseg=d / "dseg.nii.gz",
        preproc_log=d / "log.json",
        label=d / "label.nii.gz" if label else None,
    )


def test_fit_predict_fits_on_the_case_targets(monkeypatch) -> None:
    seeds = {"a": 0, "b": 1, "c": 2}
    loaded = []

    def from_case(case, target=None):
        loaded.append((case.subject, target))
        return _session(seeds[case.subject], target is not None)

    monkeypatch.setattr(baselines.BaselineSession, "from_case", staticmethod(from_case))
    train, test = [_case("a", True), _case("b", True)], [_case("c", False)]
    model = FlairThreshold()
    preds = fit_predict(model, train, test)
    assert loaded == [("a", train[0].label), ("b", train[1].label), ("c", None)]
    manual = FlairThreshold().fit([_session(0, True), _session(1, True)])
    assert (model.z_dawm_, model.z_lesion_) == (manual.z_dawm_, manual.z_lesion_)
    assert list(preds) == [test[0].key] and np.array_equal(preds[test[0].key], manual.predict(_session(2, False)))
    with pytest.raises(ValueError, match="without a target"):
        fit_predict(FlairThreshold(), [_case("a", False)], test)
