"""The console shows each distinct warning once; the log file keeps every record."""

from __future__ import annotations

import logging

from dawm import log as dawm_log


def test_console_shows_a_repeated_warning_once_and_the_file_keeps_all(tmp_path, capsys):
    logfile = tmp_path / "logs" / "run.log"
    dawm_log.setup_logging(0, logfile)
    try:
        logger = logging.getLogger("dawm.label.pipeline")
        for _ in range(3):
            for session in ("sub-hc001_ses-01", "sub-hc002_ses-01"):
                logger.warning("%s: no other control scanned on prisma3t: using the subject's own NAWM as reference", session)
        logger.info("details for the file only")
    finally:
        for handler in logging.getLogger("dawm").handlers:
            handler.close()
        dawm_log.setup_logging(0)
    shown = capsys.readouterr().err
    assert shown.count("sub-hc001_ses-01") == 1 and shown.count("sub-hc002_ses-01") == 1
    assert "details for the file only" not in shown
    written = logfile.read_text()
    assert written.count("no other control scanned") == 6
    assert "details for the file only" in written


def test_once_filter_tells_levels_and_messages_apart():
    once = dawm_log.OncePerMessage()

    def record(level: int, msg: str, *args) -> logging.LogRecord:
        return logging.LogRecord("dawm", level, __file__, 1, msg, args, None)

    assert once.filter(record(logging.WARNING, "no %s", "FLAIR"))
    assert not once.filter(record(logging.WARNING, "no FLAIR"))  # same text, other formatting
    assert once.filter(record(logging.ERROR, "no FLAIR"))
    assert once.filter(record(logging.WARNING, "no T1w"))


def _warns(x: int) -> int:
    logging.getLogger("dawm.label.pipeline").warning("sub-hc001_ses-01: no other control scanned on prisma3t")
    return x


def test_worker_warnings_reach_the_console_once_and_the_file_once_each(tmp_path, capfd):
    """With a process pool every worker warns; the parent shows the warning once, and the log file
    holds each worker's record once (the parent does not write them again)."""
    from dawm.parallel import run_all

    logfile = tmp_path / "logs" / "run.log"
    dawm_log.setup_logging(0, logfile)
    try:
        out = run_all(_warns, [1, 2, 3, 4], jobs=2)
    finally:
        for handler in logging.getLogger("dawm").handlers:
            handler.close()
        dawm_log.setup_logging(0)
    assert [o.result for o in out] == [1, 2, 3, 4]
    assert all(o.warnings == ((logging.WARNING, "sub-hc001_ses-01: no other control scanned on prisma3t"),) for o in out)
    assert capfd.readouterr().err.count("no other control scanned") == 1
    assert logfile.read_text().count("no other control scanned") == 4


def test_dask_worker_warnings_are_written_to_the_log_file_by_the_parent(tmp_path, capfd):
    """A Dask worker process has no log file of its own: the parent writes its warnings there."""
    from dawm.parallel import run_all

    logfile = tmp_path / "logs" / "run.log"
    dawm_log.setup_logging(0, logfile)
    try:
        out = run_all(_warns, [1, 2], jobs=1, backend="dask")
    finally:
        for handler in logging.getLogger("dawm").handlers:
            handler.close()
        dawm_log.setup_logging(0)
    assert [o.result for o in out] == [1, 2] and not any(o.warnings_logged for o in out)
    assert capfd.readouterr().err.count("no other control scanned") == 1
    assert logfile.read_text().count("no other control scanned") == 2
