"""The catalog: a SQLite index of what the vault holds, rebuildable from the vault alone.

It answers the questions the vault's flat key space cannot answer quickly: snapshots per
source newest first, a snapshot id from a prefix or a commit, the vault file behind an upstream
SHA-256 or git oid (so a known upstream file is never downloaded twice), source state, events,
and the alert outbox (:class:`Outbox`).
The vault stays the truth: ``seedvault reindex`` drops the catalog's tables and rebuilds them
from refs, snapshots and the journal (source state and events come back from their journal
records). ``catch_up`` (run whenever a node opens) reads only the journal written since the
last catch-up (a mark kept in ``meta``, minus a safety window for writers with a slightly
late clock), so it stays cheap on a vault with years of journal. WAL mode lets
``ls``/``show``/``export`` read while the daemon writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from seedvault.errors import CatalogError, NotInVault, ObjectNotFound, UsageError
from seedvault.manifest import Manifest
from seedvault.vault import Ref, Vault, utc_now

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY, source_key TEXT NOT NULL, kind TEXT NOT NULL, revision TEXT NOT NULL,
    commit_id TEXT, captured_at TEXT NOT NULL, parent TEXT, access TEXT NOT NULL,
    files INTEGER NOT NULL, bytes INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS snapshots_by_source ON snapshots (source_key, captured_at);
CREATE INDEX IF NOT EXISTS snapshots_by_commit ON snapshots (commit_id);
CREATE TABLE IF NOT EXISTS snapshot_files (
    snapshot TEXT NOT NULL, path TEXT NOT NULL, blake3 TEXT NOT NULL,
    PRIMARY KEY (snapshot, path));
CREATE INDEX IF NOT EXISTS snapshot_files_by_blake3 ON snapshot_files (blake3);
CREATE TABLE IF NOT EXISTS files (blake3 TEXT PRIMARY KEY, sha256 TEXT NOT NULL,
    size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS files_by_sha256 ON files (sha256);
CREATE TABLE IF NOT EXISTS file_oids (oid TEXT PRIMARY KEY, blake3 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS refs (source_key TEXT NOT NULL, revision TEXT NOT NULL,
    snapshot TEXT NOT NULL, commit_id TEXT, updated TEXT NOT NULL,
    PRIMARY KEY (source_key, revision));
CREATE TABLE IF NOT EXISTS source_state (source_key TEXT PRIMARY KEY, state TEXT NOT NULL,
    updated TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, type TEXT NOT NULL,
    severity TEXT NOT NULL, source_key TEXT NOT NULL, at TEXT NOT NULL, payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_at ON events (at, id);
CREATE INDEX IF NOT EXISTS events_by_source ON events (source_key, at, id);
CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, destination TEXT NOT NULL,
    kind TEXT NOT NULL, events TEXT NOT NULL, message_id TEXT NOT NULL, thread TEXT,
    thread_root TEXT, window_start TEXT, window_end TEXT, enqueued_at TEXT NOT NULL,
    state TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at TEXT NOT NULL,
    last_error TEXT, done_at TEXT);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_digests ON outbox (destination, kind, window_end);
CREATE TABLE IF NOT EXISTS alert_destinations (destination TEXT PRIMARY KEY,
    since TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS alert_threads (destination TEXT NOT NULL, thread TEXT NOT NULL,
    root TEXT NOT NULL, PRIMARY KEY (destination, thread));
"""

_JOURNAL_MARK = "journal_mark"
_JOURNAL_TS = "%Y%m%dT%H%M%S%fZ"
JOURNAL_REPLAY_WINDOW = timedelta(minutes=10)
"""``catch_up`` re-reads this much journal before its mark (idempotent), for late clocks."""

OUTBOX_RECORDS = frozenset(
    {"alert_destination", "alert_enqueued", "alert_sent", "alert_dead_lettered"}
)
"""Journal record types that restore the alert outbox (see :class:`Outbox`)."""
_OUTBOX_TABLES = ("outbox", "alert_destinations", "alert_threads")
_ALERT_MARK_PREFIX = "alerts:"


@dataclass(frozen=True)
class SnapshotRow:
    """One snapshot as the catalog lists it."""

    id: str
    source_key: str
    kind: str
    revision: str
    commit: str | None
    captured_at: str
    parent: str | None
    access: str
    files: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "snapshot": self.id,
            "source": self.source_key,
            "kind": self.kind,
            "revision": self.revision,
            "captured_at": self.captured_at,
            "access": self.access,
            "files": self.files,
            "bytes": self.bytes,
        }
        if self.commit:
            out["commit"] = self.commit
        if self.parent:
            out["parent"] = self.parent
        return out


@dataclass(frozen=True)
class EventPage:
    """One page of :meth:`Catalog.events`: events oldest first, and the cursor of the next."""

    events: list[dict[str, Any]]
    """Each event as recorded (``events.Event.to_json``)."""
    next_cursor: str | None


class Catalog:
    """The SQLite catalog at ``path`` (``:memory:`` for tests). Thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
            self._db.commit()
        except sqlite3.Error as exc:
            raise CatalogError(f"cannot open the catalog {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                rows = self._db.execute(sql, args).fetchall()
                self._db.commit()
            except sqlite3.Error as exc:
                raise CatalogError(f"catalog query failed: {exc}") from exc
        return rows

    # ------------------------------------------------------------------ writing

    def add_snapshot(self, snapshot_id: str, manifest: Manifest) -> None:
        """Index one snapshot and its files (idempotent)."""
        with self._lock:
            try:
                db = self._db
                db.execute(
                    "INSERT OR IGNORE INTO snapshots VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        snapshot_id,
                        manifest.source_key,
                        manifest.kind,
                        manifest.revision,
                        manifest.commit,
                        manifest.captured_at,
                        manifest.parent,
                        manifest.access,
                        len(manifest.files),
                        manifest.total_bytes,
                    ),
                )
                for f in manifest.files:
                    db.execute(
                        "INSERT OR IGNORE INTO snapshot_files VALUES (?,?,?)",
                        (snapshot_id, f.path, f.blake3),
                    )
                    db.execute(
                        "INSERT OR IGNORE INTO files VALUES (?,?,?)", (f.blake3, f.sha256, f.size)
                    )
                    if f.upstream_oid:
                        db.execute(
                            "INSERT OR REPLACE INTO file_oids VALUES (?,?)",
                            (f.upstream_oid, f.blake3),
                        )
                db.commit()
            except sqlite3.Error as exc:
                self._db.rollback()
                raise CatalogError(f"cannot index snapshot {snapshot_id}: {exc}") from exc

    def add_file(self, blake3: str, sha256: str, size: int, upstream_oid: str | None) -> None:
        """Index a stored file as soon as its record is written (before any snapshot lists it),
        so a capture interrupted after this file does not download it again."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT OR IGNORE INTO files VALUES (?,?,?)", (blake3, sha256, size)
                )
                if upstream_oid:
                    self._db.execute(
                        "INSERT OR REPLACE INTO file_oids VALUES (?,?)", (upstream_oid, blake3)
                    )
                self._db.commit()
            except sqlite3.Error as exc:
                self._db.rollback()
                raise CatalogError(f"cannot index file {blake3}: {exc}") from exc

    def set_ref(self, source_key: str, revision: str, ref: Ref) -> None:
        self._run(
            "INSERT OR REPLACE INTO refs VALUES (?,?,?,?,?)",
            (source_key, revision, ref.snapshot, ref.commit, ref.updated),
        )

    def set_source_state(self, source_key: str, state: dict[str, Any], updated: str) -> None:
        self._run(
            "INSERT OR REPLACE INTO source_state VALUES (?,?,?)",
            (source_key, json.dumps(state, sort_keys=True), updated),
        )

    def source_state(self, source_key: str) -> dict[str, Any] | None:
        rows = self._run("SELECT state FROM source_state WHERE source_key = ?", (source_key,))
        return json.loads(rows[0][0]) if rows else None

    def clear(self) -> None:
        """Empty every table (before a rebuild)."""
        with self._lock:
            for table in (
                "snapshots",
                "snapshot_files",
                "files",
                "file_oids",
                "refs",
                "source_state",
                "events",
                *_OUTBOX_TABLES,
            ):
                self._db.execute(f"DELETE FROM {table}")
            self._db.execute("DELETE FROM meta WHERE key = ?", (_JOURNAL_MARK,))
            self._db.execute("DELETE FROM meta WHERE key LIKE ?", (_ALERT_MARK_PREFIX + "%",))
            self._db.commit()

    def rebuild(self, vault: Vault) -> int:
        """Drop everything and index the vault again; returns the number of snapshots."""
        self.clear()
        return self.catch_up(vault)

    def catch_up(self, vault: Vault) -> int:
        """Index every live snapshot and ref of the vault the catalog lacks (cheap when none)."""
        added = 0
        known = {row[0] for row in self._run("SELECT id FROM snapshots")}
        for source_key, revision, ref in vault.refs():
            self.set_ref(source_key, revision, ref)
            chain: list[tuple[str, Manifest]] = []
            h: str | None = ref.snapshot
            while h is not None and h not in known:
                try:
                    manifest = vault.snapshot(h)
                except (NotInVault, CatalogError):
                    break
                chain.append((h, manifest))
                known.add(h)
                h = manifest.parent
            for h_, manifest in reversed(chain):  # oldest first: rowid breaks time ties
                self.add_snapshot(h_, manifest)
                added += 1
        last = None
        for key, record in self._journal_since(vault, self._meta(_JOURNAL_MARK)):
            last = key
            if record.get("type") == "source_state" and isinstance(record.get("state"), dict):
                self.set_source_state(record["source"], record["state"], record["at"])
            elif record.get("type") == "event" and isinstance(record.get("event"), dict):
                self.add_event(record["event"])
            elif record.get("type") in OUTBOX_RECORDS:
                self.outbox.apply(record)
        if last is not None:
            self._run("INSERT OR REPLACE INTO meta VALUES (?, ?)", (_JOURNAL_MARK, last))
        return added

    def _meta(self, key: str) -> str | None:
        rows = self._run("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    @staticmethod
    def _journal_since(vault: Vault, mark: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
        """Journal records after ``mark`` minus the replay window (all of them without a mark).

        Journal keys are ``journal/<yyyy-mm-dd>/<timestamp>-<hash>``: only the day folders from
        the window's start to tomorrow are listed.
        """
        if mark is None:
            yield from vault.journal_records()
            return
        try:
            stamp = datetime.strptime(mark.split("/")[2][:22], _JOURNAL_TS)
        except (IndexError, ValueError):
            yield from vault.journal_records()
            return
        start = stamp - JOURNAL_REPLAY_WINDOW
        after = f"journal/{start:%Y-%m-%d}/{start.strftime(_JOURNAL_TS)}"
        day = start.date()
        last_day = max(stamp.date(), utc_now().date()) + timedelta(days=1)
        while day <= last_day:
            for info in vault.store.list(f"journal/{day:%Y-%m-%d}/"):
                if info.key <= after:
                    continue
                try:
                    yield info.key, json.loads(vault.store.get(info.key))
                except (ObjectNotFound, ValueError):
                    continue
            day += timedelta(days=1)

    def add_event(self, event: dict[str, Any]) -> bool:
        """Index one recorded event (``events.Event.to_json``); False if its id is known."""
        try:
            row = (
                str(event["id"]),
                str(event["type"]),
                str(event["severity"]),
                str(event["source"]),
                str(event["at"]),
                json.dumps(event, sort_keys=True, ensure_ascii=False),
            )
        except KeyError as exc:
            raise CatalogError(f"event record lacks {exc}") from None
        with self._lock:
            try:
                cur = self._db.execute("INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?)", row)
                self._db.commit()
            except sqlite3.Error as exc:
                raise CatalogError(f"cannot index event {row[0]}: {exc}") from exc
        return cur.rowcount == 1

    @property
    def outbox(self) -> Outbox:
        """The alert outbox kept in this catalog."""
        return Outbox(self)

    # ------------------------------------------------------------------ reading

    def recent_events(
        self, *, source: str | None = None, model: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` events, newest first, of one source key and/or one model.

        ``model`` matches the event subject's ``model`` (provider events) or ``repo`` (hub
        events, ``org/name``).
        """
        where: list[str] = []
        args: list[Any] = []
        if source is not None:
            where.append("source_key = ?")
            args.append(source)
        if model is not None:
            where.append(
                "(json_extract(payload, '$.subject.model') = ? "
                "OR json_extract(payload, '$.subject.repo') = ?)"
            )
            args += [model, model]
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._run(
            f"SELECT payload FROM events {clause}ORDER BY at DESC, id DESC LIMIT ?",
            (*args, max(limit, 0)),
        )
        return [json.loads(r[0]) for r in rows]

    def event(self, event_id: str) -> dict[str, Any] | None:
        """One recorded event (``events.Event.to_json``), or None."""
        rows = self._run("SELECT payload FROM events WHERE id = ?", (event_id,))
        return json.loads(rows[0][0]) if rows else None

    def has_event(self, event_id: str) -> bool:
        return bool(self._run("SELECT 1 FROM events WHERE id = ?", (event_id,)))

    def events(
        self,
        type: str | None = None,
        source: str | None = None,
        since: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> EventPage:
        """Events oldest first, filtered by type, source key and ``at >= since``.

        ``at`` is ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; ``since`` may omit the fraction.

        ``cursor`` is the ``next_cursor`` of the previous page (opaque).

        Raises:
            UsageError: a malformed cursor or a limit below 1.
        """
        if limit < 1:
            raise UsageError("limit must be at least 1")
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("type", type), ("source_key", source)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            if since.endswith("Z") and "." not in since:  # 10:00:00Z → 10:00:00.000000Z
                since = since[:-1] + ".000000Z"
            where.append("at >= ?")
            args.append(since)
        if cursor is not None:
            at, sep, last_id = cursor.rpartition("~")
            if not sep or not at or not last_id:
                raise UsageError(f"malformed events cursor {cursor!r}")
            where.append("(at > ? OR (at = ? AND id > ?))")
            args += [at, at, last_id]
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._run(
            f"SELECT id, at, payload FROM events {clause}ORDER BY at, id LIMIT ?",
            (*args, limit + 1),
        )
        page = rows[:limit]
        next_cursor = f"{page[-1][1]}~{page[-1][0]}" if len(rows) > limit else None
        return EventPage([json.loads(r[2]) for r in page], next_cursor)

    _COLS = "id, source_key, kind, revision, commit_id, captured_at, parent, access, files, bytes"

    def snapshots(self, source_key: str | None = None) -> list[SnapshotRow]:
        """Snapshots, newest first (optionally of one source)."""
        if source_key is None:
            rows = self._run(
                f"SELECT {self._COLS} FROM snapshots ORDER BY captured_at DESC, rowid DESC"
            )
        else:
            rows = self._run(
                f"SELECT {self._COLS} FROM snapshots WHERE source_key = ? "
                "ORDER BY captured_at DESC, rowid DESC",
                (source_key,),
            )
        return [SnapshotRow(*row) for row in rows]

    def snapshot_row(self, snapshot_id: str) -> SnapshotRow | None:
        rows = self._run(f"SELECT {self._COLS} FROM snapshots WHERE id = ?", (snapshot_id,))
        return SnapshotRow(*rows[0]) if rows else None

    def find_snapshot_prefix(self, prefix: str) -> str:
        """The snapshot id starting with ``prefix`` (≥ 8 hex digits, unique).

        Raises:
            UsageError: too short, not hex, ambiguous, or unknown.
        """
        prefix = prefix.lower()
        if len(prefix) < 8 or any(c not in "0123456789abcdef" for c in prefix):
            raise UsageError(f"{prefix!r} is not a snapshot id (64 hex, or a prefix of ≥ 8)")
        rows = self._run(
            "SELECT id FROM snapshots WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "g")
        )
        if not rows:
            raise UsageError(f"no snapshot {prefix} in the catalog (try `seedvault reindex`)")
        if len(rows) > 1:
            raise UsageError(f"snapshot prefix {prefix} is ambiguous; give more digits")
        return str(rows[0][0])

    def resolve(self, source_key: str, revision: str | None) -> str:
        """The snapshot for ``source_key`` at ``revision`` (see "Sources, keys and refs").

        A 40-hex revision selects the snapshot of that commit, whichever branch captured it; a
        name selects that branch's or tag's ref; None selects the newest snapshot.

        Raises:
            UsageError: nothing archived matches.
        """
        if revision is None:
            rows = self._run(
                "SELECT id FROM snapshots WHERE source_key = ? "
                "ORDER BY captured_at DESC, rowid DESC LIMIT 1",
                (source_key,),
            )
        elif len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
            rows = self._run(
                "SELECT id FROM snapshots WHERE source_key = ? AND commit_id = ? "
                "ORDER BY captured_at DESC, rowid DESC LIMIT 1",
                (source_key, revision),
            )
        else:
            rows = self._run(
                "SELECT snapshot FROM refs WHERE source_key = ? AND revision = ?",
                (source_key, revision),
            )
        if not rows:
            at = f"@{revision}" if revision else ""
            raise UsageError(f"nothing archived for {source_key}{at}")
        return str(rows[0][0])

    def refs(self) -> list[tuple[str, str, str, str | None, str]]:
        """(source key, revision, snapshot, commit, updated) for every ref."""
        return [tuple(r) for r in self._run("SELECT * FROM refs ORDER BY source_key, revision")]

    def file_by_upstream(self, *, sha256: str | None = None, oid: str | None = None) -> str | None:
        """The BLAKE3 of an archived file with this upstream SHA-256 or git oid, if any."""
        if oid:
            rows = self._run("SELECT blake3 FROM file_oids WHERE oid = ?", (oid,))
            if rows:
                return str(rows[0][0])
        if sha256:
            rows = self._run("SELECT blake3 FROM files WHERE sha256 = ?", (sha256.lower(),))
            if rows:
                return str(rows[0][0])
        return None

    def snapshots_with_file(self, blake3: str) -> Iterator[tuple[str, str]]:
        """(snapshot id, path) of every snapshot listing file ``blake3``."""
        for snapshot, path in self._run(
            "SELECT snapshot, path FROM snapshot_files WHERE blake3 = ?", (blake3,)
        ):
            yield str(snapshot), str(path)


# ---------------------------------------------------------------------- the alert outbox


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
        return self._c._meta(_ALERT_MARK_PREFIX + name)

    def set_mark(self, name: str, value: str) -> None:
        self._c._run(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", (_ALERT_MARK_PREFIX + name, value)
        )
