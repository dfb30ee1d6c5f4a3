"""SIGKILL in the middle of `seedvault snapshot hf:…`: the rerun downloads only unfinished files.

The fs store's fault hook (``SEEDVAULT_FAULT_KILL_AFTER_PUTS=N``) kills the capture right after
its N-th object is installed. A file counts as finished when the catalog indexed it (that
happens right after its file record is written), which is exactly what the rerun can know
without downloading it again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from seedvault.catalog import Catalog
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
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


POLL = r"""
import asyncio, sys
from seedvault.catalog import Catalog
from seedvault.ingest import Ingestor
from seedvault.mirror import HfTarget, poll_hf
from seedvault.sources.hf import HubClient
from seedvault.store.fs import FsStore
from seedvault.vault import Vault

class Listed(FsStore):
    def _install(self, tmp, path):
        print("INSTALL", path.relative_to(self.root).as_posix(), flush=True)
        super()._install(tmp, path)

async def main():
    root, endpoint = sys.argv[1], sys.argv[2]
    vault = Vault.open(Listed(root + "/vault"))
    catalog = Catalog(root + "/catalog.sqlite")
    ingestor = Ingestor(vault)
    try:
        async with HubClient(endpoint, None, backoff_base_s=0.001, max_wait_s=2.0) as client:
            target = HfTarget(repo_id="org/m", repo_type="model")
            await poll_hf(
                target, client=client, vault=vault, catalog=catalog, ingestor=ingestor,
                file_concurrency=1,
            )
    finally:
        ingestor.close()
        catalog.close()

asyncio.run(main())
"""


def poll(root: Path, endpoint: str, kill_after: int | None = None) -> tuple[int, list[str]]:
    """One poll of org/m in a child process (killed after its ``kill_after``-th object);
    its return code and the vault keys it installed, in order."""
    env = dict(os.environ)
    env.pop("SEEDVAULT_FAULT_KILL_AFTER_PUTS", None)
    if kill_after is not None:
        env["SEEDVAULT_FAULT_KILL_AFTER_PUTS"] = str(kill_after)
    done = subprocess.run(
        [sys.executable, "-c", POLL, str(root), endpoint],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    installs = [
        line.split(" ", 1)[1] for line in done.stdout.splitlines() if line[:8] == "INSTALL "
    ]
    return done.returncode, installs


async def test_sigkill_after_the_ref_moved_loses_no_event(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """Killed at every write from the ref's move to the end of the poll, the next poll still
    derives the new revision's ``revision_new`` (before → after commits, the snapshot as
    evidence) exactly once, and the journal has its ``capture`` record (a recovered one may
    repeat it, marked ``recovered``)."""
    repo = fake_hub.create_repo("org/m", gitattributes=False)
    first = repo.commit({"config.json": b'{"v": 1}', "a.bin": random_bytes(300_000, 1)})
    base = tmp_path / "base"
    base.mkdir()
    code, _ = await asyncio.to_thread(poll, base, fake_hub.endpoint)
    assert code == 0
    second = repo.commit({"config.json": b'{"v": 2}', "b.bin": random_bytes(200_000, 2)})

    clean = tmp_path / "clean"
    shutil.copytree(base, clean)
    code, installs = await asyncio.to_thread(poll, clean, fake_hub.endpoint)
    assert code == 0
    moved = next(i for i, key in enumerate(installs, 1) if key.startswith("refs/"))
    assert moved < len(installs)  # the journal and the events come after the ref

    for kill_after in range(moved, len(installs) + 1):
        work = tmp_path / f"killed-{kill_after}"
        shutil.copytree(base, work)
        code, done = await asyncio.to_thread(poll, work, fake_hub.endpoint, kill_after)
        assert code == -signal.SIGKILL, (kill_after, done)
        # Killed at the same write as the clean run's (journal keys carry the time).
        assert [k.split("/")[0] for k in done] == [k.split("/")[0] for k in installs[:kill_after]]
        assert installs[moved - 1] in done
        code, _ = await asyncio.to_thread(poll, work, fake_hub.endpoint)
        assert code == 0, kill_after

        catalog = Catalog(work / "catalog.sqlite")
        news = catalog.events(type="revision_new").events
        catalog.close()
        assert [(e.get("before"), e["after"]) for e in news] == [(None, first), (first, second)], (
            kill_after
        )
        vault = Vault.open(FsStore(work / "vault"), create=False)
        [(_, revision, ref)] = list(vault.refs())
        assert (revision, ref.commit, news[1]["evidence"]) == ("main", second, ref.snapshot)
        captured = [r["snapshot"] for _, r in vault.journal_records() if r["type"] == "capture"]
        assert ref.snapshot in captured, kill_after


async def test_sigkill_after_the_ref_moved_then_upstream_moves_on(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """Killed right after the ref's move to C1; upstream is at C2 by the next poll: that poll
    announces C0 → C1 (from the archive) before capturing C2 and announcing C1 → C2."""
    repo = fake_hub.create_repo("org/m", gitattributes=False)
    c0 = repo.commit({"config.json": b'{"v": 0}'})
    work = tmp_path / "work"
    work.mkdir()
    assert (await asyncio.to_thread(poll, work, fake_hub.endpoint))[0] == 0
    clean = tmp_path / "clean"
    shutil.copytree(work, clean)
    c1 = repo.commit({"config.json": b'{"v": 1}'})
    code, installs = await asyncio.to_thread(poll, clean, fake_hub.endpoint)
    assert code == 0
    moved = next(i for i, key in enumerate(installs, 1) if key.startswith("refs/"))

    code, _ = await asyncio.to_thread(poll, work, fake_hub.endpoint, moved)
    assert code == -signal.SIGKILL
    c2 = repo.commit({"config.json": b'{"v": 2}'})
    assert (await asyncio.to_thread(poll, work, fake_hub.endpoint))[0] == 0

    catalog = Catalog(work / "catalog.sqlite")
    news = catalog.events(type="revision_new").events
    state = catalog.source_state(news[0]["source"])
    catalog.close()
    assert [(e.get("before"), e["after"]) for e in news] == [(None, c0), (c0, c1), (c1, c2)]
    assert state is not None
    assert "announcing" not in state
