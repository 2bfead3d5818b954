"""``dawm label``: voxel-wise z-scores of T1 and MTR against a normative reference, and the DAWM rule.

A DAWM voxel is normal-appearing white matter whose quantitative values are abnormal but not those
of a focal lesion. Modules: :mod:`config` (the settings), :mod:`normative` (controls / self
reference models), :mod:`zscores` (z maps and the joint chi2 score), :mod:`rules` (the rule, pure
array functions), :mod:`locations` (MAGNIMS-like location classes), :mod:`pipeline` (sessions and
datasets, BIDS derivatives).

Public API (``dawm.label``): :func:`label_dataset` (a preprocessed BIDS dataset in,
``derivatives/dawm-label`` written, one :class:`dawm.parallel.Outcome` per session back, its
``result`` a :class:`LabelResult` with the volumes), :class:`LabelConfig`, and on arrays
:func:`label_dawm` (eligible WM, abnormal and lesion masks in, the 0/1/2 label map out) and
:func:`location_classes` (MAGNIMS-like location of every voxel), and the stage's array core:
:func:`prepare_arrays` (session-grid T1/MTR maps, tissues, masks + affine + config in, a
:class:`PreparedSession` out) then :func:`label_arrays` (+ the normative reference: a
:class:`LabelledSession` with z maps, eligible WM, labels, probability map, volumes), no file I/O. Modules are imported on first use.
"""

from typing import TYPE_CHECKING

from dawm._lazy import lazy_exports

if TYPE_CHECKING:
    from dawm.label.config import LabelConfig
    from dawm.label.locations import location_classes
    from dawm.label.pipeline import (
        LabelledSession,
        LabelResult,
        PreparedSession,
        label_arrays,
        label_dataset,
        prepare_arrays,
    )
    from dawm.label.rules import label_dawm

__all__ = [
    "LabelConfig",
    "LabelResult",
    "LabelledSession",
    "PreparedSession",
    "label_arrays",
    "label_dataset",
    "label_dawm",
    "location_classes",
    "prepare_arrays",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "label_dataset": "dawm.label.pipeline",
        "LabelResult": "dawm.label.pipeline",
        "prepare_arrays": "dawm.label.pipeline",
        "label_arrays": "dawm.label.pipeline",
        "PreparedSession": "dawm.label.pipeline",
        "LabelledSession": "dawm.label.pipeline",
        "LabelConfig": "dawm.label.config",
        "label_dawm": "dawm.label.rules",
        "location_classes": "dawm.label.locations",
    },
    globals(),
)
