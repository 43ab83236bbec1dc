"""Runtime settings: one pydantic-settings object read from ``SETTLEGUARD_*`` env vars.

Built once in ``main()`` and passed down; nothing reads the environment elsewhere, so
tests construct ``Settings(...)`` directly with the values they need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where settleguard connects, which topics it uses and where it keeps local state."""

    model_config = SettingsConfigDict(env_prefix="SETTLEGUARD_", extra="ignore")

    app_id: str = Field("settleguard", description="Faust app id = Kafka consumer group")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for the review queue")

    orders_topic: str = "settleguard.orders"
    settlements_topic: str = "settleguard.settlements"
    dead_letter_topic: str = "settleguard.dead-letter"
    alerts_topic: str = "settleguard.alerts"
    rules_topic: str = Field("settleguard.rules", description="compacted: the live rule set")
    rekey_topic: str = Field(
        "settleguard.events-by-outlet",
        description="internal: events re-keyed onto their outlet's partition",
    )
    verdicts_topic: str = Field(
        "settleguard.verdicts",
        description="internal: reviewers' verdicts keyed by outlet, applied by its partition",
    )
    ratings_topic: str = Field(
        "settleguard.ratings", description="compacted: latest rating figures per outlet"
    )
    review_stream: str = Field("settleguard:review", description="Redis Stream reviewers read")
    review_group: str = Field("reviewers", description="consumer group on the review stream")
    review_max_entries: int = Field(
        100_000, ge=100, description="cap on the review stream (acknowledged entries trimmed)"
    )
    review_retention_days: float = Field(
        90.0, gt=0, description="how long <prefix>alert:<id> (alert, entry) is kept in Redis"
    )
    redis_key_prefix: str = Field(
        "settleguard:",
        description="prefix of settleguard's own Redis keys (alert index, mail dedupe)",
    )
    verdicts_stream: str = Field(
        "settleguard:verdicts", description="Redis Stream reviewers write verdicts to"
    )
    topic_partitions: int = Field(4, ge=1, description="partitions of the topics we create")
    standby_replicas: int = Field(1, ge=0, description="warm copies of each table partition")

    batch_size: int = Field(500, ge=1, description="most events handed to detection at once")
    batch_seconds: float = Field(0.05, gt=0, description="longest wait to fill a batch")
    checkpoint_seconds: float = Field(
        1.0, gt=0, description="how often state is written back and offsets may commit"
    )
    idle_seconds: float = Field(60.0, gt=0, description="quiet input: advance its event time")
    tick_seconds: float = Field(5.0, gt=0, description="how often quiet inputs are checked")
    stall_seconds: float = Field(60.0, gt=0, description="/healthz fails after this long stuck")
    lag_seconds: float = Field(5.0, gt=0, description="how often the consumer lag gauge is read")

    web_host: str = Field("127.0.0.1", description="address the worker's web server binds")
    web_port: int = Field(6066, ge=1, le=65535)
    data_dir: Path = Field(Path("var/worker"), description="worker's local table store")
    log_level: str = "info"

    # Alert mail (alerts/mail_sink.py); routes, grouping and silences are in the rule set.
    smtp_host: str = Field("127.0.0.1", description="SMTP server for alert mail")
    smtp_port: int = Field(25, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        "none", description="none, STARTTLS after connecting, or TLS from the start"
    )
    smtp_username: str | None = None
    smtp_password: SecretStr | None = Field(None, description="never logged")
    smtp_password_file: Path | None = Field(None, description="file holding the password")
    smtp_from: str = Field("settleguard@localhost", description="sender address of alert mail")
    smtp_timeout_seconds: float = Field(30.0, gt=0)
    alert_url: str | None = Field(
        None, description="link to one alert, e.g. https://review.example/alerts/{alert_id}"
    )
    mail_claim_seconds: float = Field(
        300.0, gt=0, description="a worker's claim to send an alert's mail expires after this"
    )
    mail_dedupe_days: float = Field(
        30.0, gt=0, description="how long Redis remembers a mailed alert (> alerts retention)"
    )
