"""One outlet's alerts for one receiver as an email: subject, text and HTML parts, and the
inline chart (multipart/alternative; the HTML part is multipart/related with the PNG
referenced by ``cid:``). Templates and their words are in ``alerts/templates/``: Chinese
by default, English for receivers with ``language: en``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from importlib.resources import files
from typing import Any
from urllib.parse import quote

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from alerts.chart import HEIGHT, WIDTH, chart_data, render_chart
from config.base import SEVERITIES
from config.routing import Receiver


class MailRenderer:
    """Renders alert mails from the package's templates."""

    def __init__(self, sender: str, alert_url: str | None = None) -> None:
        """``alert_url`` links an alert, ``{alert_id}`` standing for its id."""
        self.sender, self.alert_url = sender, alert_url
        self.env = Environment(
            loader=PackageLoader("alerts", "templates"),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.labels = yaml.safe_load(
            files("alerts").joinpath("templates", "labels.yaml").read_text(encoding="utf-8")
        )

    def render(self, receiver: Receiver, alerts: Sequence[Mapping[str, Any]]) -> EmailMessage:
        """The mail to ``receiver`` about ``alerts`` (all of one outlet; one alert makes a
        single-alert mail, more a digest)."""
        if not alerts:
            raise ValueError("a mail needs at least one alert")
        words = self.labels[receiver.language]
        ordered = sorted(alerts, key=lambda a: (str(a.get("event_time")), str(a["alert_id"])))
        shown = [self._view(alert, words) for alert in ordered]
        highest = max((a["severity"] for a in ordered), key=SEVERITIES.index)
        data = chart_data(ordered)
        chart = None
        if data is not None:
            chart = {
                "cid": make_msgid(idstring="chart", domain="settleguard")[1:-1],
                "png": render_chart(data),
                "width": WIDTH,
                "height": HEIGHT,
                "first": data.first.strftime("%Y-%m-%d %H:%M"),
                "last": data.last.strftime("%Y-%m-%d %H:%M"),
                "top": f"{data.highest * 1.1:,.0f}",
            }
        context = {
            "t": words,
            "language": receiver.language,
            "outlet_id": ordered[0]["outlet_id"],
            "region": next((a["region"] for a in ordered if a.get("region")), None),
            "alerts": shown,
            "highest_label": words["severities"].get(highest, highest),
            "chart": chart,
        }
        subject = self.env.get_template("subject.txt").render(context).strip()
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.sender
        message["To"] = ", ".join(receiver.to)
        message["Date"] = formatdate()
        message["Message-ID"] = message_id(receiver.to, [a["alert_id"] for a in ordered])
        message["X-Settleguard-Alerts"] = " ".join(a["alert_id"] for a in ordered)
        message.set_content(self.env.get_template("body.txt").render(context))
        html = self.env.get_template("body.html").render(context, subject=subject)
        message.add_alternative(html, subtype="html")
        if chart is not None:
            html_part = message.get_body(preferencelist=("html",))
            assert html_part is not None, "the HTML part was just added"
            html_part.add_related(
                chart["png"], "image", "png", cid=f"<{chart['cid']}>", filename="claims.png"
            )
        return message

    def _view(self, alert: Mapping[str, Any], words: Mapping[str, Any]) -> dict[str, Any]:
        """``alert`` plus what the templates show beside it: names and its link."""
        url = None
        if self.alert_url:
            url = self.alert_url.replace("{alert_id}", quote(str(alert["alert_id"]), safe=""))
        return {
            **alert,
            "kind_label": words["kinds"].get(alert["kind"], alert["kind"]),
            "severity_label": words["severities"].get(alert["severity"], alert["severity"]),
            "url": url,
            "settlement_id": alert.get("settlement_id"),
            "order_id": alert.get("order_id"),
        }


def message_id(recipients: Sequence[str], alert_ids: Sequence[str]) -> str:
    """A Message-ID made of the recipients and the alert ids, so that a mail sent again
    (only possible when a worker dies in the middle of an SMTP conversation) is the same
    message to the receiving systems, which drop the copy."""
    digest = hashlib.sha256("\x1f".join([*sorted(recipients), *sorted(alert_ids)]).encode())
    return f"<{digest.hexdigest()[:32]}@settleguard>"
