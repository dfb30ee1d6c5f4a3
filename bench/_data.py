"""Benchmark inputs built from real weights, shared by the scripts in ``bench/``.

Everything starts from the real all-MiniLM-L6-v2 ``model.safetensors`` (fp32, 90.9 MB) of the
test data (``make testdata``). From it:

* :func:`convert` writes the same tensors as BF16 (upper 16 bits of each fp32), F16 or F32, as
  a valid safetensors file with rewritten ``data_offsets``;
* :func:`build_tiled` writes a large BF16 file (any size) that repeats the real tensors tile
  after tile but randomises the lowest :data:`NOISE_BITS` mantissa bits of every element in
  every tile, so no tile repeats (content-defined chunking cannot deduplicate it, see
  ``shared/reference/performance.md``, "Benchmark data that does not lie") while the
  exponent bytes, which carry the compressible part of bf16, stay those of real weights;
* :func:`change_tensor` and :func:`grow_header` derive the "second revision" of a file: one
  tensor changed in place, or the header grown by a ``__metadata__`` entry (shifting all data).

Files are written as they are generated, one tensor at a time, so memory stays small whatever
the size. All generation is seeded: the same arguments give the same bytes.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
NOISE_BITS = 2
"""Lowest mantissa bits of each bf16 element randomised per tile (bf16 has 7 mantissa bits)."""
ALIGN = 8
"""The header is padded with spaces so tensor data starts at a multiple of this (as the
safetensors library writes it)."""
_COPY_BLOCK = 8 * 1024 * 1024


def minilm_path() -> Path:
    """The real fp32 MiniLM weights of the test data (``SEEDVAULT_TESTDATA`` or ``.cache``)."""
    root = os.environ.get("SEEDVAULT_TESTDATA") or REPO / ".cache" / "testdata"
    path = Path(root) / "all-MiniLM-L6-v2" / "model.safetensors"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `make testdata` first")
    return path


@dataclass(frozen=True)
class Tensor:
    """One tensor of a safetensors file: its bytes are ``data`` (any buffer)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: np.ndarray


@dataclass(frozen=True)
class Layout:
    """Where a written file's tensors are: ``spans[name] = (start, end)`` in file offsets."""

    path: Path
    size: int
    header_len: int
    spans: dict[str, tuple[int, int]]


def read_safetensors(path: Path) -> tuple[dict[str, Any], int]:
    """The header JSON of a safetensors file and the offset where its data starts."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header: dict[str, Any] = json.loads(fh.read(n))
    return header, 8 + n


def load_tensors(path: Path) -> tuple[list[Tensor], dict[str, str]]:
    """All tensors of a safetensors file in data order, and its ``__metadata__``."""
    header, start = read_safetensors(path)
    raw = np.fromfile(path, dtype=np.uint8)
    metadata = header.pop("__metadata__", {})
    tensors = []
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        begin, end = info["data_offsets"]
        data = raw[start + begin : start + end]
        tensors.append(Tensor(name, info["dtype"], tuple(info["shape"]), data))
    return tensors, metadata


def encode_header(
    entries: list[tuple[str, str, tuple[int, ...], int]], metadata: dict[str, str]
) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """The ``8 + N`` header bytes for tensors ``(name, dtype, shape, nbytes)`` laid out in order.

    Returns the header and each tensor's ``data_offsets`` (relative to the data start).
    """
    doc: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offsets = {}
    pos = 0
    for name, dtype, shape, nbytes in entries:
        offsets[name] = (pos, pos + nbytes)
        doc[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + nbytes]}
        pos += nbytes
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % ALIGN)
    return struct.pack("<Q", len(text)) + text, offsets


def _write(
    path: Path,
    entries: list[tuple[str, str, tuple[int, ...], int]],
    metadata: dict[str, str],
    chunks: Iterator[np.ndarray],
) -> Layout:
    header, offsets = encode_header(entries, metadata)
    with open(path, "wb") as fh:
        fh.write(header)
        for piece in chunks:
            fh.write(piece.data)
        size = fh.tell()
    spans = {n: (len(header) + a, len(header) + b) for n, (a, b) in offsets.items()}
    expected = len(header) + sum(e[3] for e in entries)
    if size != expected:
        raise RuntimeError(f"{path}: wrote {size} bytes, the header describes {expected}")
    return Layout(path, size, len(header), spans)


def as_dtype(tensor: Tensor, dtype: str) -> Tensor:
    """``tensor`` (F32 or any) converted to ``dtype``; non-F32 tensors are kept as they are."""
    if tensor.dtype != "F32" or dtype == "F32":
        return tensor
    f32 = tensor.data.view(np.float32)
    if dtype == "BF16":
        data = (f32.view(np.uint32) >> 16).astype(np.uint16)
    elif dtype == "F16":
        with np.errstate(over="ignore"):
            data = f32.astype(np.float16).view(np.uint16)
    else:
        raise ValueError(f"unsupported dtype {dtype}")
    return Tensor(tensor.name, dtype, tensor.shape, data.view(np.uint8))


def convert(src: Path, dst: Path, dtype: str) -> Layout:
    """Write the tensors of ``src`` as ``dtype`` ("BF16", "F16" or "F32") to ``dst``."""
    tensors, metadata = load_tensors(src)
    tensors = [as_dtype(t, dtype) for t in tensors]
    entries = [(t.name, t.dtype, t.shape, t.data.nbytes) for t in tensors]
    return _write(dst, entries, metadata, (t.data for t in tensors))


def build_tiled(dst: Path, target_bytes: int, *, seed: int = 0, src: Path | None = None) -> Layout:
    """A valid BF16 safetensors file of about ``target_bytes``, made of non-repeating tiles.

    Tile ``i`` holds every tensor of the real model (named ``tile<i>.<name>``) converted to
    BF16, with the lowest :data:`NOISE_BITS` mantissa bits of each element drawn at random
    (seeded by ``seed`` and ``i``); integer tensors are copied unchanged.
    """
    tensors, metadata = load_tensors(src or minilm_path())
    tensors = [as_dtype(t, "BF16") for t in tensors]
    tile_bytes = sum(t.data.nbytes for t in tensors)
    tiles = max(1, round(target_bytes / tile_bytes))
    entries = [
        (f"tile{i:04d}.{t.name}", t.dtype, t.shape, t.data.nbytes)
        for i in range(tiles)
        for t in tensors
    ]
    return _write(dst, entries, metadata, _tiles(tensors, tiles, seed))


def _tiles(tensors: list[Tensor], tiles: int, seed: int) -> Iterator[np.ndarray]:
    keep = np.uint16(0xFFFF ^ ((1 << NOISE_BITS) - 1))
    noise_mask = np.uint16((1 << NOISE_BITS) - 1)
    largest = max(t.data.nbytes for t in tensors) // 2
    out = np.empty(largest, dtype=np.uint16)  # reused: the caller writes each piece at once
    bits = np.empty(largest, dtype=np.uint16)
    for i in range(tiles):
        rng = np.random.default_rng([seed, i])
        for t in tensors:
            if t.dtype != "BF16":
                yield t.data
                continue
            n = t.data.nbytes // 2
            noise = np.frombuffer(rng.bytes(n * 2), dtype=np.uint16)
            np.bitwise_and(noise, noise_mask, out=bits[:n])
            np.bitwise_and(t.data.view(np.uint16), keep, out=out[:n])
            np.bitwise_or(out[:n], bits[:n], out=out[:n])
            yield out[:n]


def copy_file(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` in blocks (no reflink, no sparse tricks)."""
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while block := fin.read(_COPY_BLOCK):
            fout.write(block)


def change_tensor(layout: Layout, dst: Path, name: str, *, seed: int = 1) -> int:
    """Copy ``layout.path`` to ``dst`` with tensor ``name`` changed in place; its byte count.

    Every element gets fresh random low mantissa bits (as a fine-tune nudging the tensor
    would), so every chunk that covers the tensor changes and nothing else does.
    """
    start, end = layout.spans[name]
    copy_file(layout.path, dst)
    rng = np.random.default_rng(seed)
    with open(dst, "r+b") as fh:
        fh.seek(start)
        data = np.frombuffer(fh.read(end - start), dtype=np.uint16).copy()
        data ^= np.frombuffer(rng.bytes(data.nbytes), dtype=np.uint16) & np.uint16(0x7F)
        fh.seek(start)
        fh.write(data.tobytes())
    return end - start


def grow_header(src: Path, dst: Path, grow: int = 112) -> int:
    """Copy ``src`` to ``dst`` with a ``__metadata__`` entry added so the header grows by
    exactly ``grow`` bytes (a multiple of 8); all tensor data moves by that much.

    Returns the new header length.
    """
    if grow % ALIGN:
        raise ValueError(f"grow must be a multiple of {ALIGN}")
    header, data_start = read_safetensors(src)
    metadata = dict(header.pop("__metadata__", {}))
    entries = [
        (
            name,
            info["dtype"],
            tuple(info["shape"]),
            info["data_offsets"][1] - info["data_offsets"][0],
        )
        for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    ]
    for fill in range(1, 4 * grow):
        metadata["seedvault.bench"] = "revision 2: " + "x" * fill
        new_header, _ = encode_header(entries, metadata)
        if len(new_header) == data_start + grow:
            break
    else:
        raise RuntimeError(f"cannot grow the header of {src} by exactly {grow} bytes")
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(new_header)
        fin.seek(data_start)
        while block := fin.read(_COPY_BLOCK):
            fout.write(block)
    return len(new_header)
