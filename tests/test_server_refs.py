"""``HfApi.list_repo_refs`` against a node: archived branches and tags with their commits.

The archive records the revision name a watch asked for (``main``, ``v1.0``, ``refs/tags/v2``,
``refs/pr/1`` or a 40-hex commit) and its commit; a mirrored snapshot of a bare name also
records the Hub's full ref (``upstream.ref``: a branch or a tag). So a commit pinned by hash is
never listed as a ref, full ref names keep their kind, a mirrored tag is a tag, and a bare
name without that record is listed as a branch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from seedvault.app import Node
from seedvault.mirror import HfTarget, poll_hf
from seedvault.sources.hf import HubClient
from seedvault.store.fs import FsStore
from seedvault.vault import Ref, Vault
from tests.archive import archive_repo, fake_commit, open_node, running
from tests.fakehub import FakeHub


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = open_node(Vault.open(FsStore(tmp_path / "vault", fsync=False)), tmp_path / "cat.sqlite")
    yield node
    node.close()


def _refs(api: HfApi, repo_id: str, prs: bool = False) -> dict[str, dict[str, tuple[str, str]]]:
    found = api.list_repo_refs(repo_id, include_pull_requests=prs)
    groups = {"branches": found.branches, "tags": found.tags, "converts": found.converts}
    if found.pull_requests is not None:
        groups["pull_requests"] = found.pull_requests
    return {g: {r.name: (r.ref, r.target_commit) for r in refs} for g, refs in groups.items()}


async def test_mirrored_branch_tag_and_pinned_commit(fake_hub: FakeHub, node: Node) -> None:
    """Upstream ``main`` and tag ``v1.0``, and a commit watched by hash, mirrored: the commit
    is no ref, ``main`` is a branch and ``v1.0`` a tag, each with its archived commit."""
    repo = fake_hub.create_repo("org/m")
    pinned = repo.commit({"config.json": b"0"})
    tagged = repo.commit({"config.json": b"1"})
    repo.tag("v1.0")
    head = repo.commit({"config.json": b"2"})
    async with HubClient(fake_hub.endpoint, None) as client:
        result = await poll_hf(
            HfTarget("model", "org/m", revisions=("main", "v1.0", pinned)),
            client=client,
            vault=node.vault,
            catalog=node.catalog,
            ingestor=node.ingestor,
        )
    assert [o.status for o in result.outcomes] == ["captured"] * 3
    async with running(node) as url:
        refs = await asyncio.to_thread(_refs, HfApi(endpoint=url), "org/m")
    assert refs == {
        "branches": {"main": ("refs/heads/main", head)},
        "tags": {"v1.0": ("refs/tags/v1.0", tagged)},
        "converts": {},
    }
    manifests = {o.revision: node.vault.snapshot(o.snapshot or "") for o in result.outcomes}
    assert manifests["v1.0"].upstream["ref"] == "refs/tags/v1.0"
    assert "ref" not in manifests[pinned].upstream


async def test_full_ref_names_keep_their_kind(node: Node) -> None:
    """``refs/tags/…`` is a tag, ``refs/heads/…`` a branch, ``refs/convert/…`` a convert,
    ``refs/pr/N`` a pull request (listed only with ``include_prs``); a 40-hex revision and an
    unknown ``refs/`` namespace are not listed; ``main`` twice gives its newest commit."""
    files = {"config.json": b"{}"}
    commits = {
        rev: archive_repo(node, "org/m", {**files, "rev": rev.encode()}, revision=rev).commit
        for rev in (
            "refs/heads/main",
            "main",
            "refs/tags/v2.0",
            "refs/heads/dev",
            "refs/pr/1",
            "refs/convert/parquet",
            "refs/notes/x",
        )
    }
    key, stale = node.catalog.refs()[0][0], "2020-01-01T00:00:00Z"
    old = node.vault.read_ref(key, "refs/heads/main")
    assert old is not None
    node.catalog.set_ref(key, "refs/heads/main", Ref(old[0].snapshot, old[0].commit, stale))
    pinned = fake_commit("pinned")
    archive_repo(node, "org/m", {**files, "pin": b""}, revision=pinned, commit=pinned)
    async with running(node) as url:
        api = HfApi(endpoint=url)
        plain = await asyncio.to_thread(_refs, api, "org/m")
        with_prs = await asyncio.to_thread(_refs, api, "org/m", True)
    assert plain == {
        "branches": {
            "dev": ("refs/heads/dev", commits["refs/heads/dev"]),
            "main": ("refs/heads/main", commits["main"]),
        },
        "tags": {"v2.0": ("refs/tags/v2.0", commits["refs/tags/v2.0"])},
        "converts": {"parquet": ("refs/convert/parquet", commits["refs/convert/parquet"])},
    }
    assert with_prs == {
        **plain,
        "pull_requests": {"refs/pr/1": ("refs/pr/1", commits["refs/pr/1"])},
    }
