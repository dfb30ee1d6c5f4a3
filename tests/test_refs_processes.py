"""Two processes updating one ref at once, on fs and on SeaweedFS: one wins, one rebases.

Each child wraps its real store in a test double (implementing the Store protocol) that meets
the other child at a barrier just before its first compare-and-swap of every round, so both
hold the same ref version when they race: the contention is certain, not left to timing.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest

from seedvault import cas
from seedvault.manifest import FileEntry, Manifest
from seedvault.store.base import Store
from seedvault.store.fs import FsStore
from seedvault.vault import Vault

ROUNDS = 6


class RacingStore:
    """Delegates to a real store; waits at a barrier before the first ref CAS of a round."""

    def __init__(self, inner: Store, barrier: Any) -> None:
        self.inner = inner
        self.barrier = barrier
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put_if(self, key: str, data: bytes, version: str | None) -> str:
        if self.armed and key.startswith("refs/"):
            self.armed = False
            self.barrier.wait(timeout=30)
        return self.inner.put_if(key, data, version)


def _child(which: int, store_args: dict[str, Any], barrier: Any, out: Any) -> None:
    if store_args["kind"] == "fs":
        inner: Store = FsStore(store_args["path"])
    else:
        from seedvault.store.s3 import S3Store

        inner = S3Store(**store_args["s3"])
    store = RacingStore(inner, barrier)
    vault = Vault.open(store)  # type: ignore[arg-type]
    for r in range(ROUNDS):
        store.armed = True
        n = 1000 * which + r
        manifest = Manifest.build(
            files=[FileEntry(f"p{which}", n, cas.address(str(n).encode()), "0" * 64)],
            kind="dir",
            source={"key": "dir/race/x", "revision": "_"},
            captured_at="2026-11-27T10:00:00Z",
        )
        result = vault.commit(manifest)
        out.put((which, r, result.attempts))


def _race(store_args: dict[str, Any], reopen: Store) -> None:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    out = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(i, store_args, barrier, out)) for i in (1, 2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    results = [out.get(timeout=5) for _ in range(2 * ROUNDS)]
    for r in range(ROUNDS):
        attempts = sorted(a for _, rr, a in results if rr == r)
        assert attempts[0] == 1, f"round {r}: nobody won at the first try"
        assert attempts[1] >= 2, f"round {r}: both won without a rebase"
    vault = Vault.open(reopen)
    ref = vault.read_ref("dir/race/x", "_")
    assert ref is not None
    sizes = []
    h: str | None = ref[0].snapshot
    while h:
        m = vault.snapshot(h)
        sizes.append(m.files[0].size)
        h = m.parent
    assert sorted(sizes) == sorted(1000 * i + r for i in (1, 2) for r in range(ROUNDS))


def test_two_processes_fs(tmp_path: Path) -> None:
    """On fs (flock + rename), every round has one winner and one rebase; nothing is lost."""
    Vault.open(FsStore(tmp_path / "v"))
    _race({"kind": "fs", "path": str(tmp_path / "v")}, FsStore(tmp_path / "v"))


@pytest.mark.s3
def test_two_processes_s3(seaweedfs: Any) -> None:
    """On SeaweedFS (If-Match / If-None-Match), the same holds."""
    bucket = seaweedfs.new_bucket("race")
    args = {
        "endpoint_url": seaweedfs.endpoint_url,
        "bucket": bucket,
        "access_key": seaweedfs.access_key,
        "secret_key": seaweedfs.secret_key,
        "region": seaweedfs.region,
    }
    first, reopened = seaweedfs.store(bucket), seaweedfs.store(bucket)
    try:
        Vault.open(first)
        _race({"kind": "s3", "s3": args}, reopened)
    finally:
        first.close()
        reopened.close()
