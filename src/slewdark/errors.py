"""Error types that the command line turns into one clear line each."""

from __future__ import annotations

from pathlib import Path


class SlewdarkError(Exception):
    """Base class of every error slewdark reports to a user without a traceback."""


class ParamsError(SlewdarkError):
    """A value in ``params.yaml`` (or a command-line override) is not allowed."""


class ContractError(SlewdarkError):
    """A FITS file breaks the data contract (``docs/data-contract.md``).

    Parameters
    ----------
    path
        The offending file.
    problem
        What is wrong with it, in words a user can act on.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM); raised so that temporary files are removed on the way out.

    A ``BaseException``, so that a batch's per-file error handling does not
    swallow it.

    Parameters
    ----------
    signum
        The signal received.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"terminated by signal {signum}")
