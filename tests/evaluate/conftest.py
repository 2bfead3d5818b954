"""The evaluate tests run on the quick demo's cohort (``tests/conftest.py``: 3 mm, 2 patients + 1
control, 2 sessions, 2 scanners, preprocessed with IQMs), with the simulator's truth on the session
grids (``derivatives/dawm-truth-label``) as the reference."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def evaluate_cohort(quick_demo) -> Path:
    """sub-ms001 (prisma3t, 3D FLAIR), sub-ms002 (achieva3t, 2D FLAIR), sub-hc001 (prisma3t); two
    sessions each; ``derivatives/dawm-truth-label`` = truth on the session grids,
    ``derivatives/dawm-truth`` = the simulator's truth (transition maps)."""
    return quick_demo[0] / "bids"
