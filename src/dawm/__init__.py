"""dawm: diffusely abnormal white matter (DAWM) and lesions in multiple sclerosis from clinical MRI.

The public API is one module per stage, each loaded on first use (``import dawm`` itself imports
neither torch nor the stages, PEP 562), each taking paths or arrays and giving results back:

* :mod:`dawm.simulate`: ``simulate_cohort``, ``SimulationConfig`` (a synthetic cohort with truth);
* :mod:`dawm.preprocess`: ``preprocess_dataset``, ``PreprocessConfig``;
* :mod:`dawm.label`: ``label_dataset``, ``LabelConfig``; on arrays ``label_dawm``, ``location_classes``;
* :mod:`dawm.train`: ``train_model``, ``TrainConfig``, ``export_model``;
* :mod:`dawm.predict`: ``predict_dataset``; on arrays ``predict_arrays``, ``load_model``, ``volume_table``;
* :mod:`dawm.evaluate`: ``evaluate_dataset``; on arrays ``overlap_metrics``, ``lesion_detection``,
  ``dice``, ``pooled_dice``, ``mean_dice``.

Each module's ``__all__`` lists its names; the command line (``dawm --help``) calls the same functions.
"""

import importlib as _importlib

__version__ = "0.1.0"

#: The stage modules of the public API, in pipeline order.
STAGES = ("simulate", "preprocess", "label", "train", "predict", "evaluate")

__all__ = ["__version__", "simulate", "preprocess", "label", "train", "predict", "evaluate"]  # noqa: RUF022 (pipeline order)


def __getattr__(name: str):
    if name in STAGES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(STAGES))
