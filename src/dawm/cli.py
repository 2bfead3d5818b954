"""The ``dawm`` command line: one thin function per command over the library.

BIDS-App style: ``dawm <command> BIDS_DIR [options]``; derivatives go to
``BIDS_DIR/derivatives/dawm-<stage>/`` unless ``--output`` says otherwise.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

import dawm
from dawm.errors import DawmError
from dawm.log import console, setup_logging

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
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging (-v: debug)."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    setup_logging(verbose)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def simulate(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="Folder to write the BIDS dataset to (created)."),
    patients: int = typer.Option(24, min=0, help="Number of MS patients."),
    controls: int = typer.Option(8, min=0, help="Number of healthy controls."),
    sessions: int = typer.Option(2, min=1, max=5, help="Sessions per subject."),
    scanners: int = typer.Option(3, min=1, max=4, help="Scanner profiles used (round robin)."),
    resolution: float = typer.Option(1.0, "--resolution", min=1.0, max=3.0, help="Truth grid spacing in mm; acquisition voxels scale with it."),
    seed: int = typer.Option(0, min=0, help="Random seed (same seed, same bytes)."),
    dawm_visibility: float = typer.Option(0.55, min=0.0, max=1.0, help="Share of DAWM's T1/T2/PD change visible on T1w/FLAIR."),
    small: bool = typer.Option(False, "--small", help="Tiny preset for tests: 2 patients, 1 control, 2 mm (other options override it)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Subjects simulated in parallel."),
    backend: str = typer.Option("local", help="local (process pool) or dask (a LocalCluster, or --address)."),
    address: Optional[str] = typer.Option(None, help="Address of a running Dask scheduler (with --backend dask)."),
) -> None:
    """Simulate a realistic MS cohort (T1w, FLAIR, MP2RAGE, MT) in BIDS, with truth in derivatives/dawm-truth."""
    from dawm.simulate.cohort import simulate_cohort
    from dawm.simulate.config import SimulationConfig

    given = dict(patients=patients, controls=controls, sessions=sessions, scanners=scanners, resolution_mm=resolution,
                 seed=seed, dawm_visibility=dawm_visibility)
    try:
        if small:
            overrides = {k: v for k, v in given.items()
                         if ctx.get_parameter_source({"resolution_mm": "resolution"}.get(k, k)).name != "DEFAULT"}
            config = SimulationConfig.small(**overrides)
        else:
            config = SimulationConfig(**given)
        start = time.perf_counter()
        result = simulate_cohort(config, out, jobs=jobs, backend=backend, address=address)
    except DawmError as exc:
        _fail(exc)
    _print_cohort(result, time.perf_counter() - start)
    if result.failures:
        raise typer.Exit(code=1)


def _print_cohort(result, seconds: float) -> None:
    table = Table(title=f"Simulated cohort in {result.root} ({seconds:.0f} s)")
    for col in ("group", "subjects", "sessions", "lesion ml (mean)", "DAWM ml (mean)", "with DAWM"):
        table.add_column(col)
    vols = result.volumes
    if not vols.empty:
        for group, g in vols.groupby("group"):
            table.add_row(group, str(g.participant_id.nunique()), str(len(g)), f"{g.lesion_ml.mean():.1f}", f"{g.dawm_ml.mean():.1f}",
                          str(int((g.groupby("participant_id").dawm_ml.max() > 0).sum())))
    console.print(table)
    auc = result.report[result.report.kind == "auc"]
    auc = auc[auc.scanner == "all"]
    if not auc.empty:
        console.print("DAWM vs NAWM voxel AUC: " + ", ".join(f"{r.modality} {r.mean:.2f}" for r in auc.itertuples()))
    console.print(f"truth: {result.root / 'derivatives' / 'dawm-truth'}; report: simulation_report.tsv, volumes.tsv")
    for f in result.failures:
        console.print(f"[red]failed[/] {f.name}: {f.error}")


@app.command()
def demo(
    output: Path = typer.Option(Path("demo_output"), "--output", "-o", help="Where the demo writes everything."),
    quick: bool = typer.Option(False, "--quick", help="A few minutes: the tiny cohort used by the tests."),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Parallel workers."),
) -> None:
    """Run the pipeline on the embedded synthetic cohort and say where the results are.

    For now: simulate a cohort at 2 mm (or the tiny preset with --quick) and summarise it; the later
    stages join as they land.
    """
    from dawm.simulate.cohort import simulate_cohort
    from dawm.simulate.config import SimulationConfig

    config = SimulationConfig.small() if quick else SimulationConfig(patients=12, controls=4, sessions=2, scanners=3, resolution_mm=2.0)
    start = time.perf_counter()
    try:
        result = simulate_cohort(config, output / "bids", jobs=jobs)
    except DawmError as exc:
        _fail(exc)
    _print_cohort(result, time.perf_counter() - start)
    if result.failures:
        raise typer.Exit(code=1)


@app.command()
def preprocess(
    bids_dir: Path = typer.Argument(..., help="BIDS dataset (raw) to pre-process."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Derivatives folder (default BIDS_DIR/derivatives/dawm-preprocess)."),
    participant_label: Optional[list[str]] = typer.Option(None, "--participant-label", help="Subjects to process (repeatable; with or without sub-)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="PreprocessConfig JSON (e.g. a saved preprocess_config.json)."),
    jobs: int = typer.Option(1, "--jobs", "-j", min=1, help="Sessions processed in parallel."),
    backend: str = typer.Option("local", help="local (process pool) or dask (a LocalCluster, or --address)."),
    address: Optional[str] = typer.Option(None, help="Address of a running Dask scheduler (with --backend dask)."),
    force: bool = typer.Option(False, "--force", help="Recompute sessions whose outputs are complete."),
) -> None:
    """Co-register, bias-correct, skull-strip, segment and register to MNI every session; IQMs and QC figures."""
    from dawm.preprocess.config import PreprocessConfig
    from dawm.preprocess.pipeline import preprocess_dataset

    start = time.perf_counter()
    try:
        if backend not in ("local", "dask"):
            raise DawmError(f"--backend must be local or dask, got {backend!r}")
        config = PreprocessConfig.load(config_file) if config_file else PreprocessConfig()
        outcomes = preprocess_dataset(bids_dir, output=output, config=config, participant_label=participant_label,
                                      jobs=jobs, backend=backend, address=address, force=force)  # type: ignore[arg-type]
    except DawmError as exc:
        _fail(exc)
    table = Table(title=f"dawm preprocess: {len(outcomes)} session(s) in {time.perf_counter() - start:.0f} s")
    for col in ("session", "status", "reference", "missing", "seconds"):
        table.add_column(col)
    for o in outcomes:
        if o.ok:
            r = o.result
            status = "reused" if r.reused else "done"
            table.add_row(o.name, status, r.reference, ", ".join(r.missing) or "-", f"{sum(r.timings_s.values()):.0f}")
        else:
            table.add_row(o.name, "[red]failed[/]", "-", "-", "-")
    console.print(table)
    for o in outcomes:
        if not o.ok:
            console.print(f"[red]failed[/] {o.name}: {o.error}")
    if any(not o.ok for o in outcomes):
        raise typer.Exit(code=1)


if __name__ == "__main__":  # pragma: no cover
    app()
