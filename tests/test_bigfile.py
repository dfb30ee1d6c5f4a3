"""A multi-GB file streams through the vault in bounded memory, on fs and on S3."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SIZE = 2 * 1024**3 + 12_345  # 2 GiB and a ragged tail
RSS_LIMIT_MB = 300


def _run(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-m", "tests.bigfile_child", str(SIZE), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        cwd=Path(__file__).parent.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def _check(report: dict[str, Any]) -> None:
    assert report["size"] == SIZE
    assert report["written"] == report["stored_as"] == report["read"]
    assert report["peak_rss_mb"] <= RSS_LIMIT_MB, report


@pytest.mark.slow
def test_multi_gb_file_fs(tmp_path: Path) -> None:
    """2 GiB of non-repeating bytes in and out of an fs vault, byte-identical, RSS ≤ 300 MB."""
    _check(_run(["fs", str(tmp_path / "vault")]))


@pytest.mark.slow
@pytest.mark.s3
def test_multi_gb_file_s3(seaweedfs: Any) -> None:
    """The same through a vault on the real SeaweedFS."""
    bucket = seaweedfs.new_bucket("big")
    env = {
        "SEEDVAULT_S3_ACCESS_KEY": seaweedfs.access_key,
        "SEEDVAULT_S3_SECRET_KEY": seaweedfs.secret_key,
    }
    _check(_run(["s3", seaweedfs.endpoint_url, bucket], env))
