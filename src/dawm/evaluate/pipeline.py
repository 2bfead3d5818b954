"""The ``dawm evaluate`` stage: a prediction folder scored against a reference folder.

Both folders hold ``sub-X/[ses-Y/]anat/*_space-session_desc-dawm_dseg.nii.gz`` (0 normal,
1 lesion, 2 DAWM); sessions are matched by relative path (:mod:`dawm.evaluate.inputs`) and scored
one by one (:mod:`dawm.evaluate.sessions`; a failing session is logged and skipped). The report
sections (:mod:`dawm.evaluate.sections`) then write, into ``output_dir``: ``metrics.tsv``,
``volumes.tsv``, ``agreement.tsv``, ``bias_groups.tsv``, ``bias_quality.tsv``,
``bias_location.tsv``, ``configurations.tsv``, ``evolution.tsv``, ``association.tsv``,
``report.html``, ``summary.json`` (key numbers) and ``provenance.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dawm.bids.derivatives import write_json
from dawm.errors import DawmError, InputError, RunFailed
from dawm.evaluate import sections
from dawm.evaluate.inputs import resolve_inputs, session_metadata
from dawm.evaluate.metrics import agreement_table
from dawm.evaluate.report import HtmlReport
from dawm.evaluate.sections import IDS, Run, with_meta
from dawm.evaluate.sessions import CLASSES

log = logging.getLogger(__name__)


@dataclass
class EvaluationSummary:
    """What :func:`evaluate_dataset` wrote (``files``: name -> path), its key ``numbers`` and the
    sessions that could not be scored (``failed``: session -> reason)."""

    output_dir: Path
    report: Path
    files: dict[str, Path]
    numbers: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _volumes(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per session: predicted / reference lesion and DAWM volume (ml) and their errors."""
    wide = metrics.pivot_table(index=IDS, columns="class", values=["volume_pred_ml", "volume_ref_ml"], aggfunc="first")
    out = pd.DataFrame({f"{w}_{cls}_ml": wide[(f"volume_{w}_ml", cls)] for cls in CLASSES for w in ("pred", "ref")})
    for cls in CLASSES:
        out[f"{cls}_error_ml"] = out[f"pred_{cls}_ml"] - out[f"ref_{cls}_ml"]
    return out.reset_index()


def _json_number(value: Any) -> Any:
    """NaN/inf -> None (JSON has no NaN); numpy scalars -> Python."""
    value = value.item() if isinstance(value, np.generic) else value
    return None if isinstance(value, float) and not np.isfinite(value) else value


def evaluate_dataset(
    pred_dir: str | Path,
    ref_dir: str | Path,
    output_dir: str | Path,
    *,
    bids_dir: str | Path | None = None,
    preprocess_dir: str | Path | None = None,
    truth_dir: str | Path | None = None,
    compare: dict[str, Path] | None = None,
    n_boot: int = 1000,
    progress: Callable[[str], None] | None = None,
) -> EvaluationSummary:
    """Score ``pred_dir`` against ``ref_dir`` and write the tables, ``report.html``, ``summary.json``
    and ``provenance.json`` into ``output_dir`` (see the module docstring). ``bids_dir``,
    ``preprocess_dir`` and ``truth_dir`` default to the folders the prediction derives from
    (:func:`dawm.evaluate.inputs.resolve_inputs`); sections that need a missing one are skipped with
    a note. ``compare``: name -> other prediction folder. ``InputError`` for unusable inputs,
    ``RunFailed`` when no session could be scored."""
    step = progress or (lambda text: None)
    inputs = resolve_inputs(pred_dir, ref_dir, bids_dir=bids_dir, preprocess_dir=preprocess_dir, truth_dir=truth_dir)
    for name, folder in (compare or {}).items():
        if not Path(folder).is_dir():
            raise InputError(f"{folder}: prediction folder of configuration {name!r} not found")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = pd.DataFrame(columns=IDS)
    if inputs.bids_dir is not None:
        try:
            meta = session_metadata(inputs.bids_dir)
        except DawmError as exc:
            inputs.notes.append(f"no session metadata: {exc}")
    run = Run(inputs, out, meta, n_boot, HtmlReport("DAWM evaluation"), notes=list(inputs.notes))
    step("scoring sessions")
    metrics, locations, failed = sections.score_all(run, inputs.pairs, locations=True, what="sessions")
    if metrics.empty:
        raise RunFailed(
            f"{inputs.pred_dir}: no session could be scored ({len(failed)} failed: "
            + "; ".join(f"{k}: {e}" for k, e in failed.items())
            + ")"
        )
    run.tsv("metrics.tsv", with_meta(metrics, meta))
    volumes = run.tsv("volumes.tsv", _volumes(metrics))
    agreement = run.tsv(
        "agreement.tsv",
        pd.DataFrame(
            [
                {
                    "class": cls,
                    **agreement_table(
                        volumes[f"pred_{cls}_ml"], volumes[f"ref_{cls}_ml"], groups=volumes.participant_id.to_numpy(), n_boot=n_boot
                    ),
                }
                for cls in CLASSES
            ]
        ),
    )
    sections.summary_section(run, metrics, agreement, failed)
    step("accuracy")
    sections.accuracy_section(run, metrics, volumes, agreement)
    step("bias")
    sections.bias_section(run, metrics, locations)
    sections.configurations_section(run, metrics, compare or {})
    step("evolution")
    sections.evolution_section(run)
    step("clinical association")
    sections.association_section(run, volumes)
    config = {
        "pred_dir": inputs.pred_dir,
        "ref_dir": inputs.ref_dir,
        "bids_dir": inputs.bids_dir,
        "preprocess_dir": inputs.preprocess_dir,
        "truth_dir": inputs.truth_dir,
        "compare": {k: str(v) for k, v in (compare or {}).items()},
        "n_boot": n_boot,
    }
    sections.provenance_section(run, {k: str(v) if isinstance(v, Path) else v for k, v in config.items()}, failed)
    run.files["summary.json"] = write_json(out / "summary.json", {k: _json_number(v) for k, v in run.numbers.items()})
    report = run.rep.write(out / "report.html")
    run.files["report.html"] = report
    return EvaluationSummary(out, report, run.files, run.numbers, run.notes, failed)
