"""One damaged ref or snapshot manifest never stops the node: it is skipped and named.

Opening a node catches the catalog up with the vault (``Catalog.catch_up``) and ``reindex``
rebuilds it; both skip a ref that does not parse and a snapshot that is missing or does not
hash to its id, with a warning naming it, and index everything else. ``verify`` and the
daemon's scrub name the damaged ref by its key (``fixity_failed``); ``gc`` still refuses to
run, since it cannot know what a damaged ref keeps alive; the server answers 500 for a
revision whose ref or manifest is damaged and serves every other one.
"""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from seedvault.app import Node
from seedvault.catalog import Catalog
from seedvault.config import load_config
from seedvault.errors import IntegrityError
from seedvault.gc import collect
from seedvault.ingest import Ingestor
from seedvault.manifest import FileEntry, Manifest
from seedvault.scrub import Scrubber
from seedvault.store.fs import FsStore
from seedvault.store.memory import MemoryStore
from seedvault.vault import Vault, ref_key, sharded
from tests.archive import archive_repo, running
from tests.helpers import run_cli

GARBAGE = b"\x00not json at all\xff"


def _archive(work: Path, name: str) -> tuple[str, Path]:
    """Capture a small directory ``name``; returns its snapshot id and its ref file."""
    model = work / name
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"name": name}))
    (model / "w.bin").write_bytes(name.encode() * 5000)
    done = run_cli(["snapshot", f"dir:{model}"], cwd=work)
    assert done.returncode == 0, done.stderr
    sid = done.stdout.split()[0]
    ref = next(
        p for p in (work / "vault" / "refs").rglob("*") if p.is_file() and sid in p.read_text()
    )
    return sid, ref


def _ref_key(work: Path, ref_file: Path) -> str:
    return ref_file.relative_to(work / "vault").as_posix()


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _put(vault: Vault, data: bytes) -> tuple[int, str, str]:
    """Store ``data`` as a file; returns its size, BLAKE3 and SHA-256."""
    ingestor = Ingestor(vault)
    try:
        rec = ingestor.put_bytes(data)
    finally:
        ingestor.close()
    return rec.size, rec.blake3, rec.sha256


def _ls(work: Path) -> list[str]:
    done = run_cli(["ls", "--json"], cwd=work)
    assert done.returncode == 0, done.stderr
    return [json.loads(line)["snapshot"] for line in done.stdout.splitlines()]


def test_garbage_ref_is_named_and_everything_else_works(tmp_path: Path) -> None:
    """A ref overwritten with garbage: ls, show of another source and reindex work (each warns
    naming the ref); verify exits 1 naming the ref by its key, before and after the reindex."""
    bad_sid, bad_ref = _archive(tmp_path, "bad")
    good_sid, _ = _archive(tmp_path, "good")
    bad_ref.write_bytes(GARBAGE)
    key = _ref_key(tmp_path, bad_ref)

    listed = run_cli(["ls"], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert good_sid in listed.stdout
    assert key in listed.stderr  # the warning names the ref
    shown = run_cli(["show", f"dir:{tmp_path / 'good'}"], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"snapshot     {good_sid}" in shown.stdout

    for _ in ("before reindex", "after reindex"):
        verified = run_cli(["verify"], cwd=tmp_path)
        assert verified.returncode == 1, verified.stderr
        assert f"DAMAGED {key}: ref {key} is damaged" in verified.stdout
        assert "1 damaged object(s)" in verified.stdout
        rebuilt = run_cli(["reindex"], cwd=tmp_path)
        assert rebuilt.returncode == 0, rebuilt.stderr
        assert "catalog rebuilt: 1 snapshots" in rebuilt.stderr
        assert key in rebuilt.stderr
    assert _ls(tmp_path) == [good_sid]  # the damaged ref's snapshot is no longer reachable
    assert bad_sid not in _ls(tmp_path)
    # asked for by its source, the damaged ref is named (exit 1), not "nothing archived"
    damaged = run_cli(["show", f"dir:{tmp_path / 'bad'}"], cwd=tmp_path)
    assert damaged.returncode == 1, damaged.stderr
    assert f"ref {key} is damaged" in damaged.stderr


def test_flipped_manifest_after_reindex(tmp_path: Path) -> None:
    """One bit flipped in a snapshot manifest: reindex skips it (warning naming it), verify
    then still names it, and ls/show/export of the other snapshot work."""
    bad_sid, _ = _archive(tmp_path, "bad")
    good_sid, _ = _archive(tmp_path, "good")
    _flip(tmp_path / "vault" / sharded("snapshots", bad_sid))

    rebuilt = run_cli(["reindex"], cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "catalog rebuilt: 1 snapshots" in rebuilt.stderr
    assert bad_sid in rebuilt.stderr
    verified = run_cli(["verify"], cwd=tmp_path)
    assert verified.returncode == 1, verified.stderr
    assert f"DAMAGED {sharded('snapshots', bad_sid)}: snapshot {bad_sid} is damaged" in (
        verified.stdout
    )
    assert _ls(tmp_path) == [good_sid]
    shown = run_cli(["show", good_sid[:12]], cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    exported = run_cli(["export", good_sid, "--to", str(tmp_path / "out")], cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "out" / "w.bin").read_bytes() == b"good" * 5000
    damaged = run_cli(["show", f"dir:{tmp_path / 'bad'}"], cwd=tmp_path)
    assert damaged.returncode == 1  # its ref resolves, its manifest is refused
    assert f"snapshot {bad_sid} is damaged" in damaged.stderr


def test_ref_to_a_missing_snapshot_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """A ref naming a snapshot that is not in the vault: the node opens, the warning names the
    snapshot and the ref, verify reports the snapshot missing."""
    gone_sid, _ = _archive(tmp_path, "gone")
    good_sid, _ = _archive(tmp_path, "good")
    (tmp_path / "vault" / sharded("snapshots", gone_sid)).unlink()
    rebuilt = run_cli(["reindex"], cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    warning = next(json.loads(line) for line in rebuilt.stderr.splitlines() if gone_sid in line)
    assert warning["level"] == "warning"
    assert warning["snapshot"] == gone_sid
    assert warning["ref"].endswith("/_")
    assert _ls(tmp_path) == [good_sid]
    verified = run_cli(["verify"], cwd=tmp_path)
    assert verified.returncode == 1
    assert f"DAMAGED {sharded('snapshots', gone_sid)}: snapshot {gone_sid} is not in" in (
        verified.stdout
    )


async def test_node_opens_and_serves_what_is_intact(tmp_path: Path) -> None:
    """A node whose vault has a garbage ref and a flipped manifest opens on an empty catalog
    (as after a reindex) and serves every intact revision; the damaged ones answer 500."""
    (tmp_path / "seedvault.toml").write_text(
        '[vault]\npath = "vault"\n[catalog]\npath = "catalog.sqlite"\n'
        '[hub]\nendpoint = "https://huggingface.co"\n'
    )
    cfg = load_config(tmp_path / "seedvault.toml")
    with Node.open(cfg) as node:
        good = archive_repo(node, "org/good", {"config.json": b"{}", "w.bin": b"g" * 5000})
        kept = archive_repo(node, "org/bad", {"config.json": b"1"}, revision="v1")
        archive_repo(node, "org/bad", {"config.json": b"2"}, revision="main")
        rot = archive_repo(node, "org/rot", {"config.json": b"3"})
    (tmp_path / "vault" / ref_key(kept.source_key, "main")).write_bytes(GARBAGE)
    _flip(tmp_path / "vault" / sharded("snapshots", rot.snapshot))
    (tmp_path / "catalog.sqlite").unlink()

    with Node.open(cfg) as node:
        assert node.caught_up == 2
        assert {r.id for r in node.catalog.snapshots()} == {good.snapshot, kept.snapshot}
        async with running(node) as url, aiohttp.ClientSession() as session:
            async with session.get(f"{url}/api/models/org/good") as resp:
                assert resp.status == 200
                assert (await resp.json())["sha"] == good.commit
            async with session.get(f"{url}/org/good/resolve/main/w.bin") as resp:
                assert resp.status == 200
                assert await resp.read() == b"g" * 5000
            async with session.get(f"{url}/api/models/org/bad/revision/v1") as resp:
                assert resp.status == 200
                assert (await resp.json())["sha"] == kept.commit
            # org/bad without a revision: its main is damaged, so 500, never the tag's commit
            for path in ("org/bad", "org/bad/revision/main", "org/rot", "org/rot/revision/main"):
                async with session.get(f"{url}/api/models/{path}") as resp:
                    assert resp.status == 500, path


async def test_scrub_reports_a_damaged_ref(tmp_path: Path) -> None:
    """The scrub names a damaged ref (journal + a fixity_failed event of its source), checks
    every other snapshot, and does not fail."""
    vault = Vault.open(FsStore(tmp_path / "vault", fsync=False))
    catalog = Catalog(tmp_path / "catalog.sqlite")
    for name in ("bad", "good"):
        record = _put(vault, name.encode())
        manifest = Manifest.build(
            files=[FileEntry("f", record[0], record[1], record[2])],
            kind="dir",
            source={"key": f"dir/h/{name}", "revision": "_"},
            captured_at="2030-01-01T00:00:00Z",
        )
        vault.commit(manifest)
    catalog.catch_up(vault)
    key = ref_key("dir/h/bad", "_")
    (tmp_path / "vault" / key).write_bytes(GARBAGE)
    result = await Scrubber(vault, catalog, period_days=1, clients=lambda _e, _r: None).run(day=3)
    assert result is not None
    assert list(result.report.damage) == [key]
    assert result.report.snapshots == 1
    assert result.report.files_checked == 1
    assert "ref" in result.unrepaired[key]
    assert [(e.type, e.source, e.subject) for e in result.events] == [
        ("fixity_failed", "dir/h/bad", {"object": key})
    ]
    failed = [r for _, r in vault.journal_records() if r["type"] == "fixity_failed"]
    assert [r["object"] for r in failed] == [key]
    again = await Scrubber(vault, catalog, period_days=1, clients=lambda _e, _r: None).run(day=4)
    assert again is not None
    assert list(again.report.damage) == [key]
    assert again.events == []  # the same damage, found again: no new event
    catalog.close()


def test_gc_refuses_to_run_past_a_damaged_ref() -> None:
    """gc cannot know what a damaged ref keeps alive: it refuses, naming the ref, and deletes
    nothing; reading the refs names the damaged one, or skips it when asked to."""
    vault = Vault.open(MemoryStore())
    size, blake3, sha256 = _put(vault, b"payload")
    manifest = Manifest.build(
        files=[FileEntry("f", size, blake3, sha256)],
        kind="dir",
        source={"key": "dir/h/x", "revision": "_"},
        captured_at="2030-01-01T00:00:00Z",
    )
    sid = vault.commit(manifest).snapshot
    key = ref_key("dir/h/x", "_")
    seen: list[str] = []

    def note(damaged_key: str, _exc: IntegrityError) -> None:
        seen.append(damaged_key)

    for damaged in (GARBAGE, b'{"snapshot": "../../seedvault.json", "updated": "x"}'):
        vault.store.put(key, damaged)
        with pytest.raises(IntegrityError, match=f"ref {key} is damaged"):
            collect(vault, grace_s=0.0, delete=True)
        with pytest.raises(IntegrityError, match=f"ref {key} is damaged"):
            list(vault.refs())
        seen.clear()
        assert list(vault.refs(on_damaged=note)) == []
        assert seen == [key]
        assert vault.store.exists(sharded("snapshots", sid))
