"""The demo runs the stages end to end and scores them against the truth (on a 3 mm one-subject cohort)."""

from typer.testing import CliRunner

import dawm.demo
from dawm.cli import app
from dawm.simulate.config import SimulationConfig


def test_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setattr(dawm.demo, "demo_config", lambda quick: SimulationConfig(patients=1, controls=0, sessions=1, scanners=1, resolution_mm=3.0))
    out = CliRunner().invoke(app, ["demo", "--output", str(tmp_path), "--jobs", "1"])
    assert out.exit_code == 0, out.output
    assert "Preprocessing against the truth" in out.output
    acc = (tmp_path / "preprocess_accuracy.tsv").read_text().splitlines()
    assert acc[0].startswith("session") and len(acc) == 2
    assert (tmp_path / "bids" / "derivatives" / "dawm-preprocess" / "group_iqm.tsv").exists()
