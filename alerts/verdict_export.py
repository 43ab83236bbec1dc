"""Reviewers' verdicts joined with the alerts they decide, for accuracy reports
(``settleguard review export``; read by ``settleguard evaluate --verdicts``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from redis.asyncio import Redis

from alerts.review_queue import alert_key
from config.settings import Settings

BATCH = 1000


async def verdicts_with_alerts(settings: Settings, client: Redis) -> AsyncIterator[dict[str, Any]]:
    """Every entry of the verdicts stream, oldest first, as its fields plus ``entry`` and
    ``alert`` (the alert JSON decoded, or None when its hash has expired)."""
    start = "-"
    while True:
        entries: Any = await client.xrange(settings.verdicts_stream, start, "+", count=BATCH)
        if not entries:
            return
        pipe = client.pipeline(transaction=False)
        for _, fields in entries:
            pipe.hget(alert_key(settings.redis_key_prefix, fields.get("alert_id", "")), "alert")
        alerts = await pipe.execute()
        for (entry, fields), alert in zip(entries, alerts, strict=True):
            yield {**fields, "entry": entry, "alert": orjson.loads(alert) if alert else None}
        start = f"({entries[-1][0]}"
