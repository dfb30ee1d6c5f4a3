"""Alert destinations and routing: which event goes to which destination, now or in a digest.

A :class:`Destination` is one ``[[alerts.email]]`` or ``[[alerts.webhook]]`` entry seen by the
router: event-type globs (``events = ["*"]`` or names), the lowest severity it takes, optional
source-key and model globs, the UTC time of its daily digest and its reminder lead times.
:meth:`Destination.route` decides per recorded event (``events.Event.to_json``):

* ``"now"`` — ``urgent`` events: one alert at once;
* ``"digest"`` — ``routine`` events: batched into ONE daily digest at ``digest_at``;
* ``None`` — not for this destination (type, severity, source or model filtered out; a
  ``shutdown_reminder`` for a lead time it did not ask for; an ``alert_dead_lettered`` about
  this very destination, which goes to the *other* destinations only).

Webhook entries have no ``severity``/``digest_at``/``reminders`` keys in config v1: they take
the defaults (everything, ``08:00`` UTC, ``30d``/``7d``/``1d``). ``sources``/``models`` globs
are read when the config schema has them (it does not yet: empty means all).

A :class:`Notifier` hands one alert to one destination's server; the dispatcher
(:mod:`seedvault.notify.dispatch`) owns the outbox, retries and dead-lettering.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import blake3

from seedvault.catalog_outbox import OutboxRow
from seedvault.config import EmailAlert, WebhookAlert, parse_duration
from seedvault.errors import ConfigError
from seedvault.events import SEVERITY, Severity
from seedvault.notify.reminders import lead_label
from seedvault.notify.render import AlertContent, model_of

Route = Literal["now", "digest"]

SEVERITY_RANK: dict[str, int] = {"routine": 0, "urgent": 1}
DEFAULT_DIGEST_AT = "08:00"
DEFAULT_REMINDERS = ("30d", "7d", "1d")
_DIGEST_AT_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class Notifier(Protocol):
    """Delivers alerts to one destination (a mailing list, a webhook receiver)."""

    @property
    def destination(self) -> Destination:
        """The destination this notifier delivers to."""
        ...

    async def send(self, alert: OutboxRow, content: AlertContent) -> None:
        """Hand one alert to the destination's server.

        Returns only once the server *accepted* it (SMTP: the reply to DATA; webhook: a 2xx),
        so the caller may mark it sent. Every try of the same alert carries the same
        ``alert.message_id`` (``Message-ID`` / ``webhook-id``), so a resend after a crash
        between acceptance and marking can be dropped by the receiver.

        Raises:
            AlertDeliveryError: not accepted (``permanent`` when retrying cannot help).
        """
        ...

    async def aclose(self) -> None:
        """Release connections (idempotent)."""
        ...


@dataclass(frozen=True)
class Destination:
    """One alert destination as the router sees it."""

    id: str
    """Stable identity across restarts (email: the recipients; webhook: host + URL hash)."""
    kind: Literal["email", "webhook"]
    label: str
    """Safe to log and to put in events (never a webhook URL path, which may be a secret)."""
    events: tuple[str, ...] = ("*",)
    severity: Severity = "routine"
    digest_at: tuple[int, int] = (8, 0)
    reminders: tuple[int, ...] = ()
    """``shutdown_reminder`` lead times, in seconds."""
    sources: tuple[str, ...] = ()
    models: tuple[str, ...] = ()

    def wants_type(self, event_type: str) -> bool:
        return any(fnmatchcase(event_type, pattern) for pattern in self.events)

    def route(self, event: dict[str, Any]) -> Route | None:
        """Where ``event`` (a recorded event document) goes for this destination."""
        event_type = str(event.get("type", ""))
        if not self.wants_type(event_type):
            return None
        subject = event.get("subject") if isinstance(event.get("subject"), dict) else {}
        assert isinstance(subject, dict)
        if event_type == "alert_dead_lettered" and subject.get("destination") == self.id:
            return None
        if event_type == "shutdown_reminder" and subject.get("lead") not in self.lead_labels:
            return None
        if self.sources and not any(
            fnmatchcase(str(event.get("source", "")), p) for p in self.sources
        ):
            return None
        if self.models:
            model = model_of(event)
            if model is None or not any(fnmatchcase(model, p) for p in self.models):
                return None
        severity = str(event.get("severity", "urgent"))
        if SEVERITY_RANK.get(severity, 1) < SEVERITY_RANK[self.severity]:
            return None
        return "now" if severity == "urgent" else "digest"

    @property
    def lead_labels(self) -> frozenset[str]:
        return frozenset(lead_label(s) for s in self.reminders)


def parse_digest_at(value: str, where: str) -> tuple[int, int]:
    """``"HH:MM"`` (UTC) as (hour, minute).

    Raises:
        ConfigError: not a 24-hour ``HH:MM`` time.
    """
    match = _DIGEST_AT_RE.match(value.strip())
    if not match:
        raise ConfigError(f'{where}: expected a UTC time like "08:00", got {value!r}')
    return int(match.group(1)), int(match.group(2))


def _leads(values: list[str] | tuple[str, ...], where: str) -> tuple[int, ...]:
    out: list[int] = []
    for i, value in enumerate(values):
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{where}[{i}]: {exc}") from None
        if seconds <= 0:
            raise ConfigError(f"{where}[{i}]: a lead time must be positive")
        out.append(seconds)
    return tuple(sorted(set(out), reverse=True))


def _event_globs(values: list[str], where: str) -> tuple[str, ...]:
    for i, pattern in enumerate(values):
        if not any(c in pattern for c in "*?[") and pattern not in SEVERITY:
            raise ConfigError(f"{where}[{i}]: unknown event type {pattern!r}")
    return tuple(values)


def _strings(cfg: Any, name: str) -> tuple[str, ...]:
    value = getattr(cfg, name, ())
    return tuple(str(v) for v in value)


def email_destination(cfg: EmailAlert, where: str) -> Destination:
    """The destination of one ``[[alerts.email]]`` entry (``where``: its key path).

    Raises:
        ConfigError: a bad ``digest_at``, lead time or event type, naming the key path.
    """
    recipients = ",".join(sorted(a.strip().lower() for a in cfg.to))
    severity: Severity = "urgent" if cfg.severity == "urgent" else "routine"
    return Destination(
        id=f"email:{recipients}",
        kind="email",
        label=f"email:{recipients}",
        events=_event_globs(cfg.events, f"{where}.events"),
        severity=severity,
        digest_at=parse_digest_at(cfg.digest_at, f"{where}.digest_at"),
        reminders=_leads(cfg.reminders, f"{where}.reminders"),
        sources=_strings(cfg, "sources"),
        models=_strings(cfg, "models"),
    )


def webhook_destination(cfg: WebhookAlert, where: str) -> Destination:
    """The destination of one ``[[alerts.webhook]]`` entry (defaults for the keys it lacks).

    Raises:
        ConfigError: not an http(s) URL, or a bad event type, naming the key path.
    """
    parts = urlsplit(cfg.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}.url: expected an http(s) URL")
    tag = blake3.blake3(cfg.url.encode()).hexdigest()[:16]
    port = f":{parts.port}" if parts.port else ""
    ident = f"webhook:{parts.hostname}{port}#{tag}"
    severity_value = getattr(cfg, "severity", "routine")
    severity: Severity = "urgent" if severity_value == "urgent" else "routine"
    return Destination(
        id=ident,
        kind="webhook",
        label=ident,
        events=_event_globs(cfg.events, f"{where}.events"),
        severity=severity,
        digest_at=parse_digest_at(
            str(getattr(cfg, "digest_at", DEFAULT_DIGEST_AT)), f"{where}.digest_at"
        ),
        reminders=_leads(list(getattr(cfg, "reminders", DEFAULT_REMINDERS)), f"{where}.reminders"),
        sources=_strings(cfg, "sources"),
        models=_strings(cfg, "models"),
    )
