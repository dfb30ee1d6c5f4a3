"""Webhook alerts: a JSON POST signed per the Standard Webhooks spec, or Slack-style text.

Headers (https://www.standardwebhooks.com): ``webhook-id`` — the event id (a digest's id for
digests), the same on every resend, so a receiver drops the one possible duplicate;
``webhook-timestamp`` — Unix seconds of this try; ``webhook-signature`` — ``v1,<base64
HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed with the secret from ``secret_env`` in the
spec's format (``whsec_`` + base64; decoded exactly as the ``standardwebhooks`` package does).
Without ``secret_env`` the POST is unsigned.

``format = "json"`` sends ``{"type", "timestamp", "data"}`` (the spec's payload shape) with
the event, its text and what this node archived; ``format = "slack"`` sends ``{"text": …}``,
which Slack and Matrix hook bridges accept (``&``, ``<``, ``>`` escaped as Slack requires).

Outcome: 2xx accepted; 408, 429, 5xx, timeouts and connection errors are retried (honouring
``Retry-After``); any other status (3xx — redirects are not followed — and 4xx) is permanent:
the receiver refused this payload or the URL is wrong, so the alert is dead-lettered at once
and the other destinations hear of it. Errors and logs never contain the URL, whose path is
often the secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from seedvault import __version__
from seedvault.catalog_outbox import OutboxRow
from seedvault.config import WebhookAlert
from seedvault.errors import AlertDeliveryError
from seedvault.notify.base import Destination
from seedvault.notify.render import AlertContent, EventFacts, commands

SECRET_PREFIX = "whsec_"
MAX_SLACK_CHARS = 35_000
_RETRY_STATUSES = frozenset({408, 429})


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_<base64>``, prefix optional).

    Raises:
        ValueError: empty, or not base64.
    """
    value = secret.strip()
    if value.startswith(SECRET_PREFIX):
        value = value[len(SECRET_PREFIX) :]
    try:
        # as standardwebhooks decodes it (missing padding tolerated), but refusing characters
        # outside the base64 alphabet, which it would silently skip
        value = value.rstrip("=")
        key = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the webhook secret is not base64 (expected whsec_<base64>)") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">``."""
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def _facts_json(facts: EventFacts, public_url: str) -> dict[str, Any]:
    return {
        "event": facts.event,
        "archived": [row.to_json() for row in facts.archived],
        "archived_total": facts.archived_total,
        "retrieve": commands(facts, public_url),
    }


def json_body(alert: OutboxRow, content: AlertContent) -> bytes:
    """The ``format = "json"`` body (ASCII JSON, keys sorted: the same alert, the same bytes)."""
    data: dict[str, Any] = {"id": alert.message_id, "title": content.title, "text": content.text}
    if alert.kind == "digest":
        kind, timestamp = "digest", alert.window_end or alert.enqueued_at
        data["window"] = {"start": alert.window_start or "", "end": alert.window_end or ""}
        data["events"] = [_facts_json(f, content.public_url) for f in content.items]
    else:
        event = content.items[0].event if content.items else {}
        kind, timestamp = str(event.get("type", "event")), str(event.get("at", ""))
        data.update(_facts_json(content.items[0], content.public_url) if content.items else {})
    doc = {"type": kind, "timestamp": timestamp, "data": data}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def slack_escape(text: str) -> str:
    """Escape the three characters Slack's text format gives a meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(content: AlertContent) -> bytes:
    """The ``format = "slack"`` body: ``{"text": …}`` (Slack and Matrix compatible)."""
    text = slack_escape(content.text)
    if len(text) > MAX_SLACK_CHARS:
        text = text[:MAX_SLACK_CHARS] + "\n… (cut; see the node's feed for the rest)"
    return json.dumps({"text": text}, separators=(",", ":")).encode()


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None  # an HTTP-date: the backoff decides


class WebhookNotifier:
    """POSTs alerts to one ``[[alerts.webhook]]`` receiver with aiohttp."""

    def __init__(
        self,
        destination: Destination,
        cfg: WebhookAlert,
        *,
        secret: bytes | None = None,
        timeout_s: float = 30.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._destination = destination
        self._cfg = cfg
        self._key = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._wall_clock = wall_clock
        self._session: aiohttp.ClientSession | None = None

    @property
    def destination(self) -> Destination:
        return self._destination

    def request(self, alert: OutboxRow, content: AlertContent) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one try (signed with this moment's timestamp)."""
        body = slack_body(content) if self._cfg.format == "slack" else json_body(alert, content)
        timestamp = int(self._wall_clock())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"seedvault/{__version__}",
            "webhook-id": alert.message_id,
            "webhook-timestamp": str(timestamp),
        }
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, alert.message_id, timestamp, body)
        return body, headers

    async def send(self, alert: OutboxRow, content: AlertContent) -> None:
        body, headers = self.request(alert, content)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        label = self._destination.label
        try:
            async with self._session.post(
                self._cfg.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
                retry_after = _retry_after(resp.headers.get("Retry-After"))
                await resp.content.read(64 * 1024)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise AlertDeliveryError(f"{label}: {type(exc).__name__}") from None
        if 200 <= status < 300:
            return
        permanent = status < 500 and status not in _RETRY_STATUSES
        raise AlertDeliveryError(
            f"{label}: HTTP {status}", permanent=permanent, retry_after_s=retry_after
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
