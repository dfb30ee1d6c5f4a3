"""The vault: a content-addressed repository of chunks, files, snapshots, refs and a journal.

It sits on any :class:`~seedvault.store.base.Store` and owns everything above moving bytes:
addressing, encoding, verification on read, write order, compare-and-swap of refs, locks.
Layout and encodings are specified in ``docs/storage-format.md`` (vault format v1)::

    seedvault.json                      format marker
    chunks/<h[0:2]>/<h>                 encoded chunk, h = BLAKE3(plaintext)
    files/<h[0:2]>/<h>                  encoded file record, h = BLAKE3(file plaintext)
    snapshots/<h[0:2]>/<h>              canonical-JSON manifest, h = BLAKE3(these bytes)
    refs/<source key>/<revision>        {"snapshot", "commit", "updated"} (compare-and-swap)
    journal/<yyyy-mm-dd>/<ts>-<h>       append-only canonical-JSON records
    locks/gc, locks/capture/<id>        advisory locks between gc and captures

Write order gives crash safety: chunks → file record → snapshot → ref → journal.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import blake3

from seedvault import cas
from seedvault.errors import (
    IntegrityError,
    LockHeld,
    NotInVault,
    ObjectNotFound,
    PreconditionFailed,
    SeedvaultError,
    VaultFormatError,
)
from seedvault.manifest import Manifest, canonical_json, key_segment, unkey_segment
from seedvault.store.base import Store

FORMAT_NAME = "seedvault-vault"
FORMAT_VERSION = 1
MARKER_KEY = "seedvault.json"
MAX_RECORD_BYTES = 1 << 30  # a file record of ~12 million chunks
STALE_LOCK_S = 30 * 60
HEARTBEAT_S = 5 * 60


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_seconds(moment: datetime) -> str:
    """``2026-11-27T10:00:00Z``: the time format of manifests and refs."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sharded(prefix: str, h: str) -> str:
    return f"{prefix}/{h[:2]}/{h}"


@dataclass(frozen=True)
class FileRecord:
    """How a file is made of chunks."""

    size: int
    blake3: str
    sha256: str
    chunks: tuple[tuple[str, int], ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "blake3": self.blake3,
            "sha256": self.sha256,
            "chunks": [[h, n] for h, n in self.chunks],
        }

    def span(self, start: int, stop: int) -> Iterator[tuple[str, int, int]]:
        """``(chunk address, length, offset in the file)`` of each chunk that holds bytes of
        ``[start, stop)``, in order."""
        offset = 0
        for chunk_hash, length in self.chunks:
            if offset >= stop:
                return
            if offset + length > start:
                yield chunk_hash, length, offset
            offset += length

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FileRecord:
        chunks = tuple((str(h), int(n)) for h, n in doc["chunks"])
        record = cls(int(doc["size"]), str(doc["blake3"]), str(doc["sha256"]), chunks)
        if sum(n for _, n in chunks) != record.size:
            raise IntegrityError(f"file record {record.blake3}: chunk lengths do not add up")
        if not all(cas.is_address(h) and n > 0 for h, n in chunks):
            raise IntegrityError(f"file record {record.blake3}: a chunk entry is malformed")
        return record


@dataclass(frozen=True)
class Ref:
    """A ref: the newest snapshot of a source at a revision."""

    snapshot: str
    commit: str | None
    updated: str

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"snapshot": self.snapshot, "updated": self.updated}
        if self.commit is not None:
            out["commit"] = self.commit
        return out


@dataclass(frozen=True)
class CommitResult:
    """The outcome of :meth:`Vault.commit`."""

    snapshot: str
    created: bool
    """False when the capture equalled its parent: no snapshot was written."""
    parent: str | None
    attempts: int


def ref_key(source_key: str, revision: str) -> str:
    return f"refs/{source_key}/{key_segment(revision)}"


class Vault:
    """A vault on a store. Thread-safe; every method is synchronous (see ``store/base.py``)."""

    def __init__(self, store: Store, marker: dict[str, Any], *, max_chunk_bytes: int) -> None:
        self.store = store
        self.marker = marker
        self.chunking = cas.ChunkingParams.from_json(marker["chunking"])
        self.max_chunk_bytes = max_chunk_bytes
        self._composed: dict[bytes, None] = {}
        self._composed_lock = threading.Lock()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        store: Store,
        *,
        create: bool = True,
        chunking: cas.ChunkingParams | None = None,
        max_chunk_bytes: int = 16 * 1024 * 1024,
    ) -> Vault:
        """Open the vault on ``store``, initialising an empty store when ``create`` is set.

        Raises:
            VaultFormatError: the store holds objects but no marker (not a vault), the marker
                is unreadable, or it names a format or version this code does not read.
        """
        try:
            raw = store.get(MARKER_KEY)
        except ObjectNotFound:
            raw = None
        if raw is None:
            if next(iter(store.list("")), None) is not None:
                raise VaultFormatError(
                    f"{store.description} is not empty and has no {MARKER_KEY}: "
                    "refusing to use it as a vault"
                )
            if not create:
                raise VaultFormatError(f"no vault at {store.description}")
            params = chunking or cas.ChunkingParams()
            if params.max > max_chunk_bytes:
                raise VaultFormatError("chunking max is above max_chunk_bytes")
            marker = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "hash": cas.HASH_NAME,
                "chunking": params.to_json(),
                "created": iso_seconds(utc_now()),
            }
            try:
                store.put_if(MARKER_KEY, canonical_json(marker), None)
            except PreconditionFailed:  # another process initialised it first: use theirs
                return cls.open(store, create=False, max_chunk_bytes=max_chunk_bytes)
            return cls(store, marker, max_chunk_bytes=max_chunk_bytes)
        try:
            marker = json.loads(raw)
            fmt, version = marker.get("format"), marker.get("version")
        except (ValueError, AttributeError) as exc:
            raise VaultFormatError(f"{MARKER_KEY} at {store.description} is not JSON") from exc
        if fmt != FORMAT_NAME:
            raise VaultFormatError(f"{store.description} is not a seedvault vault ({fmt!r})")
        if version != FORMAT_VERSION or marker.get("hash") != cas.HASH_NAME:
            raise VaultFormatError(
                f"{store.description} is vault format version {version!r}; this seedvault reads "
                f"version {FORMAT_VERSION} only — upgrade seedvault to open it"
            )
        try:
            vault = cls(store, marker, max_chunk_bytes=max_chunk_bytes)
        except (KeyError, TypeError, ValueError) as exc:
            raise VaultFormatError(f"{MARKER_KEY}: bad chunking parameters ({exc})") from exc
        if vault.chunking.max > max_chunk_bytes:
            raise VaultFormatError(
                f"vault chunks may be {vault.chunking.max} bytes, above max_chunk_bytes"
            )
        return vault

    # ------------------------------------------------------------------ chunks

    def has_chunk(self, h: str) -> bool:
        return self.store.exists(sharded("chunks", h))

    def put_encoded_chunk(self, h: str, blob: bytes) -> None:
        """Store an encoded chunk (the caller computed ``h`` from its plaintext)."""
        self.store.put(sharded("chunks", h), blob)

    def put_new_chunk(self, h: str, blob: bytes) -> bool:
        """Store an encoded chunk unless one is there already (a conditional create, so a
        stored object is never rewritten); True if this call stored it.

        For uploads made without asking first: the store refuses to replace an existing
        object, and a refusal that is not explained by an object being there (a conflicting
        concurrent create) is retried.
        """
        key = sharded("chunks", h)
        for _ in range(3):
            try:
                self.store.put_if(key, blob, None)
                return True
            except PreconditionFailed:
                if self.store.exists(key):
                    return False
        self.store.put_if(key, blob, None)  # the last refusal propagates
        return True

    def read_chunk(self, h: str) -> bytes | bytearray:
        """The verified plaintext of chunk ``h`` (a ``bytearray`` when byte-grouped).

        Raises:
            IntegrityError: the chunk is missing, does not decode, or does not hash to ``h``.
        """
        key = sharded("chunks", h)
        try:
            blob = self.store.get(key)
        except ObjectNotFound:
            raise IntegrityError(f"chunk {h} is missing") from None
        try:
            data = cas.decode(blob, self.max_chunk_bytes)
        except IntegrityError as exc:
            raise IntegrityError(f"chunk {h} is damaged: {exc}") from exc
        if cas.address(data) != h:
            raise IntegrityError(f"chunk {h} is damaged: its content hashes differently")
        return data

    # ------------------------------------------------------------------ files

    def has_file(self, h: str) -> bool:
        return self.store.exists(sharded("files", h))

    def put_file_record(self, record: FileRecord, level: int = 3) -> None:
        """Store a file record, after making its chunks durable (write order)."""
        self.store.sync()
        blob = cas.encode(canonical_json(record.to_json()), cas.CODEC_ZSTD, level)
        self.store.put(sharded("files", record.blake3), blob)

    def file_record(self, h: str) -> FileRecord:
        """The file record of file ``h``.

        Raises:
            NotInVault: no record for ``h``.
            IntegrityError: the record is damaged.
        """
        try:
            blob = self.store.get(sharded("files", h))
        except ObjectNotFound:
            raise NotInVault(f"file {h} is not in the vault") from None
        try:
            record = FileRecord.from_json(json.loads(cas.decode(blob, MAX_RECORD_BYTES)))
        except (IntegrityError, ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"file record {h} is damaged: {exc}") from exc
        if record.blake3 != h:
            raise IntegrityError(f"file record {h} describes another file")
        return record

    def iter_file(
        self,
        h: str,
        start: int = 0,
        end: int | None = None,
        *,
        pool: Executor | None = None,
        depth: int = 1,
    ) -> Iterator[cas.BytesLike]:
        """The bytes ``[start, end)`` of file ``h``, chunk by chunk, each chunk verified.

        Pieces are bytes-like (``bytes``, ``bytearray``, or a ``memoryview`` of a chunk cut by
        the range), never copied: join or write them.

        Each chunk goes through :meth:`read_chunk` (decoded, re-hashed against its address)
        and its length is checked against the file record. A whole-file read (``start == 0``
        and ``end`` None or the size) is also checked against the file's BLAKE3 at the end, so
        a damaged record cannot go unnoticed — once per record and process
        (:meth:`composition_known`). With a ``pool``, up to ``depth`` chunks are read in it at
        once, ahead of the one being yielded (a chunk read from S3 is a round trip); they are
        still checked and yielded in order, and those not yet yielded are cancelled when the
        iterator is closed.

        Raises:
            NotInVault: no record for ``h``.
            IntegrityError: some chunk or the record is damaged (raised when reached: the
                caller may already have received earlier bytes).
        """
        record = self.file_record(h)
        stop = record.size if end is None else min(end, record.size)
        check = self.whole_file_check(record, start, stop)
        todo = record.span(start, stop)
        pending: deque[tuple[tuple[str, int, int], Future[bytes | bytearray] | None]] = deque()
        try:
            while True:
                while len(pending) < max(depth, 1) and (step := next(todo, None)) is not None:
                    ahead = None if pool is None else pool.submit(self.read_chunk, step[0])
                    pending.append((step, ahead))
                if not pending:
                    break
                (chunk_hash, length, offset), ahead = pending.popleft()
                data = ahead.result() if ahead is not None else self.read_chunk(chunk_hash)
                if len(data) != length:
                    raise IntegrityError(f"chunk {chunk_hash} has the wrong length")
                if check is not None:
                    check.update(data)
                yield cas.cut(data, start - offset, stop - offset)
            if check is not None:
                check.finish()
        finally:
            for _, ahead in pending:
                if ahead is not None:
                    ahead.cancel()

    def whole_file_check(self, record: FileRecord, start: int, stop: int) -> WholeFileCheck | None:
        """The whole-file BLAKE3 check for a read of bytes ``[start, stop)`` of ``record``'s
        file: None for a partial read, or when this very record has passed it already in this
        process (:meth:`composition_known`)."""
        if start != 0 or stop != record.size or self.composition_known(record):
            return None
        return WholeFileCheck(self, record)

    def composition_known(self, record: FileRecord) -> bool:
        """Whether a whole read of ``record``'s file has already passed the whole-file check
        with exactly this chunk list (in this process).

        Then the check may be skipped: every chunk is still checked against its address, so
        the bytes are those that hashed to the file's BLAKE3 before. A record changed in the
        store since (another chunk list) is not known and is checked again.
        """
        key = _composition_key(record)
        with self._composed_lock:
            return key in self._composed

    def remember_composition(self, record: FileRecord) -> None:
        """Note that ``record``'s chunks, read whole, hashed to its file's BLAKE3."""
        key = _composition_key(record)
        with self._composed_lock:
            self._composed[key] = None
            if len(self._composed) > COMPOSITIONS_REMEMBERED:
                del self._composed[next(iter(self._composed))]

    # ------------------------------------------------------------------ snapshots

    def put_snapshot(self, manifest: Manifest) -> str:
        data = manifest.encode()
        h = cas.address(data)
        key = sharded("snapshots", h)
        if not self.store.exists(key):
            self.store.put(key, data)
        return h

    def snapshot_bytes(self, h: str) -> bytes:
        """The stored manifest bytes of snapshot ``h``, verified.

        Raises:
            NotInVault: no such snapshot.
            IntegrityError: the stored bytes do not hash to ``h``.
        """
        try:
            data = self.store.get(sharded("snapshots", h))
        except ObjectNotFound:
            raise NotInVault(f"snapshot {h} is not in the vault") from None
        if cas.address(data) != h:
            raise IntegrityError(f"snapshot {h} is damaged")
        return bytes(data)

    def snapshot(self, h: str) -> Manifest:
        return Manifest.decode(self.snapshot_bytes(h))

    def snapshot_ids(self) -> Iterator[str]:
        for info in self.store.list("snapshots/"):
            yield info.key.rsplit("/", 1)[1]

    # ------------------------------------------------------------------ refs

    def read_ref(self, source_key: str, revision: str) -> tuple[Ref, str] | None:
        """The ref of ``source_key`` at ``revision`` and its version (None: no such ref).

        Raises:
            IntegrityError: the ref is damaged (the message names its key).
        """
        key = ref_key(source_key, revision)
        try:
            data, version = self.store.get_versioned(key)
        except ObjectNotFound:
            return None
        return _parse_ref(data, key), version

    def refs(
        self, on_damaged: Callable[[str, IntegrityError], None] | None = None
    ) -> Iterator[tuple[str, str, Ref]]:
        """Every ref as (source key, revision, ref).

        A damaged ref (not a ref document) raises, unless ``on_damaged`` is given: then it is
        called with the ref's key and the error, and the walk goes on without that ref. Readers
        that only index or check (catalog, verify) skip it; ``gc`` lets it raise, since it
        cannot know what a damaged ref keeps alive.

        Raises:
            IntegrityError: a ref is damaged and ``on_damaged`` is None (names the ref's key).
        """
        for info in self.store.list("refs/"):
            path = info.key[len("refs/") :]
            source_key, _, rev_enc = path.rpartition("/")
            try:
                ref = _parse_ref(self.store.get(info.key), info.key)
            except ObjectNotFound:
                continue
            except IntegrityError as exc:
                if on_damaged is None:
                    raise
                on_damaged(info.key, exc)
                continue
            yield source_key, unkey_segment(rev_enc), ref

    def commit(self, manifest: Manifest, *, max_attempts: int = 50) -> CommitResult:
        """Write ``manifest`` as the newest snapshot of its source and revision.

        The parent is whatever the ref points at when the compare-and-swap succeeds: a writer
        that loses re-reads the ref, rebases (new parent, new snapshot id) and tries again. A
        manifest with the same content as the parent writes nothing but an ``unchanged``
        journal record.

        Raises:
            PreconditionFailed: lost ``max_attempts`` races in a row.
        """
        source_key, revision = manifest.source_key, manifest.revision
        key = ref_key(source_key, revision)
        for attempt in range(1, max_attempts + 1):
            current = self.read_ref(source_key, revision)
            parent = current[0].snapshot if current else None
            version = current[1] if current else None
            if parent is not None and manifest.same_content(self.snapshot(parent)):
                self.journal("unchanged", source=source_key, revision=revision, snapshot=parent)
                return CommitResult(parent, False, parent, attempt)
            candidate = manifest.with_parent(parent)
            snapshot_id = self.put_snapshot(candidate)
            ref = Ref(snapshot_id, candidate.commit, iso_seconds(utc_now()))
            try:
                self.store.put_if(key, canonical_json(ref.to_json()), version)
            except PreconditionFailed:
                time.sleep(0.005 * attempt)
                continue
            self.journal_capture(snapshot_id, candidate)
            return CommitResult(snapshot_id, True, parent, attempt)
        raise PreconditionFailed(f"{key}: lost {max_attempts} compare-and-swap races in a row")

    def live_snapshots(self) -> dict[str, Manifest]:
        """Every snapshot reachable from a ref through parent links (damaged ones skipped)."""
        out: dict[str, Manifest] = {}
        for _, _, ref in self.refs():
            h: str | None = ref.snapshot
            while h is not None and h not in out:
                try:
                    manifest = self.snapshot(h)
                except (NotInVault, IntegrityError):
                    break
                out[h] = manifest
                h = manifest.parent
        return out

    # ------------------------------------------------------------------ journal

    def journal(self, record_type: str, **fields: Any) -> str:
        """Append a record to the journal; returns its key."""
        moment = utc_now()
        record = {"type": record_type, "at": moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), **fields}
        data = canonical_json(record)
        key = f"journal/{moment:%Y-%m-%d}/{moment:%Y%m%dT%H%M%S%fZ}-{cas.address(data)[:16]}"
        self.store.put(key, data)
        return key

    def journal_capture(self, snapshot_id: str, manifest: Manifest, **extra: Any) -> str:
        """Journal the ``capture`` record of snapshot ``snapshot_id`` (``manifest``)."""
        return self.journal(
            "capture",
            source=manifest.source_key,
            revision=manifest.revision,
            snapshot=snapshot_id,
            **({"parent": manifest.parent} if manifest.parent else {}),
            files=len(manifest.files),
            bytes=manifest.total_bytes,
            **extra,
        )

    def journal_records(self, after: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
        """Journal records in time order, optionally only those after key ``after``."""
        for info in self.store.list("journal/"):
            if info.key <= after:
                continue
            try:
                yield info.key, json.loads(self.store.get(info.key))
            except (ObjectNotFound, ValueError):
                continue

    # ------------------------------------------------------------------ locks

    def _lock_alive(self, key: str) -> bool:
        try:
            doc = json.loads(self.store.get(key))
        except (ObjectNotFound, ValueError):
            return False
        if doc.get("host") == socket.gethostname():
            try:
                os.kill(int(doc.get("pid", 0)), 0)
            except ProcessLookupError:
                return False  # its process is gone: a crash left it behind
            except (PermissionError, ValueError, OverflowError):
                pass
        return bool(time.time() - float(doc.get("heartbeat", 0)) < STALE_LOCK_S)

    def _lock_doc(self, purpose: str) -> bytes:
        return canonical_json(
            {
                "purpose": purpose,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "heartbeat": int(time.time()),
            }
        )

    @contextlib.contextmanager
    def capture_lock(self, wait_s: float = 3600.0) -> Iterator[None]:
        """Held by every capture, so that ``gc`` never deletes what a capture is reusing."""
        key = f"locks/capture/{uuid.uuid4().hex}"
        deadline = time.monotonic() + wait_s
        while True:
            self.store.put(key, self._lock_doc("capture"))
            if not self._lock_alive("locks/gc"):
                break
            self.store.delete(key)
            if time.monotonic() > deadline:
                raise LockHeld("gc is running on this vault; try again when it has finished")
            time.sleep(1.0)
        try:
            with self._heartbeat(key, "capture"):
                yield
        finally:
            self.store.delete(key)

    @contextlib.contextmanager
    def _heartbeat(self, key: str, purpose: str) -> Iterator[None]:
        """Refresh a held lock every few minutes, so a long holder never looks stale."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                with contextlib.suppress(SeedvaultError):
                    self.store.put(key, self._lock_doc(purpose))

        thread = threading.Thread(target=beat, name=f"{purpose}-lock", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    @contextlib.contextmanager
    def gc_lock(self, wait_s: float = 600.0, on_wait: Any = None) -> Iterator[None]:
        """Exclusive against other collectors and against running captures."""
        key = "locks/gc"
        try:
            self.store.put_if(key, self._lock_doc("gc"), None)
        except PreconditionFailed:
            if self._lock_alive(key):
                raise LockHeld("another gc holds locks/gc on this vault") from None
            _, version = self.store.get_versioned(key)
            try:
                self.store.put_if(key, self._lock_doc("gc"), version)
            except PreconditionFailed:
                raise LockHeld("another gc took locks/gc on this vault") from None
        try:
            deadline = time.monotonic() + wait_s
            while True:
                busy = [i.key for i in self.store.list("locks/capture/") if self._lock_alive(i.key)]
                if not busy:
                    break
                if time.monotonic() > deadline:
                    raise LockHeld(f"{len(busy)} capture(s) still running; gc gave up waiting")
                if on_wait is not None:
                    on_wait(len(busy))
                time.sleep(1.0)
            with self._heartbeat(key, "gc"):
                yield
        finally:
            self.store.delete(key)


def _parse_ref(data: bytes | bytearray, key: str) -> Ref:
    """The ref stored at ``key``.

    Raises:
        IntegrityError: not a ref document: not JSON, a field missing, a snapshot that is not an
            address, a commit or time that is not a string.
    """
    try:
        doc = json.loads(data)
        snapshot, commit, updated = doc["snapshot"], doc.get("commit"), doc["updated"]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise IntegrityError(f"ref {key} is damaged: {exc}") from exc
    if not isinstance(snapshot, str) or not cas.is_address(snapshot):
        raise IntegrityError(f"ref {key} is damaged: its snapshot is not a snapshot id")
    if not isinstance(updated, str) or not (commit is None or isinstance(commit, str)):
        raise IntegrityError(f"ref {key} is damaged: its commit or time is not a string")
    return Ref(snapshot, commit, updated)


class WholeFileCheck:
    """A whole read's check against the file's BLAKE3 (:meth:`Vault.whole_file_check`): feed
    it every chunk in order, then :meth:`finish`."""

    def __init__(self, vault: Vault, record: FileRecord) -> None:
        self._vault = vault
        self._record = record
        self._hasher = blake3.blake3()

    def update(self, data: cas.BytesLike) -> None:
        self._hasher.update(data)

    def finish(self) -> None:
        """Raise :class:`IntegrityError` unless the bytes fed hash to the file's address;
        remember the record as passed if they do."""
        if self._hasher.hexdigest() != self._record.blake3:
            raise IntegrityError(f"file {self._record.blake3} does not hash to its address")
        self._vault.remember_composition(self._record)


COMPOSITIONS_REMEMBERED = 65_536
"""File records whose whole-file check a vault remembers as passed (~100 bytes each; the
oldest is forgotten first)."""


def _composition_key(record: FileRecord) -> bytes:
    """A digest of what a whole-file check proves: this file address and size, these chunks
    and lengths in order (JSON, so no two records share the digested text)."""
    text = json.dumps([record.blake3, record.size, record.chunks], separators=(",", ":"))
    return blake3.blake3(text.encode()).digest()
