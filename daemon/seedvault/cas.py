"""Content addressing: BLAKE3 addresses, content-defined chunking and object codecs (no I/O).

Everything here is a pure function of bytes, so any node can recompute and verify it:

* addresses are unkeyed BLAKE3-256 hex digests of *plaintext* (:func:`address`);
* files are cut with FastCDC 2020 (``pyfastcdc``) into chunks of ~2 MiB, with forced cuts at
  safetensors tensor boundaries so that a changed tensor changes only its own chunks
  (:func:`safetensors_segments`, :class:`Chunker`);
* chunks and file records are stored *encoded*: a 16-byte header (magic, codec, plaintext
  length) then the payload (:func:`encode`, :func:`decode`). The codec is picked from what the
  data is — byte-grouped zstd for float tensors, plain zstd otherwise — and ``raw`` is kept when
  compression does not make the object smaller.

The normative description is ``docs/storage-format.md``.
"""

from __future__ import annotations

import json
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import blake3
import numpy as np
import zstandard
from pyfastcdc import FastCDC

from seedvault.errors import IntegrityError

HASH_NAME = "blake3"
MAGIC = b"SVO1"
HEADER = struct.Struct("<4sB3xQ")  # magic, codec id, 3 reserved zero bytes, plaintext length
HEADER_SIZE = HEADER.size  # 16

CODEC_RAW = 0
CODEC_ZSTD = 1
CODEC_ZSTD_BG2 = 2
CODEC_ZSTD_BG4 = 4
CODEC_NAMES = {
    CODEC_RAW: "raw",
    CODEC_ZSTD: "zstd",
    CODEC_ZSTD_BG2: "zstd-bg2",
    CODEC_ZSTD_BG4: "zstd-bg4",
}

# safetensors dtypes whose bytes are byte-grouped, and the element width in bytes
FLOAT_WIDTHS = {"BF16": 2, "F16": 2, "F32": 4}
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


def address(data: bytes | bytearray | memoryview) -> str:
    """The address of ``data``: BLAKE3-256 of the plaintext, 64 lowercase hex digits."""
    return blake3.blake3(data).hexdigest()


def is_address(value: str) -> bool:
    """Whether ``value`` looks like an address (64 lowercase hex digits)."""
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# --------------------------------------------------------------------------- chunking


@dataclass(frozen=True)
class ChunkingParams:
    """The chunker's parameters; recorded in ``seedvault.json`` so every node cuts alike.

    The defaults are those of new vaults: FastCDC's mean chunk is about ``avg + min`` (~2 MiB),
    and safetensors tensors are grouped into segments of at least ``tensor_group`` bytes of one
    dtype. A vault records its own parameters and keeps them; ``tensor_group`` None is the rule
    of vaults created before it existed (groups of at least ``min`` bytes, dtypes mixed).
    """

    min: int = 512 * 1024
    avg: int = 1536 * 1024
    max: int = 4 * 1024 * 1024
    normalization: int = 1
    tensor_cuts: bool = True
    tensor_group: int | None = 2 * 1024 * 1024
    algorithm: str = "fastcdc-2020"

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "algorithm": self.algorithm,
            "min": self.min,
            "avg": self.avg,
            "max": self.max,
            "normalization": self.normalization,
            "tensor_cuts": self.tensor_cuts,
        }
        if self.tensor_group is not None:
            data["tensor_group"] = self.tensor_group
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChunkingParams:
        group = data.get("tensor_group")
        if group is not None and int(group) <= 0:
            raise ValueError(f"tensor_group must be positive, not {group!r}")
        return cls(
            min=int(data["min"]),
            avg=int(data["avg"]),
            max=int(data["max"]),
            normalization=int(data["normalization"]),
            tensor_cuts=bool(data["tensor_cuts"]),
            tensor_group=None if group is None else int(group),
            algorithm=str(data["algorithm"]),
        )

    def segments(self, header: bytes) -> list[Segment] | None:
        """The segments of a safetensors file whose header is ``header`` under these
        parameters (:func:`safetensors_segments`)."""
        if self.tensor_group is None:
            return safetensors_segments(header, self.min, split_dtypes=False)
        return safetensors_segments(header, self.tensor_group, split_dtypes=True)


@dataclass(frozen=True)
class Segment:
    """A byte range ``[start, end)`` of a file chunked on its own; ``dtype`` picks the codec."""

    start: int
    end: int | None  # None: to the end of the file
    dtype: str | None = None


def safetensors_header_length(prefix: bytes) -> int | None:
    """Total header size (8 + N) if ``prefix`` starts like a safetensors file, else None."""
    if len(prefix) < 8:
        return None
    n = int(struct.unpack("<Q", prefix[:8])[0])
    if n < 2 or n > MAX_SAFETENSORS_HEADER:
        return None
    return 8 + n


def safetensors_segments(
    header: bytes, min_bytes: int, *, split_dtypes: bool = True
) -> list[Segment] | None:
    """Segments for a safetensors file whose first ``8 + N`` bytes are ``header``.

    The header JSON gives every tensor's dtype and ``data_offsets``. Cuts are forced at tensor
    boundaries, except that consecutive tensors are grouped until a group holds at least
    ``min_bytes`` (so hundreds of tiny bias vectors do not become hundreds of tiny objects).
    With ``split_dtypes`` a group also ends where the dtype changes, so every group has one
    dtype and gets its codec; without (the rule of older vaults), a group of mixed dtypes has
    dtype None. Returns None when the header is not valid safetensors JSON (the file is then
    chunked as plain bytes).
    """
    hlen = safetensors_header_length(header)
    if hlen is None or len(header) < hlen:
        return None
    try:
        meta = json.loads(bytes(header[8:hlen]))
        tensors = sorted(
            (int(v["data_offsets"][0]), int(v["data_offsets"][1]), str(v["dtype"]))
            for k, v in meta.items()
            if k != "__metadata__"
        )
    except (ValueError, KeyError, TypeError, IndexError):
        return None
    segments = [Segment(0, hlen, None)]
    pos = 0
    group_start, group_dtype = 0, None
    first = True
    for begin, end, dtype in tensors:
        if begin < pos or end < begin:
            return None  # overlapping or negative ranges: not a layout we can trust
        if begin > pos:  # a gap: its own group
            if not first:
                segments.append(Segment(hlen + group_start, hlen + pos, group_dtype))
            segments.append(Segment(hlen + pos, hlen + begin, None))
            first = True
        if first:
            group_start, group_dtype, first = begin, dtype, False
        elif begin - group_start >= min_bytes or (split_dtypes and group_dtype != dtype):
            segments.append(Segment(hlen + group_start, hlen + begin, group_dtype))
            group_start, group_dtype = begin, dtype
        elif group_dtype != dtype:
            group_dtype = None
        pos = end
    if not first:
        segments.append(Segment(hlen + group_start, hlen + pos, group_dtype))
    segments.append(Segment(hlen + pos, None, None))  # trailing bytes, if any
    return segments


@dataclass
class Piece:
    """One chunk produced by the chunker."""

    offset: int
    data: bytes
    dtype: str | None
    skip: int = 0
    """Bytes before the first whole element of ``dtype`` in ``data`` (CDC cuts anywhere)."""

    def release(self) -> None:
        """Let go of the plaintext (once it is encoded), keeping the rest of the piece."""
        self.data = b""


class Chunker:
    """Streaming content-defined chunker over a sequence of segments.

    Feed bytes with :meth:`feed` and get complete chunks back; :meth:`finish` flushes the tail.
    The chunks are exactly those that cutting each segment as one buffer would give: a chunk is
    emitted only once the bytes after it are known (or its segment ended), because FastCDC's
    cut point depends only on the bytes from the chunk's start.
    """

    def __init__(self, params: ChunkingParams, segments: list[Segment] | None = None) -> None:
        self._cdc = FastCDC(
            params.avg,
            min_size=params.min,
            max_size=params.max,
            normalized_chunking=params.normalization,  # type: ignore[arg-type]
        )
        self._max = params.max
        self._avg = params.avg
        self._segments = list(segments or [Segment(0, None, None)])
        self._seg_index = 0
        # The bytes not yet cut are self._buf[self._start:self._end], at absolute offset _pos.
        # The buffer grows (doubling) to _room — the most held between cuts plus a typical
        # write — and is then reused in place: what is left after a cut moves to its front when
        # the next write would not fit. Appending to a bytearray and deleting its cut front
        # instead made CPython reallocate and copy it after every cut, onto fresh pages.
        self._buf = bytearray()
        self._start = 0
        self._end = 0
        self._pos = 0
        self._room = params.max + params.avg + (1 << 20)

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet yielded as chunks: below ``max + avg`` once a feed is done
        (while one runs, at most that plus the bytes it brought)."""
        return self._end - self._start

    def feed(self, data: bytes | bytearray | memoryview) -> Iterator[Piece]:
        """Add ``data`` and yield every chunk that is now final."""
        n = memoryview(data).nbytes
        if self._end + n > len(self._buf):
            self._make_room(n)
        self._buf[self._end : self._end + n] = data
        self._end += n
        yield from self._drain(final=False)

    def finish(self) -> Iterator[Piece]:
        """Yield the remaining chunks at the end of the file."""
        yield from self._drain(final=True)

    def _make_room(self, n: int) -> None:
        live = self._end - self._start
        if live + n <= len(self._buf):
            view = memoryview(self._buf)
            view[:live] = view[self._start : self._end]  # overlapping: moved like memmove
            view.release()
        else:
            grown = bytearray(max(live + n, min(self._room, 2 * len(self._buf))))
            with memoryview(self._buf) as view:
                grown[:live] = view[self._start : self._end]
            self._buf = grown
        self._start, self._end = 0, live

    def _drain(self, final: bool) -> Iterator[Piece]:
        while self._end > self._start:
            seg = self._segments[self._seg_index]
            seg_end = seg.end
            if seg_end is not None and seg_end <= self._pos:
                self._seg_index += 1
                continue
            live = self._end - self._start
            avail = live if seg_end is None else min(live, seg_end - self._pos)
            complete = final or (seg_end is not None and self._pos + avail == seg_end)
            if not complete and avail < self._max + self._avg:
                # Wait for more bytes. Every cut but the last one of a buffer is final (a cut
                # depends only on the bytes from its chunk's start, at most ``max`` of them), so
                # more than ``max`` bytes would do; the extra ``avg`` keeps the bytes scanned
                # again (the unfinished last chunk, on the next call) small next to the new ones.
                return
            consumed = 0
            width = FLOAT_WIDTHS.get(seg.dtype or "", 1)
            whole = memoryview(self._buf)[self._start : self._start + avail]
            try:
                cuts = [(c.offset, c.length) for c in self._cdc.cut_buf(whole)]
                if not complete:
                    cuts = cuts[:-1]  # the last cut may move once more bytes arrive
                for offset, length in cuts:
                    start = self._pos + offset
                    skip = -(start - seg.start) % width
                    data = bytes(whole[offset : offset + length])  # the one copy per chunk
                    yield Piece(start, data, seg.dtype, skip)
                    consumed = offset + length
            finally:
                whole.release()
            self._start += consumed
            self._pos += consumed
            if self._start == self._end:
                self._start = self._end = 0  # empty: the next bytes go to the front
            if not complete:
                return


# --------------------------------------------------------------------------- codecs

_PLANE_RAW = 0
_PLANE_ZSTD = 1
_PLANE_HEADER = struct.Struct("<BI")  # mode, stored length

_local = threading.local()


def _tuned_compressor() -> zstandard.ZstdCompressor:
    # Fast strategy with the smallest hash table zstd allows: the exponent plane of float weights
    # is a low-entropy byte stream with few long matches, so nearly all of the gain is the entropy
    # coding of literals, and every match search is mostly wasted. Measured on real MiniLM bf16
    # exponents in 1 MiB planes: hash_log 10 gave 0.347 of the size at ~480 MB/s, hash_log 6 gives
    # 0.342 at ~900 MB/s (fewer short, costly matches) and decodes ~20% faster.
    comp: zstandard.ZstdCompressor | None = getattr(_local, "tuned", None)
    if comp is None:
        params = zstandard.ZstdCompressionParameters(
            strategy=zstandard.STRATEGY_FAST,
            min_match=7,
            hash_log=6,
            window_log=17,
            compression_level=1,
        )
        comp = zstandard.ZstdCompressor(compression_params=params)
        _local.tuned = comp
    return comp


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_local, "plain", None)
    if cache is None:
        cache = _local.plain = {}
    comp = cache.get(level)
    if comp is None:
        comp = cache[level] = zstandard.ZstdCompressor(level=level)
    return comp


def _decompressor() -> zstandard.ZstdDecompressor:
    dec: zstandard.ZstdDecompressor | None = getattr(_local, "dec", None)
    if dec is None:
        dec = _local.dec = zstandard.ZstdDecompressor()
    return dec


# Which byte planes of a little-endian float are worth compressing: the top plane carries the
# sign and exponent (≈0.35 of its size with the tuned compressor); mantissa planes are noise,
# except the two lowest of fp32 which plain zstd-1 still shaves a few percent off.
_PLANE_POLICY: dict[int, tuple[str, ...]] = {
    2: ("raw", "tuned"),
    4: ("fast", "fast", "raw", "tuned"),
}


def _encode_planes(data: bytes, width: int, skip: int) -> list[bytes]:
    """The byte-grouped payload of ``data`` as a list of parts (joined once, by :func:`encode`)."""
    n = (len(data) - skip) // width
    grid = np.frombuffer(data, dtype=np.uint8, count=n * width, offset=skip).reshape(n, width)
    parts = [bytes((width, skip)), data[:skip]]
    for k, mode in enumerate(_PLANE_POLICY[width]):
        plane = grid[:, k].tobytes()
        stored, flag = plane, _PLANE_RAW
        if mode != "raw" and plane:
            comp = _tuned_compressor() if mode == "tuned" else _compressor(1)
            packed = comp.compress(plane)
            if len(packed) < len(plane):
                stored, flag = packed, _PLANE_ZSTD
        parts += (_PLANE_HEADER.pack(flag, len(stored)), stored)
    parts.append(data[skip + n * width :])
    return parts


def _decode_planes(payload: memoryview, length: int, width: int) -> bytearray:
    if len(payload) < 2 or payload[0] != width or payload[1] >= width:
        raise IntegrityError("byte-grouped payload has a bad plane header")
    skip = payload[1]
    if skip > length:
        raise IntegrityError("byte-grouped payload skips more than its length")
    n = (length - skip) // width
    planes: list[np.ndarray[Any, np.dtype[np.uint8]]] = []
    pos = 2 + skip
    for _ in range(width):
        if pos + _PLANE_HEADER.size > len(payload):
            raise IntegrityError("byte-grouped payload is truncated")
        flag, stored_len = _PLANE_HEADER.unpack_from(payload, pos)
        pos += _PLANE_HEADER.size
        stored = payload[pos : pos + stored_len]
        if len(stored) != stored_len:
            raise IntegrityError("byte-grouped payload is truncated")
        pos += stored_len
        if flag == _PLANE_ZSTD:
            plane: bytes | memoryview = _zstd_decompress(stored, n)
        elif flag == _PLANE_RAW:
            plane = stored
        else:
            raise IntegrityError(f"unknown plane mode {flag}")
        if len(plane) != n:
            raise IntegrityError("byte-grouped plane has the wrong length")
        planes.append(np.frombuffer(plane, dtype=np.uint8))
    if len(payload) - pos != length - skip - n * width:
        raise IntegrityError("byte-grouped payload has the wrong tail length")
    # The planes are interleaved straight into the buffer that is returned: no second copy of
    # the chunk, and no fresh pages beyond it (page faults cost ~0.7 ms per MiB on this VM).
    out = bytearray(length)
    out[:skip] = payload[2 : 2 + skip]
    out[skip + n * width :] = payload[pos:]
    if width == 2:
        # Two bytes an element: one 16-bit shift-and-or beats two strided byte writes 2-3x.
        words = np.frombuffer(out, dtype="<u2", count=n, offset=skip)
        np.left_shift(planes[1], 8, out=words, dtype=words.dtype)
        np.bitwise_or(words, planes[0], out=words)
    else:
        grid = np.frombuffer(out, dtype=np.uint8, count=n * width, offset=skip)
        grid = grid.reshape(n, width)
        for k, plane_array in enumerate(planes):
            grid[:, k] = plane_array
    return out


def _zstd_decompress(data: bytes | memoryview, length: int) -> bytes:
    try:
        # The frame header's own size claim is checked before zstd allocates anything for it.
        declared = zstandard.get_frame_parameters(data).content_size
        if declared != zstandard.CONTENTSIZE_UNKNOWN and declared != length:
            raise IntegrityError(f"zstd frame declares {declared} bytes, header says {length}")
        out = _decompressor().decompress(data, max_output_size=length)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"zstd frame does not decode: {exc}") from exc
    return out


BytesLike = bytes | bytearray | memoryview
"""What file content is read as: chunks decode to ``bytes`` or ``bytearray`` and are never
copied to make them ``bytes``; a piece cut by a range is a ``memoryview``."""


def cut(data: bytes | bytearray, start: int, stop: int) -> BytesLike:
    """``data[start:stop]`` (clamped to ``data``) without copying: ``data`` itself when the
    range covers it, else a view."""
    start, stop = max(start, 0), min(stop, len(data))
    if start == 0 and stop == len(data):
        return data
    return memoryview(data)[start:stop]


def codec_for(dtype: str | None) -> int:
    """The codec for data of this safetensors dtype (None: not a known float tensor)."""
    width = FLOAT_WIDTHS.get(dtype or "")
    if width == 2:
        return CODEC_ZSTD_BG2
    if width == 4:
        return CODEC_ZSTD_BG4
    return CODEC_ZSTD


def encode(data: bytes, codec: int, level: int = 3, skip: int = 0) -> bytes:
    """Encode plaintext with ``codec`` (falling back to ``raw`` when that is not smaller).

    For the byte-grouped codecs, ``skip`` is the number of leading bytes before the first whole
    element (stored as they are), so the planes line up with the float's bytes.
    """
    parts: list[bytes]
    if codec in (CODEC_ZSTD_BG2, CODEC_ZSTD_BG4) and len(data) >= 64:
        parts = _encode_planes(data, codec, skip % codec)
    elif codec != CODEC_RAW and data:
        parts = [_compressor(level).compress(data)]
        codec = CODEC_ZSTD
    else:
        parts, codec = [data], CODEC_RAW
    if sum(map(len, parts)) >= len(data):
        parts, codec = [data], CODEC_RAW
    # One copy of the encoded bytes, header included.
    return b"".join((HEADER.pack(MAGIC, codec, len(data)), *parts))


def peek_header(blob: bytes | bytearray) -> tuple[int, int]:
    """(codec id, plaintext length) from an encoded object's header.

    Raises:
        IntegrityError: the header is missing, has the wrong magic or an unknown codec.
    """
    if len(blob) < HEADER_SIZE:
        raise IntegrityError(f"object is truncated ({len(blob)} bytes, header needs 16)")
    magic, codec, length = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise IntegrityError("object does not start with the seedvault magic")
    if codec not in CODEC_NAMES:
        raise IntegrityError(f"unknown codec id {codec}")
    return codec, length


def decode(blob: bytes | bytearray, max_length: int) -> bytes | bytearray:
    """Decode an encoded object, refusing a claimed length above ``max_length`` up front.

    The caller re-hashes the result against the object's address. Byte-grouped objects decode
    to a ``bytearray`` (the buffer the planes were interleaved into), the others to ``bytes``.

    Raises:
        IntegrityError: bad header, oversized claim, undecodable or wrong-length payload.
    """
    codec, length = peek_header(blob)
    if length > max_length:
        raise IntegrityError(
            f"object claims {length} bytes of plaintext, above the limit of {max_length}"
        )
    out: bytes | bytearray
    if codec == CODEC_RAW:
        out = blob[HEADER_SIZE:]
    elif codec == CODEC_ZSTD:
        out = _zstd_decompress(memoryview(blob)[HEADER_SIZE:], length)
    else:
        out = _decode_planes(memoryview(blob)[HEADER_SIZE:], length, codec)
    if len(out) != length:
        raise IntegrityError(f"object decodes to {len(out)} bytes, header says {length}")
    return out
