"""The demo: the pipeline on the embedded synthetic cohort, with accuracy against the known truth.

Stages run so far: simulate (2 mm cohort, or the tiny test preset), preprocess (on a grid of the
simulation's resolution), and the comparison of the preprocessing with the simulator's truth.
Labelling, training, prediction and the report join here as they land (issue 7 defines the end).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dawm.bids.derivatives import write_tsv
from dawm.bids.layout import discover_sessions
from dawm.parallel import Outcome
from dawm.preprocess.config import PreprocessConfig
from dawm.preprocess.evaluate import evaluate_session
from dawm.preprocess.pipeline import preprocess_dataset
from dawm.simulate.cohort import CohortResult, simulate_cohort
from dawm.simulate.config import SimulationConfig


@dataclass(frozen=True)
class DemoResult:
    cohort: CohortResult
    preprocess: list[Outcome]
    preprocess_accuracy: pd.DataFrame  # one row per session: Dice, co-registration error, N4 effect
    accuracy_tsv: Path


def demo_config(quick: bool) -> SimulationConfig:
    """The demo cohort: 6 patients + 3 controls, 2 sessions, 3 scanners at 2 mm; ``quick``: the test preset."""
    if quick:
        return SimulationConfig.small()
    return SimulationConfig(patients=6, controls=3, sessions=2, scanners=3, resolution_mm=2.0)


def run_demo(output: str | Path, *, quick: bool = False, jobs: int = 2) -> DemoResult:
    """Simulate, preprocess and score the preprocessing against the truth, under ``output``."""
    output = Path(output)
    config = demo_config(quick)
    bids = output / "bids"
    cohort = simulate_cohort(config, bids, jobs=jobs)
    pre_dir = bids / "derivatives" / "dawm-preprocess"
    outcomes = preprocess_dataset(bids, output=pre_dir, config=PreprocessConfig(spacing_mm=config.resolution_mm), jobs=jobs)
    done = {o.name for o in outcomes if o.ok}
    rows = []
    for session in discover_sessions(bids):
        if session.key in done:
            rows.append({"session": session.key, **evaluate_session(bids, pre_dir, session)})
    accuracy = pd.DataFrame(rows)
    path = write_tsv(output / "preprocess_accuracy.tsv", accuracy)
    return DemoResult(cohort, outcomes, accuracy, path)
