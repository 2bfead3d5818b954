"""What ``dawm evaluate`` reads of the simulator: structured files of the truth derivative, never
the free text of a description."""

from __future__ import annotations

import json

from dawm.bids.derivative_files import TruthFiles
from dawm.bids.derivatives import write_json
from dawm.evaluate.inputs import simulated_edss_coefficient


def test_edss_coefficient_comes_from_the_truth_sidecar(tmp_path) -> None:
    truth = TruthFiles(tmp_path / "derivatives" / "dawm-truth")
    truth.root.mkdir(parents=True)
    assert simulated_edss_coefficient(truth.root) is None  # no sidecar: no simulated coefficient
    assert simulated_edss_coefficient(None) is None
    write_json(truth.edss_model, {"Coefficients": {"intercept": 1.0, "dawm_ml": 0.05, "lesion_ml": 0.1}})
    assert simulated_edss_coefficient(truth.root) == 0.05
    assert simulated_edss_coefficient(truth.root, "lesion_ml") == 0.1
    assert simulated_edss_coefficient(truth.root, "age") is None
    truth.edss_model.write_text("{not json")
    assert simulated_edss_coefficient(truth.root) is None


def test_a_description_in_words_is_not_parsed(tmp_path) -> None:
    """A dataset whose participants.json states the model in words but has no sidecar gives None."""
    (tmp_path / "participants.json").write_text(json.dumps({"edss": {"Description": "EDSS (simulated: intercept=1.0, dawm_ml=0.05)"}}))
    truth = TruthFiles(tmp_path / "derivatives" / "dawm-truth")
    truth.root.mkdir(parents=True)
    assert simulated_edss_coefficient(truth.root) is None
