"""The one capture path: observe a source, stream its artifacts into the vault, commit a snapshot.

Every kind of source goes through :func:`capture`. Files the vault already holds (found in the
catalog by upstream SHA-256 or oid) are not read again; every file read is verified against
what the source announced before the snapshot that lists it is written; the snapshot is
committed with compare-and-swap on its ref (see ``Vault.commit``), and an unchanged capture
writes no snapshot. A capture holds a capture lock so ``gc`` never deletes what it reuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from seedvault import __version__
from seedvault.catalog import Catalog
from seedvault.errors import IntegrityError, NotInVault, VerificationError
from seedvault.ingest import Ingestor
from seedvault.manifest import FileEntry, Manifest, check_path
from seedvault.sources.base import Artifact, Expected, Source
from seedvault.vault import Ref, Vault, iso_seconds, utc_now

log = structlog.get_logger(__name__)

WRITE_BATCH = 4 * 1024 * 1024


_ACTUAL = re.compile(r"(size|sha256|git blob sha1) (\w+), expected")
_ACTUAL_KEYS = {"size": "size", "sha256": "sha256", "git blob sha1": "git_sha1"}


class FileVerificationError(VerificationError):
    """One file's bytes did not match what the source announced; nothing was stored as valid.

    ``expected`` is what the source published; ``actual`` what was read (the mismatching
    values only: ``size``, ``sha256``, ``git_sha1``).
    """

    def __init__(self, path: str, expected: Expected, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.expected = expected
        self.detail = detail
        self.actual: dict[str, str | int] = {}
        for name, value in _ACTUAL.findall(detail):
            key = _ACTUAL_KEYS[name]
            self.actual[key] = int(value) if key == "size" else value


class Progress(Protocol):
    """Receives progress of a capture (the CLI draws it on a terminal)."""

    def start(self, files: int, total_bytes: int | None) -> None: ...
    def advance(self, nbytes: int) -> None: ...
    def file_done(self, path: str) -> None: ...
    def close(self) -> None: ...


class NoProgress:
    """A :class:`Progress` that shows nothing."""

    def start(self, files: int, total_bytes: int | None) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def file_done(self, path: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class CaptureResult:
    """What one capture did."""

    source_key: str
    revision: str
    snapshot: str
    created: bool
    parent: str | None
    manifest: Manifest
    files_read: int
    bytes_read: int
    bytes_stored: int
    duration_s: float


async def capture(
    source: Source,
    *,
    vault: Vault,
    catalog: Catalog,
    ingestor: Ingestor,
    trigger: str = "manual",
    access: str = "public",
    labels: Sequence[str] = (),
    file_concurrency: int = 4,
    progress: Progress | None = None,
) -> CaptureResult:
    """Capture ``source`` now.

    Raises:
        SourceError: the source could not be read, or a file failed verification (nothing
            is committed; stored chunks stay unreferenced until ``gc``).
        StoreError, IntegrityError: the vault failed.
    """
    started = time.monotonic()
    show = progress or NoProgress()
    bound = log.bind(source=source.key, revision=source.revision)
    lock = vault.capture_lock()
    await asyncio.to_thread(lock.__enter__)
    try:
        observation = await source.observe()
        captured_at = iso_seconds(utc_now())
        for artifact in observation.artifacts:
            check_path(artifact.path)
        sizes = [a.expected.size for a in observation.artifacts]
        total = None if any(s is None for s in sizes) else sum(s or 0 for s in sizes)
        show.start(len(observation.artifacts), total)
        stored_before = ingestor.stats.bytes_new_stored
        read = [0, 0]  # files, bytes actually read from the source
        gate = asyncio.Semaphore(max(1, file_concurrency))

        async def one(artifact: Artifact) -> FileEntry:
            async with gate:
                entry = await _capture_file(artifact, vault, catalog, ingestor, show, read)
                show.file_done(artifact.path)
                return entry

        tasks = [asyncio.ensure_future(one(a)) for a in observation.artifacts]
        try:
            entries = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)
            raise
        source_doc = {"key": source.key, "revision": source.revision}
        if observation.commit:
            source_doc["commit"] = observation.commit
        source_doc.update(observation.source_extra)
        manifest = Manifest.build(
            files=entries,
            kind=source.kind,
            source=source_doc,
            captured_at=captured_at,
            upstream=dict(observation.upstream),
            access=access,
            labels=tuple(labels),
            trigger=trigger,
            agent={"software": "seedvault", "version": __version__},
        )
        result = await asyncio.to_thread(vault.commit, manifest)
        final = await asyncio.to_thread(vault.snapshot, result.snapshot)
        catalog.add_snapshot(result.snapshot, final)
        catalog.set_ref(
            source.key,
            source.revision,
            Ref(result.snapshot, final.commit, iso_seconds(utc_now())),
        )
    finally:
        show.close()
        await asyncio.to_thread(lock.__exit__, None, None, None)
    outcome = CaptureResult(
        source_key=source.key,
        revision=source.revision,
        snapshot=result.snapshot,
        created=result.created,
        parent=result.parent,
        manifest=final,
        files_read=read[0],
        bytes_read=read[1],
        bytes_stored=ingestor.stats.bytes_new_stored - stored_before,
        duration_s=time.monotonic() - started,
    )
    bound.info(
        "capture_done",
        snapshot=result.snapshot,
        created=result.created,
        commit=final.commit,
        files=len(final.files),
        bytes=final.total_bytes,
        files_read=outcome.files_read,
        bytes_read=outcome.bytes_read,
        bytes_stored=outcome.bytes_stored,
        duration_s=round(outcome.duration_s, 3),
    )
    return outcome


async def _capture_file(
    artifact: Artifact,
    vault: Vault,
    catalog: Catalog,
    ingestor: Ingestor,
    show: Progress,
    read: list[int],
) -> FileEntry:
    expected = artifact.expected
    known = None
    if expected.sha256 or artifact.upstream_oid:
        known = catalog.file_by_upstream(sha256=expected.sha256, oid=artifact.upstream_oid)
    if known is not None:
        try:
            record = await asyncio.to_thread(vault.file_record, known)
        except (NotInVault, IntegrityError):
            record = None
        if record is not None and (expected.size is None or record.size == expected.size):
            show.advance(record.size)
            return FileEntry(
                artifact.path, record.size, record.blake3, record.sha256, artifact.upstream_oid
            )
    git_size = expected.size if expected.git_sha1 else None
    writer = ingestor.writer(artifact.path, git_blob_size=git_size)
    try:
        # Downloads arrive in small pieces: hand them to the writer's thread (and on to its
        # hashing thread) in batches of WRITE_BATCH bytes, so the thread hops cost nothing next
        # to the work they carry.
        pending: list[bytes] = []
        pending_bytes = 0
        async for block in artifact.open():
            pending.append(block)
            pending_bytes += len(block)
            show.advance(len(block))
            if pending_bytes >= WRITE_BATCH:
                await asyncio.to_thread(writer.write_many, pending)
                pending, pending_bytes = [], 0
        if pending:
            await asyncio.to_thread(writer.write_many, pending)
        record = await asyncio.to_thread(
            writer.finish,
            size=expected.size,
            sha256=expected.sha256,
            git_sha1=expected.git_sha1,
        )
    except VerificationError as exc:
        raise FileVerificationError(artifact.path, expected, str(exc)) from exc
    except BaseException:
        await asyncio.to_thread(writer.abort)
        raise
    catalog.add_file(record.blake3, record.sha256, record.size, artifact.upstream_oid)
    read[0] += 1
    read[1] += record.size
    return FileEntry(
        artifact.path, record.size, record.blake3, record.sha256, artifact.upstream_oid
    )
