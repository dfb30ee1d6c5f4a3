"""The alert outbox's writes: each state change journaled first, then applied to the catalog.

The journal is the truth and the catalog its index (:class:`seedvault.catalog.Outbox`
re-applies these records in ``catch_up`` and ``rebuild``). Every method here writes the
journal record *before* the catalog row, so a crash between the two loses nothing: the next
``catch_up`` applies the record. Records:

========================  =====================================================================
``alert_destination``     a destination's first pass: it gets events recorded from ``since`` on
``alert_enqueued``        an alert exists (destination, events, Message-ID / webhook-id,
                          thread and thread root, digest window) — written BEFORE any try
``alert_sent``            its server accepted it — written only AFTER the acceptance
``alert_dead_lettered``   it was given up (error, tries)
``event``                 events the alerts themselves record (``shutdown_reminder``,
                          ``alert_dead_lettered``), as ``events.record_event`` does
========================  =====================================================================

Failed tries (``attempts``, ``next_attempt_at``, ``last_error``) are catalog-only bookkeeping;
the retry deadline runs from ``enqueued_at``, which is journaled. Methods are synchronous
(the vault's store may block): call them through ``asyncio.to_thread``.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from seedvault.catalog import Catalog
from seedvault.catalog_outbox import OutboxRow
from seedvault.events import AT_FORMAT, Event
from seedvault.vault import Vault

log = structlog.get_logger(__name__)


def iso(moment: datetime) -> str:
    """The outbox's time format (``YYYY-MM-DDTHH:MM:SS.ffffffZ``, sorts as text)."""
    return moment.strftime(AT_FORMAT)


class AlertOutbox:
    """Journaled writes to the outbox of ``catalog`` (see the module docstring)."""

    def __init__(self, vault: Vault, catalog: Catalog) -> None:
        self.vault = vault
        self.catalog = catalog
        self.index = catalog.outbox

    def register(self, destination: str, label: str, now: datetime) -> str:
        """When ``destination`` started receiving events (``now`` on its first pass)."""
        since = self.index.destination_since(destination)
        if since is not None:
            return since
        since = iso(now)
        self.vault.journal("alert_destination", destination=destination, since=since)
        since = self.index.add_destination(destination, since)
        log.info("alert_destination_added", destination=label, since=since)
        return since

    def record(self, event: Event, now: datetime) -> bool:
        """``events.record_event`` stamped with the dispatcher's clock; False if known."""
        if self.catalog.has_event(event.id):
            return False
        doc = event.to_json(iso(now))
        self.vault.journal("event", event=doc)
        new = self.catalog.add_event(doc)
        if new:
            log.info("event_recorded", event_type=event.type, event_id=event.id)
        return new

    def enqueue(self, row: OutboxRow) -> bool:
        """Add a pending alert; False (and nothing written) if its id is already known."""
        if self.index.get(row.id) is not None:
            return False
        self.vault.journal("alert_enqueued", **row.journal_fields())
        self.index.enqueue(row)
        log.info(
            "alert_enqueued",
            alert=row.id,
            destination=row.destination,
            kind=row.kind,
            events=len(row.events),
        )
        return True

    def sent(self, row: OutboxRow, attempts: int, now: datetime) -> None:
        """Mark ``row`` sent: only call after its server accepted it."""
        self.vault.journal(
            "alert_sent",
            alert=row.id,
            destination=row.destination,
            message_id=row.message_id,
            attempts=attempts,
        )
        self.index.sent(row.id, iso(now), attempts)
        log.info("alert_sent", alert=row.id, destination=row.destination, attempts=attempts)

    def retry(self, row: OutboxRow, attempts: int, next_at: datetime, error: str) -> None:
        """Record a failed try and when to try again (catalog only)."""
        self.index.failed(row.id, attempts, iso(next_at), error)
        log.warning(
            "alert_send_failed",
            alert=row.id,
            destination=row.destination,
            attempts=attempts,
            next_attempt_at=iso(next_at),
            error=error,
        )

    def dead(self, row: OutboxRow, error: str, attempts: int, now: datetime) -> None:
        """Give ``row`` up."""
        self.vault.journal(
            "alert_dead_lettered",
            alert=row.id,
            destination=row.destination,
            events=list(row.events),
            error=error,
            attempts=attempts,
        )
        self.index.dead(row.id, iso(now), error, attempts)
        log.error("alert_dead_lettered", alert=row.id, destination=row.destination, error=error)
