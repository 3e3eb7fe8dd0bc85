"""Exceptions that carry a one-line, user-facing message.

Every error a user can cause (bad data, a stale cache, a wrong option) is raised as a
:class:`CirlabError` subclass whose message names the file and the problem. The command-line entry
point prints that message on one line and exits with status 2; no traceback reaches the user.
"""

from __future__ import annotations

from pathlib import Path


class CirlabError(Exception):
    """Base class of every expected, user-facing error."""


class DataError(CirlabError):
    """A data set file is missing, malformed or inconsistent."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[Path, str]]:
        """Rebuilt from its path and problem when pickled (a worker process raises it to its parent)."""
        return type(self), (self.path, self.problem)


class MissingImagesError(DataError):
    """Images named by a split or caption file are absent and the policy is ``error``."""


class CacheMismatchError(CirlabError):
    """A feature cache, index or checkpoint does not match what was asked for."""


class ConfigError(CirlabError):
    """A configuration value or command-line option is invalid."""


class WeightsUnavailableError(CirlabError):
    """Model weights cannot be obtained (no network, unknown tag, unreadable file)."""
