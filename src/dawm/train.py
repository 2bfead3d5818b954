"""``dawm.train``: train the lesion/DAWM network on preprocessed, labelled sessions (paths in, a model
folder out); the library side of ``dawm train`` and ``dawm export-model``.

* :func:`train_model` (``bids_dir``, ``model_dir``, a :class:`TrainConfig`; ``folds``, ``resume``,
  ``cache_dir``, ...): cross-validated training of :mod:`dawm.model.train`; writes ``model.json``,
  ``split.json``, ``fold-K/best.pt`` and ``log.csv`` and returns ``model.json``'s content (per fold
  its best epoch and pooled validation Dice).
* :func:`export_model`: a slim, weights-only copy of a model folder (what dawm bundles).

Targets are ``derivatives/<config.labels>`` (``dawm-label`` by default; the simulator's truth with
:func:`dawm.simulate.truth.write_truth_labels`).
"""

from dawm.model.bundled import export_model
from dawm.model.config import TrainConfig
from dawm.model.train import train as train_model

__all__ = ["TrainConfig", "export_model", "train_model"]
