"""Content addressing: canonical JSON, chunking, codecs — pure functions, pinned."""

from __future__ import annotations

import struct
import time

import blake3
import pytest
from pyfastcdc import FastCDC

from seedvault import cas
from seedvault.errors import IntegrityError
from seedvault.manifest import canonical_json
from tests.helpers import float_weights, random_bytes, safetensors_bytes


def test_address_is_blake3_of_plaintext() -> None:
    """Addresses are unkeyed BLAKE3-256 hex of the plaintext (the b3sum of the bytes)."""
    assert cas.address(b"") == "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
    assert cas.address(b"abc") == blake3.blake3(b"abc").hexdigest()


def test_canonical_json_rfc8785() -> None:
    """Sorted keys (by UTF-16 units), no spaces, UTF-8 literal text, escapes as JCS."""
    doc = {"b": [1, True, False], "a": 'é\n"\\\u0001', "\U0001f600": 1, "\uffff": 2}
    assert (
        canonical_json(doc)
        == ('{"a":"é\\n\\"\\\\\\u0001","b":[1,true,false],"\U0001f600":1,"\uffff":2}').encode()
    )
    with pytest.raises(TypeError):
        canonical_json({"x": 1.5})
    with pytest.raises(TypeError):
        canonical_json({"x": None})


def _cut(
    data: bytes, params: cas.ChunkingParams, segments: list[cas.Segment] | None, step: int
) -> list[cas.Piece]:
    chunker = cas.Chunker(params, segments)
    pieces: list[cas.Piece] = []
    for i in range(0, len(data), step):
        pieces += chunker.feed(data[i : i + step])
    pieces += chunker.finish()
    return pieces


@pytest.mark.parametrize("normalization", [0, 1, 3])
@pytest.mark.parametrize("kind", ["random", "zeros"])
def test_streaming_chunks_do_not_depend_on_write_sizes(normalization: int, kind: str) -> None:
    """The same bytes give the same chunks whatever pieces the producer writes them in: those
    FastCDC cuts from the whole buffer at once (all zeros: every cut forced at ``max``)."""
    params = cas.ChunkingParams(min=4096, avg=16384, max=65536, normalization=normalization)
    data = random_bytes(3_000_000, 1) if kind == "random" else bytes(1_000_000)
    cdc = FastCDC(
        params.avg, min_size=params.min, max_size=params.max, normalized_chunking=normalization
    )
    reference = [(c.offset, data[c.offset : c.offset + c.length]) for c in cdc.cut_buf(data)]
    assert b"".join(d for _, d in reference) == data
    assert all(len(d) <= params.max for _, d in reference)
    for step in (1000, 65536, 333_333, len(data)):
        assert [(p.offset, p.data) for p in _cut(data, params, None, step)] == reference


def test_chunker_holds_little_more_than_one_chunk() -> None:
    """Memory per file being cut is bounded by ``max + avg`` and the last write, not 2 × max:
    each buffered byte is a byte of RSS for every file a capture downloads at once."""
    params = cas.ChunkingParams(min=4096, avg=16384, max=65536)
    data = random_bytes(2_000_000, 3)
    for step in (1000, 10_000):
        chunker = cas.Chunker(params)
        most = 0
        for i in range(0, len(data), step):
            for _ in chunker.feed(data[i : i + step]):
                pass
            most = max(most, chunker.buffered)
        assert params.max < most <= params.max + params.avg + step


def test_tensor_boundaries_are_cuts() -> None:
    """Every group of tensors starts a new chunk, and each chunk carries its tensors' dtype."""
    tensors = {f"t{i}": ("BF16", float_weights(150_000, i)) for i in range(4)}
    tensors["z_small"] = ("F32", float_weights(10, 9, "F32"))
    data = safetensors_bytes(tensors)
    hlen = cas.safetensors_header_length(data[:8])
    assert hlen is not None
    segments = cas.safetensors_segments(data[:hlen], 256 * 1024)
    assert segments is not None
    starts = {p.offset for p in _cut(data, cas.ChunkingParams(), segments, 100_000)}
    for seg in segments:
        if seg.end is None or seg.end > seg.start:
            assert seg.start in starts or seg.start == len(data)
    assert {s.dtype for s in segments} >= {"BF16", None}


def _spans(segments: list[cas.Segment] | None) -> list[tuple[int, int | None, str | None]]:
    assert segments is not None
    return [(s.start, s.end, s.dtype) for s in segments]


def test_new_vaults_group_small_tensors_by_dtype() -> None:
    """New vaults group tensors into segments of at least ``tensor_group`` bytes of one dtype:
    a dtype change always cuts, so every group gets its float codec; a big tensor stands
    alone; groups never reach past a big tensor."""
    tensors = {
        "a": ("BF16", float_weights(200_000, 1)),  # 400 kB each: grouped
        "b": ("BF16", float_weights(200_000, 2)),
        "c": ("F32", float_weights(1_000, 3, "F32")),  # a dtype change: its own group
        "d": ("BF16", float_weights(1_200_000, 4)),  # 2.4 MB: alone
        "e": ("BF16", float_weights(50_000, 5)),
    }
    data = safetensors_bytes(tensors)
    hlen = cas.safetensors_header_length(data[:8])
    assert hlen is not None
    params = cas.ChunkingParams()
    assert params.tensor_group == 2 * 1024 * 1024
    kb = 1000
    assert _spans(params.segments(data[:hlen])) == [
        (0, hlen, None),
        (hlen, hlen + 800 * kb, "BF16"),
        (hlen + 800 * kb, hlen + 804 * kb, "F32"),
        (hlen + 804 * kb, hlen + 3204 * kb, "BF16"),
        (hlen + 3204 * kb, hlen + 3304 * kb, "BF16"),
        (hlen + 3304 * kb, None, None),
    ]
    # Every segment but the last is cut where a chunk starts.
    starts = {p.offset for p in _cut(data, params, params.segments(data[:hlen]), 100_000)}
    assert {hlen, hlen + 800 * kb, hlen + 804 * kb, hlen + 3204 * kb} <= starts


def test_vaults_without_tensor_group_keep_their_grouping() -> None:
    """A vault whose recorded parameters predate ``tensor_group`` cuts as it always did
    (groups of at least ``min`` bytes, dtypes mixed), so its files keep deduplicating."""
    recorded = {
        "algorithm": "fastcdc-2020",
        "min": 262144,
        "avg": 1048576,
        "max": 4194304,
        "normalization": 1,
        "tensor_cuts": True,
    }
    params = cas.ChunkingParams.from_json(recorded)
    assert params.tensor_group is None
    assert params.to_json() == recorded
    tensors = {
        "a": ("BF16", float_weights(100_000, 1)),
        "b": ("F32", float_weights(1_000, 2, "F32")),
        "c": ("BF16", float_weights(100_000, 3)),
    }
    data = safetensors_bytes(tensors)
    hlen = cas.safetensors_header_length(data[:8])
    assert hlen is not None
    assert _spans(params.segments(data[:hlen])) == [
        (0, hlen, None),
        (hlen, hlen + 404_000, None),  # 200 kB + 4 kB < min, so c joins: mixed dtypes
        (hlen + 404_000, None, None),
    ]
    fresh = cas.ChunkingParams.from_json(cas.ChunkingParams().to_json())
    assert fresh == cas.ChunkingParams()
    with pytest.raises(ValueError, match="tensor_group"):
        cas.ChunkingParams.from_json({**recorded, "tensor_group": 0})


def test_not_safetensors_gives_no_segments() -> None:
    """A file that merely ends in .safetensors but has garbage in it is chunked as bytes."""
    assert cas.safetensors_segments(struct.pack("<Q", 20) + b"not json at all!!!!!", 1) is None
    assert cas.safetensors_header_length(b"\xff" * 8) is None


@pytest.mark.parametrize(
    ("data", "codec"),
    [
        (b"", cas.CODEC_ZSTD),
        (b"x", cas.CODEC_ZSTD),
        (b"hello " * 1000, cas.CODEC_ZSTD),
        (float_weights(100_001, 2), cas.CODEC_ZSTD_BG2),
        (float_weights(100_001, 3, "F16"), cas.CODEC_ZSTD_BG2),
        (float_weights(50_001, 4, "F32") + b"abc", cas.CODEC_ZSTD_BG4),
        (random_bytes(100_000, 5), cas.CODEC_ZSTD),
    ],
)
@pytest.mark.parametrize("skip", [0, 1, 3])
def test_codecs_round_trip(data: bytes, codec: int, skip: int) -> None:
    """Every codec decodes to exactly its input, whatever the element alignment."""
    blob = cas.encode(data, codec, 3, skip)
    assert cas.decode(blob, 1 << 24) == data
    assert len(blob) <= len(data) + cas.HEADER_SIZE


@pytest.mark.parametrize(("width", "dtype"), [(2, "BF16"), (2, "F16"), (4, "F32")])
@pytest.mark.parametrize("skip", [0, 1, 2, 3])
@pytest.mark.parametrize("tail", [0, 1, 3])
def test_byte_grouped_chunks_cut_anywhere_decode_exactly(
    width: int, dtype: str, skip: int, tail: int
) -> None:
    """A CDC cut lands anywhere in a tensor: ``skip`` leading and ``tail`` trailing bytes
    around whole elements. Such chunks stay byte-grouped (they still compress) and decode to
    exactly their bytes, into a buffer of their own."""
    skip %= width
    data = bytes(range(7, 7 + skip)) + float_weights(60_001, 9, dtype) + bytes(range(tail))
    blob = cas.encode(data, cas.codec_for(dtype), 3, skip)
    assert cas.peek_header(blob)[0] == width  # byte-grouped, not the raw fallback
    out = cas.decode(blob, 1 << 24)
    assert type(out) is bytearray
    assert out == data


@pytest.mark.parametrize(
    "payload",
    [
        bytes((2, 0)),  # no planes at all
        bytes((2, 3)),  # skip not below the width
        bytes((2, 1)) + b"\x00",  # the skipped byte, then nothing
        bytes((4, 0)) + struct.pack("<BI", 0, 1) + b"x",  # planes of the wrong length
        bytes((2, 0)) + struct.pack("<BI", 0, 2) + b"ab" + struct.pack("<BI", 0, 2) + b"cd" + b"!",
    ],
)
def test_forged_byte_grouped_payloads_are_refused(payload: bytes) -> None:
    """Missing planes, a bad skip, planes of the wrong length or a tail that does not fit the
    header's length: IntegrityError, never bytes of another length."""
    blob = cas.HEADER.pack(cas.MAGIC, payload[0], 4) + payload
    with pytest.raises(IntegrityError):
        cas.decode(blob, 1 << 24)


def test_codec_choice_by_data() -> None:
    """Floats are byte-grouped and shrink; random bytes are stored raw (never bigger)."""
    bf16 = float_weights(500_000, 7)
    blob = cas.encode(bf16, cas.codec_for("BF16"))
    assert cas.peek_header(blob)[0] == cas.CODEC_ZSTD_BG2
    assert len(blob) < 0.75 * len(bf16)
    plain_zstd = cas.encode(bf16, cas.CODEC_ZSTD)
    assert len(blob) < len(plain_zstd)
    noise = random_bytes(200_000, 8)
    assert cas.peek_header(cas.encode(noise, cas.CODEC_ZSTD))[0] == cas.CODEC_RAW


def test_oversized_claim_rejected_before_allocation() -> None:
    """A header claiming 1 TiB is refused at once, without allocating or decompressing."""
    forged = cas.HEADER.pack(cas.MAGIC, cas.CODEC_ZSTD, 1 << 40) + b"\x28\xb5\x2f\xfd"
    started = time.monotonic()
    with pytest.raises(IntegrityError, match="above the limit"):
        cas.decode(forged, 16 * 1024 * 1024)
    assert time.monotonic() - started < 1.0


def test_zstd_frame_lying_about_its_size_rejected() -> None:
    """A zstd frame whose own size field disagrees with the object header is refused."""
    import zstandard

    payload = zstandard.ZstdCompressor().compress(b"a" * 100_000)
    forged = cas.HEADER.pack(cas.MAGIC, cas.CODEC_ZSTD, 10) + payload
    with pytest.raises(IntegrityError):
        cas.decode(forged, 1 << 24)


@pytest.mark.parametrize(
    "blob",
    [b"", b"SVO1", b"XXXX" + bytes(12), cas.HEADER.pack(cas.MAGIC, 9, 1) + b"x"],
)
def test_bad_headers_rejected(blob: bytes) -> None:
    """Truncated objects, wrong magic and unknown codecs are IntegrityErrors."""
    with pytest.raises(IntegrityError):
        cas.decode(blob, 1 << 24)


def test_truncated_payload_rejected() -> None:
    """An encoded object cut short never decodes to a shorter plaintext."""
    data = float_weights(100_000, 11)
    blob = cas.encode(data, cas.CODEC_ZSTD_BG2)
    for cut in (len(blob) - 1, len(blob) // 2, cas.HEADER_SIZE + 3):
        with pytest.raises(IntegrityError):
            cas.decode(blob[:cut], 1 << 24)
