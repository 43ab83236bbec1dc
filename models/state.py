"""The detection state: plain, versioned objects that serialise to compact JSON bytes.

Three kinds, keyed so each lives in one Kafka partition (the outlet's):
- ``OutletState``: one outlet's baselines (per segment, part code, travel), its seasonal
  activity profile and engineers' recent activity — what the amount and frequency
  detectors judge against.
- ``OrderRecord``: one order's lifecycle and the settlements claiming it — the join state
  of the cross-checks, and where re-deliveries are recognised by ``event_id``.
- ``PartitionState``: what the outlets of one partition share — peer baselines and
  activity profiles, tail calibration, the event-time watermark, pending grace checks,
  the forest's reservoir.
  Kept per partition (not global) so that a partition's state moves whole with it on a
  rebalance and replay reproduces the worker exactly (see README, "Architecture").

Replay keeps these objects live in dicts; the stream worker stores their bytes in Faust
tables. ``STATE_VERSION`` is written into every serialised object and checked on load.
Fields added since version 1 (verdicts, ratings, recent claims, activity profiles) are
optional in the serialised form: state written before them loads with them empty.
"""

from __future__ import annotations

from typing import Any

import orjson

from models.stats import Decayed, DecayedCounts, Tail

STATE_VERSION = 1


class StateVersionError(ValueError):
    """Serialised state from an incompatible version of settleguard."""


def _check_version(data: dict[str, Any], what: str) -> None:
    if data.get("v") != STATE_VERSION:
        raise StateVersionError(
            f"{what} state has version {data.get('v')!r}, this build reads {STATE_VERSION}: "
            "replay the input topics from the start to rebuild it"
        )


def _stats_to(table: dict[str, Decayed]) -> dict[str, list[float]]:
    return {key: stat.to_list() for key, stat in table.items()}


def _stats_from(table: dict[str, list[float]]) -> dict[str, Decayed]:
    return {key: Decayed.from_list(values) for key, values in table.items()}


class EngineerActivity:
    """One engineer's quick jobs: a decayed count (their usual rate) and the recent ones."""

    __slots__ = ("alerted_burst", "burst_surprise", "quick_rate", "recent")

    def __init__(
        self,
        quick_rate: Decayed | None = None,
        recent: list[list[Any]] | None = None,
        alerted_burst: str | None = None,
        burst_surprise: float = 0.0,
    ) -> None:
        self.quick_rate = quick_rate or Decayed()
        self.recent: list[list[Any]] = recent or []  # [completed ts, order_id]
        self.alerted_burst = alerted_burst  # key of the burst flagged in this window
        self.burst_surprise = burst_surprise

    def to_list(self) -> list[Any]:
        return [self.quick_rate.to_list(), self.recent, self.alerted_burst, self.burst_surprise]

    @classmethod
    def from_list(cls, data: list[Any]) -> EngineerActivity:
        return cls(Decayed.from_list(data[0]), *data[1:])


class OutletState:
    """Everything the detectors know about one outlet."""

    __slots__ = (
        "accepted",
        "engineers",
        "first_ts",
        "outlet_id",
        "rating",
        "recent",
        "region",
        "season",
        "stats",
        "verdicts",
    )

    def __init__(self, outlet_id: str, region: str | None = None) -> None:
        self.outlet_id = outlet_id
        self.region = region
        self.first_ts: float | None = None
        self.stats: dict[str, Decayed] = {}  # "<segment>|<feature>", "part|<code>", "travel|km"
        self.engineers: dict[str, EngineerActivity] = {}
        # Reviewers' dismissals (models/feedback.py): statistic -> [level, credit, ts]
        self.accepted: dict[str, list[float]] = {}
        self.verdicts: list[str] = []  # alert ids of the verdicts applied, latest last
        self.rating: dict[str, dict[str, float]] = {}  # day -> counters (models/rating.py)
        self.recent: list[list[float]] = []  # latest claims [event ts, amount], oldest first
        self.season = DecayedCounts()  # completed orders by local hour, weekday (models/season.py)

    def stat(self, key: str) -> Decayed:
        found = self.stats.get(key)
        if found is None:
            found = self.stats[key] = Decayed()
        return found

    def to_bytes(self) -> bytes:
        return orjson.dumps(
            {
                "v": STATE_VERSION,
                "outlet": self.outlet_id,
                "region": self.region,
                "first": self.first_ts,
                "stats": _stats_to(self.stats),
                "eng": {key: e.to_list() for key, e in self.engineers.items()},
                "acc": self.accepted,
                "ver": self.verdicts,
                "rat": self.rating,
                "rec": self.recent,
                "sea": self.season.to_list(),
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> OutletState:
        data = orjson.loads(raw)
        _check_version(data, "outlet")
        state = cls(data["outlet"], data["region"])
        state.first_ts = data["first"]
        state.stats = _stats_from(data["stats"])
        state.engineers = {k: EngineerActivity.from_list(v) for k, v in data["eng"].items()}
        # absent from state written before verdicts and ratings existed
        state.accepted = data.get("acc", {})
        state.verdicts = data.get("ver", [])
        state.rating = data.get("rat", {})
        state.recent = data.get("rec", [])
        state.season = DecayedCounts.from_list(data.get("sea", []))
        return state


ORDER_FIELDS = (
    "burst",
    "cancelled_ts",
    "completed_ts",
    "created_ts",
    "engineer_id",
    "event_ids",
    "last_ts",
    "parts_issued",
    "product_category",
    "service_type",
    "settlements",
)
"""What an order record stores (its serialised keys)."""


class OrderRecord:
    """One order as seen so far: lifecycle times, parts issued, settlements, event ids."""

    __slots__ = ORDER_FIELDS

    def __init__(self) -> None:
        self.created_ts: float | None = None
        self.completed_ts: float | None = None
        self.cancelled_ts: float | None = None
        self.engineer_id: str | None = None
        self.service_type: str | None = None
        self.product_category: str | None = None
        self.parts_issued: dict[str, int] | None = None
        self.settlements: dict[str, float] = {}  # settlement_id -> event time
        self.event_ids: list[str] = []
        self.last_ts = 0.0
        self.burst: list[Any] | None = None  # [finding key, surprise] of its flagged burst

    def to_bytes(self) -> bytes:
        return orjson.dumps({"v": STATE_VERSION, **{k: getattr(self, k) for k in ORDER_FIELDS}})

    @classmethod
    def from_bytes(cls, raw: bytes) -> OrderRecord:
        data = orjson.loads(raw)
        _check_version(data, "order")
        record = cls()
        for key in ORDER_FIELDS:
            setattr(record, key, data[key])
        return record


PARTITION_FIELDS = (
    "accepted_peers",
    "forest_generation",
    "forest_pending_at",
    "forest_queue",
    "forest_rows",
    "forest_seen",
    "latest",
    "order_time",
    "partition",
    "peers",
    "pending",
    "seasons",
    "settlement_time",
    "started",
    "tails",
    "watermark",
)
"""What a partition's state stores (its serialised keys)."""


class PartitionState:
    """What the outlets of one input partition share: peer baselines, tail calibration,
    the event-time watermark, grace checks waiting for it, and the forest's reservoir."""

    __slots__ = PARTITION_FIELDS

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.started: float | None = None  # event time of the partition's first event
        # Event time per input (order events and settlements arrive on separate topics):
        # grace checks follow the slower of the two, so a claim is never judged before
        # the order events of its time have been read, whatever the topics' relative lag.
        self.order_time = 0.0
        self.settlement_time = 0.0
        self.watermark = 0.0  # min of the two: what grace checks wait for
        self.latest = 0.0  # max of the two: replay's clock
        self.peers: dict[str, Decayed] = {}  # "<region or *>|<baseline key>"
        self.tails: dict[str, Tail] = {}  # "<detector>.<feature family>"
        self.seasons: dict[str, DecayedCounts] = {}  # activity profiles: "<region>", "*"
        self.pending: list[list[Any]] = []  # heap of [due ts, outlet, order, settlement, time]
        self.forest_rows: list[list[float]] = []  # reservoir of normal feature vectors
        self.forest_seen = 0  # settlements offered to the reservoir
        self.forest_pending_at: int | None = None  # forest_seen when a retraining started
        self.forest_queue: list[list[float]] = []  # rows held while a retraining reads
        self.forest_generation = 0  # forests installed so far
        # "<region>|<statistic>" -> {outlet: [level, credit, ts]} (models/feedback.py)
        self.accepted_peers: dict[str, dict[str, list[float]]] = {}

    def peer(self, key: str) -> Decayed:
        found = self.peers.get(key)
        if found is None:
            found = self.peers[key] = Decayed()
        return found

    def tail(self, family: str) -> Tail:
        found = self.tails.get(family)
        if found is None:
            found = self.tails[family] = Tail()
        return found

    def to_bytes(self) -> bytes:
        data = {key: getattr(self, key) for key in PARTITION_FIELDS}
        data["peers"] = _stats_to(self.peers)
        data["tails"] = {key: tail.to_list() for key, tail in self.tails.items()}
        data["seasons"] = {key: counts.to_list() for key, counts in self.seasons.items()}
        return orjson.dumps({"v": STATE_VERSION, **data})

    @classmethod
    def from_bytes(cls, raw: bytes) -> PartitionState:
        data = orjson.loads(raw)
        _check_version(data, "partition")
        state = cls(data["partition"])
        for key in PARTITION_FIELDS:
            if key in data:  # accepted_peers, seasons: absent from state written before them
                setattr(state, key, data[key])
        state.peers = _stats_from(data["peers"])
        state.tails = {key: Tail.from_list(values) for key, values in data["tails"].items()}
        state.seasons = {
            key: DecayedCounts.from_list(values) for key, values in data.get("seasons", {}).items()
        }
        return state
