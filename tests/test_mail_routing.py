"""The rule set's mail section: routes, matchers, silences with recurring windows, and the
errors a bad section gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.routing import MailRules
from config.rules import RulesError, load_rules, parse_rules

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "rules.yaml"

MAIL = """
mail:
  receivers:
    east: {to: [east@example.com]}
    audit: {to: [audit@example.com, lead@example.com], language: en}
    night: {to: [night@example.com]}
  routes:
    - match: {severity_at_least: high}
      receivers: [audit]
      continue: true
    - match: {region: "华东-*", kind: [amount_spike, duplicate_settlement]}
      receivers: [east]
    - match: {outlet_id: {regex: "W-9[0-9]+"}}
      receivers: [night]
    - match: {severity: info}
      receivers: [night]
"""


def alert(**fields: Any) -> dict[str, Any]:
    base = {
        "alert_id": "sg-1",
        "kind": "amount_spike",
        "severity": "medium",
        "outlet_id": "W-1",
        "region": "华东-上海",
        "event_time": "2026-07-15T10:00:00+08:00",
    }
    return base | fields


def mail_rules(text: str = MAIL) -> MailRules:
    return parse_rules(text).mail


def test_shipped_rules_route_nothing() -> None:
    """The default rule set has no route: no alert is mailed."""
    rules = load_rules(SHIPPED).mail
    assert rules.routes == ()
    assert rules.receivers_for(alert(severity="critical")) == []


def test_first_match_wins_and_continue_goes_on() -> None:
    """Routes are read in order: the first match ends it unless it says continue."""
    rules = mail_rules()
    assert rules.receivers_for(alert()) == ["east"]
    assert rules.receivers_for(alert(severity="critical")) == ["audit", "east"]
    assert rules.receivers_for(alert(kind="frequency_spike")) == []
    assert rules.receivers_for(alert(region="华南-广州", outlet_id="W-95")) == ["night"]
    assert rules.receivers_for(alert(region="华南-广州", outlet_id="W-95x")) == []


def test_severity_exact_and_at_least() -> None:
    """``severity`` matches exactly, ``severity_at_least`` that level and above."""
    rules = mail_rules()
    assert rules.receivers_for(alert(kind="x", severity="info")) == ["night"]
    assert rules.receivers_for(alert(kind="x", severity="low")) == []
    assert rules.receivers_for(alert(kind="x", severity="high")) == ["audit"]


def test_alert_without_region_matches_no_region_pattern() -> None:
    """An alert that carries no region is not taken by a region route."""
    rules = mail_rules()
    no_region = alert()
    del no_region["region"]
    assert rules.receivers_for(no_region) == []


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "mail:\n  routes:\n    - receivers: [ghost]\n",
            "routes.0.receivers names 'ghost', which is not under mail.receivers",
        ),
        (
            "mail:\n  receivers: {a: {to: [not-an-address]}}\n",
            "mail.receivers.a.to.0",
        ),
        (
            "mail:\n  receivers: {a: {to: [a@example.com], language: fr}}\n",
            "mail.receivers.a.language",
        ),
        (
            "mail:\n  routes:\n    - match: {kind: {regex: '('}}\n      receivers: [a]\n",
            "mail.routes.0.match.kind.regex.regex",
        ),
        ("mail:\n  grouping: {group_wait: soon}\n", "expected seconds or a duration like 30s"),
        (
            "mail:\n  silences:\n    - window: {days_of_month: ['31-28']}\n",
            "days must be 1-31 and a range must rise, got '31-28'",
        ),
        (
            "mail:\n  silences:\n    - window: {timezone: Mars/Olympus}\n",
            "unknown time zone 'Mars/Olympus'",
        ),
        ("mail:\n  silences:\n    - match: {colour: red}\n", "mail.silences.0.match.colour"),
    ],
)
def test_bad_mail_sections_name_the_key_and_value(section: str, expected: str) -> None:
    """Every bad key or value of the mail section is reported with its path."""
    with pytest.raises(RulesError) as error:
        parse_rules(section, "bad.yaml")
    assert expected in str(error.value)


def test_durations_accept_units() -> None:
    """Grouping times take seconds or 30s / 5m / 4h / 1d."""
    grouping = parse_rules(
        "mail:\n  grouping: {group_wait: 45s, group_interval: 10m, repeat_interval: 1d}\n"
    ).mail.grouping
    assert (grouping.group_wait, grouping.group_interval, grouping.repeat_interval) == (
        45.0,
        600.0,
        86400.0,
    )


SILENCES = """
mail:
  silences:
    - match: {region: "华东-*"}
      window: {days_of_month: ["28-31", 1]}
      comment: month-end batches
    - match: {outlet_id: W-7}
      window: {weekdays: [sat, sun], times: "22:00-06:00"}
    - match: {kind: parts_not_issued}
      window: {starts_at: "2026-07-10T00:00:00+08:00", ends_at: "2026-07-12T00:00:00+08:00"}
"""


@pytest.mark.parametrize(
    ("fields", "silenced"),
    [
        ({"event_time": "2026-07-31T23:30:00+08:00"}, True),  # month end
        ({"event_time": "2026-08-01T09:00:00+08:00"}, True),  # the 1st
        ({"event_time": "2026-08-02T09:00:00+08:00"}, False),
        ({"event_time": "2026-07-27T15:59:00Z"}, False),  # 23:59 on the 27th in Beijing
        ({"event_time": "2026-07-27T16:00:00Z"}, True),  # 00:00 on the 28th in Beijing
        ({"event_time": "2026-02-28T12:00:00+08:00"}, True),
        ({"event_time": "2026-07-31T23:30:00+08:00", "region": "华南-广州"}, False),
        # weekend nights for W-7: Sat 2026-07-18 23:00, Sun 03:00, not Sat noon, not Mon 23:00
        ({"outlet_id": "W-7", "region": "x", "event_time": "2026-07-18T23:00:00+08:00"}, True),
        ({"outlet_id": "W-7", "region": "x", "event_time": "2026-07-19T03:00:00+08:00"}, True),
        ({"outlet_id": "W-7", "region": "x", "event_time": "2026-07-18T12:00:00+08:00"}, False),
        ({"outlet_id": "W-7", "region": "x", "event_time": "2026-07-20T23:00:00+08:00"}, False),
        # a one-off window: end excluded
        (
            {"kind": "parts_not_issued", "region": "x", "event_time": "2026-07-11T08:00:00+08:00"},
            True,
        ),
        (
            {"kind": "parts_not_issued", "region": "x", "event_time": "2026-07-12T00:00:00+08:00"},
            False,
        ),
    ],
)
def test_silences_hold_in_their_windows_at_event_time(
    fields: dict[str, Any], silenced: bool
) -> None:
    """A silence holds when its matcher fits and the alert's event time, in the window's
    time zone, lies in its window (recurring days of month, weekday nights, one-off)."""
    rules = mail_rules(SILENCES)
    assert (rules.silenced_by(alert(**fields)) is not None) is silenced
