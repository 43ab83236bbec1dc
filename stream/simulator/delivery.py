"""From records to the stream as upstream systems would deliver it: contract events
(CONTRACT.md section 1) serialised once to compact JSON bytes, ordered by ARRIVAL time
(event time + a delivery delay), with some `completed` events held back past the
settlement that claims them and ~1-2 % of events delivered twice with identical bytes.

Times, ids and delays are drawn for all events at once (numpy); only building each event
object and serialising it is per event.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from tqdm import tqdm

from stream.simulator.catalogue import segment_names
from stream.simulator.clock import DAY, Clock
from stream.simulator.jobs import Business
from stream.simulator.records import Claim, Job
from stream.simulator.world import World

_STATUSES = ("created", "dispatched", "completed", "cancelled")


@dataclass(slots=True)
class Delivered:
    """The delivered stream and what it contains."""

    lines: list[bytes]
    kinds: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    redeliveries: int = 0
    late_completed: int = 0


def assign_ids(biz: Business, clock: Clock) -> None:
    """Order ids by creation time, settlement ids by submission time, numbered per day
    (e.g. SO20260701000123, JS20260703000045)."""
    stamp = {d: f"{clock.date_of(d):%Y%m%d}" for d in range(-1, clock.days + 1)}
    seq: Counter[int] = Counter()
    for job in sorted(biz.jobs, key=lambda j: (j.created, j.uid)):
        day = job.created // DAY
        seq[day] += 1
        job.order_id = f"SO{stamp[day]}{seq[day]:06d}"
    seq.clear()
    for claim in sorted(biz.claims, key=lambda c: (c.time, c.uid)):
        day = claim.time // DAY
        seq[day] += 1
        claim.settlement_id = f"JS{stamp[day]}{seq[day]:06d}"


_UUID_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID_SET = (0x4000 << 64) | (0x8000 << 48)


def uuid4_text(py: random.Random) -> str:
    """A version-4 UUID string drawn from ``py`` (same text as ``str(uuid.UUID(...))``)."""
    h = f"{(py.getrandbits(128) & _UUID_CLEAR) | _UUID_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid4_texts(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct version-4 UUID strings drawn from ``rng``."""
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexes = raw.tobytes().hex()
    out: list[str] = []
    for i in range(0, 32 * n, 32):
        h = hexes[i : i + 32]
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    if len(set(out)) != n:  # 122 random bits: never in practice, but ids must be unique
        seen: set[str] = set()
        for i, text in enumerate(out):
            while text in seen:
                text = uuid4_texts(rng, 1)[0]
            seen.add(text)
            out[i] = text
    return out


def _claim_event(claim: Claim, event_id: str, event_time: str, world: World) -> dict[str, Any]:
    job = claim.job
    outlet = world.outlets[job.outlet]
    service, category = segment_names(job.seg)
    items: list[dict[str, Any]] = []
    for line in claim.items:
        entry: dict[str, Any] = {"code": line.code, "amount": line.amount}
        if line.part_code is not None:
            entry["part_code"] = line.part_code
            entry["quantity"] = line.quantity
        items.append(entry)
    event: dict[str, Any] = {
        "kind": "settlement",
        "event_id": event_id,
        "event_time": event_time,
        "outlet_id": outlet.outlet_id,
        "region": outlet.region_name,
        "settlement_id": claim.settlement_id,
        "order_id": job.order_id,
        "service_type": service,
        "product_category": category,
        "amount": claim.amount,
        "currency": "CNY",
        "items": items,
    }
    if claim.travel_km is not None:
        event["travel_km"] = claim.travel_km
    return event


def _order_event(
    job: Job, status: str, event_id: str, event_time: str, world: World
) -> dict[str, Any]:
    outlet = world.outlets[job.outlet]
    service, category = segment_names(job.seg)
    event: dict[str, Any] = {
        "kind": "order",
        "event_id": event_id,
        "event_time": event_time,
        "outlet_id": outlet.outlet_id,
        "region": outlet.region_name,
        "order_id": job.order_id,
        "status": status,
        "service_type": service,
        "product_category": category,
    }
    if status != "created" and job.dispatched is not None:
        event["engineer_id"] = job.engineer
    if status == "completed":
        if job.parts:
            event["parts_issued"] = [{"part_code": p, "quantity": q} for p, q in job.parts]
        if job.rating is not None:
            event["customer_rating"] = job.rating
    return event


def _compact(event: dict[str, Any]) -> bytes:
    """Compact JSON bytes of ``event``, copied into an exact-size object: orjson's result
    keeps a ~4 KB allocation, which kept by the hundred thousand costs gigabytes."""
    return memoryview(orjson.dumps(event)).tobytes()


def _order_steps(biz: Business, clock: Clock) -> list[tuple[Job, str, int]]:
    """Every order status change that happened inside the window."""
    steps: list[tuple[Job, str, int]] = []
    for job in biz.jobs:
        if not job.exists:
            continue
        for status, t in zip(
            _STATUSES, (job.created, job.dispatched, job.completed, job.cancelled), strict=True
        ):
            if t is not None and t < clock.end:
                steps.append((job, status, t))
    return steps


def deliver(
    rng: np.random.Generator,
    biz: Business,
    world: World,
    clock: Clock,
    duplicate_rate: float,
    progress: bool = False,
) -> Delivered:
    """Serialise every event and order the stream by arrival time."""
    claims = sorted(biz.claims, key=lambda c: (c.time, c.uid))
    steps = _order_steps(biz, clock)
    n_claims = len(claims)
    n = n_claims + len(steps)
    times = np.array([c.time for c in claims] + [t for _, _, t in steps], dtype=np.int64)
    texts = clock.fmt_many(times)
    ids = uuid4_texts(rng, n)
    delay = np.minimum(rng.exponential(3.0, n), 30.0)
    delay += np.where(rng.random(n) < 0.003, rng.uniform(60.0, 900.0, n), 0.0)
    arrival = times + delay
    hold = rng.uniform(30.0, 1800.0, n)
    out = Delivered(lines=[])
    late_arrival: dict[int, float] = {}
    for i, claim in enumerate(claims):
        if claim.late_completed and claim.job.uid not in late_arrival:
            late_arrival[claim.job.uid] = float(arrival[i])
    for j, (job, status, _) in enumerate(steps):
        if status == "completed" and job.uid in late_arrival:
            arrival[n_claims + j] = late_arrival[job.uid] + hold[n_claims + j]
            out.late_completed += 1
    bar = tqdm(total=n, desc="events", unit="ev", disable=not progress)
    lines: list[bytes] = []
    for i, claim in enumerate(claims):
        lines.append(_compact(_claim_event(claim, ids[i], texts[i], world)))
    bar.update(n_claims)
    for j, (job, status, _) in enumerate(steps):
        i = n_claims + j
        lines.append(_compact(_order_event(job, status, ids[i], texts[i], world)))
        out.statuses[status] += 1
        if j % 10_000 == 9_999:
            bar.update(10_000)
    bar.update(n - bar.n)
    bar.close()
    out.kinds["settlement"] = n_claims
    out.kinds["order"] = len(steps)
    n_dup = round(duplicate_rate * n)
    again = np.sort(rng.choice(n, size=n_dup, replace=False)) if n_dup else np.zeros(0, int)
    lag = np.clip(rng.lognormal(np.log(600.0), 1.2, n_dup), 1.0, 2.0 * DAY)
    all_arrival = np.concatenate([arrival, arrival[again] + lag])
    lines.extend(lines[i] for i in again.tolist())
    out.redeliveries = n_dup
    order = np.lexsort((np.arange(all_arrival.shape[0]), all_arrival))
    out.lines = [lines[i] for i in order.tolist()]
    return out
