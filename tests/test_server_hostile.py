"""Hostile requests get a 4xx and read nothing outside the vault; damage never yields bad bytes.

Requests go out as raw bytes on a socket, so ``..``, encoded or not, reaches the server exactly
as written (HTTP clients normalise such paths away). The vault sits on a store that records
every key it is asked for, so a test can say what was read — nothing outside the vault's
layout — without patching anything.
"""

from __future__ import annotations

import asyncio
import dataclasses
import types
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import HfHubHTTPError

from seedvault import vault as vault_module
from seedvault.app import Node
from seedvault.errors import IntegrityError
from seedvault.server.content import RangeError, parse_range, read_pieces
from seedvault.store.base import ObjectInfo
from seedvault.store.fs import FsStore
from seedvault.store.memory import MemoryStore
from seedvault.vault import FileRecord, Vault, sharded
from tests.archive import ArchivedRepo, archive_repo, open_node, running
from tests.helpers import random_bytes

SECRET = b"this file lies outside the vault"
VAULT_PREFIXES = ("seedvault.json", "chunks/", "files/", "snapshots/", "refs/", "journal/")


class RecordingStore(FsStore):
    """An fs store that remembers every key read (the real store, not a mock)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root, fsync=False)
        self.read: list[str] = []

    def get(self, key: str) -> bytes:
        self.read.append(key)
        return super().get(key)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        self.read.append(key)
        return super().get_versioned(key)

    def exists(self, key: str) -> bool:
        self.read.append(key)
        return super().exists(key)

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        self.read.append(prefix)
        return super().list(prefix)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Node, RecordingStore, ArchivedRepo]]:
    (tmp_path / "secret.txt").write_bytes(SECRET)
    store = RecordingStore(tmp_path / "vault")
    node = open_node(Vault.open(store), tmp_path / "catalog.sqlite")
    repo = archive_repo(
        node,
        "org/model",
        {
            "config.json": b'{"a": 1}',
            "big.bin": random_bytes(6 * 1024 * 1024, 21),
            "first.bin": random_bytes(3 * 1024 * 1024, 22),
        },
        lfs=frozenset({"big.bin", "first.bin"}),
    )
    yield node, store, repo
    node.close()


async def raw_request(url: str, target: str, headers: str = "") -> tuple[int, bytes]:
    """Send ``GET target`` byte for byte; the status and the whole answer."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(answer.split(b" ", 2)[1]), answer


HOSTILE = [
    "/api/models/..%2F..%2Fetc/passwd/revision/main",
    "/api/models/org/..%2Fmodel/revision/main",
    "/api/models/org/model/revision/..%2F..%2Fetc",
    "/api/models/org/model/revision/main%5C..",
    "/api/models/org/model/revision/%2e%2e",
    "/api/models/org/model/tree/main/..%2F..",
    "/api/models/org/model/tree/main/../..",
    "/org/model/resolve/main/../../../secret.txt",
    "/org/model/resolve/main/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/org/model/resolve/main/sub%2F..%2F..%2Fsecret.txt",
    "/org/model/resolve/main/..%5c..%5csecret.txt",
    "/org/model/resolve/main/config.json%00",
    "/org/model/resolve/main//etc/passwd",
    "/org/model/resolve/..%2F..%2F/config.json",
    "/org/%2e%2e/resolve/main/config.json",
    "/datasets/../../secret.txt",
    "/v1/files/..%2F..%2Fsecret.txt",
    "/v1/snapshots/..%2F..%2Fsecret.txt",
    "/v1/snapshots?source=..%2F..%2Fsecret.txt&limit=-1",
    "//secret.txt",
    "/../secret.txt",
    "/org/model/resolve/main/%E2%98%83%0D%0AX-Injected:%20yes",
]


async def test_traversal_is_refused_and_reads_nothing_outside(
    served: tuple[Node, RecordingStore, ArchivedRepo],
) -> None:
    """Every traversal attempt is a 4xx; the store was asked only for vault keys."""
    node, store, _ = served
    store.read.clear()
    async with running(node) as url:
        answers = {target: await raw_request(url, target) for target in HOSTILE}
    for target, (status, body) in answers.items():
        assert 400 <= status < 500, (target, status)
        assert SECRET not in body
        assert b"X-Injected" not in body.split(b"\r\n\r\n")[0]
    assert all(k.startswith(VAULT_PREFIXES) and ".." not in k for k in store.read), store.read


async def test_malformed_ranges_and_cursors(
    served: tuple[Node, RecordingStore, ArchivedRepo],
) -> None:
    """Malformed Range headers are 400, unsatisfiable ones 416; bad cursors are 400."""
    node, _, repo = served
    target = f"/org/model/resolve/{repo.commit}/config.json"
    ranges = {
        "bytes=abc": 400,
        "bytes=5": 400,
        "items=0-1": 400,
        "bytes=--1": 400,
        "bytes=3-1": 400,
        "bytes=-": 400,
        "bytes=99999999999999999999-": 400,
        "bytes=0-1,3-4": 416,
        "bytes=8-": 416,
        "bytes=9999999999999999999-": 416,
        "bytes=-0": 416,
        "bytes=2-3": 206,
    }
    tree = f"/api/models/org/model/tree/{repo.commit}?recursive=true&cursor="
    cursors = ["A" * 3000, "forged.cursor", "eyJrIjoidHJlZSJ9.AAAAAAAAAAAAAAAAAAAAAA", "%00"]
    async with running(node) as url:
        got = {r: (await raw_request(url, target, f"Range: {r}\r\n"))[0] for r in ranges}
        refused = [(await raw_request(url, tree + c))[0] for c in cursors]
        huge = (await raw_request(url, tree + "A" * 100_000))[0]
    assert got == ranges
    assert refused == [400] * len(cursors)
    assert huge == 400


def test_parse_range() -> None:
    """The one-range subset of RFC 9110 that the client sends, and nothing else."""
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-", 10) == (0, 10)
    assert parse_range("bytes=4-100", 10) == (4, 10)
    assert parse_range("bytes=-3", 10) == (7, 10)
    assert parse_range("bytes=-30", 10) == (0, 10)
    for header, status in (("bytes=10-", 416), ("bytes=0-", 416), ("bytes=1-0", 400)):
        with pytest.raises(RangeError) as info:
            parse_range(header, 10 if header != "bytes=0-" else 0)
        assert info.value.status == status


def test_parallel_reader_matches_iter_file(
    served: tuple[Node, RecordingStore, ArchivedRepo],
) -> None:
    """The server's parallel chunk reader yields exactly what ``Vault.iter_file`` yields, for
    whole files and for ranges, and raises on damage where ``iter_file`` does."""
    node, _, repo = served
    h = _blake3(repo, node, "big.bin")
    size = len(repo.files["big.bin"])
    with ThreadPoolExecutor(4) as pool:
        for start, end in ((0, size), (1, size), (0, 5), (1_000_000, 3_500_001), (size - 1, size)):
            expected = b"".join(node.vault.iter_file(h, start, end))
            assert b"".join(read_pieces(node.vault, h, start, end, pool)) == expected
            assert expected == repo.files["big.bin"][start:end]
        _damage_chunk(node, repo, "big.bin", 1)
        with pytest.raises(IntegrityError):
            b"".join(read_pieces(node.vault, h, 0, size, pool))
        with pytest.raises(IntegrityError):
            b"".join(node.vault.iter_file(h, 0, size))


def _reader(kind: str, vault: Vault, h: str, pool: ThreadPoolExecutor) -> bytes:
    if kind == "iter_file":
        return b"".join(vault.iter_file(h))
    return b"".join(read_pieces(vault, h, 0, vault.file_record(h).size, pool))


@pytest.mark.parametrize("kind", ["iter_file", "read_pieces"])
def test_a_passed_whole_file_check_is_not_repeated_for_the_same_record(
    served: tuple[Node, RecordingStore, ArchivedRepo],
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a whole read of a file passed the whole-file BLAKE3 check, later whole reads of the
    same record skip that second hash (each chunk is still checked); a record rewritten with
    its chunks reordered is checked again and refused, before and after a good read."""
    node, _, repo = served
    vault = node.vault
    h = _blake3(repo, node, "big.bin")
    record = vault.file_record(h)
    assert len({c for c, _ in record.chunks}) >= 2
    whole_file_hashers = []
    real = vault_module.blake3.blake3

    def counting(*args: object, **kwargs: object) -> object:
        if not args and not kwargs:
            whole_file_hashers.append(1)
        return real(*args, **kwargs)

    # both readers run the check through Vault.whole_file_check
    monkeypatch.setattr(vault_module, "blake3", types.SimpleNamespace(blake3=counting))
    with ThreadPoolExecutor(4) as pool:
        assert not vault.composition_known(record)
        assert _reader(kind, vault, h, pool) == repo.files["big.bin"]
        assert vault.composition_known(record)
        assert _reader(kind, vault, h, pool) == repo.files["big.bin"]
        assert len(whole_file_hashers) == 1

        (c0, n0), (c1, n1), *rest = record.chunks
        reordered = dataclasses.replace(record, chunks=((c1, n1), (c0, n0), *rest))
        vault.put_file_record(reordered)
        assert not vault.composition_known(reordered)
        with pytest.raises(IntegrityError, match="does not hash to its address"):
            _reader(kind, vault, h, pool)
        assert not vault.composition_known(reordered)
        vault.put_file_record(record)
        assert _reader(kind, vault, h, pool) == repo.files["big.bin"]
        assert len(whole_file_hashers) == 2


def test_remembered_whole_file_checks_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    vault = Vault.open(MemoryStore())
    monkeypatch.setattr(vault_module, "COMPOSITIONS_REMEMBERED", 2)
    records = [
        FileRecord(size=1, blake3=f"{i:064x}", sha256="0" * 64, chunks=((f"{i:064x}", 1),))
        for i in range(3)
    ]
    for record in records:
        vault.remember_composition(record)
    assert [vault.composition_known(r) for r in records] == [False, True, True]


def _damage_chunk(node: Node, repo: ArchivedRepo, path: str, index: int) -> None:
    manifest = node.vault.snapshot(repo.snapshot)
    file_h = next(f.blake3 for f in manifest.files if f.path == path)
    chunk_h = node.vault.file_record(file_h).chunks[index][0]
    chunk = Path(node.vault.store.root) / sharded("chunks", chunk_h)  # type: ignore[attr-defined]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x40
    chunk.write_bytes(bytes(data))


async def test_damaged_chunk_aborts_the_download_and_is_journaled(
    served: tuple[Node, RecordingStore, ArchivedRepo], tmp_path: Path
) -> None:
    """Damage mid-file cuts the body short (never a wrong byte) and journals fixity_failed;
    damage in the first chunk is a 500 that the client raises."""
    node, _, repo = served
    original = repo.files["big.bin"]
    assert len(node.vault.file_record(_blake3(repo, node, "big.bin")).chunks) >= 3
    _damage_chunk(node, repo, "big.bin", 2)
    _damage_chunk(node, repo, "first.bin", 0)
    async with running(node) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/org/model/resolve/main/big.bin") as response:
            status, length = response.status, response.content_length
            received, error = await read_until_error(response)
        with pytest.raises(HfHubHTTPError) as info:
            await asyncio.to_thread(
                hf_hub_download, "org/model", "first.bin", cache_dir=tmp_path, endpoint=url
            )
    assert (status, length) == (200, len(original))
    assert isinstance(error, aiohttp.ClientPayloadError)
    assert 0 < len(received) < len(original)
    assert received == original[: len(received)]
    assert info.value.response.status_code == 500
    assert not cached_files(tmp_path, "first.bin")
    failed = [r for _, r in node.vault.journal_records() if r["type"] == "fixity_failed"]
    assert {r["files"][0] for r in failed} == {
        _blake3(repo, node, "big.bin"),
        _blake3(repo, node, "first.bin"),
    }
    assert all(r["detected_by"] == "server" for r in failed)
    events = node.catalog.events(type="fixity_failed").events
    assert len(events) == 2
    # v1 events for the alerts: urgent, one per damaged file, the file's BLAKE3 as evidence
    assert {(e["severity"], e["evidence"]) for e in events} == {
        ("urgent", _blake3(repo, node, "big.bin")),
        ("urgent", _blake3(repo, node, "first.bin")),
    }
    # the contract's payload: the object, the affected files and snapshots (as the scrub's)
    for e in events:
        assert e["payload"]["files"] == [e["evidence"]]
        assert e["payload"]["snapshots_total"] == len(e["payload"]["snapshots"]) >= 1


async def read_until_error(
    response: aiohttp.ClientResponse,
) -> tuple[bytes, BaseException | None]:
    """The body bytes that arrived, and the error that ended the body early (None: none)."""
    received = bytearray()
    try:
        async for piece in response.content.iter_any():
            received += piece
    except aiohttp.ClientError as exc:
        return bytes(received), exc
    return bytes(received), None


def cached_files(cache: Path, name: str) -> list[Path]:
    return list(cache.rglob(name))


def _blake3(repo: ArchivedRepo, node: Node, path: str) -> str:
    manifest = node.vault.snapshot(repo.snapshot)
    return next(f.blake3 for f in manifest.files if f.path == path)


async def test_damaged_plain_file_fails_already_on_head(tmp_path: Path) -> None:
    """A plain git file (not LFS) is named by the git blob id of its content, so damage in it
    is a 500 already on HEAD (what ``hf_hub_download`` turns into LocalEntryNotFoundError
    after its retries, as docs/api.md says), with the node's reason in ``X-Error-Message``."""
    node = open_node(Vault.open(FsStore(tmp_path / "vault", fsync=False)), tmp_path / "c.sqlite")
    repo = archive_repo(node, "org/model", {"config.json": b'{"a": 1}' * 500})
    try:
        _damage_chunk(node, repo, "config.json", 0)
        async with running(node) as url, aiohttp.ClientSession() as session:
            target = f"{url}/org/model/resolve/main/config.json"
            response = await session.head(target)
            status, reason = response.status, response.headers.get("X-Error-Message")
            response.release()
    finally:
        node.close()
    assert status == 500
    assert reason == "this file is damaged in the archive"
