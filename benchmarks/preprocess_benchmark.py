"""Benchmark of ``dawm preprocess`` on a simulated cohort: time per step, peak memory, accuracy.

Usage::

    python benchmarks/preprocess_benchmark.py --resolution 2 --subjects 2 --jobs 1
    python benchmarks/preprocess_benchmark.py --resolution 1 --subjects 1 --sessions 1

Each session runs in its own fresh worker process, so its peak resident memory (``ru_maxrss``)
is its own. Accuracy is measured against the simulator's truth with
:func:`dawm.simulate.preprocess_accuracy.evaluate_session`: co-registration error (mean displacement over
brain voxels between estimated and true rigid transforms, mm), brain/WM Dice, and the N4 effect as
the WM intensity coefficient of variation of the reference image before/after correction.
Writes ``benchmarks/results/preprocess.json`` and ``.md`` (or ``--name``).
"""

from __future__ import annotations

import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from harness import Run, benchmark_parser, markdown_table, write_results

from dawm.bids.derivatives import init_derivative
from dawm.bids.layout import SessionInputs, discover_sessions
from dawm.preprocess.config import PreprocessConfig
from dawm.preprocess.pipeline import preprocess_session
from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import SimulationConfig
from dawm.simulate.preprocess_accuracy import evaluate_session


def _run(inputs: SessionInputs, config: PreprocessConfig, out: Path, bids: Path) -> dict:
    start = time.perf_counter()
    result = preprocess_session(inputs, config, out, bids_dir=bids, force=True)
    return {
        "timings_s": result.timings_s,
        "total_s": time.perf_counter() - start,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def markdown(summary: dict, simulate_s: float | None = None, wall_s: float | None = None) -> str:
    """The step-time table and the accuracy table of ``summary`` (``simulate_s``/``wall_s``: the
    unrounded times, default the summary's)."""
    rows = summary["per_session"]
    simulate_s = summary["simulate_s"] if simulate_s is None else simulate_s
    wall_s = summary["wall_s"] if wall_s is None else wall_s
    steps = list(rows[0]["timings_s"])
    metric_keys = sorted({k for r in rows for k in r if k.startswith(("coreg_", "brain_", "wm_", "gm_", "csf_", "bias_"))})
    times = [
        {"session": r["session"], **{k: r["timings_s"].get(k, 0) for k in steps}, "total s": r["total_s"], "peak MB": r["peak_rss_mb"]}
        for r in rows
    ]
    metrics = [{"session": r["session"], **{k: r.get(k, float("nan")) for k in metric_keys}} for r in rows]
    lines = [
        f"# dawm preprocess benchmark ({summary['resolution_mm']:g} mm, {len(rows)} session(s), jobs={summary['jobs']})",
        "",
        f"Machine: {summary['machine']['platform']}, {summary['machine']['cpu_count']} CPUs (shared). "
        f"Simulation: {simulate_s:.0f} s. Preprocessing wall time: {wall_s:.0f} s "
        f"({summary['sessions_per_hour']:.0f} sessions/hour with {summary['jobs']} job(s)).",
        "",
        markdown_table(
            times,
            ["session", *steps, "total s", "peak MB"],
            formats={**dict.fromkeys(steps, ".1f"), "total s": ".0f", "peak MB": ".0f"},
            na="nan",
        ),
        "",
        markdown_table(metrics, ["session", *metric_keys], formats=dict.fromkeys(metric_keys, ".3f"), na="nan"),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="preprocess")
    parser.add_argument("--resolution", type=float, default=2.0, help="simulation grid (mm); also the session grid")
    parser.add_argument("--subjects", type=int, default=2, help="patients simulated (scanners round robin)")
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--scanners", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=1, help="sessions in parallel")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the cohort and outputs here")
    args = parser.parse_args(argv)
    run = Run.start(argv, script=__file__)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="dawm-pp-bench-"))
    bids, out = work / "bids", work / "out"
    t0 = time.perf_counter()
    if not (bids / "dataset_description.json").exists():
        simulate_cohort(
            SimulationConfig(
                patients=args.subjects, controls=0, sessions=args.sessions, scanners=args.scanners, resolution_mm=args.resolution
            ),
            bids,
            jobs=args.jobs,
        )
    simulate_s = time.perf_counter() - t0
    config = PreprocessConfig(spacing_mm=args.resolution)
    init_derivative(out, name="dawm preprocess (benchmark)", description="benchmark", source=bids)
    sessions = discover_sessions(bids)
    rows = []
    t_pool = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs, max_tasks_per_child=1) as pool:
        futures = [(s, pool.submit(_run, s, config, out, bids)) for s in sessions]
        runs = [(s, fut.result()) for s, fut in futures]
    wall_s = time.perf_counter() - t_pool
    for s, timed in runs:
        timed.update(session=s.key, **evaluate_session(bids, out, s))
        rows.append(timed)
        print(f"{s.key}: {timed['total_s']:.0f} s, peak {timed['peak_rss_mb']:.0f} MB", flush=True)

    steps = list(rows[0]["timings_s"])
    metric_keys = sorted({k for r in rows for k in r if k.startswith(("coreg_", "brain_", "wm_", "gm_", "csf_", "bias_"))})
    summary = {
        "resolution_mm": args.resolution,
        "sessions": len(rows),
        "jobs": args.jobs,
        "simulate_s": round(simulate_s, 1),
        "wall_s": round(wall_s, 1),
        "sessions_per_hour": round(3600 * len(rows) / wall_s, 1),
        "machine": {"python": run.machine.python, "platform": run.machine.platform, "cpu_count": run.machine.cpu_count},
        "config": config.model_dump(mode="json"),
        "per_session": rows,
        "mean": {k: float(np.nanmean([r.get(k, np.nan) for r in rows])) for k in ["total_s", "peak_rss_mb", *metric_keys]},
        "mean_step_s": {k: float(np.mean([r["timings_s"].get(k, 0.0) for r in rows])) for k in steps},
    }
    write_results(args.name, summary, markdown(summary, simulate_s, wall_s), run=run, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
