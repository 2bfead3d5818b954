"""Time and peak memory of `dawm simulate`: one subject (all modalities, 2 sessions) and a cohort.

Usage:
    python benchmarks/simulate_benchmark.py [--resolution 1.0] [--cohort-resolution 2.0]
        [--cohort-patients 6 --cohort-controls 2] [--jobs 1 2]

Each run is a fresh process (so the template cache and peak RSS are per run). Prints a table and
writes benchmarks/results/simulate.json (the rows under "rows") and simulate.md (``--name``). Goal (issue 3): under 30 s per subject per
core at 1 mm.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import Run, benchmark_parser, markdown_table, write_results

CHILD = r"""
import json, resource, sys, time
from dawm.simulate.cohort import simulate_cohort
from dawm.simulate.config import SimulationConfig
from dawm.simulate.anatomy import template_space
cfg = SimulationConfig(**json.loads(sys.argv[1]))
t0 = time.perf_counter(); template_space(cfg.resolution_mm); t_tpl = time.perf_counter() - t0
t0 = time.perf_counter(); res = simulate_cohort(cfg, sys.argv[2], jobs=int(sys.argv[3])); t = time.perf_counter() - t0
print(json.dumps({"template_s": t_tpl, "simulate_s": t, "failures": len(res.failures),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def run(config: dict, jobs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(config), str(Path(tmp) / "bids"), str(jobs)],
            capture_output=True,
            text=True,
            check=True,
        )
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 1e6
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    n = config["patients"] + config["controls"]
    rec.update(
        config=config,
        jobs=jobs,
        subjects=n,
        disk_mb=round(size_mb, 1),
        s_per_subject=rec["simulate_s"] / n,
        s_per_subject_per_core=rec["simulate_s"] * jobs / n,
    )
    return rec


def markdown(rows: list[dict]) -> str:
    """One table line per run: grid, subjects, sessions, time, time per subject (and core), peak memory, disk."""
    table = [
        {
            "run": r["run"],
            "grid": f"{r['config']['resolution_mm']} mm",
            "subjects": r["subjects"],
            "sessions": r["config"]["sessions"],
            "total s": r["simulate_s"],
            "s/subject": r["s_per_subject"],
            "s/subject/core": r["s_per_subject_per_core"],
            "peak RSS MB": max(r["peak_rss_mb"], r["children_peak_rss_mb"]),
            "disk MB": r["disk_mb"],
        }
        for r in rows
    ]
    formats = {**dict.fromkeys(("total s", "s/subject", "s/subject/core"), ".1f"), "peak RSS MB": ".0f", "disk MB": ".0f"}
    return markdown_table(table, formats=formats, na="nan") + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = benchmark_parser(__doc__, name="simulate")
    ap.add_argument("--resolution", type=float, default=1.0)
    ap.add_argument("--cohort-resolution", type=float, default=2.0)
    ap.add_argument("--cohort-patients", type=int, default=6)
    ap.add_argument("--cohort-controls", type=int, default=2)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args(argv)
    run_info = Run.start(argv, script=__file__)
    runs = [("one subject", dict(patients=1, controls=0, sessions=2, scanners=1, resolution_mm=args.resolution), 1)]
    for j in args.jobs:
        runs.append(
            (
                f"cohort jobs={j}",
                dict(
                    patients=args.cohort_patients,
                    controls=args.cohort_controls,
                    sessions=2,
                    scanners=3,
                    resolution_mm=args.cohort_resolution,
                ),
                j,
            )
        )
    rows = []
    for label, cfg, jobs in runs:
        rec = run(cfg, jobs)
        rec["run"] = label
        rows.append(rec)
        print(
            f"{label:18s} {rec['config']['resolution_mm']:.0f} mm  {rec['subjects']:3d} subj  {rec['simulate_s']:7.1f} s  "
            f"{rec['s_per_subject']:6.1f} s/subj  {rec['s_per_subject_per_core']:6.1f} s/subj/core  "
            f"peak {max(rec['peak_rss_mb'], rec['children_peak_rss_mb']):6.0f} MB  disk {rec['disk_mb']:.0f} MB",
            flush=True,
        )
    write_results(args.name, {"rows": rows}, markdown(rows), run=run_info, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
