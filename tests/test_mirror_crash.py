"""SIGKILL in the middle of `seedvault snapshot hf:…`: the rerun downloads only unfinished files.

The fs store's fault hook (``SEEDVAULT_FAULT_KILL_AFTER_PUTS=N``) kills the capture right after
its N-th object is installed. A file counts as finished when the catalog indexed it (that
happens right after its file record is written), which is exactly what the rerun can know
without downloading it again.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from seedvault.catalog import Catalog
from tests.fakehub import FakeHub
from tests.helpers import random_bytes, run_cli
from tests.test_mirror_cli import write_config

FILES = {f"shards/{i}.bin": random_bytes(1_500_000, i) for i in range(8)}
FILES["config.json"] = b'{"shards": 8}'


def vault_objects(root: Path) -> int:
    vault = root / "vault"
    return sum(1 for p in vault.rglob("*") if p.is_file() and not p.parts[-2].startswith("."))


async def test_sigkill_mid_capture_then_rerun_downloads_only_unfinished_files(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """Killed after about half of its writes, the rerun fetches exactly the files not indexed."""
    repo = fake_hub.create_repo("org/m", gitattributes=False)
    repo.commit(FILES)
    extra = "[ingest]\nfile_concurrency = 1\n"
    clean, work = tmp_path / "clean", tmp_path / "work"
    for root in (clean, work):
        root.mkdir()
        write_config(root, fake_hub, extra)
    args = ["snapshot", "hf:org/m"]

    def snapshot(root: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli([*args, "--config", str(root / "seedvault.toml")], root, env)

    done = await asyncio.to_thread(snapshot, clean)
    assert done.returncode == 0, done.stderr
    kill_after = vault_objects(clean) // 2
    fake_hub.requests.clear()

    killed = await asyncio.to_thread(
        snapshot, work, {"SEEDVAULT_FAULT_KILL_AFTER_PUTS": str(kill_after)}
    )

    assert killed.returncode == -9, killed.stderr
    catalog = Catalog(work / "catalog.sqlite")
    finished = {
        path
        for path, f in repo.files().items()
        if catalog.file_by_upstream(sha256=f.lfs_sha256, oid=f.oid)
    }
    catalog.close()
    assert 0 < len(finished) < len(FILES), finished
    fake_hub.requests.clear()

    rerun = await asyncio.to_thread(snapshot, work)

    assert rerun.returncode == 0, rerun.stderr
    assert fake_hub.download_counts() == {path: 1 for path in FILES if path not in finished}
    verified = await asyncio.to_thread(
        run_cli, ["verify", "--config", str(work / "seedvault.toml")], work
    )
    assert verified.returncode == 0, verified.stdout
    out = work / "out"
    exported = await asyncio.to_thread(
        run_cli,
        ["export", "hf:org/m", "--to", str(out), "--config", str(work / "seedvault.toml")],
        work,
    )
    assert exported.returncode == 0, exported.stderr
    assert {p: (out / p).read_bytes() for p in FILES} == FILES
