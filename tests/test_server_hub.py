"""The official ``huggingface_hub`` client downloads archived snapshots from a node.

Every test runs against a node serving an fs vault and one serving an S3 vault (a real
SeaweedFS), on a free loopback port inside the test's event loop; the blocking client calls go
through ``asyncio.to_thread``. Each download is compared byte for byte with the original.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import structlog
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from seedvault.app import Node
from seedvault.server.access import NodeTokens
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.archive import ArchivedRepo, archive_repo, open_node, running
from tests.helpers import float_weights, random_bytes, safetensors_bytes

NODE_TOKEN = "node-token-0123456789abcdef"
USER_TOKEN = "hf_" + "UserOwnTokenNeverLogged" + "x" * 11
TOKENS = NodeTokens([NODE_TOKEN])
MANY_FILES = 1005


def model_files(version: int) -> dict[str, bytes]:
    weights = safetensors_bytes({"w": ("BF16", float_weights(5_600_000, 7))})  # 11.2 MB: LFS
    return {
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        "README.md": b"# a model card\n",
        "config.json": json.dumps({"hidden": 8, "version": version}).encode(),
        "empty.txt": b"",
        "sub/dir/nested.json": b'{"nested": true}\n',
        "tokenizer.model": random_bytes(300_000, 5),
        "model.safetensors": weights,
    }


@dataclass(frozen=True)
class Archive:
    node: Node
    v1: ArchivedRepo
    v2: ArchivedRepo
    dataset: ArchivedRepo
    gated: ArchivedRepo
    many: ArchivedRepo


@pytest.fixture(scope="module", params=["fs", "s3"])
def archive(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Archive]:
    """Repos archived once per backend: a model at two commits, a dataset, a token-access
    model and a model of more than 1,000 files."""
    work = tmp_path_factory.mktemp(f"hub-{request.param}")
    if request.param == "fs":
        store = FsStore(work / "vault", fsync=False)  # fsync is not what these tests are about
    else:
        seaweed = request.getfixturevalue("seaweedfs")
        store = seaweed.store(seaweed.new_bucket("server-hub"))
    node = open_node(Vault.open(store), work / "catalog.sqlite")
    lfs = frozenset({"tokenizer.model"})
    v1 = archive_repo(
        node, "org/model", model_files(1), lfs=lfs, captured_at="2026-11-27T10:00:00Z"
    )
    v2 = archive_repo(
        node, "org/model", model_files(2), lfs=lfs, captured_at="2026-11-28T10:00:00Z"
    )
    dataset = archive_repo(
        node,
        "org/data",
        {"data/train.csv": b"a,b\n1,2\n", "README.md": b"# data\n", "empty.csv": b""},
        repo_type="dataset",
    )
    gated = archive_repo(
        node, "org/gated", {"config.json": b"{}", "w.bin": random_bytes(50_000, 9)}, access="token"
    )
    # 1,005 files, 101 distinct contents: files sharing a blob are part of what is tested
    many_files = {
        f"shards/{i % 7}/part-{i:04d}.txt": f"part {i % 101}\n".encode() for i in range(MANY_FILES)
    }
    many = archive_repo(node, "org/many", many_files)
    yield Archive(node, v1, v2, dataset, gated, many)
    node.close()


def read_file(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def blob_name(path: str | Path) -> str:
    """The name of the cache blob a snapshot file links to."""
    return Path(path).resolve().name


def read_tree(folder: str | Path) -> dict[str, bytes]:
    root = Path(folder)
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".cache" not in p.parts
    }


async def test_snapshot_download_by_branch_and_by_sha(archive: Archive, tmp_path: Path) -> None:
    """A branch resolves to its newest archived commit; a sha to the snapshot of that commit."""
    async with running(archive.node, TOKENS) as url:
        folder = await asyncio.to_thread(
            snapshot_download, "org/model", cache_dir=tmp_path, endpoint=url
        )
        old = await asyncio.to_thread(
            snapshot_download,
            "org/model",
            revision=archive.v1.commit,
            cache_dir=tmp_path,
            endpoint=url,
        )
    assert Path(folder).name == archive.v2.commit
    assert read_tree(folder) == archive.v2.files
    assert Path(old).name == archive.v1.commit
    assert read_tree(old) == archive.v1.files
    refs = tmp_path / "models--org--model" / "refs" / "main"
    assert refs.read_text() == archive.v2.commit


async def test_hf_hub_download_uses_the_hub_etag_convention(
    archive: Archive, tmp_path: Path
) -> None:
    """Blobs land under the Hub's names: SHA-256 for LFS files, git blob id for the others."""
    files = archive.v2.files
    async with running(archive.node, TOKENS) as url:
        paths = {
            name: await asyncio.to_thread(
                hf_hub_download, "org/model", name, cache_dir=tmp_path, endpoint=url
            )
            for name in ("sub/dir/nested.json", "model.safetensors", "tokenizer.model", "empty.txt")
        }
    for name, path in paths.items():
        assert read_file(path) == files[name]
    blob_names = {name: blob_name(path) for name, path in paths.items()}
    assert blob_names["model.safetensors"] == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert blob_names["tokenizer.model"] == hashlib.sha256(files["tokenizer.model"]).hexdigest()
    nested = files["sub/dir/nested.json"]
    assert (
        blob_names["sub/dir/nested.json"]
        == hashlib.sha1(b"blob %d\0" % len(nested) + nested).hexdigest()
    )
    assert blob_names["empty.txt"] == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob


async def test_resolve_headers_and_no_xet_signal(archive: Archive) -> None:
    """HEAD has the true size, the Hub's ETag and X-Repo-Commit; nothing says Xet anywhere."""
    weights = archive.v2.files["model.safetensors"]
    async with running(archive.node, TOKENS) as url, aiohttp.ClientSession() as session:
        async with session.head(f"{url}/org/model/resolve/main/model.safetensors") as head:
            headers = head.headers.copy()
        async with session.get(f"{url}/api/models/org/model/tree/main?recursive=true") as tree:
            listing = await tree.json()
        token_url = f"{url}/api/models/org/model/xet-read-token/{archive.v2.commit}"
        async with session.get(token_url) as xet:
            xet_status = xet.status
    assert headers["X-Repo-Commit"] == archive.v2.commit
    assert headers["ETag"] == f'"{hashlib.sha256(weights).hexdigest()}"'
    assert headers["Content-Length"] == str(len(weights))
    assert headers["Accept-Ranges"] == "bytes"
    assert "seedvault archive" in headers["X-HF-Warning"]
    assert not [k for k in headers if "xet" in k.lower()]
    assert "xet" not in headers.get("Link", "").lower()
    assert not [e for e in listing if "xetHash" in e]
    assert xet_status == 404


async def test_a_downstream_node_learns_no_history_from_this_one(archive: Archive) -> None:
    """The node serves no ``commits`` history (it holds archived commits, not the history
    between them): a node watching it as its Hub gets 404 and its ancestry question is
    unanswered (None: capture normally, no ``history_rewritten``), never a wrong answer."""
    from seedvault.sources.hf_client import HubClient

    async with running(archive.node, TOKENS) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/models/org/model/commits/main") as commits:
            status = commits.status
        client = HubClient(url, None, session=session, max_attempts=1)
        known = await client.is_ancestor("model", "org/model", archive.v1.commit, archive.v2.commit)
    assert status == 404
    assert known is None


async def test_hf_cli_download_by_sha(archive: Archive, tmp_path: Path) -> None:
    """``hf download org/m --revision <sha>`` in a subprocess gets the archived commit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    async with running(archive.node, TOKENS) as url:
        env.update(
            HF_ENDPOINT=url,
            HF_HUB_CACHE=str(tmp_path / "cache"),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
        )
        proc = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "hf"),
            "download",
            "org/model",
            "--revision",
            archive.v1.commit,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    folder = tmp_path / "cache" / "models--org--model" / "snapshots" / archive.v1.commit
    assert str(folder) in out.decode(), out.decode()
    assert read_tree(folder) == archive.v1.files


async def test_dataset(archive: Archive, tmp_path: Path) -> None:
    """Datasets are served under /api/datasets and /datasets/…/resolve."""
    async with running(archive.node, TOKENS) as url:
        folder = await asyncio.to_thread(
            snapshot_download, "org/data", repo_type="dataset", cache_dir=tmp_path, endpoint=url
        )
    assert read_tree(folder) == archive.dataset.files
    assert "datasets--org--data" in Path(folder).parts


class CuttingProxy:
    """A TCP relay to the node that drops the first GET of ``needle`` after ``cut_after`` bytes
    of its response: a real dropped connection, as a flaky network gives one."""

    def __init__(self, target: str, needle: bytes, cut_after: int) -> None:
        self.port = int(target.rsplit(":", 1)[1])
        self.needle, self.cut_after = needle, cut_after
        self.cut = False
        self.writers: list[asyncio.StreamWriter] = []

    def close(self) -> None:
        for writer in self.writers:
            writer.transport.abort()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writers += [writer, up_writer]
        armed = asyncio.Event()

        async def upstream() -> None:
            while data := await reader.read(65536):
                first_try = b"range:" not in data.lower()
                if not self.cut and data.startswith(b"GET ") and self.needle in data and first_try:
                    self.cut = True
                    armed.set()
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            sent = 0
            while data := await up_reader.read(65536):
                if armed.is_set() and sent + len(data) >= self.cut_after:
                    writer.write(data[: self.cut_after - sent])
                    await writer.drain()
                    writer.transport.abort()
                    up_writer.close()
                    return
                sent += len(data) if armed.is_set() else 0
                writer.write(data)
                await writer.drain()
            writer.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)


async def test_dropped_download_resumes_with_range(archive: Archive, tmp_path: Path) -> None:
    """A connection dropped mid-file is resumed by the client with ``Range``: 206, same bytes."""
    with structlog.testing.capture_logs() as events:
        async with running(archive.node, TOKENS) as url:
            # the client writes in 10 MiB steps: cut after the first one, before the end
            proxy = CuttingProxy(url, b"model.safetensors", cut_after=10_700_000)
            server = await asyncio.start_server(proxy.handle, "127.0.0.1", 0)
            proxy_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
            try:
                path = await asyncio.to_thread(
                    hf_hub_download,
                    "org/model",
                    "model.safetensors",
                    cache_dir=tmp_path,
                    endpoint=proxy_url,
                )
            finally:
                server.close()
                proxy.close()
                await server.wait_closed()
    assert proxy.cut
    assert read_file(path) == archive.v2.files["model.safetensors"]
    gets = [e for e in events if e["event"] == "http_request" and e["method"] == "GET"]
    assert [e["status"] for e in gets] == [200, 206], gets


async def test_more_than_1000_files(archive: Archive, tmp_path: Path) -> None:
    """The tree listing pages through absolute Link URLs, and every file arrives."""
    async with running(archive.node, TOKENS) as url:
        api = HfApi(endpoint=url)
        entries = await asyncio.to_thread(
            lambda: list(api.list_repo_tree("org/many", recursive=True))
        )
        folder = await asyncio.to_thread(
            snapshot_download, "org/many", cache_dir=tmp_path, endpoint=url
        )
    files = {e.path for e in entries if hasattr(e, "blob_id")}
    folders = {e.path for e in entries if not hasattr(e, "blob_id")}
    assert files == set(archive.many.files)
    assert folders == {"shards"} | {f"shards/{i}" for i in range(7)}
    assert read_tree(folder) == archive.many.files


async def test_unknown_repo_revision_and_file(archive: Archive, tmp_path: Path) -> None:
    """The client raises the Hub's own errors for what the archive does not hold."""
    async with running(archive.node, TOKENS) as url:
        with pytest.raises(RepositoryNotFoundError):
            await asyncio.to_thread(snapshot_download, "org/nope", cache_dir=tmp_path, endpoint=url)
        with pytest.raises(RepositoryNotFoundError):
            await asyncio.to_thread(
                hf_hub_download, "org/nope", "config.json", cache_dir=tmp_path, endpoint=url
            )
        with pytest.raises(RevisionNotFoundError):
            await asyncio.to_thread(
                snapshot_download, "org/model", revision="v9", cache_dir=tmp_path, endpoint=url
            )
        with pytest.raises(RevisionNotFoundError):
            await asyncio.to_thread(
                hf_hub_download,
                "org/model",
                "config.json",
                revision="0" * 40,
                cache_dir=tmp_path,
                endpoint=url,
            )
        with pytest.raises(RemoteEntryNotFoundError):
            await asyncio.to_thread(
                hf_hub_download, "org/model", "nope.bin", cache_dir=tmp_path, endpoint=url
            )


async def test_token_snapshot_needs_a_node_token(archive: Archive, tmp_path: Path) -> None:
    """Without a node token (or with the user's own HF token) a token snapshot is gated."""
    async with running(archive.node, TOKENS) as url:
        for token in (None, USER_TOKEN):
            with pytest.raises(GatedRepoError):
                await asyncio.to_thread(
                    snapshot_download,
                    "org/gated",
                    cache_dir=tmp_path / "a",
                    endpoint=url,
                    token=token,
                )
            with pytest.raises(GatedRepoError):
                await asyncio.to_thread(
                    hf_hub_download,
                    "org/gated",
                    "w.bin",
                    cache_dir=tmp_path / "a",
                    endpoint=url,
                    token=token,
                )
        folder = await asyncio.to_thread(
            snapshot_download, "org/gated", cache_dir=tmp_path / "b", endpoint=url, token=NODE_TOKEN
        )
    assert read_tree(folder) == archive.gated.files


async def test_user_token_is_anonymous_and_never_logged(
    archive: Archive, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The user's own ``hf_…`` token reads public snapshots and appears in no log line."""
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        async with running(archive.node, TOKENS) as url:
            folder = await asyncio.to_thread(
                snapshot_download, "org/model", cache_dir=tmp_path, endpoint=url, token=USER_TOKEN
            )
            with pytest.raises(GatedRepoError):
                await asyncio.to_thread(
                    hf_hub_download,
                    "org/gated",
                    "w.bin",
                    cache_dir=tmp_path,
                    endpoint=url,
                    token=USER_TOKEN,
                )
    assert read_tree(folder) == archive.v2.files
    requests = [e for e in events if e["event"] == "http_request"]
    assert any(e["status"] == 200 and "/resolve/" in e["path"] for e in requests)
    assert any(e["status"] == 401 for e in requests)
    server_records = [
        r.getMessage() for r in caplog.records if r.name.startswith(("aiohttp", "seedvault"))
    ]
    assert USER_TOKEN not in repr(events) + repr(server_records)
    assert "UserOwnToken" not in repr(events) + repr(server_records)


@pytest.mark.parametrize("allowed", [True, False])
def test_a_download_widens_its_send_buffer_only_where_the_system_allows(
    allowed: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Downloads ask for a 4 MiB socket send buffer when ``net.core.wmem_max`` permits it;
    otherwise the kernel's own tuning is left alone (a fixed smaller buffer would cap it)."""
    import socket
    import types

    from seedvault.server import content

    monkeypatch.setattr(content, "_send_buffer_allowed", lambda: allowed)
    monkeypatch.setattr(content, "WIDE_SEND_BUFFERS", 1)
    with socket.socket() as sock, socket.socket() as second:
        before = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        requests = [
            types.SimpleNamespace(
                transport=types.SimpleNamespace(get_extra_info=lambda name, s=s: s)
            )
            for s in (sock, second)
        ]
        assert content._widen_send_buffer(requests[0]) is allowed  # type: ignore[arg-type]
        after = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        # only WIDE_SEND_BUFFERS downloads at once: the next keeps the kernel's tuning
        assert content._widen_send_buffer(requests[1]) is False  # type: ignore[arg-type]
        assert second.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == before
        if allowed:
            content._narrowed()
        assert content._widened == 0
    if allowed:  # Linux caps the request at wmem_max and reports twice what it set
        with open("/proc/sys/net/core/wmem_max") as fh:
            assert after >= min(content.SEND_BUFFER_BYTES, int(fh.read())) > before
    else:
        assert after == before
