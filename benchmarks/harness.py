"""What every benchmark script shares: run metadata, one result writer, one Markdown table writer
and the common command-line options, so that a script is only its measurement.

A script::

    from harness import Run, benchmark_parser, markdown_table, write_results

    def main(argv: list[str] | None = None) -> int:
        parser = benchmark_parser(__doc__, name="my_benchmark")   # --name, --results-dir
        parser.add_argument("--bids", type=Path, required=True)
        args = parser.parse_args(argv)
        run = Run.start(argv, script=__file__)                  # date, dawm version, git commit, machine, command
        rows = measure(args.bids)                               # list of dicts
        md = "# my benchmark\\n\\n" + markdown_table(rows, formats={"dice": ".2f"}) + "\\n"
        write_results(args.name, {"rows": rows}, md, run=run, results_dir=args.results_dir)
        return 0

:func:`write_results` writes ``<results_dir>/<name>.json`` (the script's result with the run
metadata under ``"run"``) and ``<name>.md`` (the script's Markdown with a one-line run footer),
each atomically (:func:`dawm.atomic.atomic_target`). ``python benchmarks/x.py`` puts
``benchmarks/`` on ``sys.path``, so ``from harness import ...`` works from any working directory.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: ``benchmarks/``: the scripts' folder
BENCHMARKS = Path(__file__).resolve().parent
#: the default results folder, ``benchmarks/results``
RESULTS = BENCHMARKS / "results"
#: the repository root (the git work tree holding ``benchmarks/``)
REPO = BENCHMARKS.parent
#: the real clinical scans beside the repository (``../shared/real-ms``)
REAL_MS = REPO.parent / "shared" / "real-ms"

#: a cell format: a ``format()`` spec (``".2f"``, ``".0f"``, ``"g"``), ``None`` for ``str()``, or a function
CellFormat = str | Callable[[Any], str] | None


# --------------------------------------------------------------------------------------------
# run metadata
# --------------------------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    if shutil.which("git") is None:
        return None
    try:
        out = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=20, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _gpu_names() -> list[str]:
    """Names of the CUDA devices: through torch when a script has imported it, else ``nvidia-smi``."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        except Exception:  # noqa: BLE001 - metadata only
            return []
        return []
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _dawm_version() -> str | None:
    try:
        import dawm

        return str(dawm.__version__)
    except Exception:  # noqa: BLE001 - metadata only
        try:
            from importlib.metadata import version

            return version("dawm")
        except Exception:  # noqa: BLE001
            return None


@dataclass(frozen=True)
class Machine:
    """The machine a benchmark ran on."""

    hostname: str
    platform: str  #: ``platform.platform(terse=True)``
    processor: str  #: ``platform.processor()``, or the architecture where it is empty
    python: str  #: e.g. ``3.11.9``
    cpu_count: int
    gpu: str | None  #: the CUDA device names joined by ``", "``; None without one

    @classmethod
    def detect(cls) -> Machine:
        gpus = _gpu_names()
        return cls(
            hostname=platform.node(),
            platform=platform.platform(terse=True),
            processor=platform.processor() or platform.machine(),
            python=platform.python_version(),
            cpu_count=os.cpu_count() or 1,
            gpu=", ".join(gpus) if gpus else None,
        )

    def short(self) -> str:
        """``"<hostname> <n> CPUs"``: the machine as the real-scan tables name it."""
        return f"{self.hostname} {self.cpu_count} CPUs"


@dataclass
class Run:
    """The metadata of one benchmark run: when (UTC), what (dawm version, git commit, the command
    line) and where (:class:`Machine`); ``seconds`` is the total wall time, set by :meth:`finish`
    (which :func:`write_results` calls)."""

    command: str
    date_utc: str
    dawm_version: str | None
    git_commit: str | None
    git_dirty: bool | None  #: True when the work tree had uncommitted changes
    machine: Machine
    seconds: float | None = None
    _t0: float = field(default_factory=time.perf_counter, repr=False)

    @classmethod
    def start(cls, argv: Sequence[str] | None = None, *, script: str | os.PathLike[str] | None = None) -> Run:
        """Start the clock. ``argv``: the arguments given to the script's ``main`` (default
        ``sys.argv[1:]``); ``script``: its ``__file__`` (default ``sys.argv[0]``)."""
        t0 = time.perf_counter()
        path = Path(script if script is not None else sys.argv[0])
        try:
            shown = path.resolve().relative_to(REPO).as_posix()
        except ValueError:
            shown = str(path)
        args = list(sys.argv[1:] if argv is None else argv)
        commit = _git("rev-parse", "HEAD")
        status = _git("status", "--porcelain", "--untracked-files=no") if commit else None
        return cls(
            command=shlex.join(["python", shown, *map(str, args)]),
            date_utc=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            dawm_version=_dawm_version(),
            git_commit=commit or None,
            git_dirty=bool(status) if status is not None else None,
            machine=Machine.detect(),
            _t0=t0,
        )

    def elapsed(self) -> float:
        """Seconds since :meth:`start`."""
        return time.perf_counter() - self._t0

    def finish(self) -> Run:
        """Record the total wall time (:attr:`seconds`) now."""
        self.seconds = self.elapsed()
        return self

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready metadata (the ``"run"`` entry of a results file)."""
        out = asdict(self)
        out.pop("_t0")
        return out

    def footer(self) -> str:
        """One Markdown line: date, dawm version and commit, machine, seconds, command."""
        commit = "no git" if not self.git_commit else f"git {self.git_commit[:10]}{' + local changes' if self.git_dirty else ''}"
        m = self.machine
        secs = f"{self.seconds:.0f} s" if self.seconds is not None else "running"
        return (
            f"_Run {self.date_utc}, dawm {self.dawm_version or '?'} ({commit}), {m.hostname}: {m.cpu_count} CPUs, "
            f"GPU {m.gpu or 'none'}, Python {m.python}; {secs}; `{self.command}`_"
        )


# --------------------------------------------------------------------------------------------
# results: JSON + Markdown
# --------------------------------------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if is_dataclass(obj) and not isinstance(obj, type):
        return asdict(obj)
    if hasattr(obj, "model_dump"):  # pydantic
        return obj.model_dump(mode="json")
    return str(obj)  # Path and anything else


def to_json(obj: Any) -> str:
    """``obj`` as the results JSON: indented by one, NumPy scalars/arrays as numbers/lists, paths as
    strings, NaN kept as ``NaN``; a trailing newline."""
    return json.dumps(obj, indent=1, default=_json_default) + "\n"


def _atomic_write(path: Path, text: str) -> Path:
    from dawm.atomic import atomic_target

    with atomic_target(path, suffix=path.suffix) as tmp:
        tmp.write_text(text)
    return path


def write_results(
    name: str,
    result: Mapping[str, Any] | Sequence[Any],
    markdown: str | None = None,
    *,
    run: Run | None = None,
    results_dir: str | os.PathLike[str] | None = None,
    extra: Mapping[str, str] | None = None,
    echo: bool = True,
) -> dict[str, Path]:
    """Write ``<results_dir>/<name>.json`` and, when ``markdown`` is given, ``<name>.md``.

    ``result``: the script's results (a mapping; a list is stored as ``{"rows": result}``); with
    ``run`` the run is finished (:meth:`Run.finish`) and its metadata added as ``"run"``, and the
    Markdown gets its :meth:`Run.footer` as a last paragraph. ``extra``: more files of the same
    stem, suffix -> text (e.g. ``{".tsv": table.to_csv(sep="\\t")}``). ``results_dir`` defaults to
    :data:`RESULTS`. ``echo`` prints the Markdown (without the footer). Every file is written
    atomically. Returns suffix -> path."""
    folder = Path(results_dir) if results_dir is not None else RESULTS
    payload: dict[str, Any] = dict(result) if isinstance(result, Mapping) else {"rows": list(result)}
    if run is not None:
        if "run" in payload:
            raise ValueError("result already holds a 'run' entry: the run metadata go there")
        run.finish()
        payload["run"] = run.as_dict()
    written = {".json": _atomic_write(folder / f"{name}.json", to_json(payload))}
    if markdown is not None:
        text = markdown if markdown.endswith("\n") else markdown + "\n"
        if run is not None:
            text += "\n" + run.footer() + "\n"
        written[".md"] = _atomic_write(folder / f"{name}.md", text)
        if echo:
            print(markdown, end="" if markdown.endswith("\n") else "\n", flush=True)
    for suffix, body in (extra or {}).items():
        written[suffix] = _atomic_write(folder / f"{name}{suffix}", body)
    return written


def result_path(name: str, suffix: str, results_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<results_dir>/<name><suffix>`` (a figure beside the results), its folder created."""
    folder = Path(results_dir) if results_dir is not None else RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}{suffix}"


# --------------------------------------------------------------------------------------------
# Markdown tables
# --------------------------------------------------------------------------------------------


def fmt(value: Any, spec: CellFormat = ".3f", na: str = "n/a") -> str:
    """One figure as text. ``spec`` a function: ``spec(value)``, whatever the value (``str`` keeps
    ``None`` and ``nan`` as Python writes them). Otherwise ``None`` and non-finite numbers are
    ``na``, strings are kept and other values go through ``format(value, spec)`` (``spec`` None:
    ``str(value)``)."""
    if callable(spec):
        return spec(value)
    if value is None:
        return na
    if isinstance(value, str):
        return value
    if isinstance(value, (float, np.floating)) and not math.isfinite(float(value)):
        return na
    return str(value) if spec is None else format(value, spec)


def fmt_ci(value: Any, low: Any, high: Any, spec: CellFormat = ".2f", na: str = "n/a") -> str:
    """``"value [low, high]"``, each through :func:`fmt`."""
    return f"{fmt(value, spec, na)} [{fmt(low, spec, na)}, {fmt(high, spec, na)}]"


def recall_cell(counts: Mapping[str, int]) -> str:
    """``'0.42 (5/12)'`` from ``{"detected": 5, "n_ref": 12}`` (``'-'`` when there is nothing to detect):
    one cell of a lesion-recall-by-size table (:func:`dawm.evaluate.metrics.lesion_recall_by_size`)."""
    n, k = int(counts["n_ref"]), int(counts["detected"])
    return "-" if not n else f"{k / n:.2f} ({k}/{n})"


def markdown_table(
    rows: Iterable[Mapping[str, Any]] | Any,
    columns: Sequence[str] | Mapping[str, str] | None = None,
    *,
    formats: Mapping[str, CellFormat] | CellFormat = None,
    float_format: CellFormat = ".3f",
    na: str = "n/a",
) -> str:
    """A Markdown table (``| a | b |``, then ``|---|---|``, one line per row; no trailing newline).

    ``rows``: dicts, or a pandas DataFrame. ``columns``: the keys to show, in order (default: the
    first row's keys, or the frame's columns), or a mapping header -> key. Cells go through
    :func:`fmt` with ``formats[key]`` (or ``formats[header]``) when given, else floats with
    ``float_format`` and everything else with ``str()``; ``None`` and NaN print as ``na``.
    ``formats`` may also be one format for every cell (``str``: each value as Python prints it)."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a DataFrame
        if columns is None:
            columns = [str(c) for c in rows.columns]
        rows = rows.to_dict("records")
    rows = list(rows)
    if columns is None:
        columns = list(rows[0]) if rows else []
    pairs = list(columns.items()) if isinstance(columns, Mapping) else [(str(c), c) for c in columns]
    if not isinstance(formats, Mapping):
        formats = {} if formats is None else {k: formats for _, k in pairs}

    def cell(key: str, header: str, value: Any) -> str:
        if key in formats:
            return fmt(value, formats[key], na)
        if header in formats:
            return fmt(value, formats[header], na)
        is_float = isinstance(value, (float, np.floating))
        return fmt(value, float_format if is_float else None, na)

    lines = ["| " + " | ".join(h for h, _ in pairs) + " |", "|" + "---|" * len(pairs)]
    lines += ["| " + " | ".join(cell(k, h, r.get(k)) for h, k in pairs) + " |" for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


def benchmark_parser(doc: str | None, *, name: str | None = None, **kwargs: Any) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` for a benchmark: the description is the first paragraph of ``doc``
    (the module docstring), the rest of it the epilog (shown by ``--help``). With ``name``: the
    options every result-writing script has, ``--name`` (the results file stem, default ``name``)
    and ``--results-dir`` (default :data:`RESULTS`)."""
    first, _, rest = (doc or "").strip().partition("\n\n")
    kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
    parser = argparse.ArgumentParser(description=" ".join(first.split()), epilog=rest or None, **kwargs)
    if name is not None:
        add_result_options(parser, name)
    return parser


def add_result_options(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """Add ``--name`` (default ``name``) and ``--results-dir`` to ``parser`` (or a sub-command's)."""
    parser.add_argument("--name", default=name, help=f"results file stem: writes RESULTS_DIR/NAME.json and .md (default {name})")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the results go (default benchmarks/results)")
    return parser


# --------------------------------------------------------------------------------------------
# cohort helpers shared by the model benchmarks
# --------------------------------------------------------------------------------------------


def read_dseg(path: str | os.PathLike[str] | None) -> np.ndarray | None:
    """A label map as uint8 (rounded), or None when ``path`` is None or missing."""
    if path is None or not Path(path).exists():
        return None
    from dawm.image.io import load_volume

    return np.rint(load_volume(path, allow_empty=True).data).astype(np.uint8)


def label_path(root: str | os.PathLike[str], case: Any, derivative: str) -> Path:
    """The session-grid ``desc-dawm_dseg`` of ``case`` (a :class:`dawm.model.data.Case`) in
    ``<root>/derivatives/<derivative>``."""
    return Path(root) / "derivatives" / derivative / case.base().with_(space="session", desc="dawm", suffix="dseg").relpath
