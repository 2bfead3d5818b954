"""Run one function over many items (subjects, sessions) on a local pool or a Dask cluster.

Every stage calls :func:`run_all`; it never raises for a failing item: each item gives an
:class:`Outcome` with either a result or the error message, so one bad subject is reported and
skipped while the others finish. ``backend="dask"`` sends the same function to a Dask cluster
(``address`` of a running scheduler, e.g. one started by dask-jobqueue on SLURM, or a LocalCluster
when no address is given). Within one item, :func:`map_threads` runs independent pieces that
release the GIL (ITK registrations) side by side.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any, Literal

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dawm.errors import DawmError, InputError
from dawm.log import FORWARDED, console, forward_warnings, writes_log_file

log = logging.getLogger(__name__)
Backend = Literal["local", "dask"]
BACKENDS: tuple[Backend, ...] = ("local", "dask")


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, e.g. a SLURM or container allocation), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def map_threads(fn: Callable[[Any], Any], items: Iterable[Any], *, max_workers: int | None = None) -> list[Any]:
    """``[fn(item) for item in items]``, the calls side by side in threads (at most ``max_workers``,
    default :func:`available_cpus`); results in the order of ``items``, the first exception raised.
    Worth it only where ``fn`` releases the GIL (SimpleITK filters and registrations do); with one
    worker or one item, a plain loop in the calling thread."""
    items = list(items)
    workers = min(len(items), max_workers or available_cpus())
    if workers <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))


def check_backend(backend: str) -> Backend:
    """``backend`` if it is one of :data:`BACKENDS`, else ``InputError`` (the CLI refuses it as a usage error)."""
    if backend not in BACKENDS:
        raise InputError(f"--backend must be {' or '.join(BACKENDS)}, got {backend!r}")
    return backend  # type: ignore[return-value]


@dataclass(frozen=True)
class Outcome:
    """What happened to one item: ``result`` when it worked, ``error`` (one line) when it failed;
    ``seconds``: how long the call took; ``warnings``: ``(level, message)`` of the warnings a worker
    process logged (shown by the parent, each distinct one once), ``warnings_logged``: whether that
    worker wrote them to the command's log file already (else the parent does)."""

    name: str
    result: Any = None
    error: str | None = None
    seconds: float | None = None
    warnings: tuple[tuple[int, str], ...] = ()
    warnings_logged: bool = True

    @property
    def ok(self) -> bool:
        return self.error is None


def _call(fn: Callable[[Any], Any], item: Any, name: str, forward: bool = False) -> Outcome:
    """``fn(item)`` as an :class:`Outcome`; ``forward``: in a worker process, collect its warnings
    into the outcome instead of printing them there."""
    if not forward:
        return _outcome(fn, item, name)
    with forward_warnings() as collected:
        outcome = _outcome(fn, item, name)
    return dataclasses.replace(outcome, warnings=tuple(collected), warnings_logged=writes_log_file())


def _outcome(fn: Callable[[Any], Any], item: Any, name: str) -> Outcome:
    start = time.perf_counter()
    try:
        return Outcome(name, result=fn(item), seconds=time.perf_counter() - start)
    except DawmError as exc:  # a user-facing problem: its message says it all
        return Outcome(name, error=str(exc), seconds=time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - report, do not crash the cohort
        detail = traceback.format_exc(limit=-3)
        log.debug("%s failed:\n%s", name, detail)
        return Outcome(name, error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - start)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def run_all(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    names: Iterable[str] | None = None,
    jobs: int = 1,
    backend: Backend = "local",
    address: str | None = None,
    description: str = "working",
) -> list[Outcome]:
    """Apply ``fn`` to each item; return outcomes in the order of ``items``.

    ``fn`` must be a picklable top-level function when ``jobs > 1`` or with Dask. Failures are
    logged as they happen (errors; each success is one INFO line, for the log file).
    ``InputError`` for a ``backend`` not in :data:`BACKENDS`.
    """
    check_backend(backend)
    names = list(names) if names is not None else [str(i) for i in items]
    outcomes: dict[int, Outcome] = {}
    with _progress() as progress:
        task = progress.add_task(description, total=len(items))

        def done(index: int, outcome: Outcome) -> None:
            outcomes[index] = outcome
            for level, message in outcome.warnings:
                log.log(level, "%s", message, extra={FORWARDED: outcome.warnings_logged})
            if not outcome.ok:
                log.error("%s failed: %s", outcome.name, outcome.error)
            else:
                log.info("%s: %s done in %.1f s", outcome.name, description, outcome.seconds or 0.0)
            progress.advance(task)

        if backend == "dask":
            from dask.distributed import Client, LocalCluster
            from dask.distributed import as_completed as dask_completed

            cluster = (
                None if address else LocalCluster(n_workers=max(jobs, 1), threads_per_worker=1, processes=True, dashboard_address=None)
            )
            with Client(address or cluster) as client:
                futures = {client.submit(_call, fn, item, name, True, pure=False): i for i, (item, name) in enumerate(zip(items, names))}
                for fut in dask_completed(futures):
                    done(futures[fut], fut.result())
            if cluster is not None:
                cluster.close()
        elif jobs <= 1 or len(items) <= 1:
            for i, (item, name) in enumerate(zip(items, names)):
                done(i, _call(fn, item, name))
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(_call, fn, item, name, True): i for i, (item, name) in enumerate(zip(items, names))}
                for fut in as_completed(futures):
                    done(futures[fut], fut.result())
    return [outcomes[i] for i in range(len(items))]
