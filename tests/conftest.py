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


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """``dawm demo --quick`` run once (3 mm: 2 patients + 1 control, 2 sessions, 2 scanners; every
    stage); returns ``(output folder, CLI output)``. The demo test and the evaluate tests share it."""
    from typer.testing import CliRunner

    from dawm.cli import app

    out = tmp_path_factory.mktemp("demo")
    res = CliRunner().invoke(app, ["demo", "--quick", "--output", str(out), "--jobs", "2"])
    assert res.exit_code == 0, res.output
    return out, res.output
