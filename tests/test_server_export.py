"""``export_hf_cache``: a snapshot written as a Hugging Face cache, usable fully offline.

The layout must be the one ``huggingface_hub`` itself writes when it downloads the snapshot
from a node (same blob names, same symlinks, same refs), and an offline client
(``HF_HUB_OFFLINE=1``, in a subprocess so the variables apply from import) must find it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from huggingface_hub import snapshot_download

from seedvault.app import Node
from seedvault.errors import UnsafePathError, UsageError
from seedvault.export import export_hf_cache
from seedvault.manifest import Manifest
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.archive import ArchivedRepo, archive_repo, open_node, running
from tests.helpers import random_bytes

FILES = {
    ".gitattributes": b"*.bin filter=lfs diff=lfs merge=lfs -text\n",
    "config.json": b'{"a": 1}',
    "empty.txt": b"",
    "nested/deeper/vocab.txt": b"a\nb\nc\n",
    "weights.bin": random_bytes(11 * 1024 * 1024, 3),
    "small.bin": random_bytes(4096, 4),
}


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, ArchivedRepo]]:
    work = tmp_path_factory.mktemp("export")
    node = open_node(Vault.open(FsStore(work / "vault", fsync=False)), work / "catalog.sqlite")
    repo = archive_repo(node, "org/model", FILES, lfs=frozenset({"small.bin"}))
    yield node, repo
    node.close()


def cache_layout(cache: Path) -> dict[str, str]:
    """Every file of a cache folder → its symlink target, or ``file``.

    Left out: ``trees/`` (compared as JSON), the client's lock files, and its ``CACHEDIR.TAG``,
    which an export deliberately does not write (it tells backup tools to skip the folder).
    """
    out = {}
    for path in sorted(cache.rglob("*")):
        rel = str(path.relative_to(cache))
        if path.is_symlink():
            out[rel] = os.readlink(path)
        elif path.is_file() and "/trees/" not in f"/{rel}" and rel != "CACHEDIR.TAG":
            if rel.startswith(".locks/"):
                continue
            out[rel] = "file"
    return out


def offline(cache: Path, code: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache), HF_HUB_DISABLE_TELEMETRY="1")
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_offline_snapshot_download_after_export(
    archived: tuple[Node, ArchivedRepo], tmp_path: Path
) -> None:
    """Exported to DIR, the snapshot comes back offline by sha and by branch, byte for byte."""
    node, repo = archived
    cache = tmp_path / "cache"
    folder = export_hf_cache(node.vault, node.vault.snapshot(repo.snapshot), cache)
    assert folder == cache / "models--org--model" / "snapshots" / repo.commit
    by_sha = offline(
        cache,
        "from huggingface_hub import snapshot_download as s; "
        f"print(s('org/model', revision='{repo.commit}'))",
    )
    by_branch = offline(
        cache, "from huggingface_hub import snapshot_download as s; print(s('org/model'))"
    )
    one = offline(
        cache,
        "from huggingface_hub import hf_hub_download as h; "
        f"print(h('org/model', 'nested/deeper/vocab.txt', revision='{repo.commit}'))",
    )
    assert by_sha == by_branch == str(folder)
    for name, data in FILES.items():
        assert (Path(by_sha) / name).read_bytes() == data
    assert Path(one).read_bytes() == FILES["nested/deeper/vocab.txt"]


async def test_export_matches_what_the_client_writes(
    archived: tuple[Node, ArchivedRepo], tmp_path: Path
) -> None:
    """The export's blobs, symlinks and refs equal those of a download from the node."""
    node, repo = archived
    async with running(node) as url:
        await asyncio.to_thread(
            snapshot_download, "org/model", cache_dir=tmp_path / "downloaded", endpoint=url
        )
    export_hf_cache(node.vault, node.vault.snapshot(repo.snapshot), tmp_path / "exported")
    downloaded = cache_layout(tmp_path / "downloaded")
    assert downloaded == cache_layout(tmp_path / "exported")
    assert "models--org--model/refs/main" in downloaded
    tree = json.loads(
        (tmp_path / "exported" / "models--org--model" / "trees" / f"{repo.commit}.json").read_text()
    )
    client_tree = json.loads(
        (
            tmp_path / "downloaded" / "models--org--model" / "trees" / f"{repo.commit}.json"
        ).read_text()
    )
    assert tree == client_tree


def test_export_is_repeatable_and_reuses_blobs(
    archived: tuple[Node, ArchivedRepo], tmp_path: Path
) -> None:
    """Exporting twice into one cache keeps the blobs and yields the same layout."""
    node, repo = archived
    manifest = node.vault.snapshot(repo.snapshot)
    export_hf_cache(node.vault, manifest, tmp_path, "model", "org/model", "main")
    first = cache_layout(tmp_path)
    blobs = {p: p.stat().st_mtime_ns for p in (tmp_path / "models--org--model" / "blobs").iterdir()}
    export_hf_cache(node.vault, manifest, tmp_path, "model", "org/model", "main")
    assert cache_layout(tmp_path) == first
    assert {p: p.stat().st_mtime_ns for p in blobs} == blobs


def test_export_refuses_what_could_escape(
    archived: tuple[Node, ArchivedRepo], tmp_path: Path
) -> None:
    """Traversal in a manifest path, a revision or a repo id is refused before writing."""
    node, repo = archived
    manifest = node.vault.snapshot(repo.snapshot)
    evil = replace(manifest, files=(replace(manifest.files[0], path="../../outside"),))
    with pytest.raises(UnsafePathError):
        export_hf_cache(node.vault, evil, tmp_path / "a")
    with pytest.raises(UsageError):
        export_hf_cache(node.vault, manifest, tmp_path / "b", revision="../../refs")
    with pytest.raises(UsageError):
        export_hf_cache(node.vault, manifest, tmp_path / "c", repo_id="../etc")
    not_hub = Manifest.build(
        kind="dir",
        source={"key": "dir/host/x"},
        captured_at="2026-11-27T10:00:00Z",
        files=manifest.files,
    )
    with pytest.raises(UsageError):
        export_hf_cache(node.vault, not_hub, tmp_path / "d")
    assert not (tmp_path / "outside").exists()
    assert not any((tmp_path / "a").rglob("*outside*"))
