"""Content: a vault file streamed to an HTTP client, whole or by range, verified on the way.

:func:`stream_file` reads the file with :func:`read_pieces` — :meth:`Vault.iter_file`'s checks
(every chunk decoded and checked against its BLAKE3; a whole-file read also against the file's
BLAKE3) with a few chunks fetched in parallel — in a reader thread that runs a few chunks ahead
of the socket, so memory per download stays at about :data:`CHUNKS_IN_FLIGHT` +
:data:`READ_AHEAD_CHUNKS` + 2 chunks (~2 MiB each on average) whatever the file size. Nothing
of it runs on the event loop. The first chunk is read before the status line is sent: damage found
there becomes a clean ``500``. Damage found later cannot change the status any more, so the
connection is closed short of ``Content-Length`` — the client sees a truncated body, never a
wrong byte — and the damage is journaled as ``fixity_failed``. The last chunk is sent only
after the whole-file check has passed. A record whose whole-file check already passed in this
process (:meth:`Vault.composition_known`) skips only that second hash: its chunks, each still
checked, are the bytes that passed it.

Ranges (:func:`parse_range`): one ``bytes=`` range per request (``N-``, ``N-M``, ``-S``), as
``huggingface_hub`` sends to resume; ``206`` with ``Content-Range``. A malformed header is
``400``; a range outside the file, or several ranges, ``416`` with ``Content-Range: */size``.
"""

from __future__ import annotations

import asyncio
import functools
import re
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from typing import Any

import structlog
from aiohttp import web

from seedvault import cas
from seedvault.errors import IntegrityError, NotInVault, StoreError
from seedvault.server.state import ServerState
from seedvault.vault import Vault

log = structlog.get_logger(__name__)

CHUNKS_IN_FLIGHT = 4
"""Chunks of one download fetched and decoded at once."""
_RANGE_RE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")
_END = object()


class RangeError(Exception):
    """A Range header that cannot be served; ``status`` is 400 (malformed) or 416."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The byte range ``[start, end)`` a Range header asks for, None for the whole file.

    Raises:
        RangeError: malformed (400), or not satisfiable for a file of ``size`` bytes (416).
    """
    if header is None:
        return None
    text = header.strip()
    if "," in text and text.startswith("bytes="):
        raise RangeError(416, "only one range per request is served")
    match = _RANGE_RE.fullmatch(text)
    if match is None:
        raise RangeError(400, "malformed Range header (expected bytes=START-[END] or bytes=-N)")
    first, last = match.groups()
    if not first and not last:
        raise RangeError(400, "malformed Range header (expected bytes=START-[END] or bytes=-N)")
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeError(416, "range not satisfiable")
        return max(size - suffix, 0), size
    start = int(first)
    if last and int(last) < start:
        raise RangeError(400, "malformed Range header (end before start)")
    if start >= size:
        raise RangeError(416, "range not satisfiable")
    end = size if not last else min(int(last) + 1, size)
    return start, end


def _next(pieces: Iterator[cas.BytesLike]) -> Any:
    return next(pieces, _END)


def read_pieces(
    vault: Vault, h: str, start: int, end: int, pool: Executor, depth: int = CHUNKS_IN_FLIGHT
) -> Iterator[cas.BytesLike]:
    """:meth:`Vault.iter_file` of ``[start, end)`` with up to ``depth`` chunks fetched and
    decoded in ``pool`` at once: the same checks, but the next chunks are already being read
    while one is sent — a chunk read from S3 is a round trip, and a download that waited for
    each one in turn ran at half the store's speed.

    Raises:
        NotInVault: no record for ``h``.
        IntegrityError: a chunk or the record is damaged (raised when reached).
    """
    return vault.iter_file(h, start, end, pool=pool, depth=depth)


SEND_BUFFER_BYTES = 4 * 1024 * 1024
"""Socket send buffer asked for a download, when the system allows that much."""
WIDE_SEND_BUFFERS = 16
"""Downloads at once that get it (each may hold twice that in kernel memory while its client
is slow); later ones keep the kernel's own tuning."""
_widened = 0


@functools.cache
def _send_buffer_allowed() -> bool:
    """Whether ``SO_SNDBUF`` may be raised to :data:`SEND_BUFFER_BYTES`: the kernel caps it at
    ``net.core.wmem_max``, and a fixed buffer below that turns off the kernel's own tuning,
    which may grow the buffer to ``net.ipv4.tcp_wmem``'s maximum (4 MiB by default)."""
    try:
        with open("/proc/sys/net/core/wmem_max") as fh:
            return int(fh.read()) >= SEND_BUFFER_BYTES
    except (OSError, ValueError):
        return False


def _widen_send_buffer(request: web.Request) -> bool:
    """Let the kernel take a whole chunk per write; True if the buffer was widened (then the
    caller calls :func:`_narrowed` when the download ends).

    With the default buffer, asyncio's transport found the socket full for ~35% of a download's
    bytes and copied them into its own buffer to send later: a copy per byte, on fresh pages,
    and a loop turn per refill (measured on loopback). At most :data:`WIDE_SEND_BUFFERS`
    downloads at once get it. Runs on the event loop only.
    """
    global _widened
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or _widened >= WIDE_SEND_BUFFERS or not _send_buffer_allowed():
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    except OSError:
        return False
    _widened += 1
    return True


def _narrowed() -> None:
    global _widened
    _widened -= 1


READ_AHEAD_CHUNKS = 2
"""Pieces a download's reader thread may hold ready ahead of the socket."""


class _ReadAhead:
    """Runs a download's reader in one thread, up to :data:`READ_AHEAD_CHUNKS` pieces ahead of
    the socket.

    One long-lived reader per download (in the state's stream pool) instead of a thread hop
    per chunk: measured on 2 cores, per-chunk hops left the socket idle between chunks and
    served at ~0.55× a static file server; a reader running ahead serves at its speed.
    """

    def __init__(self, state: ServerState, pieces: Iterator[cas.BytesLike]) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._room = threading.Semaphore(READ_AHEAD_CHUNKS)
        self._stopped = threading.Event()
        self._pieces = pieces
        self._done = self._loop.run_in_executor(state.streams, self._produce)

    def _produce(self) -> None:
        try:
            while not self._stopped.is_set():
                self._room.acquire()
                if self._stopped.is_set():
                    break
                try:
                    item: Any = next(self._pieces, _END)
                except Exception as exc:  # handed to the consumer, which raises it
                    item = exc
                try:
                    self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
                except RuntimeError:  # the loop is closed: nobody is listening any more
                    break
                if item is _END or isinstance(item, Exception):
                    break
        finally:
            close = getattr(self._pieces, "close", None)
            if close is not None:
                close()  # in the thread that iterated it, so never while it runs

    async def next(self) -> Any:
        item = await self._queue.get()
        self._room.release()
        if isinstance(item, BaseException):
            raise item
        return item

    def stop(self) -> None:
        self._stopped.set()
        self._room.release()


async def stream_file(
    request: web.Request,
    state: ServerState,
    *,
    blake3: str,
    size: int,
    headers: Mapping[str, str],
    uses: list[tuple[str, str]],
    error: Callable[[int, str], web.Response],
) -> web.StreamResponse:
    """Answer ``request`` (GET) with the vault file ``blake3`` of ``size`` bytes.

    ``headers`` go on the success response; ``uses`` are the (snapshot, path) pairs listing
    the file, for the journal if it is damaged; ``error(status, message)`` builds the error
    response of the caller's API.
    """
    try:
        byte_range = parse_range(request.headers.get("Range"), size)
    except RangeError as exc:
        extra = {"Content-Range": f"bytes */{size}"} if exc.status == 416 else {}
        failed = error(exc.status, str(exc))
        failed.headers.update(extra)
        return failed
    start, end = byte_range if byte_range is not None else (0, size)
    pieces = read_pieces(state.node.vault, blake3, start, end, state.chunks)
    try:
        first = await state.run(_next, pieces)
    except (IntegrityError, NotInVault) as exc:
        await state.run(state.report_damage, blake3, str(exc), uses)
        return error(500, "this file is damaged in the archive; the node's operators are told")
    except StoreError as exc:
        log.warning("vault_unavailable", error=str(exc))
        return error(503, "the archive's storage is unavailable; try again later")
    response = web.StreamResponse(status=200 if byte_range is None else 206, headers=headers)
    response.content_length = end - start
    if byte_range is not None:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    widened = end - start > SEND_BUFFER_BYTES and _widen_send_buffer(request)
    try:
        await response.prepare(request)
        return await _stream(request, response, state, pieces, first, blake3=blake3, uses=uses)
    finally:
        if widened:
            _narrowed()


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    state: ServerState,
    pieces: Iterator[cas.BytesLike],
    first: Any,
    *,
    blake3: str,
    uses: list[tuple[str, str]],
) -> web.StreamResponse:
    """Send ``first`` and the rest of ``pieces`` on the prepared ``response``."""
    # A reader thread runs ahead of the socket by up to READ_AHEAD_CHUNKS chunks; the last
    # chunk is held back until the reader is exhausted: a whole-file read checks the file's
    # BLAKE3 at its end, so a file that fails that check is never delivered complete.
    reader = _ReadAhead(state, pieces)
    piece = first
    try:
        while piece is not _END:
            following = await reader.next()
            # A view: asyncio's transport (3.11) keeps what the socket did not take by slicing
            # the piece and copying the slice into its buffer; a view's slice saves the first
            # of those two copies.
            await response.write(memoryview(piece))
            piece = following
    except (IntegrityError, NotInVault, StoreError) as exc:
        if not isinstance(exc, StoreError):
            await state.run(state.report_damage, blake3, str(exc), uses)
        log.error("download_aborted", blake3=blake3, error=str(exc))
        if request.transport is not None:
            request.transport.close()
        return response
    except ConnectionError:
        log.info("download_interrupted", blake3=blake3)
        return response
    finally:
        reader.stop()
    await response.write_eof()
    return response
