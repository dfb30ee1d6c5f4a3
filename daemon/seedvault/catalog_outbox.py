"""The alert outbox in the catalog: SQL state of every alert, restorable from the journal.

``Catalog.outbox`` returns an :class:`Outbox` on the catalog's connection; the tables are part
of the catalog's schema (``catalog.py``). The journal stays the truth (``notify`` writes the
``alert_*`` records before the matching catalog change), and :meth:`Outbox.apply` turns each
back into catalog state, which is how ``catch_up`` and ``rebuild`` restore the outbox.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from seedvault.errors import CatalogError

if TYPE_CHECKING:
    from seedvault.catalog import Catalog

ALERT_MARK_PREFIX = "alerts:"
"""Prefix of the catalog ``meta`` keys that hold the outbox's marks (digest windows, …)."""


@dataclass(frozen=True)
class OutboxRow:
    """One alert in the outbox: a destination × an event, or a destination × a digest.

    ``state`` is ``pending`` (to send; next try at ``next_attempt_at``), ``sent`` (a server
    accepted it) or ``dead`` (dead-lettered). Times are ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.
    """

    id: str
    destination: str
    kind: str
    """``event`` or ``digest``."""
    events: tuple[str, ...]
    message_id: str
    """The ``Message-ID`` (email, with angle brackets) or ``webhook-id`` every try carries."""
    enqueued_at: str
    thread: str | None = None
    thread_root: str | None = None
    """The Message-ID of the first alert of ``thread`` to this destination (None: this one)."""
    window_start: str | None = None
    window_end: str | None = None
    state: str = "pending"
    attempts: int = 0
    next_attempt_at: str = ""
    last_error: str | None = None
    done_at: str | None = None

    def journal_fields(self) -> dict[str, Any]:
        """The ``alert_enqueued`` journal record's fields (optional ones absent, not null)."""
        out: dict[str, Any] = {
            "alert": self.id,
            "destination": self.destination,
            "kind": self.kind,
            "events": list(self.events),
            "message_id": self.message_id,
            "enqueued_at": self.enqueued_at,
        }
        for key in ("thread", "thread_root", "window_start", "window_end"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


_OUTBOX_COLS = (
    "id, destination, kind, events, message_id, enqueued_at, thread, thread_root, "
    "window_start, window_end, state, attempts, next_attempt_at, last_error, done_at"
)


def _outbox_row(row: tuple[Any, ...]) -> OutboxRow:
    values = list(row)
    values[3] = tuple(json.loads(values[3]))
    return OutboxRow(*values)


class Outbox:
    """The alert outbox in the catalog, restorable from the journal.

    The journal is the truth (records ``alert_destination``, ``alert_enqueued``,
    ``alert_sent``, ``alert_dead_lettered``; ``notify`` writes them before the matching
    catalog change); :meth:`apply` turns each back into catalog state, idempotently, which is
    how ``catch_up`` and ``rebuild`` restore pending and sent alerts. Retry bookkeeping
    (attempts, next try, last error) lives in the catalog only: after a rebuild a pending alert
    is simply tried at once, and its ``retry_for`` deadline still runs from ``enqueued_at``.
    """

    def __init__(self, catalog: Catalog) -> None:
        self._c = catalog

    def apply(self, record: dict[str, Any]) -> None:
        """Apply one outbox journal record (idempotent; unknown or malformed ones are skipped)."""
        kind = record.get("type")
        try:
            if kind == "alert_destination":
                self.add_destination(str(record["destination"]), str(record["since"]))
            elif kind == "alert_enqueued":
                self.enqueue(
                    OutboxRow(
                        id=str(record["alert"]),
                        destination=str(record["destination"]),
                        kind=str(record["kind"]),
                        events=tuple(str(e) for e in record["events"]),
                        message_id=str(record["message_id"]),
                        enqueued_at=str(record["enqueued_at"]),
                        thread=record.get("thread"),
                        thread_root=record.get("thread_root"),
                        window_start=record.get("window_start"),
                        window_end=record.get("window_end"),
                    )
                )
            elif kind == "alert_sent":
                self.sent(str(record["alert"]), str(record["at"]))
            elif kind == "alert_dead_lettered":
                self.dead(str(record["alert"]), str(record["at"]), str(record.get("error", "")))
        except (KeyError, TypeError):
            return

    def add_destination(self, destination: str, since: str) -> str:
        """Remember when ``destination`` was first configured; returns the stored time."""
        self._c._run("INSERT OR IGNORE INTO alert_destinations VALUES (?,?)", (destination, since))
        return self.destination_since(destination) or since

    def destination_since(self, destination: str) -> str | None:
        rows = self._c._run(
            "SELECT since FROM alert_destinations WHERE destination = ?", (destination,)
        )
        return str(rows[0][0]) if rows else None

    def thread_root(self, destination: str, thread: str) -> str | None:
        """The Message-ID that opened ``thread`` at ``destination``, if any alert did."""
        rows = self._c._run(
            "SELECT root FROM alert_threads WHERE destination = ? AND thread = ?",
            (destination, thread),
        )
        return str(rows[0][0]) if rows else None

    def enqueue(self, row: OutboxRow) -> bool:
        """Add a pending alert (and open its thread); False if its id is already known."""
        next_at = row.next_attempt_at or row.enqueued_at
        with self._c._lock:
            try:
                db = self._c._db
                cur = db.execute(
                    f"INSERT OR IGNORE INTO outbox ({_OUTBOX_COLS}) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        row.id,
                        row.destination,
                        row.kind,
                        json.dumps(list(row.events)),
                        row.message_id,
                        row.enqueued_at,
                        row.thread,
                        row.thread_root,
                        row.window_start,
                        row.window_end,
                        "pending",
                        0,
                        next_at,
                        None,
                        None,
                    ),
                )
                if row.thread is not None:
                    db.execute(
                        "INSERT OR IGNORE INTO alert_threads VALUES (?,?,?)",
                        (row.destination, row.thread, row.thread_root or row.message_id),
                    )
                db.commit()
            except sqlite3.Error as exc:
                self._c._db.rollback()
                raise CatalogError(f"cannot enqueue alert {row.id}: {exc}") from exc
        return cur.rowcount == 1

    def get(self, alert_id: str) -> OutboxRow | None:
        rows = self._c._run(f"SELECT {_OUTBOX_COLS} FROM outbox WHERE id = ?", (alert_id,))
        return _outbox_row(rows[0]) if rows else None

    def due(
        self, now: str, destinations: Sequence[str] | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        """Pending alerts whose next try is at or before ``now``, oldest first (optionally
        only those of ``destinations``)."""
        where = "state = 'pending' AND next_attempt_at <= ?"
        args: list[Any] = [now]
        if destinations is not None:
            where += f" AND destination IN ({','.join('?' * len(destinations))})"
            args += list(destinations)
        rows = self._c._run(
            f"SELECT {_OUTBOX_COLS} FROM outbox WHERE {where} ORDER BY enqueued_at, id LIMIT ?",
            (*args, limit),
        )
        return [_outbox_row(r) for r in rows]

    def rows(self, destination: str | None = None, state: str | None = None) -> list[OutboxRow]:
        """Alerts, oldest first, optionally of one destination and/or in one state."""
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("destination", destination), ("state", state)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._c._run(
            f"SELECT {_OUTBOX_COLS} FROM outbox {clause}ORDER BY enqueued_at, id", tuple(args)
        )
        return [_outbox_row(r) for r in rows]

    def failed(self, alert_id: str, attempts: int, next_attempt_at: str, error: str) -> None:
        """Record a failed try of a pending alert and when to try again."""
        self._c._run(
            "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? "
            "WHERE id = ? AND state = 'pending'",
            (attempts, next_attempt_at, error, alert_id),
        )

    def sent(self, alert_id: str, at: str, attempts: int | None = None) -> None:
        """Mark an alert sent (a server accepted it)."""
        self._c._run(
            "UPDATE outbox SET state = 'sent', done_at = ?, last_error = NULL, "
            "attempts = COALESCE(?, attempts) WHERE id = ? AND state != 'sent'",
            (at, attempts, alert_id),
        )

    def dead(self, alert_id: str, at: str, error: str, attempts: int | None = None) -> None:
        """Mark a pending alert dead-lettered."""
        self._c._run(
            "UPDATE outbox SET state = 'dead', done_at = ?, last_error = ?, "
            "attempts = COALESCE(?, attempts) WHERE id = ? AND state = 'pending'",
            (at, error, attempts, alert_id),
        )

    def last_digest_end(self, destination: str) -> str | None:
        """The end of the newest digest window enqueued for ``destination``."""
        rows = self._c._run(
            "SELECT MAX(window_end) FROM outbox WHERE destination = ? AND kind = 'digest'",
            (destination,),
        )
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    def counts(self) -> dict[str, int]:
        """Alerts per state (``pending``, ``sent``, ``dead``): what ``/metrics`` reports."""
        out = {"pending": 0, "sent": 0, "dead": 0}
        for state, n in self._c._run("SELECT state, COUNT(*) FROM outbox GROUP BY state"):
            out[str(state)] = int(n)
        return out

    def mark(self, name: str) -> str | None:
        """A routing mark (catalog-only bookkeeping; cleared by a rebuild)."""
        return self._c._meta(ALERT_MARK_PREFIX + name)

    def set_mark(self, name: str, value: str) -> None:
        self._c._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", (ALERT_MARK_PREFIX + name, value))
