"""Building blocks every rule-set section shares: strict frozen models and severities."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

SEVERITIES = ("info", "low", "medium", "high", "critical")
Severity = Literal["info", "low", "medium", "high", "critical"]


class Strict(BaseModel):
    """A rule-set section: unknown keys are errors, values never change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
