"""Faults on the way from the Hub to the vault: rate limits, 5xx, dropped bodies, wrong bytes,
and the token that must never be written anywhere."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from seedvault.catalog import Catalog
from seedvault.errors import StoreError
from seedvault.fixity import verify
from seedvault.ingest import Ingestor
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.fakehub import FakeHub
from tests.helpers import random_bytes
from tests.test_mirror import TOKEN, WEIGHTS, Node, export_bytes, open_node, poll


def files_under(root: Path) -> dict[Path, bytes]:
    """Every file under ``root`` (vault objects, journal, catalog and its WAL) with its bytes."""
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from open_node(tmp_path)


async def test_429_with_retry_after_is_waited_then_succeeds(fake_hub: FakeHub, node: Node) -> None:
    """A 429 with Retry-After: 1 pauses the poll about a second; then the capture completes."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"{}"})
    fake_hub.rate_limit_next(1, retry_after_s=1)
    started = time.monotonic()

    with capture_logs() as logs:
        result = await poll(node, fake_hub, "org/m")

    assert result.ok
    assert time.monotonic() - started >= 0.9
    waits = [e for e in logs if e["event"] == "hub_rate_limited"]
    assert [e["wait_s"] for e in waits] == [1.0]


async def test_503_twice_then_success(fake_hub: FakeHub, node: Node) -> None:
    """Two 503s on the API and one on the CDN are retried; the capture succeeds, no event."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"{}", "model.safetensors": WEIGHTS})
    fake_hub.fail_next(2, 503, scope="api")
    fake_hub.fail_next(1, 503, scope="cdn")

    result = await poll(node, fake_hub, "org/m")

    assert result.ok
    assert node.events("capture_failed") == []
    assert [e.type for e in result.events] == ["revision_new"]


async def test_dropped_connection_resumes_with_range(fake_hub: FakeHub, node: Node) -> None:
    """A body cut mid-way is resumed with Range: bytes=N-; the stored bytes are identical."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"model.safetensors": WEIGHTS, "notes.txt": b"n" * 300_000})
    fake_hub.drop_after("model.safetensors", 1_000_000)
    fake_hub.drop_after("notes.txt", 100_000)

    result = await poll(node, fake_hub, "org/m")

    assert result.ok
    # a resumed GET asks the origin for bytes=N- (N: what arrived before the cut; the LFS file is
    # then redirected to the CDN with the same Range); no file was read again from byte 0
    resumed = {
        r.file_path: int(r.headers["Range"].removeprefix("bytes=").rstrip("-"))
        for r in fake_hub.requests
        if r.server == "hub" and "Range" in r.headers
    }
    assert set(resumed) == {"model.safetensors", "notes.txt"}
    assert 0 < resumed["model.safetensors"] <= 1_000_000
    assert 0 < resumed["notes.txt"] <= 100_000
    assert fake_hub.download_counts() == {
        ".gitattributes": 1,
        "model.safetensors": 2,
        "notes.txt": 2,
    }
    assert sum(1 for r in fake_hub.requests if r.server == "cdn" and "Range" in r.headers) == 1
    files = export_bytes(node, result.outcomes[0].snapshot or "", node.root / "out")
    assert files["model.safetensors"] == WEIGHTS
    assert files["notes.txt"] == b"n" * 300_000


async def test_chunked_answers_are_captured_and_resumed(fake_hub: FakeHub, node: Node) -> None:
    """Bodies without Content-Length (chunked, in odd-sized pieces, as a streaming proxy sends
    them) are captured byte-identical; one cut before its last chunk is resumed with Range."""
    fake_hub.chunked = True
    repo = fake_hub.create_repo("org/m")
    repo.commit({"model.safetensors": WEIGHTS, "notes.txt": b"n" * 300_000, "empty.txt": b""})
    fake_hub.drop_after("model.safetensors", 1_000_000)

    result = await poll(node, fake_hub, "org/m")

    assert result.ok, result.detail
    resumed = [r.file_path for r in fake_hub.requests if r.server == "hub" and "Range" in r.headers]
    assert resumed == ["model.safetensors"]
    files = export_bytes(node, result.outcomes[0].snapshot or "", node.root / "out")
    assert files["model.safetensors"] == WEIGHTS
    assert files["notes.txt"] == b"n" * 300_000
    assert files["empty.txt"] == b""


@pytest.mark.parametrize("path", ["model.safetensors", "config.json"])
async def test_a_longer_download_than_listed_is_rejected(
    fake_hub: FakeHub, node: Node, path: str
) -> None:
    """The true bytes with more after them (the hashes of a prefix cannot match the listing's
    size): verification_failed naming the size, nothing committed."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b'{"a": 1}', "model.safetensors": WEIGHTS})
    served = repo.files()[path]
    fake_hub.corrupt(path, append=b"trailing bytes")

    result = await poll(node, fake_hub, "org/m")

    assert [o.status for o in result.outcomes] == ["verification_failed"]
    (event,) = node.events("verification_failed")
    assert event["subject"]["path"] == path
    assert event["before"]["size"] == served.size
    assert str(served.size + len(b"trailing bytes")) in event["payload"]["detail"]
    assert node.snapshot_ids() == set()
    assert verify(node.vault).ok


@pytest.mark.parametrize("path", ["model.safetensors", "config.json"])
async def test_wrong_bytes_are_rejected(fake_hub: FakeHub, node: Node, path: str) -> None:
    """Bytes that do not match the Hub's hashes: verification_failed, nothing stored as valid."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b'{"a": 1}', "model.safetensors": WEIGHTS})
    served = repo.files()[path]
    fake_hub.corrupt(path)

    results = [await poll(node, fake_hub, "org/m") for _ in range(2)]

    assert [r.outcomes[0].status for r in results] == ["verification_failed"] * 2
    (event,) = node.events("verification_failed")
    assert event["severity"] == "urgent"
    assert event["subject"]["path"] == path
    assert event["subject"]["commit"] == repo.head()
    bad = bytes([served.data[0] ^ 0xFF]) + served.data[1:]
    if served.lfs_sha256:
        assert event["before"] == {"size": served.size, "sha256": served.lfs_sha256}
        assert event["after"] == {"sha256": hashlib.sha256(bad).hexdigest()}
    else:
        assert event["before"] == {"size": served.size, "git_sha1": served.oid}
        assert set(event["after"]) == {"git_sha1"}
    assert node.snapshot_ids() == set()
    assert node.catalog.snapshots() == []
    assert node.catalog.file_by_upstream(sha256=served.lfs_sha256, oid=served.oid) is None
    assert node.catalog.file_by_upstream(sha256=hashlib.sha256(bad).hexdigest()) is None
    records = list((node.root / "vault" / "files").rglob("*"))
    assert all(p.name != hashlib.sha256(bad).hexdigest() for p in records)
    assert verify(node.vault).ok

    fake_hub.clear_faults()
    fixed = await poll(node, fake_hub, "org/m")
    assert fixed.ok
    files = export_bytes(node, fixed.outcomes[0].snapshot or "", node.root / "out")
    assert files[path] == served.data


async def test_token_never_in_logs_journal_catalog_or_vault(
    fake_hub: FakeHub, node: Node, tmp_path: Path
) -> None:
    """Through retries, resumes, gating and events the token appears in no byte written."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"model.safetensors": WEIGHTS, "config.json": b"{}"})
    repo.gate("manual", approved=(TOKEN,))
    fake_hub.rate_limit_next(1)
    fake_hub.fail_next(1, 503, scope="resolve")
    fake_hub.drop_after("model.safetensors", 500_000)

    with capture_logs() as logs:
        first = await poll(node, fake_hub, "org/m", token=TOKEN)
        repo.commit({"config.json": b"1"})
        repo.delete()
        gone = await poll(node, fake_hub, "org/m", token=TOKEN)

    assert first.ok
    assert gone.blocked == "unavailable"
    assert TOKEN not in repr(logs)
    assert TOKEN not in repr([first, gone])
    written = files_under(tmp_path)
    assert any(p.suffix == ".sqlite" for p in written)
    assert [p for p, data in written.items() if TOKEN.encode() in data] == []
    authorized = [r for r in fake_hub.requests if "Authorization" in r.headers]
    assert authorized
    assert all(r.server == "hub" for r in authorized)


class _Vanishing(FsStore):
    """A store whose writes fail (StoreError) from the ``fail_from``-th on, until reset."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, fsync=False)
        self.fail_from: int | None = None
        self.writes = 0

    def _write(self) -> None:
        self.writes += 1
        if self.fail_from is not None and self.writes >= self.fail_from:
            raise StoreError("the store went away")

    def put(self, key: str, data: bytes) -> None:
        self._write()
        super().put(key, data)

    def put_if(self, key: str, data: bytes, version: str | None) -> str:
        self._write()
        return super().put_if(key, data, version)


async def test_a_store_that_goes_away_at_any_write_loses_no_revision(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """The store fails at every write of a poll in turn (the capture's chunks, records,
    snapshot, ref, journal and events): the vault stays valid, and once the store is back the
    next poll archives the revision and derives its ``revision_new`` exactly once."""
    repo = fake_hub.create_repo("org/m", gitattributes=False)
    first = repo.commit({"config.json": b'{"v": 1}', "a.bin": random_bytes(300_000, 1)})
    base = tmp_path / "base"
    opened = open_node(base)
    assert (await poll(next(opened), fake_hub, "org/m")).ok
    next(opened, None)  # closes it
    files = {"config.json": b'{"v": 2}', "b.bin": random_bytes(200_000, 2)}
    second = repo.commit(files, replace=True)

    writes = None
    fail_from = 1
    while writes is None or fail_from <= writes:
        work = tmp_path / f"fail-{fail_from}"
        shutil.copytree(base, work)
        store = _Vanishing(work / "vault")
        vault = Vault.open(store, create=False)
        catalog = Catalog(work / "catalog.sqlite")
        ingestor = Ingestor(vault)
        at = Node(work, vault, catalog, ingestor)
        try:
            store.fail_from = fail_from
            with contextlib.suppress(StoreError):
                await poll(at, fake_hub, "org/m")
            store.fail_from = None
            assert verify(vault).ok, fail_from
            again = await poll(at, fake_hub, "org/m")
            assert again.ok, (fail_from, again)
            news = [(e.get("before"), e["after"]) for e in at.events("revision_new")]
            assert news == [(None, first), (first, second)], fail_from
            snapshot = again.outcomes[0].snapshot or ""
            assert export_bytes(at, snapshot, work / "out") == files
        finally:
            ingestor.close()
            catalog.close()
        if writes is None:  # the first round learns how many writes a whole poll makes
            clean = tmp_path / "clean"
            shutil.copytree(base, clean)
            counting = _Vanishing(clean / "vault")
            counted = Ingestor(Vault.open(counting, create=False))
            catalog = Catalog(clean / "catalog.sqlite")
            try:
                whole = Node(clean, counted.vault, catalog, counted)
                assert (await poll(whole, fake_hub, "org/m")).ok
            finally:
                counted.close()
                catalog.close()
            writes = counting.writes
        fail_from += 1
