"""Hand a mail to the SMTP server (aiosmtplib), and say whether a failure is worth a retry.

Policy: the mail is *rejected* (permanently; not retried) only when the server refuses
every recipient with a 5xx reply or refuses the message itself with a 5xx after DATA —
retrying the same mail would get the same answer. Everything else is *transient* and
raised as is, so the outbox keeps the mail and retries: the server down or timing out,
4xx replies, and 5xx on authentication or the sender address, which are configuration
errors that fixing the settings cures (the alerts then go out instead of being lost).
The password comes from ``SETTLEGUARD_SMTP_PASSWORD`` or ``_SMTP_PASSWORD_FILE`` and is
never logged.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib

from config.settings import Settings

log = logging.getLogger(__name__)


class MailRejected(Exception):
    """The SMTP server refused the mail for good (5xx to every recipient or to DATA)."""


def smtp_password(settings: Settings) -> str | None:
    """The SMTP password from the settings or from the file they name."""
    if settings.smtp_password is not None:
        return settings.smtp_password.get_secret_value()
    if settings.smtp_password_file is not None:
        try:
            return settings.smtp_password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(
                f"cannot read SETTLEGUARD_SMTP_PASSWORD_FILE={settings.smtp_password_file}: "
                f"{exc.strerror}"
            ) from None
    return None


class SmtpMailer:
    """Sends each mail over a fresh SMTP connection to the configured server."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.password = smtp_password(settings)

    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` to the server; MailRejected when refused for good, any
        other exception when it may work later."""
        settings = self.settings
        try:
            refused, _ = await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=self.password,
                use_tls=settings.smtp_security == "tls",
                start_tls=settings.smtp_security == "starttls",
                timeout=settings.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(r.code >= 500 for r in exc.recipients):
                raise MailRejected(
                    "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
                ) from None
            raise
        except aiosmtplib.SMTPDataError as exc:
            if exc.code >= 500:
                raise MailRejected(f"message refused: {exc.code} {exc.message}") from None
            raise
        if refused:  # some recipients refused, the others accepted: the mail went out
            log.warning(
                "mail %s: recipients refused: %s",
                message["Message-ID"],
                "; ".join(f"{who}: {reply.code} {reply.message}" for who, reply in refused.items()),
            )
