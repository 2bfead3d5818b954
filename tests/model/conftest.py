"""A tiny clinical-only cohort (3 mm, T1w + FLAIR), preprocessed once, with simulator-truth targets."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_model import TINY

from dawm.model.train import train
from dawm.preprocess.config import PreprocessConfig
from dawm.preprocess.pipeline import preprocess_dataset
from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import SimulationConfig
from dawm.simulate.truth import write_truth_labels

#: Fast preprocessing of the 3 mm test cohort (no MNI refinement, IQMs or QC figures).
PP_CONFIG = PreprocessConfig(spacing_mm=3.0, iqm=False, qc_figure=False, mni_refine=False)


@pytest.fixture(scope="session")
def model_cohort(tmp_path_factory) -> Path:
    """sub-ms001 (prisma3t), sub-ms002 (achieva3t, 2D FLAIR stored LPS), sub-hc001 (prisma3t); one
    session each; only T1w and FLAIR kept (the clinical case); ``derivatives/dawm-label`` = truth."""
    root = tmp_path_factory.mktemp("model") / "bids"
    result = simulate_cohort(SimulationConfig.small(resolution_mm=3.0, patients=2, controls=1, sessions=1, scanners=2), root)
    assert not result.failures
    for path in root.glob("sub-*/ses-*/anat/*"):
        if not any(path.name.endswith(f"_{s}{ext}") for s in ("T1w", "FLAIR") for ext in (".nii.gz", ".json")):
            path.unlink()
    outcomes = preprocess_dataset(root, config=PP_CONFIG)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    write_truth_labels(root)
    return root


@pytest.fixture(scope="session")
def trained(model_cohort: Path, tmp_path_factory) -> Path:
    """A tiny model (:data:`tiny_model.TINY`, fold 0) trained once on ``model_cohort``; read it, do not change it."""
    model_dir = tmp_path_factory.mktemp("m") / "model"
    train(model_cohort, model_dir, TINY, folds=[0], cache_dir=model_dir.parent / "cache")
    return model_dir
