"""The filesystem backend passes the store contract, and keeps half-written files invisible."""

from pathlib import Path

import pytest

from seedvault.store.fs import FsStore
from tests.contracts import StoreContract


class TestFsStore(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> FsStore:
        return FsStore(tmp_path / "vault")


def test_temp_files_are_not_listed(tmp_path: Path) -> None:
    """A temp file left by a crashed writer never shows up as an object."""
    store = FsStore(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "deadbeef").write_bytes(b"partial")
    store.put("chunks/aa/aa", b"x")
    assert [i.key for i in store.list("")] == ["chunks/aa/aa"]
