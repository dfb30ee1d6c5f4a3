"""The reference vault of format v1 (tests/data/vault-v1, written by seedvault 0.1.0) must open,
verify and export byte-identical with this version — forever."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from seedvault import cas
from seedvault.fixity import verify
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
