"""The one contract suite every ``Store`` backend passes.

A backend's test module subclasses :class:`StoreContract` and supplies only a ``store``
fixture (see ``test_store_memory.py``, ``test_store_fs.py``, ``test_store_s3.py``).
"""

from __future__ import annotations

import os
import threading

import pytest

from seedvault.errors import ObjectNotFound, PreconditionFailed, StoreError
from seedvault.store.base import Store


class StoreContract:
    """Behaviour the ``Store`` protocol promises, backend-independent."""

    def test_put_get_round_trip(self, store: Store) -> None:
        """What was put is what is got, byte for byte."""
        store.put("chunks/ab/abcdef", b"hello")
        assert store.get("chunks/ab/abcdef") == b"hello"

    def test_empty_and_large_objects(self, store: Store) -> None:
        """An empty object and an 9 MiB object both round-trip."""
        big = os.urandom(9 * 1024 * 1024 + 3)
        store.put("a/empty", b"")
        store.put("a/big", big)
        assert store.get("a/empty") == b""
        assert store.get("a/big") == big
        assert store.stat("a/big").size == len(big)

    def test_missing_key(self, store: Store) -> None:
        """Reading or stat-ing a missing key raises ObjectNotFound; exists says False."""
        with pytest.raises(ObjectNotFound):
            store.get("nope/x")
        with pytest.raises(ObjectNotFound):
            store.stat("nope/x")
        with pytest.raises(ObjectNotFound):
            store.get_versioned("nope/x")
        assert not store.exists("nope/x")

    def test_overwrite_and_delete(self, store: Store) -> None:
        """put replaces; delete removes; deleting a missing key is fine."""
        store.put("k/1", b"one")
        store.put("k/1", b"two")
        assert store.get("k/1") == b"two"
        assert store.exists("k/1")
        store.delete("k/1")
        assert not store.exists("k/1")
        store.delete("k/1")

    def test_list_by_prefix_sorted(self, store: Store) -> None:
        """list yields exactly the keys under a prefix, sorted, with sizes."""
        for key in ["refs/b/x", "refs/a/y", "refs/a/x", "chunks/00/0", "refsz"]:
            store.put(key, key.encode())
        listed = list(store.list("refs/"))
        assert [i.key for i in listed] == ["refs/a/x", "refs/a/y", "refs/b/x"]
        assert [i.size for i in listed] == [8, 8, 8]
        assert [i.key for i in store.list("refs/a")] == ["refs/a/x", "refs/a/y"]
        assert [i.key for i in store.list("")] == sorted(
            ["refs/b/x", "refs/a/y", "refs/a/x", "chunks/00/0", "refsz"]
        )
        assert all(i.mtime > 1_600_000_000 for i in listed)

    def test_malformed_keys_refused(self, store: Store) -> None:
        """Keys that could escape the store or confuse it are refused."""
        for key in ["../x", "/abs", "a//b", "a/./b", "a/../b", "a\\b", "a/.hidden", "", "a b"]:
            with pytest.raises(StoreError):
                store.put(key, b"x")

    def test_put_if_absent(self, store: Store) -> None:
        """put_if(None) creates once; a second create fails."""
        version = store.put_if("refs/r/main", b"v1", None)
        data, current = store.get_versioned("refs/r/main")
        assert (data, current) == (b"v1", version)
        with pytest.raises(PreconditionFailed):
            store.put_if("refs/r/main", b"v2", None)
        assert store.get("refs/r/main") == b"v1"

    def test_put_if_version(self, store: Store) -> None:
        """put_if with the current version succeeds; a stale version fails."""
        v1 = store.put_if("refs/r/main", b"v1", None)
        v2 = store.put_if("refs/r/main", b"v2", v1)
        assert store.get("refs/r/main") == b"v2"
        with pytest.raises(PreconditionFailed):
            store.put_if("refs/r/main", b"v3", v1)
        assert store.get_versioned("refs/r/main") == (b"v2", v2)

    def test_put_if_concurrent_exactly_one_wins(self, store: Store) -> None:
        """Of eight threads swapping from the same version, exactly one succeeds."""
        v0 = store.put_if("refs/race/main", b"start", None)
        wins: list[int] = []
        losses: list[int] = []
        barrier = threading.Barrier(8)

        def attempt(i: int) -> None:
            barrier.wait()
            try:
                store.put_if("refs/race/main", f"writer {i}".encode(), v0)
                wins.append(i)
            except PreconditionFailed:
                losses.append(i)

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        assert len(losses) == 7
        assert store.get("refs/race/main") == f"writer {wins[0]}".encode()
