"""Pre-processing of structural MRI: bias-field correction, tissue segmentation, image quality.

Public API (``dawm.preprocess``, paths in and out): :func:`preprocess_dataset` (a raw BIDS dataset in,
``derivatives/dawm-preprocess`` written, one :class:`dawm.parallel.Outcome` per session back, its
``result`` a :class:`SessionResult`) and :class:`PreprocessConfig`; on arrays :func:`preprocess_arrays`
(images + affines + config in, a :class:`PreprocessedSession` of session-grid arrays out, no file I/O). The modules are imported on first use.
"""

from typing import TYPE_CHECKING

from dawm._lazy import lazy_exports

if TYPE_CHECKING:
    from dawm.preprocess.config import PreprocessConfig
    from dawm.preprocess.pipeline import (
        PreprocessedSession,
        SessionResult,
        preprocess_arrays,
        preprocess_dataset,
    )

__all__ = ["PreprocessConfig", "PreprocessedSession", "SessionResult", "preprocess_arrays", "preprocess_dataset"]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "preprocess_dataset": "dawm.preprocess.pipeline",
        "SessionResult": "dawm.preprocess.pipeline",
        "preprocess_arrays": "dawm.preprocess.pipeline",
        "PreprocessedSession": "dawm.preprocess.pipeline",
        "PreprocessConfig": "dawm.preprocess.config",
    },
    globals(),
)
