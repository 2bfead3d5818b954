"""BIDS naming, dataset discovery and derivative writing. Only this package knows file names:
:mod:`dawm.bids.derivative_files` has one object per derivative (its writer and every reader use
it), :class:`~dawm.bids.layout.RawFiles` names the raw dataset's files."""

from dawm.bids.derivative_files import LabelFiles, MaskFiles, PredictFiles, PreprocessFiles, TruthFiles
from dawm.bids.entities import BidsName, parse_name
from dawm.bids.layout import RawFiles, SessionInputs, SessionRef, dataset_root, discover_sessions

__all__ = [
    "BidsName",
    "parse_name",
    "SessionInputs",
    "SessionRef",
    "discover_sessions",
    "dataset_root",
    "RawFiles",
    "PreprocessFiles",
    "LabelFiles",
    "PredictFiles",
    "TruthFiles",
    "MaskFiles",
]
