"""Dedup: nothing is stored twice; a changed tensor costs about that tensor."""

from __future__ import annotations

from pathlib import Path

from seedvault.ingest import Ingestor
from seedvault.vault import Vault
from tests.helpers import float_weights, run_cli, safetensors_bytes

TENSOR_ELEMS = 1_100_000  # 2.2 MB of bf16 each, above tensor_group: every tensor is its own group


def _tensors(changed: int | None = None) -> dict[str, tuple[str, bytes]]:
    out = {f"layer.{i:02d}": ("BF16", float_weights(TENSOR_ELEMS, i)) for i in range(12)}
    if changed is not None:
        out[f"layer.{changed:02d}"] = ("BF16", float_weights(TENSOR_ELEMS, 1000 + changed))
    return out


def _objects(vault_dir: Path) -> set[str]:
    return {
        str(p.relative_to(vault_dir))
        for p in vault_dir.rglob("*")
        if p.is_file() and p.parts[len(vault_dir.parts)] in ("chunks", "files", "snapshots")
    }


def test_second_snapshot_of_same_directory_stores_nothing(tmp_path: Path) -> None:
    """Capturing an unchanged directory uploads no object and writes no snapshot."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(safetensors_bytes(_tensors()))
    (model / "config.json").write_text("{}")
    first = run_cli(["snapshot", f"dir:{model}"], cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = _objects(tmp_path / "vault")
    mtimes = {p: (tmp_path / "vault" / p).stat().st_mtime_ns for p in before}
    second = run_cli(["snapshot", f"dir:{model}"], cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split()[0] == first.stdout.split()[0]
    assert "unchanged" in second.stderr
    assert _objects(tmp_path / "vault") == before
    assert {p: (tmp_path / "vault" / p).stat().st_mtime_ns for p in before} == mtimes


def _new_bytes(vault: Vault, data: bytes) -> int:
    ingestor = Ingestor(vault)
    try:
        ingestor.put_bytes(data, "model.safetensors")
    finally:
        ingestor.close()
    return ingestor.stats.bytes_new_plain


def test_one_changed_tensor_stores_about_that_tensor(fs_vault: Vault) -> None:
    """A revision with one tensor changed stores that tensor plus at most a chunk each side."""
    base = safetensors_bytes(_tensors())
    _new_bytes(fs_vault, base)
    changed = safetensors_bytes(_tensors(changed=5))
    new = _new_bytes(fs_vault, changed)
    tensor_bytes = 2 * TENSOR_ELEMS
    assert tensor_bytes <= new <= tensor_bytes + 2 * fs_vault.chunking.max
    assert new < 0.12 * len(changed)


def test_grown_header_stores_only_the_header(fs_vault: Vault) -> None:
    """A header that grew (shifting every tensor) stores the header chunk, not the weights."""
    base = safetensors_bytes(_tensors())
    _new_bytes(fs_vault, base)
    grown = safetensors_bytes(_tensors(), metadata={"format": "pt", "note": "x" * 100})
    assert len(grown) > len(base)
    new = _new_bytes(fs_vault, grown)
    assert new <= fs_vault.chunking.max
    assert new < 0.01 * len(grown)
