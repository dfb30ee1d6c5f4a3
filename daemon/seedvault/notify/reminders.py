"""Shutdown reminders: a ``shutdown_reminder`` event at each lead time before a known shutdown.

Known shutdown dates come from recorded events, applied oldest first per (provider, model,
region): ``deprecated`` (the shutdown of its after-state), ``shutdown_date_set`` and
``shutdown_date_moved`` (their after-value) set the date; ``shutdown_date_withdrawn``, a
``deprecated`` state without a date and ``retired`` clear it. So a withdrawn date gets no
reminder, and a moved date's old reminders stop: only the current date is reminded of.

:func:`due_reminders` is a pure function of the known dates, the lead times and "now" (the
dispatcher passes its injectable clock). A shutdown date ``D`` means ``D`` at 00:00 UTC; the
reminder for lead ``L`` is due from ``D - L`` until ``D``. At each moment only the *smallest*
due lead fires (a node that was down across the 30-day point and comes back at 6 days left
sends the 7-day reminder, not both), and not when its due time precedes the moment the date
became known (the announcement itself was the alert). The reminder's identity is (model,
date, lead, the event that set the date), so it is recorded — and sent — once: the
dispatcher records it like any event, and a known id is not recorded again.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from seedvault.catalog import Catalog
from seedvault.events import AT_FORMAT, Event
from seedvault.notify.render import shutdown_of

SHUTDOWN_EVENT_TYPES = (
    "deprecated",
    "shutdown_date_set",
    "shutdown_date_moved",
    "shutdown_date_withdrawn",
    "retired",
)
_CARRIED = ("source_url", "quote", "replacement")


@dataclass(frozen=True)
class KnownShutdown:
    """The current shutdown date of one model, and the event that set it."""

    provider: str
    model: str
    region: str | None
    date: str
    qualifier: str
    source: str
    evidence: str
    """The id of the event that set this date (the reminder's evidence)."""
    known_at: str
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def at(self) -> datetime:
        """The shutdown moment: the date at 00:00 UTC."""
        return datetime.strptime(self.date, "%Y-%m-%d").replace(tzinfo=UTC)


def _key(event: dict[str, Any]) -> tuple[str, str, str | None] | None:
    subject = event.get("subject") if isinstance(event.get("subject"), dict) else {}
    payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
    assert isinstance(subject, dict)
    assert isinstance(payload, dict)
    model = subject.get("model", payload.get("model"))
    if not isinstance(model, str) or not model:
        return None
    provider = subject.get("provider", subject.get("api", payload.get("provider", "")))
    region = subject.get("region")
    return str(provider), model, region if isinstance(region, str) else None


def known_shutdowns(events: Iterable[dict[str, Any]]) -> list[KnownShutdown]:
    """The current shutdown date of every model the events announce (module docstring)."""
    current: dict[tuple[str, str, str | None], KnownShutdown | None] = {}
    ordered = sorted(events, key=lambda e: (str(e.get("at", "")), str(e.get("id", ""))))
    for event in ordered:
        key = _key(event)
        event_type = event.get("type")
        if key is None or event_type not in SHUTDOWN_EVENT_TYPES:
            continue
        found = shutdown_of(event.get("after"))
        if event_type in ("shutdown_date_withdrawn", "retired") or found is None:
            current[key] = None
            continue
        date, qualifier = found
        try:
            datetime.strptime(date, "%Y-%m-%d")
        except ValueError:
            current[key] = None
            continue
        payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
        assert isinstance(payload, dict)
        carried = {k: payload[k] for k in _CARRIED if isinstance(payload.get(k), str)}
        after = event.get("after")
        if isinstance(after, dict) and isinstance(after.get("replacement"), str):
            carried.setdefault("replacement", after["replacement"])
        current[key] = KnownShutdown(
            provider=key[0],
            model=key[1],
            region=key[2],
            date=date,
            qualifier=qualifier,
            source=str(event.get("source", "")),
            evidence=str(event.get("id", "")),
            known_at=str(event.get("at", "")),
            payload=carried,
        )
    return [known for known in current.values() if known is not None]


def catalog_shutdowns(catalog: Catalog) -> list[KnownShutdown]:
    """:func:`known_shutdowns` of every shutdown-related event in the catalog."""
    return known_shutdowns(e for t in SHUTDOWN_EVENT_TYPES for e in catalog.each_event(type=t))


def lead_label(seconds: int) -> str:
    """A lead time as config writes it: ``30d``, ``12h``, ``90m``, ``45s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def reminder_event(known: KnownShutdown, lead_s: int, now: datetime) -> Event:
    """The ``shutdown_reminder`` event for ``known`` at lead ``lead_s`` (identity: module doc)."""
    subject: dict[str, Any] = {"provider": known.provider, "model": known.model}
    if known.region is not None:
        subject["region"] = known.region
    subject.update(shutdown=known.date, lead=lead_label(lead_s))
    days_left = max(0, math.ceil((known.at - now).total_seconds() / 86400))
    payload = {"days_left": days_left, "qualifier": known.qualifier, **known.payload}
    return Event("shutdown_reminder", known.source, subject, known.evidence, payload=payload)


def due_reminders(
    known: Iterable[KnownShutdown], leads_s: Sequence[int], now: datetime
) -> list[Event]:
    """The reminders due at ``now`` (at most one per known date; see the module docstring)."""
    out: list[Event] = []
    for item in known:
        shutdown = item.at
        if now >= shutdown:
            continue
        due = [lead for lead in leads_s if now >= shutdown - timedelta(seconds=lead)]
        if not due:
            continue
        lead = min(due)
        fire_at = (shutdown - timedelta(seconds=lead)).strftime(AT_FORMAT)
        if item.known_at and fire_at < item.known_at:
            continue
        out.append(reminder_event(item, lead, now))
    return out
