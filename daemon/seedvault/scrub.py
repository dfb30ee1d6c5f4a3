"""The fixity scrub: a rotating daily slice verified, damage raised as events, repair from upstream.

:class:`Scrubber` is the daemon's scheduled check. One run verifies the buckets that are due
(:func:`seedvault.fixity.buckets_due`: today's slice of the live files, plus the slices of days
missed while the node was down) with :func:`seedvault.fixity.verify`, which journals one
``fixity_check`` summary (with its ``slice``) and one ``fixity_failed`` record per damaged
object. Each damaged object then raises a ``fixity_failed`` event per affected source — once
per occurrence: the scrub keeps the state of every damaged object in the source state
:data:`SCRUB_STATE` (catalog + journal), so a daily scrub that finds the same unrepaired damage
again stays quiet, and a repaired object that breaks again is a new event.

Repair is a verified re-put of the same plaintext under the same address — the one exception
to write-once objects (``docs/storage-format.md``). For a damaged chunk or file record of a
file that a Hub snapshot lists, the file is fetched again from the snapshot's own endpoint,
repo and commit and streamed through a sink, never held whole:

* record intact: the stream is cut at the record's chunk boundaries; a damaged chunk is
  replaced only by the piece that hashes to its address, and only after the whole file matched
  the manifest's size, SHA-256 and BLAKE3;
* record damaged: the file is chunked again; each chunk is addressed by its own hash (so a
  chunk written is correct by construction) and the record is re-put after the file's size
  and SHA-256 were checked and its BLAKE3 equals the file's address.

The repaired file is read back and verified; each object that passes is journaled and raises
``fixity_repaired``. Objects with no upstream (local directories, snapshot manifests, refs) or
whose upstream changed stay damaged (``fixity_repair_failed`` in the log; the event went out).
A damaged ref's event goes to the source the ref belongs to.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import blake3
import structlog

from seedvault import cas
from seedvault.catalog import Catalog
from seedvault.errors import IntegrityError, NotInVault, SeedvaultError, VerificationError
from seedvault.events import Event, SourceState, record_event
from seedvault.fixity import Damage, FixityReport, buckets_due, verify, verify_files
from seedvault.ingest import Ingestor, Probing
from seedvault.manifest import Manifest
from seedvault.sources.base import Expected
from seedvault.sources.hf import HubClient
from seedvault.sources.hf_types import RepoType
from seedvault.vault import FileRecord, Vault

log = structlog.get_logger(__name__)

SCRUB_STATE = "fixity"
"""Source-state key of the scrubber: ``last_day`` and one field per damaged object."""
MAX_LISTED = 100
"""Files and snapshots listed in one event's payload (the journal record lists them all)."""
WRITE_BATCH = 4 * 1024 * 1024
DAY_S = 86400

ClientFor = Callable[[str, str], HubClient | None]
"""(endpoint, repo) → a client for that Hub, or None when the node should not ask it."""


class _Unrepairable(SeedvaultError):
    """Why a damaged object could not be repaired (never leaves this module)."""


def today() -> int:
    """Days since the Unix epoch (UTC): the scrub's day index."""
    return int(time.time() // DAY_S)


@dataclass
class ScrubResult:
    """What one scrub run did."""

    day: int
    buckets: list[int]
    report: FixityReport
    repaired: dict[str, str] = field(default_factory=dict)
    """Object key → where the bytes came from."""
    unrepaired: dict[str, str] = field(default_factory=dict)
    """Object key → why it could not be repaired."""
    events: list[Event] = field(default_factory=list)


class Scrubber:
    """Scheduled fixity checks and repairs of one vault (see the module docstring)."""

    def __init__(
        self,
        vault: Vault,
        catalog: Catalog,
        *,
        period_days: int,
        clients: ClientFor,
        zstd_level: int = 3,
    ) -> None:
        self.vault, self.catalog = vault, catalog
        self.period_days = max(1, period_days)
        self.clients = clients
        self.zstd_level = zstd_level

    async def run(self, day: int | None = None, *, force: bool = False) -> ScrubResult | None:
        """Scrub what is due on ``day`` (default today); None when today's slice was done.

        ``force`` scrubs today's bucket even when it was already checked.
        """
        day = today() if day is None else day
        state = await asyncio.to_thread(SourceState.load, self.catalog, SCRUB_STATE)
        last = state.doc.get("last_day")
        buckets = buckets_due(day, last if isinstance(last, int) else None, self.period_days)
        if force and not buckets:
            buckets = [day % self.period_days]
        if not buckets:
            return None
        log.info("scrub_started", day=day, buckets=buckets, of=self.period_days)
        stop = threading.Event()
        try:
            report = await asyncio.to_thread(
                verify,
                self.vault,
                buckets=buckets,
                period_days=self.period_days,
                should_stop=stop.is_set,
                journal_extra={"detected_by": "scrub"},
            )
        except asyncio.CancelledError:
            stop.set()  # the thread ends at the next file; the summary is still journaled
            raise
        result = ScrubResult(day, buckets, report)
        result.events += await asyncio.to_thread(self._raise, state, report)
        await self._repair(report, result)
        result.events += await asyncio.to_thread(self._record_repairs, state, report, result)
        if not report.stopped:
            state.doc["last_day"] = day
        await asyncio.to_thread(state.save, self.vault, self.catalog)
        log.info(
            "scrub_done",
            day=day,
            buckets=buckets,
            snapshots=report.snapshots,
            files=report.files_checked,
            chunks=report.chunks_checked,
            bytes=report.bytes_checked,
            damaged=len(report.damage),
            repaired=len(result.repaired),
            unrepaired=len(result.unrepaired),
        )
        return result

    # -- events --------------------------------------------------------------------------------

    def _sources(self, damage: Damage) -> list[str]:
        if damage.key.startswith("refs/"):  # refs/<source key>/<revision>
            return [damage.key[len("refs/") :].rpartition("/")[0]]
        keys: set[str] = set()
        for sid, _path in damage.snapshots:
            row = self.catalog.snapshot_row(sid)
            if row is not None:
                keys.add(row.source_key)
        return sorted(keys)

    def _emit(
        self,
        state: SourceState,
        damage: Damage,
        after: str,
        event_type: str,
        payload: dict[str, Any],
    ) -> list[Event]:
        subject = {"object": damage.key}
        base = state.transition(f"object:{damage.key}", after, event_type, subject, payload)
        if base is None:
            return []
        events = [
            Event(event_type, source, subject, base.evidence, payload=payload)
            for source in self._sources(damage)
        ] or [base]
        return [e for e in events if record_event(self.vault, self.catalog, e)]

    def _raise(self, state: SourceState, report: FixityReport) -> list[Event]:
        out: list[Event] = []
        for damage in sorted(report.damage.values(), key=lambda d: d.key):
            log.error("fixity_failed", object=damage.key, problem=damage.problem)
            out += self._emit(state, damage, "damaged", "fixity_failed", _payload(damage))
        return out

    def _record_repairs(
        self, state: SourceState, report: FixityReport, result: ScrubResult
    ) -> list[Event]:
        out: list[Event] = []
        for key, origin in sorted(result.repaired.items()):
            damage = report.damage[key]
            self.vault.journal(
                "fixity_repaired",
                object=key,
                files=sorted(damage.files),
                snapshots=[{"snapshot": s, "path": p} for s, p in sorted(damage.snapshots)],
                upstream=origin,
            )
            log.info("fixity_repaired", object=key, upstream=origin)
            payload = {**_payload(damage), "upstream": origin}
            out += self._emit(state, damage, "ok", "fixity_repaired", payload)
        return out

    # -- repair --------------------------------------------------------------------------------

    async def _repair(self, report: FixityReport, result: ScrubResult) -> None:
        # like a capture, a repair writes objects that nothing references until it finishes:
        # its capture lock keeps gc away meanwhile
        lock = self.vault.capture_lock()
        await asyncio.to_thread(lock.__enter__)
        try:
            await self._repair_locked(report, result)
        finally:
            await asyncio.to_thread(lock.__exit__, None, None, None)

    async def _repair_locked(self, report: FixityReport, result: ScrubResult) -> None:
        pending = {k for k in report.damage if k.startswith(("chunks/", "files/"))}
        for key in set(report.damage) - pending:
            result.unrepaired[key] = (
                "a ref is not repaired here: restore it from a copy (the journal's capture "
                "records name the snapshots it pointed at)"
                if key.startswith("refs/")
                else "snapshot manifests exist only here: restore from a copy"
            )
        uses: dict[str, set[tuple[str, str]]] = {}
        for key in pending:
            for file_h in report.damage[key].files:
                uses.setdefault(file_h, set()).update(report.damage[key].snapshots)
        reasons: dict[str, str] = {}
        for file_h in sorted(uses):
            mine = {k for k in pending if file_h in report.damage[k].files}
            if not mine:
                continue  # repairing another file fixed these objects already
            chunks = {k.rsplit("/", 1)[1] for k in mine if k.startswith("chunks/")}
            record_bad = any(k.startswith("files/") for k in mine)
            try:
                origin = await self._repair_file(
                    file_h, sorted(uses[file_h]), None if record_bad else chunks
                )
            except _Unrepairable as exc:
                reasons[file_h] = str(exc)
                log.warning("fixity_repair_failed", file=file_h, reason=str(exc))
                continue
            check = await asyncio.to_thread(
                verify_files, self.vault, {file_h: sorted(uses[file_h])}
            )
            for key in mine - set(check.damage):
                result.repaired[key] = origin
                pending.discard(key)
        for key in pending:
            why = [reasons[f] for f in sorted(report.damage[key].files) if f in reasons]
            result.unrepaired[key] = why[0] if why else "the re-fetched file did not repair it"

    async def _repair_file(
        self, file_h: str, uses: list[tuple[str, str]], damaged_chunks: set[str] | None
    ) -> str:
        """Fetch ``file_h`` again from an upstream that lists it and re-put what is damaged
        (``damaged_chunks`` None: the file record itself is damaged)."""
        tried: set[tuple[str, str, str, str]] = set()
        errors: list[str] = []
        for sid, path in uses:
            try:
                manifest: Manifest = await asyncio.to_thread(self.vault.snapshot, sid)
            except SeedvaultError:
                continue
            src = manifest.source
            endpoint, repo, commit = src.get("endpoint"), src.get("repo"), manifest.commit
            entry = next((f for f in manifest.files if f.path == path), None)
            if not manifest.kind.startswith("hf-") or not (endpoint and repo and commit):
                continue
            if entry is None or entry.blake3 != file_h or (endpoint, repo, commit, path) in tried:
                continue
            tried.add((endpoint, repo, commit, path))
            client = self.clients(endpoint, repo)
            if client is None:
                errors.append(f"no client for {endpoint}")
                continue
            origin = f"{endpoint}/{repo}@{commit}:{path}"
            repo_type: RepoType = "dataset" if manifest.kind == "hf-dataset" else "model"
            expected = Expected(size=entry.size, sha256=entry.sha256)
            try:
                sink = await asyncio.to_thread(self._sink, file_h, path, damaged_chunks)
                try:
                    await _pump(client.stream_file(repo_type, repo, commit, path, expected), sink)
                    await asyncio.to_thread(sink.finish, entry.size, entry.sha256, file_h)
                finally:
                    await asyncio.to_thread(sink.close)
            except (SeedvaultError, OSError) as exc:
                errors.append(f"{origin}: {exc}")
                continue
            return origin
        if not tried:
            raise _Unrepairable("no snapshot lists it from a Hub: nowhere to fetch it again")
        raise _Unrepairable("; ".join(errors) or "upstream did not give the same bytes")

    def _sink(self, file_h: str, path: str, damaged_chunks: set[str] | None) -> _Sink:
        if damaged_chunks is not None:
            try:
                record = self.vault.file_record(file_h)
            except (NotInVault, IntegrityError):
                pass
            else:
                return _Boundaries(self.vault, record, damaged_chunks, self.zstd_level)
        return _Rechunk(self.vault, path, self.zstd_level)


def _payload(damage: Damage) -> dict[str, Any]:
    snapshots = [{"snapshot": s, "path": p} for s, p in sorted(damage.snapshots)]
    return {
        "problem": damage.problem,
        "files": sorted(damage.files)[:MAX_LISTED],
        "snapshots": snapshots[:MAX_LISTED],
        "snapshots_total": len(snapshots),
        "detected_by": "scrub",
    }


class _Sink:
    """Receives a re-fetched file's bytes (in a worker thread), then checks and re-puts."""

    def write(self, blocks: list[bytes]) -> None:
        raise NotImplementedError

    def finish(self, size: int, sha256: str, file_h: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class _Boundaries(_Sink):
    """Cut at the intact record's chunk boundaries; keep the pieces of the damaged chunks."""

    def __init__(self, vault: Vault, record: FileRecord, damaged: set[str], level: int) -> None:
        self.vault, self.level = vault, level
        self.chunks = record.chunks
        self.damaged = damaged
        self.index = 0
        self.buf = bytearray()
        self.size = 0
        self.b3, self.sha = blake3.blake3(), hashlib.sha256()
        self.fixes: dict[str, bytes] = {}

    def write(self, blocks: list[bytes]) -> None:
        for block in blocks:
            self.b3.update(block)
            self.sha.update(block)
            self.size += len(block)
            self.buf += block
            while self.index < len(self.chunks) and len(self.buf) >= self.chunks[self.index][1]:
                h, length = self.chunks[self.index]
                if h in self.damaged:
                    piece = bytes(self.buf[:length])
                    if cas.address(piece) == h:
                        self.fixes[h] = piece
                del self.buf[:length]
                self.index += 1

    def finish(self, size: int, sha256: str, file_h: str) -> None:
        checks = [
            ("size", self.size, size),
            ("sha256", self.sha.hexdigest(), sha256),
            ("blake3", self.b3.hexdigest(), file_h),
        ]
        for name, actual, wanted in checks:
            if actual != wanted:
                raise _Unrepairable(f"upstream bytes differ: {name} {actual}, expected {wanted}")
        missing = sorted(self.damaged - set(self.fixes))
        if missing:
            raise _Unrepairable(f"chunk {missing[0]} is not where the file record says")
        for h, piece in sorted(self.fixes.items()):
            self.vault.put_encoded_chunk(h, cas.encode(piece, cas.CODEC_ZSTD, self.level))
        self.vault.store.sync()


class _RepairIngestor(Ingestor):
    """An ingestor that re-puts a chunk that is present but damaged (not only a missing one)."""

    def store_chunk(self, piece: cas.Piece, probing: Probing | None = None) -> tuple[str, int]:
        # Every chunk is read and checked: ``probing`` (the writer's guess whether asking
        # pays off) does not apply to a repair.
        h = cas.address(piece.data)
        if _intact(self.vault, h):
            self.stats.add_chunk(False, len(piece.data), 0)
            return h, len(piece.data)
        blob, size = self.encode(piece)  # addressed by its own bytes: correct by construction
        self.vault.put_encoded_chunk(h, blob)
        self.stats.add_chunk(True, size, len(blob))
        return h, size


class _Rechunk(_Sink):
    """Chunk the file again (its record is damaged), then re-put the record."""

    def __init__(self, vault: Vault, path: str, level: int) -> None:
        self.vault, self.level = vault, level
        self.ingestor = _RepairIngestor(vault, concurrency=2, zstd_level=level)
        self.writer = self.ingestor.writer(path)
        self.finished = False

    def write(self, blocks: list[bytes]) -> None:
        self.writer.write_many(blocks)

    def finish(self, size: int, sha256: str, file_h: str) -> None:
        try:
            record = self.writer.finish(size=size, sha256=sha256)
        except VerificationError as exc:
            raise _Unrepairable(f"upstream bytes differ from the archived file: {exc}") from None
        finally:
            self.finished = True
        if record.blake3 != file_h:
            raise _Unrepairable(f"upstream bytes hash to {record.blake3}, not {file_h}")
        self.vault.put_file_record(record, self.level)

    def close(self) -> None:
        if not self.finished:
            self.writer.abort()
        self.ingestor.close()


def _intact(vault: Vault, chunk_h: str) -> bool:
    try:
        vault.read_chunk(chunk_h)
    except IntegrityError:
        return False
    return True


async def _pump(stream: AsyncIterator[bytes], sink: _Sink) -> None:
    """Feed an async byte stream to ``sink`` in batches, off the event loop."""
    batch: list[bytes] = []
    pending = 0
    async for block in stream:
        batch.append(block)
        pending += len(block)
        if pending >= WRITE_BATCH:
            await asyncio.to_thread(sink.write, batch)
            batch, pending = [], 0
    if batch:
        await asyncio.to_thread(sink.write, batch)
