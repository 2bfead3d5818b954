"""Independent registrations side by side: the time one session's preprocessing saves, and proof that its results do not change.

Usage::

    python benchmarks/registration_threads.py                                    # 3 sessions of ../shared/real-ms
    python benchmarks/registration_threads.py --bids DIR --sessions sub-a_ses-01 --repeats 3

One session's preprocessing runs several registrations that do not depend on each other: the
coregistration of the other acquisitions with the reference's brain extraction, the starts of a
multi-start, the alternatives of a doubtful brain-extraction affine. Each is single-threaded (ITK's
threads would sum the metric in a scheduling-dependent order), so they run in Python threads side
by side (:func:`dawm.parallel.map_threads`, as many as the process's CPUs). This script times
:func:`dawm.preprocess.pipeline.preprocess_arrays` (the stage on arrays: no file written, the images
loaded once) with those threads and with one worker (what ran before), alternating ``--repeats``
times in one process, and checks that both give the same brain mask, corrected images, tissue
segmentation, coregistration and brain-extraction affine to the bit. Times are medians.
Writes ``benchmarks/results/<name>.{json,md}``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
from harness import Run, benchmark_parser, markdown_table, write_results

import dawm.parallel
from dawm.bids.layout import discover_sessions
from dawm.preprocess.config import PreprocessConfig
from dawm.preprocess.pipeline import load_session_images, preprocess_arrays

DEFAULT_SESSIONS = ("sub-l12_ses-02", "sub-l19_ses-01", "sub-x07")


def _fingerprint(result) -> dict[str, np.ndarray]:
    """The arrays that must not change: brain mask, bias-corrected images, dseg, coregistration and
    brain-extraction matrices."""
    out = {"brain": result.brain, "dseg": result.tissues.dseg}
    out |= {f"corrected {role}": image for role, image in result.corrected.items()}
    out |= {f"coregistration {group}": np.asarray(t["matrix"]) for group, t in result.coregistration.items()}
    affine = result.brain_extraction.template_to_subject
    if affine is not None:
        out["brain-extraction affine"] = affine.matrix_ras
    return out


def _timed_run(images, config: PreprocessConfig, key: str, workers: int | None) -> tuple[float, dict]:
    cpus = dawm.parallel.available_cpus
    if workers is not None:
        dawm.parallel.available_cpus = lambda: workers  # map_threads reads it at each call
    try:
        start = time.perf_counter()
        result = preprocess_arrays(images, config, key=key)
        return time.perf_counter() - start, _fingerprint(result)
    finally:
        dawm.parallel.available_cpus = cpus


def markdown(result: dict) -> str:
    """The table: per session, the median times of both modes and whether their results agree."""
    table = markdown_table(
        result["rows"],
        {
            "session": "session",
            "inputs": "inputs",
            "side by side s": "side_by_side_s",
            "one after the other s": "one_after_the_other_s",
            "saved s": "saved_s",
            "same results": "identical",
        },
        float_format=".1f",
    )
    return (
        f"# Independent registrations side by side ({result['cpus']} CPUs)\n\n"
        f"`preprocess_arrays` of one session at {result['spacing_mm']:g} mm, medians of {result['repeats']} alternating runs "
        f"per mode, data {result['bids']}.\n\n{table}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = benchmark_parser(__doc__, name="registration_threads")
    parser.add_argument("--bids", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "real-ms")
    parser.add_argument("--sessions", nargs="+", default=list(DEFAULT_SESSIONS), help="session names (sub-X[_ses-Y])")
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode, alternating")
    parser.add_argument("--spacing", type=float, default=2.0, help="session grid (mm), as the bundled model's")
    args = parser.parse_args(argv)
    run = Run.start(argv)
    config = PreprocessConfig(spacing_mm=args.spacing)
    found = {s.key: s for s in discover_sessions(args.bids)}
    missing = [name for name in args.sessions if name not in found]
    if missing:
        parser.error(f"not in {args.bids}: {', '.join(missing)}")
    rows = []
    for name in args.sessions:
        images, _ = load_session_images(found[name])
        times: dict[str, list[float]] = {"side by side": [], "one after the other": []}
        prints: dict[str, dict] = {}
        for _ in range(args.repeats):
            for mode, workers in (("side by side", None), ("one after the other", 1)):
                seconds, prints[mode] = _timed_run(images, config, name, workers)
                times[mode].append(seconds)
        a, b = prints["side by side"], prints["one after the other"]
        same = a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        side, serial = statistics.median(times["side by side"]), statistics.median(times["one after the other"])
        rows.append(
            {
                "session": name,
                "inputs": "+".join(sorted(images)),
                "side_by_side_s": round(side, 2),
                "one_after_the_other_s": round(serial, 2),
                "saved_s": round(serial - side, 2),
                "identical": same,
                "runs_s": {mode: [round(t, 2) for t in ts] for mode, ts in times.items()},
            }
        )
        print(f"{name}: {side:.1f} s side by side, {serial:.1f} s one after the other, identical: {same}", flush=True)
    result = {
        "rows": rows,
        "cpus": dawm.parallel.available_cpus(),
        "spacing_mm": args.spacing,
        "repeats": args.repeats,
        "bids": str(args.bids),
    }
    write_results(args.name, result, markdown(result), run=run, results_dir=args.results_dir)
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
