"""`seedvault snapshot hf:…` / `hf-dataset:…` in a subprocess against the fake Hub.

The fake Hub runs in the test's event loop, so the CLI runs in a thread
(``asyncio.to_thread(run_cli, …)``) while the loop keeps serving it.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from tests.fakehub import FakeHub
from tests.helpers import run_cli
from tests.test_mirror import WEIGHTS


def write_config(root: Path, hub: FakeHub, extra: str = "") -> Path:
    """A config whose [hub] endpoint is the fake Hub (anonymous: the token variable is unset)."""
    path = root / "seedvault.toml"
    path.write_text(
        '[vault]\npath = "vault"\n[catalog]\npath = "catalog.sqlite"\n'
        f'[hub]\nendpoint = "{hub.endpoint}"\ntoken_env = "SEEDVAULT_TEST_TOKEN_NOT_SET"\n'
        f"{extra}"
    )
    return path


async def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, [*args, "--config", str(root / "seedvault.toml")], root)


async def test_snapshot_hf_then_export_byte_identical(fake_hub: FakeHub, tmp_path: Path) -> None:
    """snapshot hf:org/m prints the snapshot id; a rerun is unchanged; export gives the bytes."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b'{"a": 1}', "model.safetensors": WEIGHTS})
    write_config(tmp_path, fake_hub)

    first = await cli(tmp_path, "snapshot", "hf:org/m")
    assert first.returncode == 0, first.stderr
    snapshot = first.stdout.strip()
    assert len(snapshot) == 64
    assert "new snapshot of commit" in first.stderr

    again = await cli(tmp_path, "snapshot", "hf:org/m@main")
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == snapshot
    assert "already archived" in again.stderr

    out = tmp_path / "out"
    exported = await cli(tmp_path, "export", "hf:org/m", "--to", str(out))
    assert exported.returncode == 0, exported.stderr
    assert (out / "model.safetensors").read_bytes() == WEIGHTS
    assert (out / "config.json").read_bytes() == b'{"a": 1}'
    listed = await cli(tmp_path, "ls", "hf:org/m")
    listed_id, key, revision, commit, _captured_at = listed.stdout.split()
    assert (listed_id, revision, commit) == (snapshot, "main", repo.head())
    assert key.endswith("/model/org/m")


async def test_snapshot_hf_dataset_at_a_tag(fake_hub: FakeHub, tmp_path: Path) -> None:
    """hf-dataset:org/d@v1 captures the tagged commit of a dataset repo."""
    repo = fake_hub.create_repo("org/d", repo_type="dataset")
    tagged = repo.commit({"train.csv": b"a\n1\n"})
    repo.tag("v1")
    repo.commit({"train.csv": b"a\n2\n"})
    write_config(tmp_path, fake_hub)

    result = await cli(tmp_path, "snapshot", "hf-dataset:org/d@v1")

    assert result.returncode == 0, result.stderr
    shown = await cli(tmp_path, "show", result.stdout.strip())
    assert f"commit       {tagged}" in shown.stdout
    assert "/dataset/org/d" in shown.stdout


async def test_snapshot_wrong_bytes_exits_1(fake_hub: FakeHub, tmp_path: Path) -> None:
    """A verification failure exits 1 with a clear message and leaves no snapshot."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"model.safetensors": WEIGHTS})
    fake_hub.corrupt("model.safetensors")
    write_config(tmp_path, fake_hub)

    result = await cli(tmp_path, "snapshot", "hf:org/m")

    assert result.returncode == 1
    assert "verification failed" in result.stderr
    assert "model.safetensors" in result.stderr
    assert result.stdout == ""
    assert (await cli(tmp_path, "ls")).stdout == ""


async def test_snapshot_unavailable_repo_exits_1(fake_hub: FakeHub, tmp_path: Path) -> None:
    """A deleted (or never existing) repo exits 1 naming the problem."""
    write_config(tmp_path, fake_hub)
    result = await cli(tmp_path, "snapshot", "hf:org/missing")
    assert result.returncode == 1
    assert "not found (deleted or private)" in result.stderr


async def test_snapshot_uses_the_matching_watch(fake_hub: FakeHub, tmp_path: Path) -> None:
    """A [[watch.hf]] for the repo lends its selection (exclude globs) to an ad-hoc snapshot."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"{}", "model.safetensors": WEIGHTS})
    write_config(tmp_path, fake_hub, '[[watch.hf]]\nrepo = "org/m"\nexclude = ["*.safetensors"]\n')

    result = await cli(tmp_path, "snapshot", "hf:org/m")

    assert result.returncode == 0, result.stderr
    assert sorted(fake_hub.downloads()) == [".gitattributes", "config.json"]
