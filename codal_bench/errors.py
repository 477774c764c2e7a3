"""The errors a user can act on, and the exit code each stands for.

Apart from `types` so that `codal-eval --help` (which needs only these) imports no dataclasses.
"""

from __future__ import annotations


class CodalError(Exception):
    """An error the user can act on: the CLI prints its message as one line and exits non-zero."""

    exit_code = 1


class UsageError(CodalError):
    """Bad input from the user (unknown name, missing file, wrong columns): the job could not
    start (exit 4; click's own usage errors exit 2)."""

    exit_code = 4


class BadFlag(UsageError):
    """A flag's value is malformed (`-M` without `=`, `--max-drop` without a number): a usage
    error, like click's own (exit 2)."""

    exit_code = 2


class PreflightError(CodalError):
    """Something the run needs does not work (an endpoint, the sandbox): nothing was sent."""

    exit_code = 4


class RunStopped(CodalError):
    """A run that started but could not finish (an endpoint went away, the budget ran out)."""

    exit_code = 1
