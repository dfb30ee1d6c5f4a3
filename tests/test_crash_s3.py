"""SIGKILL in the middle of `seedvault snapshot dir:` on an S3 vault (a real SeaweedFS).

The capture runs as the real CLI in a child process whose S3 store is wrapped to SIGKILL the
process right after its N-th write returned (``put`` or ``put_if``): the kill points are
chosen by writes, not by wall time. After each kill the vault verifies, and the rerun
completes a snapshot with the same files as an uninterrupted capture.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import float_weights, random_bytes, run_cli, safetensors_bytes
from tests.seaweed import SeaweedFS

KILLING = r"""
import os, signal, sys, threading
from seedvault import cli
from seedvault.store.s3 import S3Store

after = int(os.environ["SVTEST_KILL_AFTER_WRITES"])
lock, writes = threading.Lock(), [0]

def counted(method):
    def write(self, *args, **kwargs):
        result = method(self, *args, **kwargs)
        with lock:
            writes[0] += 1
            if writes[0] >= after:
                os.kill(os.getpid(), signal.SIGKILL)
        return result
    return write

S3Store.put = counted(S3Store.put)
S3Store.put_if = counted(S3Store.put_if)
sys.exit(cli.main(sys.argv[1:]))
"""


def _config(root: Path, s3: SeaweedFS, bucket: str, prefix: str) -> Path:
    path = root / f"{prefix}.toml"
    path.write_text(
        f'[vault]\nbackend = "s3"\nendpoint_url = "{s3.endpoint_url}"\nbucket = "{bucket}"\n'
        f'prefix = "{prefix}/"\naccess_key_env = "SVTEST_S3_KEY"\n'
        f'secret_key_env = "SVTEST_S3_SECRET"\n[catalog]\npath = "{prefix}.sqlite"\n'
    )
    return path


def test_sigkill_mid_capture_on_s3_leaves_a_valid_vault(
    seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"hidden": 64}))
    (model / "empty.txt").write_bytes(b"")
    (model / "tokenizer.bin").write_bytes(random_bytes(6_000_000, 1))
    (model / "model.safetensors").write_bytes(
        safetensors_bytes({f"w{i}": ("BF16", float_weights(300_000, i)) for i in range(6)})
    )
    bucket = seaweedfs.new_bucket("crash")
    env = {"SVTEST_S3_KEY": seaweedfs.access_key, "SVTEST_S3_SECRET": seaweedfs.secret_key}

    def cli(config: Path, *args: str, kill_after: int | None = None) -> tuple[int, str, str]:
        argv = [*args, "--config", str(config)]
        if kill_after is None:
            done = run_cli(argv, tmp_path, env)
        else:
            done = subprocess.run(
                [sys.executable, "-c", KILLING, *argv],
                cwd=tmp_path,
                env={**os.environ, **env, "SVTEST_KILL_AFTER_WRITES": str(kill_after)},
                capture_output=True,
                text=True,
                timeout=120,
            )
        return done.returncode, done.stdout, done.stderr

    clean = _config(tmp_path, seaweedfs, bucket, "clean")
    code, out, err = cli(clean, "snapshot", f"dir:{model}")
    assert code == 0, err
    clean_files = json.loads(cli(clean, "show", "--json", out.split()[0])[1])["files"]
    store = seaweedfs.store(bucket, prefix="clean/")
    try:
        total = sum(1 for _ in store.list(""))
    finally:
        store.close()
    assert total > 12
    for kill_after in sorted({1 + (total - 2) * i // 4 for i in range(5)}):
        config = _config(tmp_path, seaweedfs, bucket, f"kill-{kill_after}")
        code, _, err = cli(config, "snapshot", f"dir:{model}", kill_after=kill_after)
        assert code == -9, (kill_after, code, err)
        code, out, err = cli(config, "verify")
        assert code == 0, (kill_after, out, err)
        code, _, err = cli(config, "snapshot", f"dir:{model}")
        assert code == 0, (kill_after, err)
        code, listing, _ = cli(config, "ls")
        assert code == 0
        [line] = listing.splitlines()  # one snapshot: the rerun's
        code, shown, _ = cli(config, "show", "--json", line.split()[0])
        assert json.loads(shown)["files"] == clean_files, kill_after
        assert cli(config, "verify")[0] == 0, kill_after
