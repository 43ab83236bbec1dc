"""Alert mails rendered in Chinese and English: subject, text and HTML parts, the link,
and the inline PNG chart referenced by cid."""

from __future__ import annotations

import email
import struct
from email import policy
from email.message import EmailMessage
from typing import Any

from alerts.chart import HEIGHT, WIDTH, chart_data
from alerts.mail_render import MailRenderer, message_id
from config.routing import Receiver

ZH = Receiver(to=("ops@example.com",))
EN = Receiver(to=("audit@example.com", "lead@example.com"), language="en")
RECENT = [
    {"time": f"2026-07-0{day}T10:00:00+08:00", "amount": amount}
    for day, amount in [(1, 150), (2, 148), (3, 155), (4, 610)]
]


def alert(**fields: Any) -> dict[str, Any]:
    return {
        "alert_id": "sg-0123456789abcdef01234567",
        "kind": "amount_spike",
        "severity": "high",
        "score": 83.5,
        "outlet_id": "W-42",
        "region": "华东-上海",
        "settlement_id": "S9",
        "settlement_ids": ["S9"],
        "order_id": "O9",
        "event_time": "2026-07-04T10:00:00+08:00",
        "detected_at": "2026-07-04T02:00:01.000+00:00",
        "reasons": [
            {
                "detector": "amount",
                "feature": "repair|air_conditioner|labor",
                "value": 610.0,
                "expected": 151.2,
                "threshold": 240.5,
                "message": "labour 610.00 CNY is 4.0x the usual 151.20 CNY",
            }
        ],
        "rule_version": "default+0",
        "model_version": "detectors-1",
    } | fields


def parsed(message: EmailMessage) -> EmailMessage:
    """The message as a mail client sees it: serialised, then parsed back."""
    return email.message_from_bytes(message.as_bytes(), policy=policy.default)  # type: ignore[return-value]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_single_alert_in_chinese_with_link_reasons_and_chart() -> None:
    """The default language is Chinese: the subject names outlet, kind and severity; the
    text names the reasons (seen, expected, detector) and links the alert id; the HTML
    shows the chart by cid, and the PNG is attached inline with that Content-ID."""
    renderer = MailRenderer("sg@example.com", "https://review.example/alerts/{alert_id}")
    mail = parsed(renderer.render(ZH, [alert(recent_claims=RECENT)]))
    assert mail["Subject"] == "[settleguard] 网点 W-42 · 金额异常偏高 · 严重度 高"
    assert mail["To"] == "ops@example.com"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "https://review.example/alerts/sg-0123456789abcdef01234567" in text
    assert "labour 610.00 CNY is 4.0x the usual 151.20 CNY" in text
    assert "实际: 610.0; 预期: 151.2" in text and "检测器 amount" in text
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    [image] = [p for p in mail.walk() if p.get_content_type() == "image/png"]
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html
    assert png_size(image.get_content()) == (WIDTH, HEIGHT)
    assert len(image.get_content()) < 8000


def test_digest_in_english_counts_alerts_and_names_the_highest_severity() -> None:
    """A group of alerts is one digest: outlet, count and highest severity in the subject,
    every alert id in the text, one chart."""
    alerts = [
        alert(alert_id="sg-a", severity="medium", event_time="2026-07-03T10:00:00+08:00"),
        alert(alert_id="sg-b", severity="critical", kind="duplicate_settlement"),
        alert(alert_id="sg-c", severity="low", kind="unknown_new_kind"),
    ]
    mail = parsed(MailRenderer("sg@example.com").render(EN, alerts))
    assert mail["Subject"] == "[settleguard] Outlet W-42 · 3 alerts · highest critical"
    assert mail["To"] == "audit@example.com, lead@example.com"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert all(f"Alert id: {a}" in text for a in ("sg-a", "sg-b", "sg-c"))
    assert "duplicate settlement" in text and "unknown_new_kind" in text
    assert len([p for p in mail.walk() if p.get_content_type() == "image/png"]) == 1


def test_chart_marks_the_flagged_claim_among_recent_claims() -> None:
    """With recent_claims the chart shows them all and flags the alert's own claim; without,
    only the alerts' flagged amounts, beside the expected amount."""
    data = chart_data([alert(recent_claims=RECENT)])
    assert data is not None
    assert [(p.amount, p.flagged) for p in data.points] == [
        (150, False),
        (148, False),
        (155, False),
        (610, True),
    ]
    fallback = chart_data([alert()])
    assert fallback is not None
    assert [(p.amount, p.flagged) for p in fallback.points] == [(610.0, True)]
    assert fallback.expected == 151.2


def test_no_chart_when_the_alerts_carry_no_amounts() -> None:
    """A duplicate claim has no amounts to chart: the mail says so and has no image."""
    dup = alert(
        kind="duplicate_settlement",
        reasons=[{"detector": "crosscheck", "value": 2, "message": "claimed twice"}],
    )
    mail = parsed(MailRenderer("sg@example.com").render(ZH, [dup]))
    assert not [p for p in mail.walk() if p.get_content_type() == "image/png"]
    assert "告警中没有可绘制的金额" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def test_message_id_is_the_same_for_the_same_alerts_and_recipients() -> None:
    """A mail sent again after a crash mid-conversation is the same message (receiving
    systems drop the copy); other alerts or recipients make another one."""
    one = message_id(["a@example.com"], ["sg-1", "sg-2"])
    assert one == message_id(["a@example.com"], ["sg-2", "sg-1"])
    assert one != message_id(["b@example.com"], ["sg-1", "sg-2"])
    assert one != message_id(["a@example.com"], ["sg-1"])
    assert one.startswith("<") and one.endswith("@settleguard>")
