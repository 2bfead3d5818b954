"""The ``dawm`` command line: one thin function per command over the library.

BIDS-App style: ``dawm <command> BIDS_DIR [options]``; derivatives go to
``BIDS_DIR/derivatives/dawm-<stage>/`` unless ``--output`` says otherwise.

Exit codes, every command: 0 when every session succeeded, 1 when any failed (the summary names
each failed session and its reason), 2 for usage errors (bad option values, missing or unusable
input folders). The console shows progress bars, warnings, errors and the summary; the details go
to ``OUTPUT/logs/dawm-<command>-<UTC time>.log`` (:func:`dawm.log.log_to_folder`), and to the
console too with ``-v``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import NoReturn

import typer
from rich.table import Table

import dawm
from dawm.errors import DawmError, RunFailed
from dawm.log import console, log_to_folder, setup_logging
from dawm.parallel import BACKENDS, check_backend

app = typer.Typer(
    name="dawm",
    help="Diffusely abnormal white matter (DAWM) in multiple sclerosis, from the MRI hospitals acquire.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("dawm")


def _version(value: bool) -> None:
    if value:
        console.print(f"dawm {dawm.__version__}")
        raise typer.Exit()


@app.callback()
def main(
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        help="Show the details (INFO and DEBUG) on the console too; they always go to the log file in the output folder.",
    ),
    version: bool | None = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    setup_logging(verbose)


def _fail(exc: Exception) -> NoReturn:
    """Print ``exc`` without a traceback and exit: 1 when the work itself failed (``RunFailed``),
    2 for a usage error (any other ``DawmError``: bad option values, missing or unusable inputs)."""
    console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
    raise typer.Exit(code=1 if isinstance(exc, RunFailed) else 2)


def _backend(value: str) -> str:
    """``--backend`` callback: an unknown value is a usage error (exit 2) before any work starts."""
    try:
        return check_backend(value)
    except DawmError as exc:
        raise typer.BadParameter(f"must be {' or '.join(BACKENDS)}, got {value!r}") from exc


def _log_note(path: Path) -> None:
    """Say where the run's log file is (when anything was logged)."""
    if path.exists():
        console.print(f"log: {path}", soft_wrap=True)


def _volume_cells(volumes, pct_wm: bool = False) -> tuple[str, ...]:
    """The summary cells of one session's volume table: lesion and DAWM ml (and DAWM % of WM)."""
    row = volumes[volumes.location == "all"].iloc[0]
    cells = (f"{row.lesion_ml:.1f}", f"{row.dawm_ml:.1f}")
    return (*cells, f"{row.dawm_pct_wm:.2f}") if pct_wm else cells


def _report_outcomes(
    title: str, columns: tuple[str, ...], outcomes, row_of, footer: str | None = None, logfile: Path | None = None
) -> None:
    """Print one table row per session (``row_of(result)`` gives the cells after name and status),
    the footer, where ``logfile`` is, then the failures with their reasons; exit with code 1 when
    any session failed."""
    table = Table(title=title)
    for col in ("session", "status", *columns):
        table.add_column(col)
    for o in outcomes:
        if o.ok:
            status = "reused" if getattr(o.result, "reused", False) else "done"
            table.add_row(o.name, status, *row_of(o.result))
        else:
            table.add_row(o.name, "[red]failed[/]", *("-" for _ in columns))
    console.print(table)
    if footer:
        console.print(footer)
    if logfile is not None:
        _log_note(logfile)
    failed = [o for o in outcomes if not o.ok]
    for o in failed:
        console.print(f"[red]failed[/] {o.name}: {o.error}")
    if failed:
        raise typer.Exit(code=1)


#: ``--participant-label`` as the BIDS-Apps spell it: several labels after one flag, or the flag repeated.
LABEL_HELP = "several after one flag (BIDS-App style) or the flag repeated; with or without sub-"
#: Context of the commands that take ``--participant-label a b c`` (the labels after the first arrive as extra arguments).
LABELS_CONTEXT = {"allow_extra_args": True}


def _labels(ctx: typer.Context, participant_label: list[str] | None) -> list[str] | None:
    """The subjects of ``--participant-label l04 l20`` (``l20`` arrives as an extra argument) or of a
    repeated flag; ``DawmError`` for extra arguments without the flag."""
    if ctx.args and not participant_label:
        raise DawmError(f"unexpected argument(s): {' '.join(ctx.args)}")
    return [*(participant_label or []), *ctx.args] or None


@app.command(context_settings=LABELS_CONTEXT)
def run(
    ctx: typer.Context,
    bids_dir: Path = typer.Argument(..., help="BIDS dataset (raw; T1w and/or FLAIR per session are enough)."),
    output_dir: Path = typer.Argument(..., help="Output folder: predictions, preprocessing, a QC page per session, cohort tables."),
    analysis_level: str = typer.Argument(..., help="participant (preprocess, predict, QC pages) or group (cohort tables and page)."),
    participant_label: list[str] | None = typer.Option(None, "--participant-label", help=f"Subjects to process ({LABEL_HELP})."),
    model: Path | None = typer.Option(None, "--model", "-m", help="Model folder (default: the model bundled with dawm)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Sessions preprocessed in parallel."),
    tta: bool = typer.Option(False, "--tta", help="Average the 8 mirrored predictions (slower, slightly better)."),
) -> None:
    """The BIDS-App call: participant (preprocess, predict, a QC page per session), then group (cohort tables and page).

    `dawm run BIDS_DIR OUTPUT_DIR participant` preprocesses the sessions that need it, predicts lesions and DAWM and
    writes OUTPUT_DIR/sub-X/ses-Y/sub-X_ses-Y_desc-qc_report.html per session; `dawm run BIDS_DIR OUTPUT_DIR group`
    gathers every participant run into group_sessions.tsv, group_volumes.tsv, transitions.tsv and group_report.html.
    """
    from dawm.bids.derivative_files import PredictFiles
    from dawm.bids.layout import SessionRef
    from dawm.bidsapp import check_analysis_level, run_group, run_participant

    start = time.perf_counter()
    try:
        check_analysis_level(analysis_level)
        labels = _labels(ctx, participant_label)
        with log_to_folder(output_dir, f"run-{analysis_level}") as logfile:
            if analysis_level == "participant":
                outcomes = run_participant(bids_dir, output_dir, participant_label=labels, model_dir=model, jobs=jobs, tta=tta)
            else:
                result = run_group(bids_dir, output_dir, participant_label=labels)
    except (DawmError, ValueError) as exc:
        _fail(exc)
    seconds = time.perf_counter() - start
    if analysis_level == "participant":
        _report_outcomes(
            f"dawm run participant: {len(outcomes)} session(s) in {seconds:.0f} s",
            ("lesion ml", "DAWM ml"),
            outcomes,
            _volume_cells,
            footer=f"outputs: {output_dir}; QC pages: {PredictFiles(Path()).qc_page(SessionRef('X', 'Y'))}; "
            f"next: dawm run {bids_dir} {output_dir} group",
            logfile=logfile,
        )
        return
    table = Table(title=f"dawm run group: {len(result.sessions)} session(s) in {seconds:.0f} s")
    for col in ("session", "status", "lesion ml", "DAWM ml", "warnings"):
        table.add_column(col)
    for r in result.sessions.itertuples():
        name = r.participant_id + (f"_{r.session_id}" if r.session_id != "n/a" else "")
        status = {"ok": "ok", "failed": "[red]failed[/]"}.get(r.status, r.status)
        ml = [f"{v:.1f}" if isinstance(v, float) and v == v else "-" for v in (r.lesion_ml, r.dawm_ml)]
        table.add_row(name, status, *ml, "-" if r.warnings is None or r.warnings != r.warnings else str(int(r.warnings)))
    console.print(table)
    for note in result.notes:
        console.print(f"note: {note}", soft_wrap=True)
    for what, path in result.files.items():
        console.print(f"{what}: {path}", soft_wrap=True)
    _log_note(logfile)
    for r in result.failed.itertuples():
        console.print(f"[red]failed[/] {r.participant_id}{'_' + r.session_id if r.session_id != 'n/a' else ''}: {r.error}", soft_wrap=True)
    if not result.failed.empty:
        raise typer.Exit(code=1)


@app.command()
def simulate(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="Folder to write the BIDS dataset to (created)."),
    patients: int = typer.Option(24, min=0, help="Number of MS patients."),
    controls: int = typer.Option(8, min=0, help="Number of healthy controls."),
    sessions: int = typer.Option(2, min=1, max=5, help="Sessions per subject."),
    scanners: int = typer.Option(3, min=1, max=4, help="Scanner profiles used (round robin)."),
    resolution: float = typer.Option(
        1.0,
        "--resolution",
        min=1.0,
        max=3.0,
        help="Truth grid spacing in mm; acquisition voxels scale with it, their SNR as the square root of their volume.",
    ),
    seed: int = typer.Option(0, min=0, help="Random seed (same seed, same bytes)."),
    dawm_visibility: float = typer.Option(
        1.0,
        min=0.0,
        max=1.0,
        help="Share of DAWM's T1/T2/PD change rendered on T1w/FLAIR (1 = physics; lower values are an experimental departure for studies).",
    ),
    small: bool = typer.Option(False, "--small", help="Tiny preset for tests: 2 patients, 1 control, 2 mm (other options override it)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Subjects simulated in parallel."),
    backend: str = typer.Option("local", callback=_backend, help="local (process pool) or dask (a LocalCluster, or --address)."),
    address: str | None = typer.Option(None, help="Address of a running Dask scheduler (with --backend dask)."),
) -> None:
    """Simulate a realistic MS cohort (T1w, FLAIR, MP2RAGE, MT) in BIDS, with truth in derivatives/dawm-truth
    (and the log in derivatives/dawm-truth/logs, outside the raw dataset)."""
    from dawm.bids.derivative_files import TruthFiles
    from dawm.simulate.cohort import simulate_cohort
    from dawm.simulate.config import SimulationConfig

    given = dict(
        patients=patients,
        controls=controls,
        sessions=sessions,
        scanners=scanners,
        resolution_mm=resolution,
        seed=seed,
        dawm_visibility=dawm_visibility,
    )
    try:
        try:
            if small:
                overrides = {
                    k: v for k, v in given.items() if ctx.get_parameter_source({"resolution_mm": "resolution"}.get(k, k)).name != "DEFAULT"
                }
                config = SimulationConfig.small(**overrides)
            else:
                config = SimulationConfig(**given)
        except ValueError as exc:
            raise DawmError(f"invalid option: {exc}") from None
        start = time.perf_counter()
        with log_to_folder(TruthFiles.in_dataset(out).root, "simulate") as logfile:
            result = simulate_cohort(config, out, jobs=jobs, backend=backend, address=address)
    except DawmError as exc:
        _fail(exc)
    _print_cohort(result, time.perf_counter() - start)
    _log_note(logfile)
    if result.failures:
        raise typer.Exit(code=1)


def _print_cohort(result, seconds: float | None) -> None:
    table = Table(title=f"Simulated cohort in {result.root}" + (f" ({seconds:.0f} s)" if seconds is not None else ""))
    for col in ("group", "subjects", "sessions", "lesion ml (mean)", "DAWM ml (mean)", "with DAWM"):
        table.add_column(col)
    vols = result.volumes
    if not vols.empty:
        for group, g in vols.groupby("group"):
            table.add_row(
                group,
                str(g.participant_id.nunique()),
                str(len(g)),
                f"{g.lesion_ml.mean():.1f}",
                f"{g.dawm_ml.mean():.1f}",
                str(int((g.groupby("participant_id").dawm_ml.max() > 0).sum())),
            )
    console.print(table)
    auc = result.report[result.report.kind == "auc"]
    auc = auc[auc.scanner == "all"]
    if not auc.empty:
        console.print("DAWM vs NAWM voxel AUC: " + ", ".join(f"{r.modality} {r.mean:.2f}" for r in auc.itertuples()))
    from dawm.bids.derivative_files import TruthFiles

    truth = TruthFiles.in_dataset(result.root)
    console.print(f"truth: {truth.root}; report: {truth.report.name}, {truth.volumes_table.name}")
    for f in result.failures:
        console.print(f"[red]failed[/] {f.name}: {f.error}")


#: The key numbers the demo prints per comparison (all of them are in each report's summary.json).
DEMO_NUMBERS = ("dawm_n_scored", "dawm_dice_mean", "dawm_volume_spearman_rho", "dawm_volume_icc_a1", "lesion_dice_mean", "lesion_f1_mean")


@app.command()
def demo(
    output: Path = typer.Option(Path("demo_output"), "--output", "-o", help="Where the demo writes everything."),
    quick: bool = typer.Option(False, "--quick", help="A few minutes: the tests' tiny 3 mm cohort and network."),
    full: bool = typer.Option(
        False, "--full", help="The benchmark cohort (2 mm, 12 patients + 6 controls, longer training; about an hour on 2 cores)."
    ),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Parallel workers."),
) -> None:
    """Run the whole pipeline on the embedded synthetic cohort and say where everything is.

    Simulates a cohort (default: 6 patients + 3 controls, 2 sessions, 3 scanners, 2 mm), then
    preprocesses, labels DAWM from the quantitative maps, trains the CPU network on part of the
    subjects, predicts the others from T1w + FLAIR (and with one of them missing), and evaluates:
    HTML reports of the model against the labels and the truth, and of the labels against the truth.
    """
    from dawm.demo import run_demo

    if quick and full:
        _fail(DawmError("--quick and --full exclude each other"))
    start = time.perf_counter()
    try:
        with log_to_folder(output, "demo") as logfile:
            result = run_demo(
                output,
                mode="quick" if quick else "full" if full else "default",
                jobs=jobs,
                progress=lambda msg: console.print(f"[bold]{msg}[/] ({time.perf_counter() - start:.0f} s)"),
            )
    except DawmError as exc:
        _fail(exc)
    acc = result.preprocess_accuracy
    if acc is not None and not acc.empty:
        shown = {
            "brain_dice": "brain Dice",
            "wm_dice": "WM Dice",
            "coreg_error_mm_FLAIR": "FLAIR reg mm",
            "bias_removed": "N4 bias removed",
        }
        table = Table(title="Preprocessing against the truth (median over sessions)")
        cols = [c for c in shown if c in acc]
        for c in cols:
            table.add_column(shown[c])
        table.add_row(*(f"{acc[c].median():.3f}" for c in cols))
        console.print(table)
    table = Table(title="Key numbers")
    table.add_column("comparison: metric")
    table.add_column("value", justify="right")
    for key, value in result.summary.items():
        if key.split(": ", 1)[-1] in DEMO_NUMBERS:
            table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console.print(table)
    for name, path in result.folders.items():
        console.print(f"{name}: {path}")
    _log_note(logfile)
    for failure in result.failures:
        console.print(f"[red]failed[/] {failure}")
    console.print(f"total {time.perf_counter() - start:.0f} s")
    if result.failures:
        raise typer.Exit(code=1)


@app.command(context_settings=LABELS_CONTEXT)
def preprocess(
    ctx: typer.Context,
    bids_dir: Path = typer.Argument(..., help="BIDS dataset (raw) to pre-process."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Derivatives folder (default BIDS_DIR/derivatives/dawm-preprocess)."),
    participant_label: list[str] | None = typer.Option(None, "--participant-label", help=f"Subjects to process ({LABEL_HELP})."),
    config_file: Path | None = typer.Option(None, "--config", help="PreprocessConfig JSON (e.g. a saved preprocess_config.json)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Sessions processed in parallel."),
    backend: str = typer.Option("local", callback=_backend, help="local (process pool) or dask (a LocalCluster, or --address)."),
    address: str | None = typer.Option(None, help="Address of a running Dask scheduler (with --backend dask)."),
    force: bool = typer.Option(False, "--force", help="Recompute sessions whose outputs are complete."),
) -> None:
    """Co-register, bias-correct, skull-strip, segment and register to MNI every session; IQMs and QC figures."""
    from dawm.bids.derivative_files import PreprocessFiles
    from dawm.preprocess.config import PreprocessConfig
    from dawm.preprocess.pipeline import preprocess_dataset

    start = time.perf_counter()
    try:
        config = PreprocessConfig.load(config_file) if config_file else PreprocessConfig()
        with log_to_folder(output or PreprocessFiles.in_dataset(bids_dir).root, "preprocess") as logfile:
            outcomes = preprocess_dataset(
                bids_dir,
                output=output,
                config=config,
                participant_label=_labels(ctx, participant_label),
                jobs=jobs,
                backend=backend,
                address=address,
                force=force,
            )  # type: ignore[arg-type]
    except DawmError as exc:
        _fail(exc)
    _report_outcomes(
        f"dawm preprocess: {len(outcomes)} session(s) in {time.perf_counter() - start:.0f} s",
        ("reference", "missing", "seconds"),
        outcomes,
        lambda r: (r.reference, ", ".join(r.missing) or "-", f"{sum(r.timings_s.values()):.0f}"),
        logfile=logfile,
    )


@app.command(context_settings=LABELS_CONTEXT)
def label(
    ctx: typer.Context,
    bids_dir: Path = typer.Argument(..., help="BIDS dataset whose sessions dawm preprocess has processed."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Derivatives folder (default BIDS_DIR/derivatives/dawm-label)."),
    reference: str | None = typer.Option(
        None, "--reference", help="controls (same-scanner healthy controls) or self (the subject's own NAWM)."
    ),
    rule: str | None = typer.Option(None, "--rule", help="t1, mtr, both, either or chi2."),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        help="z threshold a region's core must pass; the region then grows to grow_threshold (2 by default, set in --config) (rule chi2: a p value, no growth).",
    ),
    participant_label: list[str] | None = typer.Option(None, "--participant-label", help=f"Subjects to label ({LABEL_HELP})."),
    preprocess_dir: Path | None = typer.Option(
        None, "--preprocess-dir", help="dawm preprocess outputs (default BIDS_DIR/derivatives/dawm-preprocess)."
    ),
    config_file: Path | None = typer.Option(
        None, "--config", help="LabelConfig JSON (e.g. a saved label_config.json); options override it."
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Sessions labelled in parallel."),
    force: bool = typer.Option(False, "--force", help="Relabel sessions that are already labelled."),
) -> None:
    """Label DAWM, lesions and WM location classes from T1/MTR z-scores against a normative reference."""
    from dawm.bids.derivative_files import LabelFiles
    from dawm.label.config import LabelConfig
    from dawm.label.pipeline import label_dataset

    start = time.perf_counter()
    try:
        config = LabelConfig.load(config_file) if config_file else LabelConfig()
        overrides = {k: v for k, v in dict(reference=reference, rule=rule, threshold=threshold).items() if v is not None}
        try:
            config = LabelConfig.model_validate({**config.model_dump(), **overrides})
        except ValueError as exc:
            raise DawmError(f"invalid option: {exc}") from None
        with log_to_folder(output or LabelFiles.in_dataset(bids_dir).root, "label") as logfile:
            outcomes = label_dataset(
                bids_dir,
                output=output,
                config=config,
                participant_label=_labels(ctx, participant_label),
                preprocess_dir=preprocess_dir,
                jobs=jobs,
                force=force,
            )
    except DawmError as exc:
        _fail(exc)
    _report_outcomes(
        f"dawm label ({config.rule}, {config.reference}): {len(outcomes)} session(s) in {time.perf_counter() - start:.0f} s",
        ("reference", "DAWM ml", "lesion ml", "WM ml"),
        outcomes,
        lambda r: (r.reference, f"{r.dawm_ml:.2f}", f"{r.lesion_ml:.2f}", f"{r.wm_ml:.0f}"),
        logfile=logfile,
    )


def _parse_folds(folds: str | None) -> tuple[int | None, list[int] | None]:
    """``--folds``: ``N`` (number of k-fold folds, all trained) or ``0,1`` (which folds of the split to train)."""
    if folds is None:
        return None, None
    text = folds.strip()
    try:
        if "," in text:
            return None, [int(k) for k in text.split(",") if k.strip()]
        return int(text), None
    except ValueError:
        raise DawmError(f"--folds must be a number of folds (5) or a list of fold indices (0,1), got {folds!r}") from None


def _fold_indices(folds: str | None) -> list[int] | None:
    """``--folds 0,1`` of predict / export-model as a list (None: every trained fold)."""
    try:
        return [int(k) for k in folds.split(",") if k.strip()] if folds else None
    except ValueError:
        raise DawmError(f"--folds must be fold indices such as 0 or 0,1, got {folds!r}") from None


def _progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@app.command()
def train(
    bids_dir: Path = typer.Argument(..., help="BIDS dataset with derivatives/dawm-preprocess and the label derivative."),
    model_dir: Path = typer.Option(
        ..., "--model-dir", "-m", help="Folder the model is written to (model.json, split.json, fold-K/, log.csv)."
    ),
    inputs: str | None = typer.Option(None, help="Input channels: t1w, flair or t1w+flair (default t1w+flair)."),
    preset: str | None = typer.Option(
        None, help="cpu-small (default; UNet, ~5 M parameters, laptop CPU), gpu (nnU-Net-sized DynUNet) or tiny (smoke tests)."
    ),
    folds: str | None = typer.Option(None, help="Number of k-fold folds (e.g. 5, all trained) or the folds to train (e.g. 0,1)."),
    split: str | None = typer.Option(
        None, help="kfold (default; subjects stratified by labelled DAWM, scanner and group) or loso (leave one scanner out)."
    ),
    labels: str | None = typer.Option(
        None, help="derivatives/<name> holding the targets (*_space-session_desc-dawm_dseg; default dawm-label)."
    ),
    max_epochs: int | None = typer.Option(None, min=1, help="Maximum epochs per fold (default 100)."),
    iterations: int | None = typer.Option(None, min=1, help="Iterations per epoch (default: the preset's)."),
    patch_size: int | None = typer.Option(None, min=8, help="Cubic training patch edge in voxels (default: the preset's)."),
    batch_size: int | None = typer.Option(None, min=1, help="Patches per iteration (default: the preset's)."),
    test_fraction: float = typer.Option(0.0, min=0.0, max=0.8, help="Share of subjects held out of every fold as a test set."),
    seed: int = typer.Option(0, min=0, help="Random seed (splits, sampling, augmentation, weights)."),
    config_file: Path | None = typer.Option(None, "--config", help="TrainConfig JSON; the options above, where given, override it."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from each fold's last.pt (same config and split)."),
    cache_dir: Path | None = typer.Option(None, help="Training cache folder (default MODEL_DIR/cache; uncompressed arrays, can be large)."),
    epoch_budget: int | None = typer.Option(
        None, min=1, help="Stop each fold after this many epochs in this call (cluster wall time); continue with --resume."
    ),
) -> None:
    """Train the DAWM/lesion network (cross-validated, subject-level splits) on preprocessed sessions."""
    from dawm.model.config import TrainConfig
    from dawm.model.train import train as run_training

    start = time.perf_counter()
    try:
        n_folds, which = _parse_folds(folds)
        base = TrainConfig.load(config_file).model_dump() if config_file else {}
        given = dict(
            inputs=inputs,
            preset=preset,
            split=split,
            labels=labels,
            max_epochs=max_epochs,
            iterations_per_epoch=iterations,
            patch_size=(patch_size,) * 3 if patch_size else None,
            batch_size=batch_size,
            folds=n_folds,
            test_fraction=test_fraction or None,
            seed=seed if seed else None,
        )
        base.update({k: v for k, v in given.items() if v is not None})
        try:
            config = TrainConfig.model_validate(base)
        except ValueError as exc:
            raise DawmError(f"invalid training options: {exc}") from None
        main_rank = int(os.environ.get("RANK", "0")) == 0  # under torchrun only rank 0 shows progress, logs and reports
        with (
            log_to_folder(model_dir, "train") if main_rank else contextlib.nullcontext() as logfile,
            _progress_bar() if main_rank else contextlib.nullcontext() as bar,
        ):
            task = bar.add_task("training", total=None) if bar is not None else None

            def progress(text: str, done: int, total: int) -> None:
                bar.update(task, description=text, completed=done, total=total)

            info = run_training(
                bids_dir,
                model_dir,
                config,
                folds=which,
                resume=resume,
                progress=progress if bar is not None else None,
                epoch_budget=epoch_budget,
                cache_dir=cache_dir,
            )
    except DawmError as exc:
        _fail(exc)
    if not main_rank:
        return
    table = Table(title=f"dawm train: {model_dir} ({time.perf_counter() - start:.0f} s)")
    for col in ("fold", "epochs", "best epoch", "val Dice (mean of classes in val labels)", "stopped early"):
        table.add_column(col)
    for k, r in sorted(info["folds"].items()):
        table.add_row(k, str(r["epochs"]), str(r["best_epoch"]), f"{r['best_val_dice']:.3f}", str(r["stopped_early"]))
    console.print(table)
    console.print(f"model: {model_dir / 'model.json'}; training curves: {model_dir / 'log.csv'}")
    _log_note(logfile)


@app.command(context_settings=LABELS_CONTEXT)
def predict(
    ctx: typer.Context,
    bids_dir: Path = typer.Argument(..., help="BIDS dataset (raw; T1w and/or FLAIR are enough)."),
    out_dir: Path = typer.Argument(..., help="Derivatives folder to write (e.g. BIDS_DIR/derivatives/dawm-predict)."),
    model: Path | None = typer.Option(
        None, "--model", "-m", help="Model folder made by dawm train or dawm export-model (default: the model bundled with dawm)."
    ),
    participant_label: list[str] | None = typer.Option(None, "--participant-label", help=f"Subjects to predict ({LABEL_HELP})."),
    tta: bool = typer.Option(False, "--tta", help="Average the 8 mirrored predictions (slower, slightly better)."),
    folds: str | None = typer.Option(None, help="Folds to ensemble, e.g. 0,1 (default: every trained fold)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Sessions preprocessed in parallel (when preprocessing is needed)."),
    drop: list[str] | None = typer.Option(
        None, "--drop", help="Input to ignore as if not acquired (T1w or FLAIR; repeatable): measures what a missing modality costs."
    ),
    qc: bool = typer.Option(True, "--qc/--no-qc", help="Write each session's QC page (sub-X/ses-Y/sub-X_ses-Y_desc-qc_report.html)."),
) -> None:
    """Segment lesions and DAWM with a trained model (default: the bundled one); preprocesses T1w/FLAIR first where needed."""
    from dawm.bids.derivative_files import PredictFiles
    from dawm.model.predict import predict_dataset
    from dawm.qc.page import write_qc_pages

    start = time.perf_counter()
    try:
        with log_to_folder(out_dir, "predict") as logfile:
            outcomes = predict_dataset(
                bids_dir,
                out_dir,
                model,
                participant_label=_labels(ctx, participant_label),
                jobs=jobs,
                tta=tta,
                folds=_fold_indices(folds),
                drop=tuple(drop or ()),
            )
            if qc:
                outcomes = write_qc_pages(out_dir, outcomes, jobs=jobs)
    except (DawmError, ValueError) as exc:
        _fail(exc)

    _report_outcomes(
        f"dawm predict: {len(outcomes)} session(s) in {time.perf_counter() - start:.0f} s",
        ("lesion ml", "DAWM ml", "DAWM % WM"),
        outcomes,
        lambda volumes: _volume_cells(volumes, pct_wm=True),
        footer=f"outputs: {out_dir}; volumes: {PredictFiles(out_dir).volumes_table}",
        logfile=logfile,
    )


@app.command("export-model")
def export_model(
    model_dir: Path = typer.Argument(..., help="Model folder made by dawm train."),
    dest: Path = typer.Argument(..., help="Folder to write the slim copy to (e.g. src/dawm/model/weights/default to bundle it)."),
    folds: str | None = typer.Option(None, help="Folds to keep, e.g. 0 or 0,1 (default: every trained fold)."),
    half: bool = typer.Option(True, "--half/--no-half", help="Store the weights as float16 (half the size) or float32."),
) -> None:
    """Write a slim, weights-only copy of a model folder (model.json + fold-K/best.pt, at most 50 MB), as bundled with dawm.

    No log file: the copy holds only what a model folder needs (it may become the bundled model)."""
    from dawm.model.bundled import export_model as run_export

    try:
        out = run_export(model_dir, dest, folds=_fold_indices(folds), half=half)
    except DawmError as exc:
        _fail(exc)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    console.print(f"exported {model_dir} -> {out} ({size / 1e6:.1f} MB)", soft_wrap=True)


def _parse_compare(items: list[str] | None) -> dict[str, Path]:
    """``--compare NAME=DIR`` (repeatable) as ``{name: folder}``."""
    out: dict[str, Path] = {}
    for item in items or []:
        name, sep, folder = item.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise DawmError(f"--compare must be NAME=DIR, got {item!r}")
        out[name.strip()] = Path(folder.strip())
    return out


@app.command()
def evaluate(
    pred_dir: Path = typer.Argument(..., help="Derivative folder with the predictions (*_space-session_desc-dawm_dseg.nii.gz)."),
    ref_dir: Path = typer.Argument(..., help="Derivative folder with the reference labels, same file names (dawm label, simulator truth)."),
    output: Path = typer.Option(..., "--output", "-o", help="Report folder (report.html, TSV tables, summary.json)."),
    bids: Path | None = typer.Option(
        None, "--bids", help="Raw BIDS dataset (default: the prediction's SourceDatasets, or its grandparent)."
    ),
    preprocess_dir: Path | None = typer.Option(
        None, "--preprocess", help="dawm preprocess outputs (default BIDS/derivatives/dawm-preprocess)."
    ),
    truth: Path | None = typer.Option(None, "--truth", help="Simulator truth (default BIDS/derivatives/dawm-truth when present)."),
    compare: list[str] | None = typer.Option(None, "--compare", help="Another prediction folder to compare, NAME=DIR (repeatable)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=10, help="Bootstrap resamples of the confidence intervals."),
) -> None:
    """Score predictions against reference labels: accuracy, bias, evolution, clinical association, HTML report."""
    from dawm.evaluate.pipeline import evaluate_dataset

    start = time.perf_counter()
    try:
        with log_to_folder(output, "evaluate") as logfile:
            result = evaluate_dataset(
                pred_dir,
                ref_dir,
                output,
                bids_dir=bids,
                preprocess_dir=preprocess_dir,
                truth_dir=truth,
                compare=_parse_compare(compare),
                n_boot=bootstrap,
                progress=lambda text: log.info("evaluate: %s", text),
            )
    except DawmError as exc:
        _fail(exc)
    n = result.numbers
    table = Table(title=f"dawm evaluate: {n['n_sessions']} session(s) in {time.perf_counter() - start:.0f} s")
    for col in ("class", "Dice (95 % CI)", "volume ICC(A,1)", "Spearman ρ", "Bland-Altman bias ml"):
        table.add_column(col)
    for cls in ("dawm", "lesion"):
        table.add_row(
            cls,
            f"{n[f'{cls}_dice_mean']:.3f} ({n[f'{cls}_dice_ci_low']:.3f}-{n[f'{cls}_dice_ci_high']:.3f})",
            f"{n[f'{cls}_volume_icc_a1']:.3f}",
            f"{n[f'{cls}_volume_spearman_rho']:.3f}",
            f"{n[f'{cls}_volume_bias']:.3f}",
        )
    console.print(table)
    console.print(
        f"lesion-wise F1 {n['lesion_f1_mean']:.3f}; sessions failed {n['n_failed']}, only in the prediction "
        f"{n['n_only_prediction']}, only in the reference {n['n_only_reference']}"
    )
    console.print(f"report: {result.report}\ntables: {result.output_dir}", soft_wrap=True)
    _log_note(logfile)
    for name, reason in result.failed.items():
        console.print(f"[red]failed[/] {name}: {reason}", soft_wrap=True)
    if result.failed:
        raise typer.Exit(code=1)


if __name__ == "__main__":  # pragma: no cover
    app()
