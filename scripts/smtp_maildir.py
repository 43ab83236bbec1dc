"""A local SMTP server for development and tests: every accepted message is stored as a
file in a maildir-like directory (written to ``tmp/``, then renamed into ``new/``), with
the envelope prepended as ``X-Envelope-From`` / ``X-Envelope-To`` headers, so tests read
the real messages. Binds 127.0.0.1 unless told otherwise. Run by ``scripts/services.sh
start smtp`` or directly::

    python scripts/smtp_maildir.py --port 8025 --maildir var/services/smtp/maildir

``--reject PATTERN`` (repeatable, shell glob) answers 550 to matching recipients, to
exercise permanent rejections.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
import uuid
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class MaildirHandler:
    """aiosmtpd handler: refuse the configured recipients, store every message."""

    def __init__(self, maildir: Path, reject: list[str]) -> None:
        self.maildir, self.reject = maildir, reject
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if any(fnmatchcase(address, pattern) for pattern in self.reject):
            return f"550 5.1.1 <{address}>: recipient rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.eml"
        head = (
            f"X-Envelope-From: {envelope.mail_from}\r\n"
            f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(head + envelope.original_content)
        os.replace(tmp, self.maildir / "new" / name)
        return "250 2.0.0 Message accepted for delivery"


async def serve(host: str, port: int, maildir: Path, reject: list[str]) -> None:
    """Serve until SIGTERM or SIGINT."""
    controller = Controller(MaildirHandler(maildir, reject), hostname=host, port=port)
    controller.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"smtp: listening on {host}:{port}, storing mail in {maildir}", flush=True)
    try:
        await stop.wait()
    finally:
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8025, help="port to bind (8025)")
    parser.add_argument("--maildir", type=Path, required=True, help="where messages go")
    parser.add_argument("--reject", action="append", default=[], help="recipient glob to 550")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.maildir, args.reject))


if __name__ == "__main__":
    main()
