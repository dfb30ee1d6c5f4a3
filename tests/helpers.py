"""Small builders shared by tests: safetensors files, deterministic bytes, CLI runs."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

SEEDVAULT = [sys.executable, "-m", "seedvault.cli"]


def safetensors_bytes(
    tensors: dict[str, tuple[str, bytes]], metadata: dict[str, str] | None = None
) -> bytes:
    """A valid safetensors file from {name: (dtype, raw bytes)} (laid out in name order)."""
    header: dict[str, object] = {}
    offset = 0
    for name, (dtype, raw) in sorted(tensors.items()):
        width = {"BF16": 2, "F16": 2, "F32": 4, "I64": 8, "U8": 1}[dtype]
        header[name] = {
            "dtype": dtype,
            "shape": [len(raw) // width],
            "data_offsets": [offset, offset + len(raw)],
        }
        offset += len(raw)
    if metadata:
        header["__metadata__"] = metadata
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    body = b"".join(raw for _, (_, raw) in sorted(tensors.items()))
    return struct.pack("<Q", len(blob)) + blob + body


def float_weights(n: int, seed: int, dtype: str = "BF16") -> bytes:
    """``n`` realistic-looking weights (normal, small) as raw little-endian bytes."""
    rng = np.random.default_rng(seed)
    values = (rng.standard_normal(n) * 0.05).astype(np.float32)
    if dtype == "F32":
        return values.tobytes()
    if dtype == "F16":
        return values.astype(np.float16).tobytes()
    return (values.view(np.uint32) >> 16).astype(np.uint16).tobytes()


def random_bytes(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def run_cli(
    args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``seedvault ARGS`` in a subprocess (the real entry point) and capture its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [*SEEDVAULT, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
