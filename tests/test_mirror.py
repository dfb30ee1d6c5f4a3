"""The Hub mirror against the fake Hub: captures, new commits, history, selection, limits.

Shared helpers for the other ``test_mirror_*`` files live here (``Node``, ``node``, ``poll``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from seedvault.catalog import Catalog
from seedvault.export import export_plain
from seedvault.fixity import verify
from seedvault.ingest import Ingestor
from seedvault.mirror import HfTarget, PollResult, json_safe, poll_hf
from seedvault.sources.hf import HubClient
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.fakehub import GITATTRIBUTES, FakeHub
from tests.testdata import minilm_dir

TOKEN = "hf_MirrorTestTokenThatMustNeverBeStored0123"
WEIGHTS = os.urandom(2 * 1024 * 1024 + 5)
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass
class Node:
    """A vault, catalog and ingestor in a temporary directory."""

    root: Path
    vault: Vault
    catalog: Catalog
    ingestor: Ingestor

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return self.catalog.events(type=event_type, limit=10_000).events

    def snapshot_ids(self) -> set[str]:
        return set(self.vault.snapshot_ids())


def open_node(tmp_path: Path) -> Iterator[Node]:
    """The body of a ``node`` fixture (each test_mirror_* file declares its own)."""
    vault = Vault.open(FsStore(tmp_path / "vault", fsync=False))
    catalog = Catalog(tmp_path / "catalog.sqlite")
    ingestor = Ingestor(vault)
    yield Node(tmp_path, vault, catalog, ingestor)
    ingestor.close()
    catalog.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from open_node(tmp_path)


def make_client(hub: FakeHub, token: str | None = None, **options: Any) -> HubClient:
    """A client with millisecond backoff, so retry tests stay fast."""
    return HubClient(hub.endpoint, token, **{"backoff_base_s": 0.001, "max_wait_s": 2.0, **options})


async def poll(
    node: Node,
    hub: FakeHub,
    repo_id: str,
    *,
    token: str | None = None,
    client_options: dict[str, Any] | None = None,
    **target: Any,
) -> PollResult:
    """One poll of ``repo_id`` with a fresh client (``target`` are HfTarget fields)."""
    target.setdefault("repo_type", "model")
    async with make_client(hub, token, **(client_options or {})) as client:
        return await poll_hf(
            HfTarget(repo_id=repo_id, **target),
            client=client,
            vault=node.vault,
            catalog=node.catalog,
            ingestor=node.ingestor,
        )


def export_bytes(node: Node, snapshot: str, dest: Path) -> dict[str, bytes]:
    manifest = node.vault.snapshot(snapshot)
    export_plain(node.vault, manifest, dest)
    return {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}


# -- whole repositories --------------------------------------------------------------------------


@pytest.mark.testdata
async def test_real_minilm_repo_captured_and_exported_byte_identical(
    fake_hub: FakeHub, node: Node
) -> None:
    """The complete real all-MiniLM-L6-v2 repo is frozen, verified and exported byte-identical."""
    folder = minilm_dir()
    repo = fake_hub.load_folder(MINILM, folder)

    result = await poll(node, fake_hub, MINILM)

    assert result.ok, result
    (outcome,) = result.outcomes
    assert (outcome.status, outcome.commit) == ("captured", repo.head())
    manifest = node.vault.snapshot(outcome.snapshot or "")
    assert manifest.kind == "hf-model"
    assert manifest.source["repo"] == MINILM
    assert manifest.commit == repo.head()
    assert manifest.upstream["license"] == "apache-2.0"
    assert manifest.access == "public"
    assert all(f.upstream_oid for f in manifest.files)
    on_disk = {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }
    assert export_bytes(node, outcome.snapshot or "", node.root / "out") == on_disk
    assert len(on_disk) == 13
    (event,) = node.events("revision_new")
    assert sorted(event["payload"]["added"]) == sorted(on_disk)
    assert verify(node.vault).ok


async def test_dataset_repo(fake_hub: FakeHub, node: Node) -> None:
    """A dataset repo has its own key and kind and downloads under /datasets/."""
    repo = fake_hub.create_repo("org/data", repo_type="dataset")
    repo.commit({"train.csv": b"a,b\n1,2\n", "data/part-0.parquet": WEIGHTS})

    result = await poll(node, fake_hub, "org/data", repo_type="dataset")

    assert result.ok
    assert "/dataset/org/data" in result.source_key
    manifest = node.vault.snapshot(result.outcomes[0].snapshot or "")
    assert manifest.kind == "hf-dataset"
    assert {f.path for f in manifest.files} == {
        ".gitattributes",
        "train.csv",
        "data/part-0.parquet",
    }
    resolves = [r.path for r in fake_hub.requests if r.server == "hub" and "/resolve/" in r.path]
    assert resolves
    assert all(p.startswith("/datasets/org/data/resolve/") for p in resolves)


# -- changes -------------------------------------------------------------------------------------


async def test_unchanged_poll_costs_two_api_calls_and_no_download(
    fake_hub: FakeHub, node: Node
) -> None:
    """A poll that finds the archived commit writes no snapshot, downloads nothing, journals it."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"{}", "model.safetensors": WEIGHTS})
    first = await poll(node, fake_hub, "org/m")
    before = node.snapshot_ids()
    fake_hub.requests.clear()

    again = await poll(node, fake_hub, "org/m")

    (outcome,) = again.outcomes
    assert outcome.status == "unchanged"
    assert outcome.snapshot == first.outcomes[0].snapshot
    assert node.snapshot_ids() == before
    assert fake_hub.downloads() == []
    assert [r.path.rsplit("/", 1)[-1] for r in fake_hub.api_calls()] == ["refs", repo.head()]
    unchanged = [r for _, r in node.vault.journal_records() if r["type"] == "unchanged"]
    assert unchanged[-1]["commit"] == repo.head()
    assert again.events == ()


async def test_new_commit_downloads_only_changed_files(fake_hub: FakeHub, node: Node) -> None:
    """A new commit downloads only new/changed files; revision_new lists added/removed/changed."""
    repo = fake_hub.create_repo("org/m")
    old = repo.commit(
        {
            "config.json": b'{"v": 1}',
            "model.safetensors": WEIGHTS,
            "tokenizer.json": b'{"t": 1}',
            "old.txt": b"bye",
        }
    )
    first = await poll(node, fake_hub, "org/m")
    fake_hub.requests.clear()
    new = repo.commit({"config.json": b'{"v": 2}', "new.txt": b"hi", "old.txt": None})

    result = await poll(node, fake_hub, "org/m")

    (outcome,) = result.outcomes
    assert outcome.status == "captured"
    assert sorted(fake_hub.downloads()) == ["config.json", "new.txt"]
    assert outcome.capture is not None
    assert outcome.capture.parent == first.outcomes[0].snapshot
    (event,) = [e for e in result.events if e.type == "revision_new"]
    assert (event.before, event.after, event.evidence) == (old, new, outcome.snapshot)
    assert event.payload["added"] == ["new.txt"]
    assert event.payload["removed"] == ["old.txt"]
    assert event.payload["changed"] == ["config.json"]
    assert event.severity == "routine"
    assert event.id in {e["id"] for e in node.events("revision_new")}


async def test_history_rewritten_keeps_both_commits(fake_hub: FakeHub, node: Node) -> None:
    """A force push emits history_rewritten; the old and the new commit both stay resolvable."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"1"})
    old = repo.commit({"config.json": b"2"})
    first = await poll(node, fake_hub, "org/m")
    new = repo.force_push({"config.json": b"rewritten"})

    result = await poll(node, fake_hub, "org/m")

    assert result.ok
    (event,) = [e for e in result.events if e.type == "history_rewritten"]
    assert (event.before, event.after, event.severity) == (old, new, "urgent")
    key = result.source_key
    assert node.catalog.resolve(key, old) == first.outcomes[0].snapshot
    assert node.catalog.resolve(key, new) == result.outcomes[0].snapshot
    assert export_bytes(node, node.catalog.resolve(key, old), node.root / "old") == {
        ".gitattributes": repo.commits[old].files[".gitattributes"].data,
        "config.json": b"2",
    }
    assert verify(node.vault).ok


async def test_history_unknown_captures_without_event(fake_hub: FakeHub, node: Node) -> None:
    """Without a commits endpoint a force push is captured normally and emits no rewrite event."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"1"})
    await poll(node, fake_hub, "org/m")
    repo.force_push({"config.json": b"rewritten"})
    fake_hub.commits_endpoint = False

    result = await poll(node, fake_hub, "org/m")

    assert result.outcomes[0].status == "captured"
    assert [e.type for e in result.events] == ["revision_new"]


async def test_tags_and_branches_are_separate_refs(fake_hub: FakeHub, node: Node) -> None:
    """Each watched revision gets its own ref; one refs call serves them all."""
    repo = fake_hub.create_repo("org/m")
    v1 = repo.commit({"config.json": b"1"})
    repo.tag("v1")
    repo.commit({"config.json": b"2"})

    result = await poll(node, fake_hub, "org/m", revisions=("main", "v1"))

    assert [o.status for o in result.outcomes] == ["captured", "captured"]
    assert node.catalog.resolve(result.source_key, "v1") == result.outcomes[1].snapshot
    assert node.vault.snapshot(result.outcomes[1].snapshot or "").commit == v1
    assert sum(1 for r in fake_hub.api_calls() if r.path.endswith("/refs")) == 1


# -- trees ---------------------------------------------------------------------------------------


async def test_tree_of_more_than_1000_files(fake_hub: FakeHub, node: Node) -> None:
    """A 1,200-file tree (two Link-paginated pages) is captured whole."""
    repo = fake_hub.create_repo("org/many", gitattributes=False)
    repo.commit({f"shards/{i:04d}.txt": b"%d" % i for i in range(1200)})

    result = await poll(node, fake_hub, "org/many")

    manifest = node.vault.snapshot(result.outcomes[0].snapshot or "")
    assert len(manifest.files) == 1200
    assert sum(1 for r in fake_hub.api_calls() if "/tree/" in r.path) == 2


async def test_zero_byte_files(fake_hub: FakeHub, node: Node) -> None:
    """Empty files (plain and LFS) are verified, captured and exported as empty files."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"empty.txt": b"", "empty.safetensors": b"", "sub/x.json": b"{}"})

    result = await poll(node, fake_hub, "org/m")

    files = export_bytes(node, result.outcomes[0].snapshot or "", node.root / "out")
    assert files["empty.txt"] == b""
    assert files["empty.safetensors"] == b""
    manifest = node.vault.snapshot(result.outcomes[0].snapshot or "")
    entry = {f.path: f for f in manifest.files}["empty.safetensors"]
    assert entry.sha256 == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a\\b", "a/\x01b", "a/./b"])
async def test_hostile_tree_paths_refused(fake_hub: FakeHub, node: Node, path: str) -> None:
    """A tree listing a path that could escape a snapshot fails the capture: nothing is stored."""
    repo = fake_hub.create_repo("org/evil")
    repo.commit({path: b"x", "ok.txt": b"fine"})

    result = await poll(node, fake_hub, "org/evil")

    assert result.outcomes[0].status == "capture_failed"
    (event,) = node.events("capture_failed")
    assert event["payload"]["error"] == "UnsafePathError"
    assert node.snapshot_ids() == set()
    assert fake_hub.downloads() == []


async def test_include_exclude_select_files(fake_hub: FakeHub, node: Node) -> None:
    """Only files the include globs select and no exclude glob drops are captured."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"a.json": b"1", "b.bin": b"2", "onnx/model.onnx": b"3"})

    result = await poll(node, fake_hub, "org/m", include=("*.json", "*.onnx"), exclude=("onnx/*",))

    manifest = node.vault.snapshot(result.outcomes[0].snapshot or "")
    assert [f.path for f in manifest.files] == ["a.json"]
    assert fake_hub.downloads() == ["a.json"]


async def test_max_bytes_skips_the_revision_whole_once(fake_hub: FakeHub, node: Node) -> None:
    """A revision over max_bytes is skipped whole: one over_quota event, no download, cheap."""
    repo = fake_hub.create_repo("org/big")
    repo.commit({"model.safetensors": WEIGHTS, "config.json": b"{}"})

    results = [await poll(node, fake_hub, "org/big", max_bytes=1_000_000) for _ in range(3)]

    assert [r.outcomes[0].status for r in results] == ["over_quota"] * 3
    (event,) = node.events("over_quota")
    assert event["payload"] == {"bytes": len(WEIGHTS) + 2 + len(GITATTRIBUTES), "limit": 1_000_000}
    assert event["severity"] == "routine"
    assert fake_hub.downloads() == []
    assert sum(1 for r in fake_hub.api_calls() if "/tree/" in r.path) == 1
    assert node.snapshot_ids() == set()

    bigger = await poll(node, fake_hub, "org/big", max_bytes=10_000_000)
    assert bigger.outcomes[0].status == "captured"


# -- manifest metadata and access ----------------------------------------------------------------


async def test_manifest_upstream_metadata_without_floats(fake_hub: FakeHub, node: Node) -> None:
    """Manifests carry license, gated, lastModified and card data with floats/nulls dropped."""
    repo = fake_hub.create_repo("org/m", license="mit")
    repo.card_data.update({"tags": ["a", None], "metrics": {"acc": 0.9, "n": 3}, "x": None})
    sha = repo.commit({"config.json": b"{}"})

    result = await poll(node, fake_hub, "org/m")

    manifest = node.vault.snapshot(result.outcomes[0].snapshot or "")
    assert manifest.upstream["license"] == "mit"
    assert manifest.upstream["gated"] is False
    assert manifest.upstream["lastModified"] == repo.commits[sha].date
    assert manifest.upstream["cardData"] == {"license": "mit", "tags": ["a"], "metrics": {"n": 3}}
    assert json_safe({"a": 1.5, "b": [1.0, True]}) == {"b": [True]}


async def test_access_follows_the_most_restrictive_upstream_state(
    fake_hub: FakeHub, node: Node
) -> None:
    """Once seen gated, new snapshots are access=token even after ungating; overrides win."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"1"})
    first = await poll(node, fake_hub, "org/m")
    repo.gate("auto", approved=(TOKEN,))
    repo.commit({"config.json": b"2"})
    gated = await poll(node, fake_hub, "org/m", token=TOKEN)
    repo.ungate()
    repo.commit({"config.json": b"3"})
    after = await poll(node, fake_hub, "org/m")
    repo.commit({"config.json": b"4"})
    overridden = await poll(node, fake_hub, "org/m", access="public")

    def access(result: PollResult) -> str:
        return node.vault.snapshot(result.outcomes[0].snapshot or "").access

    assert [access(r) for r in (first, gated, after, overridden)] == [
        "public",
        "token",
        "token",
        "public",
    ]
    assert node.vault.snapshot(gated.outcomes[0].snapshot or "").upstream["gated"] == "auto"
    assert [e["type"] for e in node.events("repo_gated")] == ["repo_gated"]
