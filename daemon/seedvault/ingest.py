"""The ingest pipeline: bytes → chunks → hash → compress → upload, with bounded memory.

A :class:`FileWriter` takes a file's bytes in pieces of any size (from a local read or an
HTTP download) and stores it in the vault:

* the writer's thread cuts content-defined chunks (forced cuts at safetensors tensors) and
  feeds the whole-file hashers (BLAKE3 and SHA-256) in a hashing thread;
* chunks go to a shared pool of worker threads that hash, check whether the vault already
  holds them (then nothing is uploaded), encode and upload them; at most ``concurrency``
  chunks are in flight, so memory stays bounded whatever the file size; on a remote store a
  writer stops asking once the answers keep being "no" (see :class:`Probing`);
* :meth:`FileWriter.finish` waits for every chunk, then writes the file record — chunks are
  durable before the record that names them.

blake3, hashlib, zstandard and pyfastcdc release the GIL, so the threads use both cores.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import blake3

from seedvault import cas
from seedvault.errors import VerificationError
from seedvault.vault import FileRecord, Vault

HEADER_PEEK_LIMIT = 64 * 1024 * 1024
PROBE_MISSES = 4
"""Chunks in a row found absent before a writer on a remote store stops asking first."""
PROBE_EVERY = 16
"""While a writer uploads without asking, it still asks for one chunk in this many."""
HASH_QUEUE_BATCHES = 2
"""Batches handed to a file's hashing thread that may wait for it (it hashes ~1 GB/s)."""


@dataclass
class IngestStats:
    """Counters of one :class:`Ingestor`, safe to read at any time."""

    files: int = 0
    bytes_in: int = 0
    chunks: int = 0
    chunks_new: int = 0
    bytes_new_plain: int = 0
    bytes_new_stored: int = 0
    files_reused: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_chunk(self, new: bool, plain: int, stored: int) -> None:
        with self._lock:
            self.chunks += 1
            if new:
                self.chunks_new += 1
                self.bytes_new_plain += plain
                self.bytes_new_stored += stored


class Ingestor:
    """Shared worker pool and settings for every file of a capture (or of a daemon)."""

    def __init__(self, vault: Vault, *, concurrency: int = 8, zstd_level: int = 3) -> None:
        self.vault = vault
        self.concurrency = max(1, concurrency)
        self.zstd_level = zstd_level
        self.stats = IngestStats()
        # One limit for every file in flight at once (captures download several files
        # concurrently): memory is bounded by the Ingestor, not per file.
        self._inflight = threading.BoundedSemaphore(self.concurrency)
        self._pool = ThreadPoolExecutor(
            max_workers=max(2, min(self.concurrency, 8)), thread_name_prefix="ingest"
        )

    def writer(self, name: str = "", *, git_blob_size: int | None = None) -> FileWriter:
        """A writer for one file; ``name`` (the file's path) hints at safetensors.

        ``git_blob_size`` (the size the upstream announced) also computes the file's git blob
        id, ``sha1(b"blob <size>\\0" + content)``, to verify a Hub file that is not in LFS.
        """
        return FileWriter(
            self, safetensors=name.endswith(".safetensors"), git_blob_size=git_blob_size
        )

    def put_bytes(self, data: bytes, name: str = "") -> FileRecord:
        """Store a small in-memory file."""
        w = self.writer(name)
        w.write(data)
        return w.finish()

    def put_path(self, path: str, name: str = "", block: int = 8 * 1024 * 1024) -> FileRecord:
        """Store a local file, read in ``block``-sized pieces."""
        w = self.writer(name or path)
        try:
            with open(path, "rb") as fh:
                while piece := fh.read(block):
                    w.write(piece)
        except BaseException:
            w.abort()
            raise
        return w.finish()

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def store_chunk(self, piece: cas.Piece, probing: Probing | None = None) -> tuple[str, int]:
        """Hash, dedup, encode and upload one chunk (runs in a worker thread).

        With ``probing`` (a writer's), chunks the writer stored already are not looked at
        again, and the vault is asked for the chunk only when ``probing`` says it may pay off.
        """
        h = cas.address(piece.data)
        blind = False
        if probing is not None and probing.claim(h):
            present = True
        elif probing is None or probing.ask():
            present = self.vault.has_chunk(h)
            if probing is not None:
                probing.answer(present)
        else:
            present = False
            blind = True
        if present:
            self.stats.add_chunk(False, len(piece.data), 0)
            return h, len(piece.data)
        blob, size = self.encode(piece)
        if not blind:
            self.vault.put_encoded_chunk(h, blob)
        elif not self.vault.put_new_chunk(h, blob):  # it was there: count it as dedup
            assert probing is not None
            probing.answer(True)
            self.stats.add_chunk(False, size, 0)
            return h, size
        self.stats.add_chunk(True, size, len(blob))
        return h, size

    def encode(self, piece: cas.Piece) -> tuple[bytes, int]:
        """``piece`` encoded with its codec, and its plaintext size; the piece lets go of its
        plaintext, since the upload that follows takes most of a chunk's time in flight."""
        size = len(piece.data)
        blob = cas.encode(piece.data, cas.codec_for(piece.dtype), self.zstd_level, piece.skip)
        piece.release()
        return blob, size


class Probing:
    """Whether a writer asks the vault for a chunk before it encodes and uploads it.

    On a local store, asking is a stat and storing an fsynced write: always ask. On a remote
    store both are a request of about the same cost, and new content answers every question
    with "no" (half the requests of a capture of new weights, measured). So the writer asks
    until :data:`PROBE_MISSES` answers in a row are "no", then uploads without asking — as a
    conditional create (``If-None-Match: *``), so a chunk that is already there is never
    rewritten: the store refuses, and the refusal counts as a "yes" — and still asks for one
    chunk in :data:`PROBE_EVERY`: one "yes" (content the vault holds, such as an unchanged
    part of a new revision) makes it ask for every chunk again. A chunk met twice in one file
    is stored once and not asked about again.

    Thread-safe: the pool's workers share it. The cost of a wrong guess is bounded: at most
    ``PROBE_EVERY`` chunks uploaded that the vault had (bandwidth, not space), or
    ``PROBE_MISSES`` questions asked in vain.
    """

    def __init__(self, always: bool) -> None:
        self._always = always
        self._lock = threading.Lock()
        self._misses = 0
        self._unasked = 0
        self._seen: set[str] = set()

    def claim(self, h: str) -> bool:
        """Whether this writer met chunk ``h`` before (stored, or being stored by a worker
        whose result :meth:`FileWriter.finish` waits for too); else remember it now."""
        with self._lock:
            if h in self._seen:
                return True
            self._seen.add(h)
            return False

    def ask(self) -> bool:
        if self._always:
            return True
        with self._lock:
            if self._misses < PROBE_MISSES:
                return True
            self._unasked += 1
            if self._unasked < PROBE_EVERY:
                return False
            self._unasked = 0
            return True

    def answer(self, present: bool) -> None:
        with self._lock:
            self._misses = 0 if present else self._misses + 1


class _Hasher(threading.Thread):
    """Whole-file BLAKE3 + SHA-256 in their own thread (1.2× on the pipeline).

    Each queue item is a batch of blocks (one hand-off per :meth:`FileWriter.write_many`, not per
    block: downloads arrive in pieces of 16–256 KiB, and a thread hand-off per piece cost more
    than hashing it). At most :data:`HASH_QUEUE_BATCHES` batches wait.
    """

    def __init__(self, git_blob_size: int | None) -> None:
        super().__init__(name="ingest-hash", daemon=True)
        self.queue: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=HASH_QUEUE_BATCHES)
        self.b3 = blake3.blake3()
        self.sha = hashlib.sha256()
        self.size = 0
        self.git = None if git_blob_size is None else hashlib.sha1(b"blob %d\0" % git_blob_size)

    def run(self) -> None:
        while (blocks := self.queue.get()) is not None:
            for data in blocks:
                self.b3.update(data)
                self.sha.update(data)
                self.size += len(data)
                if self.git is not None:
                    self.git.update(data)


class FileWriter:
    """Streams one file into the vault. Not thread-safe: one producer per writer."""

    def __init__(
        self, ingestor: Ingestor, *, safetensors: bool, git_blob_size: int | None = None
    ) -> None:
        self._ing = ingestor
        self._sem = ingestor._inflight
        self._futures: list[Future[tuple[str, int]]] = []
        self._hasher = _Hasher(git_blob_size)
        self._probing = Probing(always=not ingestor.vault.store.remote)
        self._aborted = threading.Event()
        self._hasher.start()
        self._chunker: cas.Chunker | None = None
        self._head = bytearray() if safetensors and ingestor.vault.chunking.tensor_cuts else None
        self._done = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Add the next bytes of the file; blocks while ``concurrency`` chunks are in flight.

        After :meth:`abort` (possibly called from another thread while a producer is still
        writing), writes are dropped instead of blocking on a hasher that has stopped.
        """
        self.write_many([data])

    def write_many(self, blocks: Sequence[bytes | bytearray | memoryview]) -> None:
        """:meth:`write` each of ``blocks`` in turn, with one hand-off to the hashing thread."""
        batch = [bytes(block) for block in blocks if block]
        if not batch or self._aborted.is_set():
            return
        while True:
            try:
                self._hasher.queue.put(batch, timeout=0.2)
                break
            except queue.Full:
                if self._aborted.is_set():
                    return
        for data in batch:
            if self._aborted.is_set():
                return
            self._cut(data)

    def _cut(self, data: bytes) -> None:
        if self._chunker is None:
            if self._head is not None:
                self._head += data
                need = cas.safetensors_header_length(bytes(self._head[:8]))
                incomplete = len(self._head) < 8 or (need is not None and len(self._head) < need)
                if incomplete and len(self._head) < HEADER_PEEK_LIMIT:
                    return
                data, self._head = bytes(self._head), None
                segments = self._ing.vault.chunking.segments(data)
            else:
                segments = None
            self._chunker = cas.Chunker(self._ing.vault.chunking, segments)
        for piece in self._chunker.feed(data):
            self._submit(piece)

    def _submit(self, piece: cas.Piece) -> None:
        self._sem.acquire()
        future = self._ing._pool.submit(self._ing.store_chunk, piece, self._probing)
        future.add_done_callback(lambda _f: self._sem.release())
        self._futures.append(future)

    @property
    def bytes_written(self) -> int:
        return self._hasher.size

    def finish(
        self, *, size: int | None = None, sha256: str | None = None, git_sha1: str | None = None
    ) -> FileRecord:
        """Wait for every chunk, check the expected hashes, write the file record, return it.

        Raises:
            VerificationError: the bytes do not match ``size``/``sha256``/``git_sha1``; no file
                record is written (the chunks are unreferenced and ``gc`` removes them).
            StoreError, IntegrityError: a chunk could not be stored (nothing is recorded).
        """
        if self._chunker is None:
            segments = None
            if self._head:
                segments = self._ing.vault.chunking.segments(bytes(self._head))
            self._chunker = cas.Chunker(self._ing.vault.chunking, segments)
            if self._head:
                for piece in self._chunker.feed(self._head):
                    self._submit(piece)
        for piece in self._chunker.finish():
            self._submit(piece)
        self._hasher.queue.put(None)
        self._hasher.join()
        self._done = True
        chunks = tuple(f.result() for f in self._futures)
        record = FileRecord(
            size=self._hasher.size,
            blake3=self._hasher.b3.hexdigest(),
            sha256=self._hasher.sha.hexdigest(),
            chunks=chunks,
        )
        problems = []
        if size is not None and record.size != size:
            problems.append(f"size {record.size}, expected {size}")
        if sha256 is not None and record.sha256 != sha256.lower():
            problems.append(f"sha256 {record.sha256}, expected {sha256}")
        actual_git = None if self._hasher.git is None else self._hasher.git.hexdigest()
        if git_sha1 is not None and actual_git is not None and actual_git != git_sha1.lower():
            problems.append(f"git blob sha1 {actual_git}, expected {git_sha1}")
        if problems:
            raise VerificationError("; ".join(problems))
        if not self._ing.vault.has_file(record.blake3):
            self._ing.vault.put_file_record(record, self._ing.zstd_level)
        else:
            self._ing.stats.files_reused += 1
        self._ing.stats.files += 1
        self._ing.stats.bytes_in += record.size
        return record

    def abort(self) -> None:
        """Give up on this file: stop the hasher and wait for chunks in flight."""
        self._aborted.set()
        if self._done:
            return
        self._done = True
        self._hasher.queue.put(None)  # the hasher is alive, so this never blocks for long
        self._hasher.join()
        for f in self._futures:
            f.cancel()
        for f in self._futures:
            if not f.cancelled():
                f.exception()
