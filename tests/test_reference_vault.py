"""The reference vault of format v1 (tests/data/vault-v1, written by seedvault 0.1.0) must open,
verify and export byte-identical with this version — forever."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

from seedvault import cas
from seedvault.fixity import verify
from seedvault.ingest import Ingestor
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.helpers import run_cli

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "vault-v1.expected.json").read_text())


def test_reference_vault_opens_and_verifies(tmp_path: Path) -> None:
    """The v1 vault opens read-only and every object verifies."""
    copy = tmp_path / "vault"
    shutil.copytree(DATA / "vault-v1", copy)
    vault = Vault.open(FsStore(copy), create=False)
    assert vault.marker["version"] == 1
    report = verify(vault)
    assert report.ok, [d.to_json() for d in report.damage.values()]
    assert report.snapshots == 2
    assert report.files_checked == len(EXPECTED["files"])


def test_reference_vault_exports_byte_identical(tmp_path: Path) -> None:
    """Both snapshots export the files they list with their original SHA-256s; manifests
    re-encode to exactly the stored bytes."""
    shutil.copytree(DATA / "vault-v1", tmp_path / "vault")
    assert run_cli(["reindex"], cwd=tmp_path).returncode == 0
    for sid in EXPECTED["snapshots"]:
        shown = run_cli(["show", "--json", sid], cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert cas.address(shown.stdout.encode()) == sid
        out = tmp_path / f"out-{sid[:8]}"
        result = run_cli(["export", sid, "--to", str(out)], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        listed = [f["path"] for f in json.loads(shown.stdout)["files"]]
        for path in listed:
            digest = hashlib.sha256((out / path).read_bytes()).hexdigest()
            assert digest == EXPECTED["files"][path], path
    newest = run_cli(["ls"], cwd=tmp_path).stdout.split()[0]
    assert newest == EXPECTED["snapshots"][1]


def _reference_files() -> dict[str, bytes]:
    """The files the reference vault was written from (``dev/make_reference_vault.py``)."""
    path = Path(__file__).parent.parent / "dev" / "make_reference_vault.py"
    spec = importlib.util.spec_from_file_location("make_reference_vault", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    made: dict[str, bytes] = module.files()
    return made


def test_reference_vault_dedups_its_own_files_again(tmp_path: Path) -> None:
    """The same files ingested again into the v1 vault, in small writes, store nothing new: the
    vault's recorded chunking (older than ``tensor_group``) still groups the tensors and cuts
    the chunks exactly as it did, whatever the defaults of new vaults and the streaming
    chunker's buffering have become. (Chunks found present are not encoded again, so this says
    nothing of the codecs: the reference vault's other tests read them.)"""
    copy = tmp_path / "vault"
    shutil.copytree(DATA / "vault-v1", copy)
    before = sorted(p.relative_to(copy) for p in copy.rglob("*") if p.is_file())
    vault = Vault.open(FsStore(copy), create=False)
    assert vault.chunking.tensor_group is None
    assert vault.chunking != cas.ChunkingParams()  # new vaults cut differently
    made = _reference_files()
    assert {p: hashlib.sha256(d).hexdigest() for p, d in made.items()} == EXPECTED["files"]
    ingestor = Ingestor(vault)
    try:
        for path, data in sorted(made.items()):
            writer = ingestor.writer(path)
            for at in range(0, len(data), 4096):
                writer.write(data[at : at + 4096])
            writer.finish()
    finally:
        ingestor.close()
    stats = ingestor.stats
    assert stats.files == len(made)
    assert stats.chunks > len(made)  # the weights and the noise span several chunks
    assert stats.chunks_new == 0
    assert stats.files_reused == len(made)
    after = sorted(p.relative_to(copy) for p in copy.rglob("*") if p.is_file())
    assert [p for p in after if p.parts[0] in ("chunks", "files")] == [
        p for p in before if p.parts[0] in ("chunks", "files")
    ]
