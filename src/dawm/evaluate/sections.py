"""The sections of the ``dawm evaluate`` report: one function per section, each computing its
statistics, writing its TSV into the output folder and adding its tables and figures to the report.
They share a :class:`Run` (inputs, session metadata, the report, what was written). Dice,
sensitivity and their summaries are over the sessions whose reference holds the class (an empty
reference makes Dice 1 or 0 by convention only); volume errors are over every session."""

from __future__ import annotations

import functools
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.tools.sm_exceptions import ModelWarning

from dawm.bids.derivatives import write_json, write_tsv
from dawm.errors import DawmError, InputError
from dawm.evaluate import figures
from dawm.evaluate.association import clinical_association, group_difference
from dawm.evaluate.bias import compare_groups, quality_association
from dawm.evaluate.inputs import EvaluationInputs, SessionPair, match_sessions, quality_table, simulated_edss_coefficient, truth_volumes
from dawm.evaluate.metrics import bootstrap_ci
from dawm.evaluate.report import HtmlReport
from dawm.evaluate.sessions import CLASSES, background_image, load_pair, score_session, session_transitions
from dawm.image.orientation import to_canonical
from dawm.image.resample import voxel_sizes
from dawm.label.config import LabelConfig
from dawm.labels import DAWM_FATE_5Y
from dawm.parallel import run_all
from dawm.provenance import provenance

log = logging.getLogger(__name__)

IDS = ["participant_id", "session_id"]
#: Bias factors: report label -> session metadata column.
FACTORS = {"scanner": "scanner", "manufacturer": "manufacturer", "field strength (T)": "field_t", "FLAIR 2D/3D": "flair_type"}
FATES = {"dawm_to_lesion": "DAWM→lesion", "dawm_to_normal": "DAWM→normal", "dawm_persistent": "persistent DAWM", "new_dawm": "new DAWM"}
#: DAWM fate over about five years in the literature, as the simulator draws it.
LITERATURE = {"DAWM→lesion": DAWM_FATE_5Y["lesion"], "persistent DAWM": DAWM_FATE_5Y["persist"], "DAWM→normal": DAWM_FATE_5Y["resolve"]}
COVARIATES = ("age", "C(sex)", "lesion_ml", "disease_duration")


@dataclass
class Run:
    """State shared by the sections: inputs, metadata, the report being written, outputs."""

    inputs: EvaluationInputs
    out: Path
    meta: pd.DataFrame
    n_boot: int
    rep: HtmlReport
    files: dict[str, Path] = field(default_factory=dict)
    numbers: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def tsv(self, name: str, table: pd.DataFrame) -> pd.DataFrame:
        self.files[name] = write_tsv(self.out / name, table)
        return table

    def note(self, text: str) -> None:
        log.info("%s", text)
        self.notes.append(text)
        self.rep.add_text(f"*{text}*")


def scored(df: pd.DataFrame, cls: str) -> pd.DataFrame:
    """Rows of class ``cls`` whose reference holds it (where Dice means something): the sessions
    whose Dice the summary averages (:func:`dawm.metrics.mean_dice`, the mean over sessions, not pooled)."""
    return df[(df["class"] == cls) & (df["volume_ref_ml"] > 0)]


@contextmanager
def _small_sample_warnings_off() -> Iterator[None]:
    """Silence numpy/statsmodels warnings of degenerate small-sample fits (their results say so: NaN, not estimable)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", ModelWarning)
        yield


def with_meta(df: pd.DataFrame, meta: pd.DataFrame) -> pd.DataFrame:
    return df.merge(meta, on=IDS, how="left") if not meta.empty else df


def score_all(run: Run, pairs: list[SessionPair], *, locations: bool, what: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Score every pair (failures are logged by ``run_all``); returns metrics, location rows, failures."""
    fn = functools.partial(score_session, locations=locations, pre_dir=run.inputs.preprocess_dir)
    outcomes = run_all(fn, pairs, names=[p.key for p in pairs], description=f"scoring {what}")
    ok = [o.result for o in outcomes if o.ok]
    metrics = pd.DataFrame([r for s in ok for r in s.metrics])
    locs = pd.DataFrame([r for s in ok for r in s.locations])
    return metrics, locs, {o.name: str(o.error) for o in outcomes if not o.ok}


def summary_section(run: Run, metrics: pd.DataFrame, agreement: pd.DataFrame, failed: dict[str, str]) -> None:
    """Key numbers: sessions, mean Dice with a subject-level bootstrap CI, lesion F1, volume agreement."""
    n = run.numbers
    n.update(
        n_sessions=int(metrics[IDS].drop_duplicates().shape[0]),
        n_subjects=int(metrics.participant_id.nunique()),
        n_failed=len(failed),
        n_only_prediction=len(run.inputs.only_pred),
        n_only_reference=len(run.inputs.only_ref),
    )
    for cls in CLASSES:
        d = scored(metrics, cls)
        est, lo, hi = bootstrap_ci(d.dice.to_numpy(), np.mean, n_boot=run.n_boot, groups=d.participant_id.to_numpy())
        n.update({f"{cls}_n_scored": len(d), f"{cls}_dice_mean": est, f"{cls}_dice_ci_low": lo, f"{cls}_dice_ci_high": hi})
        a = agreement.set_index("class").loc[cls]
        n.update({f"{cls}_volume_{k}": float(a[k]) for k in ("icc_a1", "spearman_rho", "bias", "loa_low", "loa_high")})
    n["lesion_f1_mean"] = float(scored(metrics, "lesion").lesion_f1.mean())
    run.rep.add_heading("Summary")
    run.rep.add_text(
        f"{n['n_sessions']} session(s) of {n['n_subjects']} subject(s): predictions in `{run.inputs.pred_dir}` "
        f"against `{run.inputs.ref_dir}`. Dice is averaged over the sessions whose reference holds the class "
        f"(a mean over sessions, not pooled); "
        f"95 % CIs are percentile bootstraps over subjects ({run.n_boot} resamples)."
    )
    run.rep.add_key_values(
        {
            "sessions scored": n["n_sessions"],
            "sessions failed": n["n_failed"],
            "sessions only in the prediction / reference": f"{n['n_only_prediction']} / {n['n_only_reference']}",
            "DAWM Dice, mean (95 % CI)": f"{n['dawm_dice_mean']:.3f} ({n['dawm_dice_ci_low']:.3f}–{n['dawm_dice_ci_high']:.3f}), n = {n['dawm_n_scored']}",
            "lesion Dice, mean (95 % CI)": f"{n['lesion_dice_mean']:.3f} ({n['lesion_dice_ci_low']:.3f}–{n['lesion_dice_ci_high']:.3f}), n = {n['lesion_n_scored']}",
            "lesion-wise F1, mean": n["lesion_f1_mean"],
            "DAWM volume ICC(A,1)": n["dawm_volume_icc_a1"],
            "DAWM volume Spearman ρ": n["dawm_volume_spearman_rho"],
            "DAWM volume Bland–Altman bias (ml)": n["dawm_volume_bias"],
        },
        "Key numbers",
    )
    skipped = [f"{r}: only in the prediction" for r in run.inputs.only_pred] + [f"{r}: only in the reference" for r in run.inputs.only_ref]
    if skipped or failed:
        run.rep.add_text("Sessions not scored:\n\n" + "\n".join(f"- {s}" for s in skipped + [f"{k}: {e}" for k, e in failed.items()]))


def accuracy_section(run: Run, metrics: pd.DataFrame, volumes: pd.DataFrame, agreement: pd.DataFrame) -> None:
    """Per-class metric means, volume agreement with Bland–Altman plots, and three example overlays."""
    rep = run.rep
    rep.add_heading("Accuracy")
    cols = ["dice", "precision", "recall", "hd95_mm", "assd_mm", "volume_error_ml", "lesion_f1"]
    means = pd.concat([scored(metrics, c) for c in CLASSES]).groupby("class")[[c for c in cols if c in metrics]].mean()
    rep.add_table(means, "Mean per class over sessions with the class in the reference (metrics.tsv)")
    rep.add_heading("Volume agreement", 3)
    rep.add_table(
        agreement[["class", "n", "icc_a1", "icc_a1_ci_low", "icc_a1_ci_high", "spearman_rho", "pearson_r", "bias", "loa_low", "loa_high"]],
        "Predicted against reference volumes (ml, agreement.tsv)",
    )
    for cls in CLASSES:
        rep.add_figure(
            figures.bland_altman_plot(volumes[f"pred_{cls}_ml"], volumes[f"ref_{cls}_ml"], label=f"{cls} volume"),
            f"Bland–Altman of the {cls} volume (ml)",
        )
    rep.add_heading("Examples", 3)
    d = scored(metrics, "dawm").sort_values("dice")
    d = d if not d.empty else metrics[metrics["class"] == "dawm"].sort_values("dice")
    picks = {"best": len(d) - 1, "median": len(d) // 2, "worst": 0} if len(d) else {}
    pairs = {(p.ids["participant_id"], p.ids["session_id"]): p for p in run.inputs.pairs}
    shown: set[int] = set()
    for label, i in picks.items():
        if i in shown:  # fewer than three sessions: each shown once
            continue
        shown.add(i)
        row = d.iloc[i]
        pair = pairs[(row.participant_id, row.session_id)]
        pred, ref, affine = load_pair(pair)
        image, name = background_image(pair, run.inputs.preprocess_dir, pred.shape, affine)
        if image is None:
            run.note(f"{pair.key}: no preprocessed FLAIR or T1w to draw on")
            continue
        # closest-RAS voxel order, so the three panels are truly axial, coronal and sagittal
        pred, ref = to_canonical(np.stack([pred, ref]), affine)[0]
        image, ras_affine = to_canonical(image, affine)
        masks = {"reference DAWM": ref == 2, "predicted DAWM": pred == 2, "reference lesion": ref == 1, "predicted lesion": pred == 1}
        rep.add_figure(
            figures.overlay_three_planes(image, masks, voxel_sizes(ras_affine), f"{label}: {pair.key}"),
            f"{label} DAWM Dice ({row.dice:.3f}): {pair.key} on the preprocessed {name}",
        )


def _group_tests(df: pd.DataFrame, value: str, by: str, **keys: str) -> pd.DataFrame:
    res = compare_groups(df, value, by)
    table = res["table"].rename(columns={by: "level"}).assign(level=lambda t: t.level.astype(str))
    table = table.assign(**keys, metric=value, test=res["test"], statistic=res["statistic"], p=res["p"])
    return table[[*keys, "metric", *[c for c in table.columns if c not in keys and c != "metric"]]]


def bias_section(run: Run, metrics: pd.DataFrame, locations: pd.DataFrame) -> None:
    """Accuracy by scanner and sequence, against image quality, and by lesion location class."""
    data = with_meta(metrics, run.meta)
    run.rep.add_heading("Bias")
    _scanner_bias(run, data)
    _quality_bias(run, data)
    _location_bias(run, locations)


def _scanner_bias(run: Run, data: pd.DataFrame) -> None:
    """DAWM and lesion Dice and DAWM volume error per scanner, manufacturer, field strength, FLAIR type."""
    run.rep.add_heading("Scanner and sequence", 3)
    factors = {k: c for k, c in FACTORS.items() if c in data}
    if not factors:
        run.note("no session metadata: no scanner or sequence comparison")
        return
    tests = [
        _group_tests(sub, value, col, factor=label, **{"class": cls})
        for label, col in factors.items()
        for cls, value, sub in (
            ("dawm", "dice", scored(data, "dawm")),
            ("lesion", "dice", scored(data, "lesion")),
            ("dawm", "volume_error_ml", data[data["class"] == "dawm"]),
        )
    ]
    table = run.tsv("bias_groups.tsv", pd.concat(tests, ignore_index=True))
    run.rep.add_table(
        table[["factor", "class", "metric", "level", "n", "mean", "ci_low", "ci_high", "test", "p"]],
        "Accuracy per level (bias_groups.tsv; Mann-Whitney U for 2 levels, Kruskal-Wallis for more)",
    )
    for label, col in factors.items():
        if data[col].nunique() > 1:
            run.rep.add_figure(
                figures.boxplot_by(scored(data, "dawm"), "dice", col, title=f"DAWM Dice by {label}"), f"DAWM Dice by {label}"
            )


def _quality_bias(run: Run, data: pd.DataFrame) -> None:
    """Dice against the preprocess IQMs (Spearman and a scanner-adjusted mixed model, per SD)."""
    run.rep.add_heading("Image quality", 3)
    quality, cols = quality_table(run.inputs.preprocess_dir) if run.inputs.preprocess_dir else (pd.DataFrame(), [])
    if not cols:
        run.note("no image-quality metrics (preprocess group_iqm.tsv): no quality association")
        return
    covs = ("scanner",) if "scanner" in data else ()
    per_class = {cls: scored(data, cls).merge(quality, on=IDS, how="left") for cls in CLASSES}
    for cls in [c for c, df in per_class.items() if df.dice.nunique() < 2]:
        run.note(f"{cls} Dice does not vary over the {len(per_class.pop(cls))} session(s) with {cls}: no quality association")
    if not per_class:
        return
    with _small_sample_warnings_off():
        assoc = pd.concat(
            [
                quality_association(df, "dice", cols, covariates=covs).assign(**{"class": cls}).sort_values("p")
                for cls, df in per_class.items()
            ],
            ignore_index=True,
        )
    run.tsv("bias_quality.tsv", assoc)
    run.rep.add_table(
        assoc[["class", "quality", "n", "n_groups", "spearman_rho", "spearman_p", "model", "coef", "se", "p"]],
        "Dice against image-quality metrics (bias_quality.tsv; coef per SD of the metric, scanner-adjusted; "
        "clustered standard errors need many subjects (n_groups))",
    )
    dawm = assoc[assoc["class"] == "dawm"].dropna(subset=["spearman_rho"])
    if len(dawm):
        top = dawm.loc[dawm.spearman_rho.abs().idxmax(), "quality"]
        run.rep.add_figure(
            figures.scatter_with_fit(per_class["dawm"], top, "dice", hue="scanner" if covs else None, title=f"DAWM Dice against {top}"),
            f"DAWM Dice against the most associated metric, {top}",
        )


def _location_bias(run: Run, locations: pd.DataFrame) -> None:
    """Dice, sensitivity and volume error per location class, with a Kruskal-Wallis test."""
    run.rep.add_heading("Location", 3)
    if locations.empty:
        run.note("no location map (reference desc-location_dseg or preprocess outputs): no per-location analysis")
        return
    run.tsv("bias_location.tsv", locations)
    present = locations[locations.volume_ref_ml > 0]
    tests = [
        _group_tests(df[df["class"] == cls], value, "location", **{"class": cls})
        for value, df in (("dice", present), ("sensitivity", present), ("volume_error_ml", locations))
        for cls in CLASSES
    ]
    run.rep.add_table(
        pd.concat(tests, ignore_index=True)[["class", "metric", "level", "n", "mean", "median", "test", "p"]],
        "Per location class (bias_location.tsv): Dice and sensitivity where the reference has the class there, "
        "volume error (ml) everywhere",
    )
    for cls in CLASSES:
        run.rep.add_figure(
            figures.boxplot_by(present[present["class"] == cls], "dice", "location", title=f"{cls} Dice by location"),
            f"{cls} Dice by location class",
        )
    sens = present[present["class"] == "dawm"].groupby("location").sensitivity.mean()
    run.numbers.update({f"dawm_sensitivity_{k}": float(v) for k, v in sens.items()})


def configurations_section(run: Run, metrics: pd.DataFrame, compare: dict[str, Path]) -> None:
    """Other predictions (e.g. other input channels) against the same reference."""
    run.rep.add_heading("Configurations", 3)
    if not compare:
        run.note("no other configuration given (--compare NAME=DIR)")
        return
    tables = [metrics.assign(config="main")]
    for name, folder in compare.items():
        try:
            pairs, _, _ = match_sessions(Path(folder), run.inputs.ref_dir)
        except InputError as exc:
            run.note(f"configuration {name} skipped: {exc}")
            continue
        tables.append(score_all(run, pairs, locations=False, what=name)[0].assign(config=name))
    cols = ["config", *IDS, "class", "dice", "precision", "recall", "volume_pred_ml", "volume_ref_ml", "volume_error_ml"]
    data = run.tsv("configurations.tsv", pd.concat(tables, ignore_index=True)[cols])
    tests = pd.concat([_group_tests(scored(data, cls), "dice", "config", **{"class": cls}) for cls in CLASSES], ignore_index=True)
    run.rep.add_table(
        tests[["class", "level", "n", "mean", "ci_low", "ci_high", "test", "p"]], "Dice per configuration (configurations.tsv)"
    )
    run.rep.add_figure(
        figures.boxplot_by(scored(data, "dawm"), "dice", "config", title="DAWM Dice by configuration"), "DAWM Dice by configuration"
    )


def evolution_section(run: Run) -> None:
    """DAWM fates between consecutive sessions, predicted and reference (and the simulator's truth)."""
    run.rep.add_heading("Evolution")
    inputs = run.inputs
    by_subject: dict[str, list] = {}
    for p in sorted(inputs.pairs, key=lambda p: (p.subject, p.session or "")):
        by_subject.setdefault(p.subject, []).append(p)
    steps = [(a, b) for s in by_subject.values() for a, b in zip(s, s[1:])]
    if not steps or inputs.preprocess_dir is None:
        run.note("no subject with two sessions and preprocessed T1w: no evolution analysis")
        return
    rows = []
    for a, b in steps:
        try:
            rows += session_transitions(a, b, inputs.preprocess_dir, inputs.truth_dir)
        except (DawmError, ValueError, OSError, RuntimeError) as exc:
            log.error("%s -> %s: evolution failed: %s", a.key, b.key, exc)
            run.notes.append(f"evolution {a.key} -> {b.key} failed: {exc}")
    if not rows:
        run.note("every evolution step failed (see the log)")
        return
    evo = run.tsv("evolution.tsv", pd.DataFrame(rows))
    frac = []
    for source, g in evo.groupby("source", sort=False):
        base = g.baseline_dawm_ml.sum()
        frac += [
            {"source": source, "transition": t, "fraction": g[f"{k}_ml"].sum() / base if base > 0 else np.nan} for k, t in FATES.items()
        ]
    frac += [{"source": "literature (5 y)", "transition": t, "fraction": v} for t, v in LITERATURE.items()]
    table = pd.DataFrame(frac).pivot(index="transition", columns="source", values="fraction").reindex(list(FATES.values()))
    run.rep.add_text(
        f"Each follow-up is registered rigidly to the session before it (the baseline for the first follow-up), "
        f"as the simulator's transition maps are. Fractions pool the {len(steps)} step(s): transition volume over baseline "
        f"DAWM volume. The literature expects about {LITERATURE['DAWM→lesion']:.0%} of DAWM to become lesion, "
        f"{LITERATURE['persistent DAWM']:.0%} to persist and {LITERATURE['DAWM→normal']:.0%} to resolve over about five years."
    )
    run.rep.add_table(table, "Share of baseline DAWM per transition (evolution.tsv)")
    fates = pd.DataFrame(frac).query("transition != 'new DAWM'")
    run.rep.add_figure(
        figures.transition_bars(fates, title="Fate of baseline DAWM"), "Fate of baseline DAWM: predicted, reference, truth and literature"
    )
    run.numbers.update(
        {
            f"evolution_{s}_{k}": float(table.loc[t, s])
            for s in table.columns
            if s in ("predicted", "reference", "truth")
            for k, t in FATES.items()
            if t in table.index
        }
    )


def association_section(run: Run, volumes: pd.DataFrame) -> None:
    """EDSS against DAWM volume (predicted, reference, truth), and DAWM volume by clinical group."""
    run.rep.add_heading("Clinical association")
    data = with_meta(volumes, run.meta)
    if "edss" not in data or "group" not in data:
        run.note("no participants.tsv / sessions.tsv: no clinical association")
        return
    truth = truth_volumes(run.inputs.truth_dir)
    if truth is not None and {"dawm_ml", "lesion_ml"} <= set(truth.columns):
        named = truth[IDS + ["dawm_ml", "lesion_ml"]].rename(columns={"dawm_ml": "truth_dawm_ml", "lesion_ml": "truth_lesion_ml"})
        data = data.merge(named, on=IDS, how="left")
    simulated = simulated_edss_coefficient(run.inputs.truth_dir)
    patients = data[data.group.notna() & (data.group != LabelConfig().control_group)]
    rows = []
    for source in ("pred", "ref", "truth"):
        if f"{source}_dawm_ml" not in patients:
            continue
        df = patients.assign(dawm_ml=patients[f"{source}_dawm_ml"], lesion_ml=patients[f"{source}_lesion_ml"])
        row: dict[str, Any] = {"volumes": {"pred": "predicted", "ref": "reference", "truth": "truth"}[source], "n": len(df)}
        try:
            with _small_sample_warnings_off():
                res = clinical_association(df, outcome="edss", exposure="dawm_ml", covariates=COVARIATES)
            row.update(
                {k: res[k] for k in ("coef", "se", "ci_low", "ci_high", "p", "beta_std", "n", "r2", "formula")},
                dropped=", ".join(f"{k} ({v})" for k, v in res["dropped_covariates"].items()),
            )
        except ValueError as exc:
            row["note"] = f"not estimable: {exc}"
        if simulated is not None and "ci_low" in row:
            row.update(simulated_coef=simulated, ci_covers_simulated=bool(row["ci_low"] <= simulated <= row["ci_high"]))
        rows.append(row)
    table = run.tsv("association.tsv", pd.DataFrame(rows))
    sim = f" The simulator's EDSS model has {simulated} EDSS per ml of DAWM." if simulated is not None else ""
    run.rep.add_text(f"OLS of EDSS on DAWM volume (ml) adjusted for {', '.join(COVARIATES)}, over patient sessions.{sim}")
    run.rep.add_table(table, "EDSS per ml of DAWM (association.tsv)")
    run.numbers.update({f"edss_per_dawm_ml_{r['volumes']}": r.get("coef", np.nan) for r in rows}, edss_simulated_dawm_coef=simulated)
    run.numbers.update({f"edss_ci_covers_simulated_{r['volumes']}": r["ci_covers_simulated"] for r in rows if "ci_covers_simulated" in r})
    groups = group_difference(data.assign(dawm_ml=data.pred_dawm_ml), "dawm_ml", "group", order=("HC", "RRMS", "SPMS", "PPMS"))
    run.rep.add_table(groups["table"], f"Predicted DAWM ml by group: {groups['test']}, p = {groups['p']:.3g}")
    run.rep.add_figure(
        figures.scatter_with_fit(
            patients.assign(dawm_ml=patients.pred_dawm_ml), "dawm_ml", "edss", hue="group", title="EDSS against predicted DAWM volume"
        ),
        "EDSS against predicted DAWM volume (ml)",
    )


def provenance_section(run: Run, config: dict[str, Any], failed: dict[str, str]) -> None:
    """Input folders, versions and the sessions' status; writes provenance.json."""
    record = provenance("evaluate", config)
    record["sessions"] = {p.key: "ok" for p in run.inputs.pairs} | {k: f"failed: {e}" for k, e in failed.items()}
    run.files["provenance.json"] = write_json(run.out / "provenance.json", record)
    run.rep.add_heading("Inputs & provenance")
    run.rep.add_key_values({k: str(v) for k, v in config.items()} | {"dawm version": record["dawm_version"]}, "Inputs")
    if run.notes:
        run.rep.add_text("Notes:\n\n" + "\n".join(f"- {n}" for n in run.notes))
