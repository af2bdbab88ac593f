"""A real SMTP server on loopback (aiosmtpd) that keeps every message it receives.

Synapse's mailer talks to it as to any mail relay: ``email: {smtp_host: 127.0.0.1,
smtp_port: sink.port, ...}``.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from email.message import EmailMessage
from typing import Any

import attrs
from aiosmtpd.controller import Controller

from tests.harness.ports import free_port


@attrs.frozen
class Mail:
    """One message as delivered: the envelope recipient and the parsed message."""

    recipient: str
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None, "no text/plain part"
        return str(part.get_content())  # type: ignore[attr-defined]

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None, "no text/html part"
        return str(part.get_content())  # type: ignore[attr-defined]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._sink.lock:
            for recipient in envelope.rcpt_tos:
                self._sink.received.append(Mail(recipient, parsed))
        return "250 Message accepted for delivery"


class SmtpSink:
    """``start()`` / ``stop()``; ``received`` lists every mail in arrival order."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[Mail] = []
        self.lock = threading.Lock()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def mails(self) -> list[Mail]:
        with self.lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 30) -> list[Mail]:
        """Wait until ``count`` mails in all have arrived; return them all."""
        deadline = time.monotonic() + timeout
        while len(self.mails()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.mails())} mail(s) arrived, expected {count}")
            time.sleep(0.1)
        return self.mails()
