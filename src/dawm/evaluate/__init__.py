"""Evaluation stage: accuracy metrics, bias and clinical-association statistics, figures, report.

Public API (``dawm.evaluate``): :func:`evaluate_dataset` (prediction and reference folders in, the
report, tables and ``summary.json`` written, an :class:`EvaluationSummary` with the key numbers
back), and on arrays :func:`overlap_metrics` (Dice, precision, recall, HD95, ASSD, volumes of one
pair of masks), :func:`lesion_detection` (lesion-wise F1), :func:`dice`, :func:`class_counts`,
:func:`pooled_dice` and :func:`mean_dice` (:mod:`dawm.metrics`: pooled over sessions vs the mean over
sessions). Modules are imported on first use.
"""

from typing import TYPE_CHECKING

from dawm._lazy import lazy_exports

if TYPE_CHECKING:
    from dawm.evaluate.metrics import OverlapMetrics, lesion_detection, overlap_metrics
    from dawm.evaluate.pipeline import EvaluationSummary, evaluate_dataset
    from dawm.metrics import class_counts, dice, mean_dice, pooled_dice

__all__ = [
    "EvaluationSummary",
    "OverlapMetrics",
    "class_counts",
    "dice",
    "evaluate_dataset",
    "lesion_detection",
    "mean_dice",
    "overlap_metrics",
    "pooled_dice",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "evaluate_dataset": "dawm.evaluate.pipeline",
        "EvaluationSummary": "dawm.evaluate.pipeline",
        "overlap_metrics": "dawm.evaluate.metrics",
        "OverlapMetrics": "dawm.evaluate.metrics",
        "lesion_detection": "dawm.evaluate.metrics",
        "dice": "dawm.metrics",
        "class_counts": "dawm.metrics",
        "pooled_dice": "dawm.metrics",
        "mean_dice": "dawm.metrics",
    },
    globals(),
)
