"""The in-memory backend passes the store contract."""

import pytest

from seedvault.store.memory import MemoryStore
from tests.contracts import StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def store(self) -> MemoryStore:
        return MemoryStore()
