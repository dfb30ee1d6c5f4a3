"""The fixity scrub: a rotating slice, damage reported once as an event, repair from the Hub.

The scrubber runs in-process on a node whose vault holds a real capture from the fake Hub;
damage is done to the object files on disk, as bit rot would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seedvault.app import Node
from seedvault.config import load_config
from seedvault.fixity import bucket, buckets_due, verify
from seedvault.ingest import Ingestor
from seedvault.manifest import FileEntry, Manifest
from seedvault.mirror import HfTarget, hub_client, poll_hf
from seedvault.scrub import Scrubber
from seedvault.sources.hf import HubClient
from seedvault.store.memory import MemoryStore
from seedvault.vault import Vault, sharded
from tests.fakehub import FakeHub
from tests.helpers import float_weights, random_bytes, safetensors_bytes
from tests.test_daemon_support import cli, free_port, hf_watch, write_config

WEIGHTS = safetensors_bytes({"a": ("BF16", float_weights(4_000_000, 3))})


def flip_byte(vault_root: Path, key: str) -> None:
    path = vault_root / key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def journal(vault: Vault, record_type: str) -> list[dict[str, object]]:
    return [r for _, r in vault.journal_records() if r.get("type") == record_type]


async def captured_node(fake_hub: FakeHub, tmp_path: Path) -> tuple[Node, str, str]:
    """A node with one capture of org/m; returns it, the source key and the weights' BLAKE3."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b'{"a": 1}', "model.safetensors": WEIGHTS})
    cfg = load_config(write_config(tmp_path, fake_hub, free_port(), hf_watch("org/m")))
    node = Node.open(cfg)
    async with hub_client(cfg) as client:
        poll = await poll_hf(
            HfTarget.from_watch(cfg.watch.hf[0]),
            client=client,
            vault=node.vault,
            catalog=node.catalog,
            ingestor=node.ingestor,
        )
    assert poll.ok
    manifest = node.vault.snapshot(poll.outcomes[0].snapshot or "")
    weights = next(f for f in manifest.files if f.path == "model.safetensors")
    return node, manifest.source_key, weights.blake3


@pytest.mark.parametrize("damaged", ["chunk", "file record"])
async def test_scrub_reports_raises_and_repairs_then_finds_nothing(
    fake_hub: FakeHub, tmp_path: Path, damaged: str
) -> None:
    """One damaged object is reported (journal + fixity_failed event), fetched again from the
    snapshot's Hub commit, re-put under the same address (fixity_repaired); a second scrub
    finds nothing and `seedvault verify` passes."""
    node, source, weights = await captured_node(fake_hub, tmp_path)
    with node:
        record = node.vault.file_record(weights)
        assert len(record.chunks) > 2
        key = sharded("chunks", record.chunks[1][0]) if damaged == "chunk" else None
        key = key or sharded("files", weights)
        flip_byte(tmp_path / "vault", key)
        fake_hub.requests.clear()
        held: list[bool] = []  # whether gc would have to wait while the repair re-puts
        real_put = node.vault.store.put

        def put(key: str, data: bytes) -> None:
            if key.startswith(("chunks/", "files/")):
                held.append(any(True for _ in node.vault.store.list("locks/capture/")))
            real_put(key, data)

        node.vault.store.put = put  # type: ignore[method-assign]
        async with HubClient(fake_hub.endpoint, None) as client:
            scrubber = Scrubber(
                node.vault, node.catalog, period_days=1, clients=lambda _e, _r: client
            )
            result = await scrubber.run(day=100)
            assert held
            assert all(held)
            assert result is not None
            assert list(result.report.damage) == [key]
            assert list(result.repaired) == [key]
            assert result.unrepaired == {}
            assert fake_hub.downloads() == ["model.safetensors"]
            events = node.catalog.recent_events(source=source)
            assert [e["type"] for e in events[:2]] == ["fixity_repaired", "fixity_failed"]
            assert events[1]["subject"] == {"object": key}
            assert events[1]["severity"] == "urgent"
            assert [r["object"] for r in journal(node.vault, "fixity_failed")] == [key]
            assert [r["object"] for r in journal(node.vault, "fixity_repaired")] == [key]
            checks = journal(node.vault, "fixity_check")
            assert checks[-1]["slice"] == {"buckets": [0], "of": 1}
            assert checks[-1]["damaged"] == 1

            again = await scrubber.run(day=101)
            assert again is not None
            assert again.report.damage == {}
            assert again.report.files_checked == 3  # .gitattributes, config.json, weights
            assert await scrubber.run(day=101) is None  # today's slice is done
    verified = await cli(tmp_path, "verify")
    assert verified.returncode == 0, verified.stdout


async def test_damage_without_an_upstream_is_reported_once(tmp_path: Path) -> None:
    """A damaged chunk of a dir: capture cannot be fetched again: it stays damaged, the event
    fires once, and a later scrub that finds it again stays quiet."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "blob.bin").write_bytes(random_bytes(3_000_000, 7))
    (tmp_path / "seedvault.toml").write_text('[vault]\npath = "vault"\n')
    done = await cli(tmp_path, "snapshot", f"dir:{model}")
    assert done.returncode == 0, done.stderr
    with Node.open(load_config(tmp_path / "seedvault.toml")) as node:
        manifest = node.vault.snapshot(done.stdout.strip())
        chunk = node.vault.file_record(manifest.files[0].blake3).chunks[0][0]
        flip_byte(tmp_path / "vault", sharded("chunks", chunk))
        scrubber = Scrubber(node.vault, node.catalog, period_days=1, clients=lambda _e, _r: None)
        first = await scrubber.run(day=5)
        assert first is not None
        assert list(first.unrepaired) == [sharded("chunks", chunk)]
        assert "nowhere to fetch it again" in first.unrepaired[sharded("chunks", chunk)]
        assert [e.type for e in first.events] == ["fixity_failed"]
        second = await scrubber.run(day=6)
        assert second is not None
        assert list(second.report.damage) == [sharded("chunks", chunk)]
        assert second.events == []
    assert (await cli(tmp_path, "verify")).returncode == 1


def test_rotating_slices_cover_every_file_once_per_period() -> None:
    """With a 3-day period, days d, d+1, d+2 check disjoint slices whose union is every live
    file; days missed while down are caught up; a finished day is not repeated."""
    vault = Vault.open(MemoryStore())
    ingestor = Ingestor(vault)
    entries = []
    for i in range(24):
        rec = ingestor.put_bytes(f"file {i}".encode())
        entries.append(FileEntry(f"f{i}", rec.size, rec.blake3, rec.sha256))
    ingestor.close()
    vault.commit(
        Manifest.build(
            files=entries,
            kind="dir",
            source={"key": "dir/h/x", "revision": "_"},
            captured_at="2030-01-01T00:00:00Z",
        )
    )
    slices = [verify(vault, buckets=[day % 3], period_days=3).files_checked for day in (9, 10, 11)]
    assert sum(slices) == 24
    assert all(s > 0 for s in slices)
    assert {bucket(e.blake3, 3) for e in entries} == {0, 1, 2}
    assert buckets_due(11, None, 3) == [2]
    assert buckets_due(11, 10, 3) == [2]
    assert buckets_due(11, 11, 3) == []
    assert buckets_due(11, 9, 3) == [1, 2]
    assert buckets_due(20, 9, 3) == [0, 1, 2]
    summary = [r for _, r in vault.journal_records() if r["type"] == "fixity_check"]
    assert [json.dumps(r["slice"]) for r in summary] == [
        json.dumps({"buckets": [b], "of": 3}) for b in (0, 1, 2)
    ]
