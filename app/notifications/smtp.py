"""Sending one message over SMTP (aiosmtplib), configured by SMTP_URL."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class Mailer:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> Mailer:
        """smtp://HOST:PORT (plain, STARTTLS when offered) or smtps://USER:PASS@HOST:PORT."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must be smtp://HOST:PORT or smtps://USER:PASS@HOST:PORT")
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 25),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    async def send(self, message: EmailMessage) -> None:
        """Raises on any failure (the caller retries later)."""
        await aiosmtplib.send(
            message,
            hostname=self.host,
            port=self.port,
            use_tls=self.tls,
            start_tls=None if not self.tls else False,
            username=self.username,
            password=self.password,
            timeout=TIMEOUT_SECONDS,
        )
