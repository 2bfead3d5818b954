"""``dawm.predict``: lesions and DAWM from T1w and/or FLAIR with a trained model (default: the model
bundled with dawm); the library side of ``dawm predict``.

* paths: :func:`predict_dataset` (a BIDS dataset in, preprocessed where needed, the predictions and
  ``volumes.tsv`` written to ``out_dir``; one :class:`dawm.parallel.Outcome` per session back, its
  ``result`` the session's volume table);
* arrays: :func:`predict_arrays` (preprocessed images on one session grid in, a
  :class:`Prediction` with the 0/1/2 label map and the class probabilities out); load the model
  once with :func:`load_model` when predicting many sessions; :func:`volume_table` gives the
  volumes per location class of a label map.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dawm.model import LABELS, inference
from dawm.model.bundled import bundled_model_dir
from dawm.model.decision import labels_from_probabilities
from dawm.model.inference import LoadedModel
from dawm.model.predict import predict_dataset
from dawm.model.volumes import volume_table

__all__ = ["LABELS", "LoadedModel", "Prediction", "bundled_model_dir", "load_model", "predict_arrays", "predict_dataset", "volume_table"]


@dataclass(frozen=True)
class Prediction:
    """One session's prediction: ``labels`` (X, Y, Z) uint8 (:data:`LABELS`: 0 normal, 1 lesion,
    2 DAWM) and ``probabilities`` (3, X, Y, Z) float32 of the same classes."""

    labels: np.ndarray
    probabilities: np.ndarray


def load_model(model_dir: str | Path | None = None, *, folds: list[int] | None = None, device: str | None = None) -> LoadedModel:
    """The model in ``model_dir`` (made by ``dawm train`` or ``dawm export-model``; default: the
    bundled model), every trained fold unless ``folds``, on ``device`` (default CUDA when present)."""
    return inference.load_model(bundled_model_dir() if model_dir is None else model_dir, folds=folds, device=device)


def predict_arrays(
    images: Mapping[str, np.ndarray],
    brain: np.ndarray,
    affine: np.ndarray,
    model: LoadedModel | str | Path | None = None,
    *,
    tta: bool = False,
) -> Prediction:
    """Predict one session from arrays.

    ``images``: input suffix (``"T1w"``, ``"FLAIR"``; the model's ``suffixes``) -> (X, Y, Z) array,
    all on one grid with the voxel-to-RAS ``affine``, preprocessed as ``dawm preprocess`` does
    (bias-corrected ``desc-preproc`` images; intensities are normalised inside ``brain`` here). A
    model trained with modality dropout accepts one of them missing. ``brain`` (X, Y, Z): the brain
    mask; outside it every voxel is normal. ``model``: a :class:`LoadedModel`, a model folder, or
    None (the bundled model). ``tta``: average the 8 mirrored predictions. The labels apply the
    model's calibrated DAWM threshold (:func:`dawm.model.decision.labels_from_probabilities`)."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model)
    probs = inference.predict_probabilities(loaded, dict(images), np.asarray(brain, bool), np.asarray(affine, float), tta=tta)
    return Prediction(labels=labels_from_probabilities(probs, loaded.dawm_threshold), probabilities=probs)
