"""Exceptions that carry a message meant for the user (the CLI prints them without a traceback)."""


class DawmError(Exception):
    """Base class of dawm's user-facing errors."""


class InputError(DawmError, ValueError):
    """An input file or value is unusable; the message names the file and the problem."""


class RunFailed(DawmError):
    """The work was attempted and failed (e.g. no session could be scored): the CLI exits 1, as
    when any session fails, not 2 (a usage error)."""
