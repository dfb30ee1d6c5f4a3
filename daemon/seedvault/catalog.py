"""The catalog: a SQLite index of what the vault holds, rebuildable from the vault alone.

It answers the questions the vault's flat key space cannot answer quickly: snapshots per
source newest first, a snapshot id from a prefix or a commit, the vault file behind an upstream
SHA-256 or git oid (so a known upstream file is never downloaded twice), source state, events,
and the alert outbox (:class:`Outbox`).
The vault stays the truth: ``seedvault reindex`` drops the catalog's tables and rebuilds them
from refs, snapshots and the journal (source state and events come back from their journal
records). ``catch_up`` (run whenever a node opens) reads only the journal written since the
last catch-up (a mark kept in ``meta``, minus a safety window for writers with a slightly
late clock), so it stays cheap on a vault with years of journal. Both skip a damaged ref or
snapshot with a warning naming it, so one damaged object never stops a node from opening.
WAL mode lets ``ls``/``show``/``export`` read while the daemon writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from seedvault.catalog_outbox import ALERT_MARK_PREFIX, Outbox
from seedvault.errors import CatalogError, IntegrityError, NotInVault, ObjectNotFound, UsageError
from seedvault.manifest import Manifest
from seedvault.vault import Ref, Vault, ref_key, utc_now

log = structlog.get_logger(__name__)

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
            self._db.execute("DELETE FROM meta WHERE key LIKE ?", (ALERT_MARK_PREFIX + "%",))
            self._db.commit()

    def rebuild(self, vault: Vault) -> int:
        """Drop everything and index the vault again; returns the number of snapshots.

        Damaged refs and snapshots are skipped as :meth:`catch_up` skips them.
        """
        self.clear()
        return self.catch_up(vault)

    def catch_up(self, vault: Vault) -> int:
        """Index every live snapshot and ref of the vault the catalog lacks (cheap when none).

        One damaged object never stops it (a node must open to serve, scrub and report the
        rest): a ref that does not parse is skipped (a catch-up keeps what the catalog knew of
        it, a rebuild drops it), and a snapshot that is missing or damaged is not indexed, nor
        the parents only it names; each is logged as a warning naming it (``verify`` and the
        scrub report them as damage).
        """
        added = 0
        known = {row[0] for row in self._run("SELECT id FROM snapshots")}
        unreadable: set[str] = set()

        def damaged_ref(key: str, exc: IntegrityError) -> None:
            log.warning("catalog_skipped_ref", ref=key, error=str(exc))

        for source_key, revision, ref in vault.refs(on_damaged=damaged_ref):
            self.set_ref(source_key, revision, ref)
            chain: list[tuple[str, Manifest]] = []
            h: str | None = ref.snapshot
            while h is not None and h not in known and h not in unreadable:
                try:
                    manifest = vault.snapshot(h)
                except (NotInVault, IntegrityError) as exc:
                    unreadable.add(h)
                    log.warning(
                        "catalog_skipped_snapshot",
                        snapshot=h,
                        ref=ref_key(source_key, revision),
                        error=str(exc),
                    )
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

    def each_event(
        self, type: str | None = None, source: str | None = None, since: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every event :meth:`events` would page through, oldest first, one page at a time."""
        cursor: str | None = None
        while True:
            page = self.events(type=type, source=source, since=since, limit=500, cursor=cursor)
            yield from page.events
            cursor = page.next_cursor
            if cursor is None:
                return

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

    def snapshot_page(
        self, source_key: str | None, limit: int, after: tuple[str, int] | None = None
    ) -> list[tuple[tuple[str, int], SnapshotRow]]:
        """Up to ``limit`` snapshots in the order of :meth:`snapshots`, each with its position.

        A position is the row's whole sort key, ``(captured_at, rowid)``: the rowid breaks ties
        between snapshots captured in the same second (a later insert lists first). ``after``
        is the position of the last row of the previous page; the page starts strictly after
        it, so a page boundary inside a tie neither repeats nor skips a row.
        """
        where: list[str] = []
        args: list[Any] = []
        if source_key is not None:
            where.append("source_key = ?")
            args.append(source_key)
        if after is not None:
            where.append("(captured_at < ? OR (captured_at = ? AND rowid < ?))")
            args += [after[0], after[0], after[1]]
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = self._run(
            f"SELECT captured_at, rowid, {self._COLS} FROM snapshots {clause}"
            "ORDER BY captured_at DESC, rowid DESC LIMIT ?",
            (*args, max(limit, 0)),
        )
        return [((str(r[0]), int(r[1])), SnapshotRow(*r[2:])) for r in rows]

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
        name selects that branch's or tag's ref; None selects the newest snapshot — or, when
        none of the source could be indexed (damaged, see :meth:`catch_up`), the snapshot of
        its newest ref, so that reading it reports the damage rather than "nothing archived".

        Raises:
            UsageError: nothing archived matches.
        """
        if revision is None:
            rows = self._run(
                "SELECT id FROM snapshots WHERE source_key = ? "
                "ORDER BY captured_at DESC, rowid DESC LIMIT 1",
                (source_key,),
            ) or self._run(
                "SELECT snapshot FROM refs WHERE source_key = ? "
                "ORDER BY updated DESC, revision LIMIT 1",
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
