"""Damage: a flipped byte, a deleted chunk, a truncated object — each found and named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import float_weights, random_bytes, run_cli, safetensors_bytes


@pytest.fixture
def archived(tmp_path: Path) -> tuple[Path, str]:
    """A vault holding one snapshot of a small model directory; returns (workdir, snapshot)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(
        safetensors_bytes({"w": ("BF16", float_weights(800_000, 1))})
    )
    (model / "data.bin").write_bytes(random_bytes(2_000_000, 2))
    (model / "README.md").write_text("a model card\n")
    result = run_cli(["snapshot", f"dir:{model}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path, result.stdout.split()[0]


def _chunk_of(work: Path, snapshot: str, path: str) -> Path:
    manifest = json.loads(run_cli(["show", "--json", snapshot], cwd=work).stdout)
    file_h = next(f["blake3"] for f in manifest["files"] if f["path"] == path)
    record_file = work / "vault" / "files" / file_h[:2] / file_h
    from seedvault import cas

    blob = record_file.read_bytes()
    assert cas.peek_header(blob)[0] == cas.CODEC_ZSTD  # records are stored zstd-encoded
    record = json.loads(cas.decode(blob, 1 << 30))
    chunk_h = record["chunks"][0][0]
    return work / "vault" / "chunks" / chunk_h[:2] / chunk_h


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "damage", [_flip, Path.unlink, _truncate], ids=["flip", "delete", "truncate"]
)
@pytest.mark.parametrize("victim", ["model.safetensors", "data.bin"])
def test_verify_names_damage(archived: tuple[Path, str], damage, victim: str) -> None:  # type: ignore[no-untyped-def]
    """verify exits 1 naming the damaged chunk, the file and the snapshot; export refuses."""
    work, snapshot = archived
    assert run_cli(["verify"], cwd=work).returncode == 0
    chunk = _chunk_of(work, snapshot, victim)
    damage(chunk)
    result = run_cli(["verify"], cwd=work)
    assert result.returncode == 1
    assert f"DAMAGED chunks/{chunk.name[:2]}/{chunk.name}" in result.stdout
    assert f"affects snapshot {snapshot} file {victim}" in result.stdout
    exported = run_cli(["export", snapshot, "--to", str(work / "out")], cwd=work)
    assert exported.returncode == 1
    assert "damaged" in exported.stderr or "missing" in exported.stderr
    assert f"{victim}: chunk {chunk.name}" in exported.stderr  # names the file and the chunk
    assert not (work / "out" / victim).exists()
    assert not [p for p in (work / "out").rglob("*partial*")]


def test_damaged_file_record_named(archived: tuple[Path, str]) -> None:
    """A damaged file record is reported as such, with the snapshot that lists it."""
    work, snapshot = archived
    manifest = json.loads(run_cli(["show", "--json", snapshot], cwd=work).stdout)
    file_h = next(f["blake3"] for f in manifest["files"] if f["path"] == "README.md")
    _flip(work / "vault" / "files" / file_h[:2] / file_h)
    result = run_cli(["verify"], cwd=work)
    assert result.returncode == 1
    assert f"DAMAGED files/{file_h[:2]}/{file_h}" in result.stdout
    assert f"affects snapshot {snapshot} file README.md" in result.stdout


def test_export_names_a_file_whose_record_is_missing(archived: tuple[Path, str]) -> None:
    work, snapshot = archived
    manifest = json.loads(run_cli(["show", "--json", snapshot], cwd=work).stdout)
    file_h = next(f["blake3"] for f in manifest["files"] if f["path"] == "README.md")
    (work / "vault" / "files" / file_h[:2] / file_h).unlink()
    exported = run_cli(["export", snapshot, "--to", str(work / "out")], cwd=work)
    assert exported.returncode == 1
    assert "README.md: " in exported.stderr
    assert not (work / "out" / "README.md").exists()


def test_verify_sample(archived: tuple[Path, str]) -> None:
    """--sample checks a share of the files and still exits 0 on a sound vault."""
    work, _ = archived
    result = run_cli(["verify", "--sample", "34"], cwd=work)
    assert result.returncode == 0
    assert "1 files" in result.stderr
