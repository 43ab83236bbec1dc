"""Which alerts a mail route or a silence applies to.

A matcher tests an alert's ``kind``, ``severity``, ``region`` and ``outlet_id``; every
field given must match (a field left out matches anything). A text field takes one
pattern, a list of patterns (any may match) or ``{regex: ...}`` (a full match). A pattern
is a shell-style glob (``amount_*``, ``W-00?``); without ``*``, ``?`` or ``[`` it is plain
equality. An alert without a ``region`` matches no ``region`` pattern.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, field_validator

from config.base import SEVERITIES, Severity, Strict


class Regex(Strict):
    """A regular expression the whole value must match."""

    regex: str = Field(min_length=1)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value

    def matches(self, value: str) -> bool:
        return re.fullmatch(self.regex, value) is not None


def _pattern_shape(value: Any) -> str:
    if isinstance(value, dict | Regex):
        return "regex"
    return "any" if isinstance(value, list | tuple) else "glob"


Pattern = Annotated[
    Annotated[str, Tag("glob")]
    | Annotated[tuple[str, ...], Tag("any")]
    | Annotated[Regex, Tag("regex")],
    Discriminator(_pattern_shape),
]
"""One glob, any of several globs (a list), or ``{regex: ...}``; errors name only the
shape given."""


def pattern_matches(pattern: Pattern | None, value: Any) -> bool:
    """Whether ``value`` satisfies ``pattern`` (None: no condition)."""
    if pattern is None:
        return True
    if not isinstance(value, str):
        return False
    if isinstance(pattern, Regex):
        return pattern.matches(value)
    globs = (pattern,) if isinstance(pattern, str) else pattern
    return any(fnmatchcase(value, glob) for glob in globs)


class Matcher(Strict):
    """Conditions on an alert; all given ones must hold."""

    kind: Pattern | None = None
    severity: Severity | tuple[Severity, ...] | None = Field(
        None, description="exactly this severity (or one of these)"
    )
    severity_at_least: Severity | None = Field(None, description="this severity or higher")
    region: Pattern | None = None
    outlet_id: Pattern | None = None

    def matches(self, alert: Mapping[str, Any]) -> bool:
        """Whether ``alert`` meets every condition of this matcher."""
        severity = alert.get("severity")
        if self.severity is not None:
            allowed = (self.severity,) if isinstance(self.severity, str) else self.severity
            if severity not in allowed:
                return False
        if self.severity_at_least is not None and (
            severity not in SEVERITIES
            or SEVERITIES.index(severity) < SEVERITIES.index(self.severity_at_least)
        ):
            return False
        return all(
            pattern_matches(pattern, alert.get(field))
            for field, pattern in (
                ("kind", self.kind),
                ("region", self.region),
                ("outlet_id", self.outlet_id),
            )
        )
