"""gc: removes only unreferenced objects older than the grace period, and never what a
running capture needs."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from seedvault.capture import capture
from seedvault.catalog import Catalog
from seedvault.ingest import Ingestor
from seedvault.sources.base import Artifact, Expected, Observation
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.helpers import SEEDVAULT, random_bytes, run_cli


class SlowSource:
    """A Source whose files hold their last block back until ``release`` is set, so the test
    decides when the capture may finish."""

    kind = "dir"
    revision = "_"
    key = "dir/test/slow"

    def __init__(self, files: dict[str, bytes], release: asyncio.Event) -> None:
        self.files = files
        self.release = release

    async def observe(self) -> Observation:
        return Observation(
            artifacts=[
                Artifact(path, self._opener(data), Expected(size=len(data)))
                for path, data in sorted(self.files.items())
            ]
        )

    def _opener(self, data: bytes) -> Callable[[], AsyncIterator[bytes]]:
        async def read() -> AsyncIterator[bytes]:
            for i in range(0, len(data), 1 << 20):
                if i + (1 << 20) >= len(data):
                    await self.release.wait()
                yield data[i : i + (1 << 20)]

        return read


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


async def test_gc_during_capture_deletes_nothing_it_needs(tmp_path: Path) -> None:
    """gc --delete --grace 0s started mid-capture waits for it; the capture's snapshot verifies.

    One file of the capture is already in the vault as old garbage (an aborted earlier capture
    left its chunks unreferenced two days ago): the capture reuses those chunks instead of
    uploading them, which is exactly what a collector must not delete underneath it.
    """
    vault_dir = tmp_path / "vault"
    vault = Vault.open(FsStore(vault_dir))
    files = {f"f{i}.bin": random_bytes(3_000_000, i) for i in range(4)}
    ingestor = Ingestor(vault)
    ingestor.put_bytes(files["f3.bin"])  # orphaned: no snapshot lists it
    ingestor.close()
    for p in (vault_dir / "chunks").rglob("*"):
        if p.is_file():
            _age(p, 2 * 86400)
    catalog = Catalog(tmp_path / "catalog.sqlite")
    ingestor = Ingestor(vault)
    release = asyncio.Event()
    job = asyncio.ensure_future(
        capture(SlowSource(files, release), vault=vault, catalog=catalog, ingestor=ingestor)
    )
    while not list((vault_dir / "locks" / "capture").glob("*")):  # noqa: ASYNC110 - a file
        await asyncio.sleep(0.02)
    gc = await asyncio.create_subprocess_exec(
        *SEEDVAULT,
        "gc",
        "--delete",
        "--grace",
        "0s",
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert gc.stderr is not None
    first_line = await asyncio.wait_for(gc.stderr.readline(), timeout=60)
    assert b"waiting for 1 running capture" in first_line
    assert not job.done()
    release.set()  # only now may the capture finish
    result = await job
    stdout, _ = await asyncio.wait_for(gc.communicate(), timeout=60)
    assert gc.returncode == 0
    assert b"deleted 0 objects" in stdout
    ingestor.close()
    assert job.done()
    check = await asyncio.to_thread(run_cli, ["verify"], tmp_path)
    assert check.returncode == 0, check.stdout
    out = tmp_path / "out"
    exported = await asyncio.to_thread(
        run_cli, ["export", result.snapshot, "--to", str(out)], tmp_path
    )
    assert exported.returncode == 0, exported.stderr
    for path, data in files.items():
        assert (out / path).read_bytes() == data
    catalog.close()


def test_gc_grace_and_dry_run(tmp_path: Path) -> None:
    """Unreferenced old objects go (with --delete only); young ones and live ones stay."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "a.bin").write_bytes(random_bytes(2_000_000, 1))
    assert run_cli(["snapshot", f"dir:{model}"], cwd=tmp_path).returncode == 0
    vault = Vault.open(FsStore(tmp_path / "vault"))
    ingestor = Ingestor(vault)
    old = ingestor.put_bytes(random_bytes(1_500_000, 2))
    young = ingestor.put_bytes(random_bytes(1_500_000, 3))
    ingestor.close()
    old_keys = [f"files/{old.blake3[:2]}/{old.blake3}"] + [
        f"chunks/{h[:2]}/{h}" for h, _ in old.chunks
    ]
    for key in old_keys:
        _age(tmp_path / "vault" / key, 3 * 86400)
    dry = run_cli(["gc"], cwd=tmp_path)
    assert dry.returncode == 0
    assert f"would delete (dry run; add --delete) {len(old_keys)} objects" in dry.stdout
    assert all((tmp_path / "vault" / k).exists() for k in old_keys)
    real = run_cli(["gc", "--delete"], cwd=tmp_path)
    assert real.returncode == 0
    assert not any((tmp_path / "vault" / k).exists() for k in old_keys)
    assert vault.has_file(young.blake3)
    assert run_cli(["verify"], cwd=tmp_path).returncode == 0
    assert not (tmp_path / "vault" / "locks" / "gc").exists()


def test_second_collector_refused(tmp_path: Path) -> None:
    """While one gc holds locks/gc, another gc stops with a clear message (exit 1)."""
    vault = Vault.open(FsStore(tmp_path / "vault"))
    with vault.gc_lock():
        second = run_cli(["gc"], cwd=tmp_path)
    assert second.returncode == 1
    assert "another gc" in second.stderr
    assert run_cli(["gc"], cwd=tmp_path).returncode == 0
