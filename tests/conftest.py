"""Shared fixtures: a tiny simulated cohort made once per test session."""

from __future__ import annotations

import pytest

from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import SimulationConfig


@pytest.fixture(scope="session")
def small_cohort(tmp_path_factory):
    """2 patients + 1 control, 2 sessions, 2 scanners (3D FLAIR RAS float; 2D FLAIR LPS int16), 2 mm."""
    root = tmp_path_factory.mktemp("cohort") / "bids"
    result = simulate_cohort(SimulationConfig.small(), root, jobs=2)
    assert not result.failures, result.failures
    return result
