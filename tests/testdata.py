"""Where tests find the pinned test data, and the rule for when it is missing.

``SEEDVAULT_TESTDATA`` names the cache folder filled by ``dev/testdata.py`` (``make testdata``).
Missing data skips the tests that need it on a developer's machine, and FAILS them under
``CI=true``: a CI run never passes by skipping a tier.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    """Skip (developer machine) or fail (CI) because ``what`` is not available."""
    if IN_CI:
        pytest.fail(f"{what} is missing and CI=true: run `make testdata` in the test command")
    pytest.skip(f"{what} is missing (run `make testdata`)")


def testdata_dir() -> Path:
    """The test-data cache folder."""
    value = os.environ.get("SEEDVAULT_TESTDATA")
    path = Path(value) if value else Path(__file__).parent.parent / ".cache" / "testdata"
    return path


def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2 Hub repository (13 files, 90.9 MB safetensors)."""
    path = testdata_dir() / "all-MiniLM-L6-v2"
    if not (path / "model.safetensors").is_file():
        missing(f"test data {path}")
    return path
