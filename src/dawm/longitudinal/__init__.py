"""Longitudinal output from predictions alone: follow-up sessions aligned to the baseline, lesion and
DAWM transitions, new and enlarging lesions (no reference needed).

* :mod:`~dawm.longitudinal.transitions`: voxel transitions of two label maps on one grid (the array
  core ``dawm evaluate`` uses too);
* :mod:`~dawm.longitudinal.lesions`: new and enlarging lesions (connected components);
* :mod:`~dawm.longitudinal.alignment`: rigid follow-up -> baseline registration and resampling;
* :mod:`~dawm.longitudinal.sessions`: the sessions of a ``dawm predict`` folder and their
  preprocessed images;
* :mod:`~dawm.longitudinal.outputs`: :func:`longitudinal_outputs`, the files and the table.
"""

from dawm.longitudinal.outputs import COLUMNS, longitudinal_outputs

__all__ = ["COLUMNS", "longitudinal_outputs"]
