"""Hostile input: unsafe manifest paths, forged chunk headers, foreign vault directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedvault import cas
from seedvault.catalog import Catalog
from seedvault.errors import IntegrityError, UnsafePathError
from seedvault.ingest import Ingestor
from seedvault.manifest import FileEntry, Manifest, check_path
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.helpers import run_cli

BAD_PATHS = [
    "../escape.txt",
    "/etc/passwd-copy",
    "a\\..\\b.txt",
    "ok/../../x",
    "bell\x07.txt",
    "nul\x00.txt",
    "",
    "a//b",
    "./a",
    "line\nbreak",
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_check_path_refuses(path: str) -> None:
    """Every unsafe path shape is refused."""
    with pytest.raises(UnsafePathError):
        check_path(path)


@pytest.mark.parametrize("bad", BAD_PATHS[:6])
def test_export_refuses_hostile_manifest(tmp_path: Path, bad: str) -> None:
    """A manifest listing an unsafe path (written by a hostile node) exports nothing at all."""
    vault = Vault.open(FsStore(tmp_path / "vault"))
    ingestor = Ingestor(vault)
    record = ingestor.put_bytes(b"payload")
    ingestor.close()
    good = FileEntry("a.txt", record.size, record.blake3, record.sha256)
    evil = FileEntry(bad, record.size, record.blake3, record.sha256)
    manifest = Manifest(  # the constructor, not Manifest.build: no checks on the way in
        kind="dir",
        source={"key": "dir/evil/x", "revision": "_"},
        captured_at="2026-11-27T10:00:00Z",
        files=(good, evil),
    )
    sid = vault.commit(manifest).snapshot
    Catalog(tmp_path / "seedvault-catalog.sqlite").catch_up(vault)
    out = tmp_path / "deep" / "out"
    result = run_cli(["export", sid, "--to", str(out)], cwd=tmp_path)
    assert result.returncode == 1
    assert "file path" in result.stderr
    assert not (tmp_path / "deep").exists() or not any((tmp_path / "deep").rglob("*"))
    assert not (tmp_path / "escape.txt").exists()


def test_export_refuses_symlink_escape(tmp_path: Path) -> None:
    """A symlink already inside the target directory is not followed out of it."""
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "w.bin").write_bytes(b"weights")
    snap = run_cli(["snapshot", f"dir:{model}"], cwd=tmp_path)
    assert snap.returncode == 0, snap.stderr
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (out / "sub").symlink_to(outside)
    result = run_cli(["export", snap.stdout.split()[0], "--to", str(out)], cwd=tmp_path)
    assert result.returncode == 1
    assert not any(outside.iterdir())


def test_forged_chunk_header_rejected_before_allocation(tmp_path: Path) -> None:
    """A stored chunk claiming more than max_chunk_bytes is rejected on read, up front."""
    vault = Vault.open(FsStore(tmp_path / "vault"), max_chunk_bytes=16 * 1024 * 1024)
    forged = cas.HEADER.pack(cas.MAGIC, cas.CODEC_RAW, 1 << 42) + b"tiny"
    h = "ab" * 32
    vault.put_encoded_chunk(h, forged)
    with pytest.raises(IntegrityError, match="above the limit"):
        vault.read_chunk(h)


def test_foreign_directory_exit_2(tmp_path: Path) -> None:
    """Pointing the vault at someone's non-empty directory: exit 2, clear message, untouched."""
    (tmp_path / "vault").mkdir()
    (tmp_path / "vault" / "notes.txt").write_text("mine")
    model = tmp_path / "model"
    model.mkdir()
    (model / "a").write_text("x")
    result = run_cli(["snapshot", f"dir:{model}"], cwd=tmp_path)
    assert result.returncode == 2
    assert "not empty and has no seedvault.json" in result.stderr
    assert sorted(p.name for p in (tmp_path / "vault").iterdir()) == ["notes.txt"]


def test_unknown_source_exit_2(tmp_path: Path) -> None:
    """A malformed SOURCE argument is a usage error."""
    result = run_cli(["show", "hf:not a repo"], cwd=tmp_path)
    assert result.returncode == 2
    assert "expected hf:org/name" in result.stderr
