"""Shared fixtures: vaults on every backend, and the real servers the tests start.

``tests.seaweed`` starts one real SeaweedFS (``weed mini``) per session when an S3 test asks
for it; ``tests.fakehub`` is the fake Hugging Face Hub.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seedvault.store.base import Store
from seedvault.store.fs import FsStore
from seedvault.store.memory import MemoryStore
from seedvault.vault import Vault
from tests.test_alerts_support import SmtpSink, alert_nodes, running_sink

pytest_plugins = ["tests.seaweed", "tests.fakehub"]


@pytest.fixture(params=["memory", "fs", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh empty store on each backend (S3: a new bucket on the real SeaweedFS)."""
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "fs":
        yield FsStore(tmp_path / "vault")
    else:
        yield request.getfixturevalue("s3_store")


@pytest.fixture
def any_vault(any_store: Store) -> Vault:
    """A fresh vault on each backend."""
    return Vault.open(any_store)


@pytest.fixture
def fs_vault(tmp_path: Path) -> Vault:
    """A fresh vault in a temporary directory."""
    return Vault.open(FsStore(tmp_path / "vault"))


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) on loopback that keeps what it accepted."""
    with running_sink() as sink:
        yield sink


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Any]:
    """A factory of nodes with alert destinations under ``tmp_path`` (closed afterwards)."""
    with alert_nodes(tmp_path) as make:
        yield make
