"""Archived Hub repositories for tests, built straight into a vault and its catalog.

:func:`archive_repo` stores files as the Hub mirror would (``hf-model``/``hf-dataset``
manifests with the source key of the endpoint, the upstream commit, and each file's upstream
git oid: the blob id of the content, or of its LFS pointer for LFS files), commits the
snapshot to the vault, and indexes it and its ref in the catalog. :func:`open_node` makes a
:class:`~seedvault.app.Node` on any vault (fs, memory, S3), and :func:`running` serves it on a
free loopback port inside the test's event loop, with ``[server] public_url`` set to that
address (:func:`served_node`), so absolute links point back at the test server.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web

from seedvault.app import Node
from seedvault.catalog import Catalog
from seedvault.config import CatalogConfig, Config, HubConfig, ServerConfig
from seedvault.ingest import Ingestor
from seedvault.manifest import FileEntry, Manifest
from seedvault.server import make_app
from seedvault.server.access import AccessLogger, NodeTokens
from seedvault.server.hubfiles import LFS_THRESHOLD_BYTES, git_blob_oid, lfs_pointer
from seedvault.sources.spec import hf_source_key
from seedvault.vault import Vault

HUB = "https://huggingface.co"
INGEST_THREADS = 8


@dataclass(frozen=True)
class ArchivedRepo:
    """What :func:`archive_repo` stored."""

    repo_id: str
    repo_type: str
    revision: str
    commit: str
    snapshot: str
    source_key: str
    files: Mapping[str, bytes]


def fake_commit(text: str) -> str:
    """A deterministic 40-hex commit id."""
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def archive_repo(
    node: Node,
    repo_id: str,
    files: Mapping[str, bytes],
    *,
    repo_type: str = "model",
    revision: str = "main",
    commit: str | None = None,
    endpoint: str = HUB,
    access: str = "public",
    lfs: frozenset[str] = frozenset(),
    captured_at: str = "2026-11-27T10:00:00Z",
) -> ArchivedRepo:
    """Archive ``files`` as ``repo_id`` at ``revision`` (commit: derived from the content).

    Files larger than 10 MiB, and those named in ``lfs``, get the upstream oid of their LFS
    pointer (as on the Hub); the others the git blob id of their content.
    """
    commit = commit or fake_commit(f"{repo_id}@{revision}:{sorted(files.items())!r}")
    entries = []
    names = {data: path for path, data in files.items()}  # identical contents: stored once
    with ThreadPoolExecutor(INGEST_THREADS) as pool:
        stored = pool.map(
            lambda item: node.ingestor.put_bytes(item[0], name=item[1]), names.items()
        )
        records = dict(zip(names, stored, strict=True))
    for path, data in files.items():
        record = records[data]
        is_lfs = path in lfs or len(data) > LFS_THRESHOLD_BYTES
        oid = git_blob_oid(lfs_pointer(record.sha256, len(data)) if is_lfs else data)
        entries.append(FileEntry(path, len(data), record.blake3, record.sha256, oid))
    key = hf_source_key(endpoint, repo_type, repo_id)
    manifest = Manifest.build(
        kind=f"hf-{repo_type}",
        source={
            "key": key,
            "endpoint": endpoint,
            "repo": repo_id,
            "revision": revision,
            "commit": commit,
        },
        captured_at=captured_at,
        files=entries,
        access=access,
        agent={"software": "seedvault-tests", "version": "0"},
    )
    result = node.vault.commit(manifest)
    node.catalog.add_snapshot(result.snapshot, node.vault.snapshot(result.snapshot))
    found = node.vault.read_ref(key, revision)
    assert found is not None
    node.catalog.set_ref(key, revision, found[0])
    return ArchivedRepo(repo_id, repo_type, revision, commit, result.snapshot, key, dict(files))


def open_node(vault: Vault, catalog_path: Path, public_url: str = "http://127.0.0.1:8470") -> Node:
    """A node on ``vault`` with its catalog at ``catalog_path`` (the caller closes it)."""
    cfg = Config(
        catalog=CatalogConfig(path=str(catalog_path)),
        server=ServerConfig(listen="127.0.0.1:0", public_url=public_url, tokens_env=[]),
        hub=HubConfig(endpoint=HUB),
    )
    return Node(cfg, vault, Catalog(catalog_path), Ingestor(vault, concurrency=4))


def served_node(node: Node, public_url: str) -> Node:
    """The same vault and catalog, with ``[server] public_url`` set to ``public_url``."""
    server = replace(node.config.server, public_url=public_url)
    return Node(replace(node.config, server=server), node.vault, node.catalog, node.ingestor)


@contextlib.asynccontextmanager
async def running(node: Node, tokens: NodeTokens | None = None) -> AsyncIterator[str]:
    """Serve ``node`` on a free port of 127.0.0.1 in the running loop; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app = make_app(served_node(node, url), tokens=tokens if tokens is not None else NodeTokens([]))
    runner = web.AppRunner(app, access_log_class=AccessLogger, shutdown_timeout=5.0)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        yield url
    finally:
        await runner.cleanup()
