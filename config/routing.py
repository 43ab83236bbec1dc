"""The ``mail`` section of the rule set: who gets which alerts, how they are grouped, and
when they are silenced.

Routes form a flat list read top to bottom: the first route whose matcher fits the alert
sends it to its receivers, and evaluation stops there unless that route says
``continue: true`` (then later routes may add receivers, as in Alertmanager). No route, no
mail: the default rule set mails nothing. Receivers are recipient groups (addresses and a
language, ``zh`` by default). Mails are grouped per receiver and outlet (see
``alerts/mail_groups.py`` for the timing of ``grouping``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, StringConstraints, model_validator

from config.base import Strict
from config.matchers import Matcher
from config.silences import Silence

UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _seconds(value: Any) -> Any:
    """``30``, ``"30s"``, ``"5m"``, ``"4h"`` or ``"1d"`` as seconds; anything else is
    left for pydantic to reject with the key named."""
    if isinstance(value, str):
        found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", value)
        if found is None:
            raise ValueError(f"expected seconds or a duration like 30s, 5m, 4h, 1d; got {value!r}")
        return float(found[1]) * UNITS[found[2]]
    return value


Duration = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]
EmailAddress = Annotated[str, StringConstraints(pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")]


class Receiver(Strict):
    """A recipient group: where its mails go and the language they are written in."""

    to: tuple[EmailAddress, ...] = Field(min_length=1)
    language: Literal["zh", "en"] = "zh"


class Route(Strict):
    """Alerts matching ``match`` go to ``receivers``."""

    match: Matcher = Matcher()
    receivers: tuple[str, ...] = Field(min_length=1)
    continue_: bool = Field(False, alias="continue", description="go on to later routes")


class Grouping(Strict):
    """Alertmanager-style timing of the mails of one group (a receiver and an outlet)."""

    group_wait: Duration = Field(30.0, description="gather a new group's burst this long")
    group_interval: Duration = Field(300.0, description="least time between a group's mails")
    repeat_interval: Duration = Field(
        4 * 3600.0, description="a group quiet this long after its last mail is closed"
    )


class MailRules(Strict):
    """Receivers, routes, grouping and silences; empty by default (no mail)."""

    receivers: dict[str, Receiver] = Field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    grouping: Grouping = Grouping()
    silences: tuple[Silence, ...] = ()

    @model_validator(mode="after")
    def _known_receivers(self) -> MailRules:
        for index, route in enumerate(self.routes):
            for name in route.receivers:
                if name not in self.receivers:
                    known = ", ".join(sorted(self.receivers)) or "none"
                    raise ValueError(
                        f"routes.{index}.receivers names {name!r}, which is not under "
                        f"mail.receivers (defined: {known})"
                    )
        return self

    def receivers_for(self, alert: Mapping[str, Any]) -> list[str]:
        """The receivers ``alert`` goes to, in route order, each once (may be none)."""
        chosen: list[str] = []
        for route in self.routes:
            if not route.match.matches(alert):
                continue
            chosen += [name for name in route.receivers if name not in chosen]
            if not route.continue_:
                break
        return chosen

    def silenced_by(self, alert: Mapping[str, Any]) -> Silence | None:
        """The first silence that holds for ``alert``, or None."""
        return next((s for s in self.silences if s.silences(alert)), None)
