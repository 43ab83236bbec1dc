"""Seasonal activity profiles (models/season.py) and their use by the frequency detector:
local time from the event's own offset, decayed counts, shrinkage towards peers, a burst
judged against the hour it happens in, serialisation, and the rules that steer it."""

from __future__ import annotations

import math
from collections.abc import Iterable

import orjson
import pytest
from events_factory import EventFactory, typed

from config.rules import Rules, RulesError, SeasonRules, parse_rules
from models import season
from models.detectors.base import Context
from models.engine import Engine
from models.events import Event, OrderEvent
from models.findings import Finding
from models.state import EngineerActivity, OrderRecord, OutletState, PartitionState
from models.stats import Decayed, DecayedCounts
from stream.replay import MemoryStores

DAYS_OF_HISTORY = 21
"""Three weeks of day-shaped history; the factory's day starts at 09:00 (Wednesday)."""


def feed(engine: Engine, events: Iterable[Event]) -> list[Finding]:
    found: list[Finding] = []
    for event in events:
        found += engine.process(event, 0)
    return found


def day_shaped(f: EventFactory, engine: Engine) -> None:
    """Jobs created hourly 09:00-16:00 and completed two hours later, for three weeks."""
    for day in range(DAYS_OF_HISTORY):
        for k in range(8):
            feed(engine, f.job(day * 8 + k, at=day * 24.0 + k, engineer_id="E-1"))


def local_midnight(ts: float) -> float:
    """The local (+08:00) midnight starting the day of ``ts``, as local epoch seconds."""
    return (ts + 8 * 3600) // 86400 * 86400


def profile_of(engine: Engine, outlet_id: str, ts: float) -> season.Profile:
    outlet, part = engine.stores.outlet(outlet_id), engine.stores.partition(0)
    assert outlet is not None and part is not None
    return season.profile(outlet, part, ts, engine.rules.season)


def expected_at(
    engine: Engine, f: EventFactory, at: float, activity: EngineerActivity | None = None
) -> float:
    """Quick jobs an engineer with ``activity`` (None: no history) is expected to complete
    in the window ending at ``at`` (hours after the factory's start)."""
    event = f.order("probe", "completed", at, engineer_id="E-new")
    outlet, part = engine.stores.outlet(f.outlet_id), engine.stores.partition(0)
    assert outlet is not None and part is not None
    return engine.frequency.expected(Context(event, outlet, part, OrderRecord()), activity)[0]


def jobs_until_flagged(engine: Engine, f: EventFactory, at: float, engineer: str) -> int | None:
    """A burst from ``at``: a job every 5 minutes, each completed 3 minutes after its
    creation; how many jobs it took to be flagged (None: never, within 12)."""
    for n in range(12):
        created = at + n * 5 / 60
        found = feed(
            engine,
            [
                f.order(f"{engineer}-{n}", "created", created, engineer_id=engineer),
                f.order(f"{engineer}-{n}", "completed", created + 3 / 60, engineer_id=engineer),
            ],
        )
        if any(x.kind == "frequency_spike" for x in found):
            return n + 1
    return None


@pytest.fixture(scope="module")
def shaped() -> tuple[Engine, EventFactory]:
    """An engine that has seen three weeks of one outlet's day-shaped work."""
    f = EventFactory()
    engine = Engine(Rules(), MemoryStores())
    day_shaped(f, engine)
    return engine, f


# ---------------------------------------------------------------------- local time


@pytest.mark.parametrize(
    ("event_time", "hour", "day"),
    [
        ("2026-07-01T14:00:00+08:00", 14, 2),  # a Wednesday in Beijing
        ("2026-07-01T06:00:00Z", 6, 2),  # the same instant, on a clock at UTC
        ("2026-07-01T01:30:00-05:00", 1, 2),
        ("2026-07-05T23:59:59.500+08:00", 23, 6),  # a Sunday; fractional seconds
    ],
)
def test_slot_reads_the_events_own_clock(event_time: str, hour: int, day: int) -> None:
    """Hour of day and weekday are those of the event's own UTC offset."""
    event = typed(EventFactory().order_dict("O1", "completed", 0.0) | {"event_time": event_time})
    assert isinstance(event, OrderEvent)
    assert season.slot(season.local_time(event)) == (hour, day)


# ---------------------------------------------------------------------- decayed counts


def test_decayed_counts_halve_per_half_life_and_survive_rebasing() -> None:
    """A count is worth half after one half-life, whether or not the bins were brought to
    a newer reference time in between."""
    counts = DecayedCounts()
    counts.add((0, 3), 4, ts=0.0, half_life=10.0)
    assert counts.at(10.0, 10.0) == [0.5, 0.0, 0.0, 0.5]
    counts.add((1,), 4, ts=25.0, half_life=10.0)  # rebases: 25 > one half-life on
    assert counts.ref == 25.0
    at_35 = counts.at(35.0, 10.0)
    assert math.isclose(at_35[0], 2.0**-3.5, abs_tol=1e-3)
    assert math.isclose(at_35[1], 0.5)


# ---------------------------------------------------------------------- profiles


def test_a_day_shaped_stream_makes_a_day_shaped_profile(
    shaped: tuple[Engine, EventFactory],
) -> None:
    """Completions 11:00-18:00: afternoon hours well above the weekly average, night hours
    at the floor; the factors average 1 over a week (up to the floor)."""
    engine, f = shaped
    ts = f.order("probe", "completed", DAYS_OF_HISTORY * 24.0).ts
    profile = profile_of(engine, f.outlet_id, ts)
    midnight = local_midnight(ts)
    assert profile.factor(midnight + 14.5 * 3600) > 2.0
    assert profile.factor(midnight + 3.5 * 3600) < 0.2
    week = [profile.factor(midnight + hour * 3600) for hour in range(168)]
    assert 1.0 <= sum(week) / 168 < 1.1


def test_expected_quick_jobs_follow_the_clock(shaped: tuple[Engine, EventFactory]) -> None:
    """An engineer's usual rate of quick jobs is spread over the week by the profile: far
    more is expected in the window ending at 14:00 than in the one ending at 03:00. For an
    engineer without history the floor holds in busy hours and drops at night."""
    engine, f = shaped
    day = DAYS_OF_HISTORY * 24.0
    now = f.order("probe", "completed", day).ts
    habitual = EngineerActivity(Decayed(weight=40.0, ts=now))  # ~0.25 quick jobs per 3 h
    at_14, at_03 = (
        expected_at(engine, f, day + 5.0, habitual),
        expected_at(engine, f, day + 18.0, habitual),
    )
    assert at_14 > 1.5 * 0.25 and at_14 > 10 * at_03
    floor, min_factor = Rules().frequency.min_rate_per_window, Rules().season.min_factor
    assert expected_at(engine, f, day + 5.0) == floor
    assert expected_at(engine, f, day + 18.0) == pytest.approx(floor * min_factor)


def test_a_burst_at_night_is_flagged_with_fewer_jobs_than_one_at_peak_hours() -> None:
    """The same burst needs fewer jobs to be flagged at 03:00 than at 14:00, where more
    quick work is usual; the reason says the (seasonal) expected count."""
    f = EventFactory()
    engine = Engine(Rules(), MemoryStores())
    day_shaped(f, engine)
    day = DAYS_OF_HISTORY * 24.0
    at_peak = jobs_until_flagged(engine, f, day + 5.0, "E-peak")  # 14:00
    at_night = jobs_until_flagged(engine, f, day + 18.0, "E-night")  # 03:00 next day
    assert at_peak is not None and at_night is not None
    assert at_night < at_peak
    assert at_night == Rules().frequency.min_burst_jobs


def test_the_reason_states_the_seasonal_expectation(shaped: tuple[Engine, EventFactory]) -> None:
    engine, f = shaped
    burst = []
    for n in range(8):
        created = DAYS_OF_HISTORY * 24.0 + 42.0 + n * 5 / 60  # 03:00, two days on
        burst += feed(
            engine,
            [
                f.order(f"R{n}", "created", created, engineer_id="E-r"),
                f.order(f"R{n}", "completed", created + 3 / 60, engineer_id="E-r"),
            ],
        )
    [spike] = [x for x in burst if x.kind == "frequency_spike"]
    [reason] = spike.reasons
    assert isinstance(reason.expected, float) and reason.expected < 0.05
    assert f"usual for this engineer at this hour and weekday: {reason.expected:.2f}" in (
        reason.message
    )
    assert "x0.10 its weekly average" in reason.message


def test_quick_jobs_do_not_shape_the_profile() -> None:
    """A burst teaches the profile nothing: its own hour does not become usual."""
    f = EventFactory()
    engine = Engine(Rules(), MemoryStores())
    jobs_until_flagged(engine, f, 18.0, "E-9")
    outlet = engine.stores.outlet(f.outlet_id)
    assert outlet is not None and not outlet.season.counts


def test_a_new_outlet_starts_from_its_peers_and_moves_to_its_own() -> None:
    """An outlet with no completions has its region's profile; as its own completions (in
    the evening) accrue, its profile moves from the peers' towards its own."""
    old, new = EventFactory("W-OLD"), EventFactory("W-NEW")
    engine = Engine(Rules(), MemoryStores())
    day_shaped(old, engine)
    day = DAYS_OF_HISTORY * 24.0
    feed(engine, new.tick("first", day))  # a quick job: the newcomer exists, no profile
    ts = new.order("probe", "completed", day).ts
    midnight = local_midnight(ts)
    afternoon, evening = midnight + 14.5 * 3600, midnight + 21.5 * 3600
    peers, newcomer = profile_of(engine, "W-OLD", ts), profile_of(engine, "W-NEW", ts)
    assert newcomer.factor(afternoon) == pytest.approx(peers.factor(afternoon), rel=0.3)
    assert newcomer.factor(evening) < 0.2
    seen = []
    for n in range(60):  # evening work: created 18:00-20:00, completed 20:00-22:00
        created = day + n // 3 * 24.0 + 9.0 + n % 3
        feed(engine, new.job(1000 + n, at=created, engineer_id="E-2"))
        if n in (5, 59):
            seen.append(profile_of(engine, "W-NEW", new.order("p", "completed", created).ts))
    assert seen[0].factor(evening) < seen[1].factor(evening)
    assert seen[1].factor(evening) > 2.0 > seen[1].factor(afternoon)


def test_disabled_profiles_are_flat_and_learn_nothing() -> None:
    """season.enabled: false judges every hour alike (the frequency floor as before) and
    keeps no profile."""
    rules = parse_rules("season: {enabled: false}")
    f = EventFactory()
    engine = Engine(rules, MemoryStores())
    day_shaped(f, engine)
    day = DAYS_OF_HISTORY * 24.0
    floor = Rules().frequency.min_rate_per_window
    assert expected_at(engine, f, day + 5.0) == expected_at(engine, f, day + 18.0) == floor
    part = engine.stores.partition(0)
    assert part is not None and not part.seasons


# ---------------------------------------------------------------------- state, rules


def test_profiles_round_trip_and_old_state_loads_without_them(
    shaped: tuple[Engine, EventFactory],
) -> None:
    """Outlet and partition state with profiles load back to the same bytes and the same
    profile; state written before profiles existed loads with empty ones."""
    engine, f = shaped
    outlet, part = engine.stores.outlet(f.outlet_id), engine.stores.partition(0)
    assert outlet is not None and part is not None and outlet.season.counts and part.seasons
    outlet2 = OutletState.from_bytes(outlet.to_bytes())
    part2 = PartitionState.from_bytes(part.to_bytes())
    assert outlet2.to_bytes() == outlet.to_bytes() and part2.to_bytes() == part.to_bytes()
    ts = outlet.season.ref + 86400.0
    rules = SeasonRules()
    before = season.profile(outlet, part, ts, rules)
    after = season.profile(outlet2, part2, ts, rules)
    assert (before.hours, before.days) == (after.hours, after.days)
    old_outlet = orjson.loads(outlet.to_bytes())
    del old_outlet["sea"]
    old_part = orjson.loads(part.to_bytes())
    del old_part["seasons"]
    assert not OutletState.from_bytes(orjson.dumps(old_outlet)).season.counts
    assert PartitionState.from_bytes(orjson.dumps(old_part)).seasons == {}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("season: {min_factor: 0}", "season.min_factor"),
        ("season: {min_factor: 1.5}", "season.min_factor"),
        ("season: {half_life_days: -1}", "season.half_life_days"),
        ("season: {peer_prior_weight: -3}", "season.peer_prior_weight"),
        ("season: {hours: 24}", "season.hours"),
    ],
)
def test_bad_season_rules_are_refused_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(RulesError, match=key.replace(".", r"\.")):
        parse_rules(text)
