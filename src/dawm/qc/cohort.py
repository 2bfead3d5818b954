"""The cohort page of ``dawm run BIDS_DIR OUTPUT_DIR group``: ``OUTPUT_DIR/group_report.html``.

Self-contained and offline like the session pages (:class:`dawm.evaluate.report.HtmlReport`): the
sessions with their status (failed ones with the reason), volumes and a link to each QC page
(relative, so the output folder can be moved or shared whole), lesion and DAWM volumes per
location class, a bar chart of each session's volumes and the longitudinal transitions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dawm.bids.derivative_files import PredictFiles
from dawm.evaluate.report import HtmlReport
from dawm.image.figures import DAWM_COLOUR, LESION_COLOUR

SHOWN = {
    "participant_id": "participant",
    "session_id": "session",
    "status": "status",
    "inputs": "inputs",
    "brain_ml": "brain ml",
    "lesion_ml": "lesion ml",
    "dawm_ml": "DAWM ml",
    "dawm_pct_wm": "DAWM % WM",
    "warnings": "warnings",
    "page": "QC page",
    "error": "reason",
}


def _volume_bars(sessions: pd.DataFrame) -> Figure | None:
    ok = sessions[sessions.status == "ok"].dropna(subset=["lesion_ml", "dawm_ml"])
    if ok.empty:
        return None
    names = [f"{p} {s}" if s != "n/a" else p for p, s in zip(ok.participant_id, ok.session_id)]
    y = np.arange(len(ok))
    fig = Figure(figsize=(8, 0.35 * len(ok) + 1.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.barh(y - 0.2, ok.lesion_ml.astype(float), height=0.4, color=LESION_COLOUR, label="lesion")
    ax.barh(y + 0.2, ok.dawm_ml.astype(float), height=0.4, color=DAWM_COLOUR, label="DAWM")
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ml")
    ax.legend(fontsize=8, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return fig


def write_cohort_page(
    path: str | Path,
    sessions: pd.DataFrame,
    *,
    volumes: pd.DataFrame | None = None,
    longitudinal: pd.DataFrame | None = None,
    notes: list[str] = (),
    bids_dir: str | Path | None = None,
) -> Path:
    """Write the cohort page to ``path`` from the rows of ``group_sessions.tsv`` (``qc_report``:
    each page's path relative to ``path``'s folder), the stacked volume tables (``volumes``, read
    from ``group_volumes.tsv`` beside ``path`` when None) and the transitions table."""
    path = Path(path)
    files = PredictFiles(path.parent)
    if volumes is None and files.group_volumes.exists():
        volumes = pd.read_csv(files.group_volumes, sep="\t", na_values="n/a")
    rep = HtmlReport("dawm cohort" + (f": {Path(bids_dir).name}" if bids_dir else ""))
    counts = sessions.status.value_counts()
    rep.add_text(
        "Every session of the dataset, its status, its volumes and a link to its QC page, which shows "
        "the brain mask and the lesion and DAWM maps to check before the volumes are used. Tables: "
        f"`{files.group_sessions.name}`, `{files.group_volumes.name}` (per location class), "
        f"`{files.transitions_table.name}` (longitudinal)."
    )
    rep.add_heading("Summary")
    rep.add_key_values(
        {
            "sessions": len(sessions),
            "ok": int(counts.get("ok", 0)),
            "failed": int(counts.get("failed", 0)),
            "not run": int(counts.get("not run", 0)),
            "source dataset": str(bids_dir) if bids_dir else "n/a",
        }
    )
    failed = sessions[sessions.status == "failed"]
    if not failed.empty:
        rep.add_text(
            "**Failed sessions:**\n\n"
            + "\n".join(
                f"- {p}{' ' + s if s != 'n/a' else ''}: {e}" for p, s, e in zip(failed.participant_id, failed.session_id, failed.error)
            )
        )
    for note in notes:
        rep.add_text(f"Note: {note}")

    rep.add_heading("Sessions")
    table = sessions.copy()
    table["page"] = ["open" if isinstance(q, str) and q != "n/a" else "—" for q in table.qc_report]
    table["error"] = [e if isinstance(e, str) and e != "n/a" else "" for e in table.error]
    cols = [c for c in SHOWN if c in table and (c != "error" or any(table.error))]
    rep.add_table(table[cols].rename(columns=SHOWN), float_format="{:.4g}", links={"QC page": list(table.qc_report)})
    fig = _volume_bars(sessions)
    if fig is not None:
        rep.add_figure(fig, "lesion and DAWM volume of each predicted session", dpi=90)

    rep.add_heading("Volumes per location class")
    if volumes is not None and not volumes.empty and "location" in volumes:
        v = volumes.copy()
        v["session"] = [f"{p} {s}" if isinstance(s, str) and s != "n/a" else p for p, s in zip(v.participant_id, v.session_id)]
        order = list(dict.fromkeys(v.location))
        for column, what in (("lesion_ml", "lesion ml"), ("dawm_ml", "DAWM ml")):
            pivot = v.pivot_table(index="session", columns="location", values=column, aggfunc="first", sort=False)[order]
            pivot.columns.name = None
            rep.add_table(pivot, f"{what} per location class (all = whole white matter)", float_format="{:.3g}")
    else:
        rep.add_text("No predicted session yet.")

    rep.add_heading("Longitudinal transitions")
    if longitudinal is None:
        rep.add_text("Not computed (see the note above).")
    elif longitudinal.empty:
        rep.add_text("No subject has two or more predicted sessions.")
    else:
        rep.add_table(longitudinal, "per subject and follow-up, against the baseline (transitions.tsv)", float_format="{:.3g}")
    return rep.write(path)
