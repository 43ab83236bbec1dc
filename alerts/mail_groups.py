"""When the mails of a group go out: Alertmanager-style grouping for alert *events*.

A group is one receiver and one outlet. Every alert is mailed once (never repeated), so
the timers mean:

- ``group_wait``: a *closed* group (new, or quiet for ``repeat_interval``) that gets an
  alert waits this long before its first mail, gathering the rest of a burst into it;
- ``group_interval``: an *open* group (mailed within ``repeat_interval``) sends newly
  arrived alerts as soon as this long has passed since its last mail — no earlier, so a
  long burst becomes one digest every ``group_interval``, not a mail per alert;
- ``repeat_interval``: how long a group stays open after its last mail. Nothing is mailed
  again; once it passes, the group's memory is dropped and its next alert starts afresh
  with ``group_wait``.

The clock is a constructor argument (monotonic seconds), so tests drive it by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from config.routing import Grouping
from stream.alert_sinks import AlertRecord

GroupKey = tuple[str, str]
"""(receiver name, outlet_id)"""


@dataclass(slots=True)
class Group:
    """Alerts waiting to be mailed to one receiver about one outlet."""

    pending: list[AlertRecord] = field(default_factory=list)
    first_pending: float = 0.0
    last_sent: float | None = None

    def is_open(self, now: float, grouping: Grouping) -> bool:
        return self.last_sent is not None and now - self.last_sent < grouping.repeat_interval

    def due_at(self, now: float, grouping: Grouping) -> float:
        """When the pending alerts should go out (only meaningful while some are)."""
        if self.is_open(now, grouping):
            assert self.last_sent is not None
            return max(self.last_sent + grouping.group_interval, self.first_pending)
        return self.first_pending + grouping.group_wait


class MailGroups:
    """Pending alerts per group and each group's timers."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.groups: dict[GroupKey, Group] = {}

    def add(self, key: GroupKey, record: AlertRecord) -> None:
        """Queue ``record`` for the group ``key``."""
        group = self.groups.setdefault(key, Group())
        if not group.pending:
            group.first_pending = self.clock()
        group.pending.append(record)

    def due(self, grouping: Grouping) -> list[GroupKey]:
        """Groups whose pending alerts should be mailed now; closed idle groups are
        forgotten on the way."""
        now = self.clock()
        ready = []
        for key, group in list(self.groups.items()):
            if group.pending:
                if group.due_at(now, grouping) <= now:
                    ready.append(key)
            elif not group.is_open(now, grouping):
                del self.groups[key]
        return ready

    def take(self, key: GroupKey) -> list[AlertRecord]:
        """Remove and return the pending alerts of ``key`` (to mail them)."""
        group = self.groups[key]
        records, group.pending = group.pending, []
        return records

    def sent(self, key: GroupKey) -> None:
        """The group's mail was accepted now: it is open from here on."""
        self.groups.setdefault(key, Group()).last_sent = self.clock()

    def put_back(self, key: GroupKey, records: list[AlertRecord]) -> None:
        """A mail could not go out: its alerts wait again, still due (the sink runner
        paces the retries with its backoff)."""
        group = self.groups.setdefault(key, Group())
        group.pending = records + group.pending

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the alerts read from ``partitions`` (another worker owns them now)."""
        gone = set(partitions)
        for group in self.groups.values():
            group.pending = [r for r in group.pending if r.partition not in gone]

    def pending(self) -> int:
        return sum(len(group.pending) for group in self.groups.values())
