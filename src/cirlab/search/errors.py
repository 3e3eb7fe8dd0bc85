"""Errors of the query path, so that a service can tell a caller's mistake from its own.

Each is a :class:`~cirlab.errors.CirlabError` with a one-line message. The HTTP layer maps
:class:`UnknownItemError` to 404 and every other :class:`QueryError` to 400.
"""

from __future__ import annotations

from cirlab.errors import CirlabError


class QueryError(CirlabError):
    """A query is malformed: empty text, a k out of range, an unknown category."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        """Rebuilt from its field and problem when pickled."""
        return type(self), (self.field, self.problem)


class UnknownItemError(QueryError):
    """A reference id names no image of the feature cache."""
