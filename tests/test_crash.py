"""SIGKILL in the middle of `seedvault snapshot dir:`: nothing damaged, the rerun completes.

The fs store's fault hook (``SEEDVAULT_FAULT_KILL_AFTER_PUTS=N``) kills the capture right
after its N-th object is installed, so the 20 kill points are chosen by the number of objects
already written — deterministic, not by wall time.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.helpers import float_weights, random_bytes, run_cli, safetensors_bytes


def _model_dir(root: Path) -> Path:
    model = root / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"hidden": 64}))
    (model / "empty.txt").write_bytes(b"")
    (model / "sub" / "tokenizer.bin").write_bytes(random_bytes(30_000_000, 1))
    (model / "model.safetensors").write_bytes(
        safetensors_bytes({f"w{i}": ("BF16", float_weights(600_000, i)) for i in range(12)})
    )
    return model


def _chunk_files(vault: Path) -> dict[str, tuple[int, int]]:
    return (
        {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (vault / "chunks").glob("*/*")}
        if (vault / "chunks").is_dir()
        else {}
    )


def test_sigkill_at_20_points(tmp_path: Path) -> None:
    """At each of 20 kill points: verify passes, refs are whole, the rerun re-uploads nothing."""
    model = _model_dir(tmp_path)
    clean = tmp_path / "clean"
    clean.mkdir()
    first = run_cli(["snapshot", f"dir:{model}"], cwd=clean)
    assert first.returncode == 0, first.stderr
    # every object left in the vault was installed once: a lower bound on the puts of a capture
    total = sum(
        1 for p in (clean / "vault").rglob("*") if p.is_file() and not p.parts[-2].startswith(".")
    )
    expected_id = first.stdout.split()[0]
    assert total > 25
    points = sorted({1 + (total - 2) * i // 19 for i in range(20)})
    assert len(points) == 20
    for n in points:
        work = tmp_path / f"kill-{n}"
        work.mkdir()
        killed = run_cli(
            ["snapshot", f"dir:{model}"], cwd=work, env={"SEEDVAULT_FAULT_KILL_AFTER_PUTS": str(n)}
        )
        assert killed.returncode == -9, (n, killed.returncode, killed.stderr)
        check = run_cli(["verify"], cwd=work)
        assert check.returncode == 0, (n, check.stdout, check.stderr)
        refs = list((work / "vault" / "refs").rglob("*")) if (work / "vault/refs").exists() else []
        for ref in (r for r in refs if r.is_file()):
            sid = json.loads(ref.read_bytes())["snapshot"]
            assert (work / "vault" / "snapshots" / sid[:2] / sid).is_file()
        before = _chunk_files(work / "vault")
        rerun = run_cli(["snapshot", f"dir:{model}"], cwd=work)
        assert rerun.returncode == 0, rerun.stderr
        after = _chunk_files(work / "vault")
        assert {k: after[k] for k in before} == before, "a stored chunk was written again"
        ls = run_cli(["ls"], cwd=work)
        captured_at = {line.split()[0] for line in ls.stdout.splitlines()}
        assert len(captured_at) == 1
        assert run_cli(["verify"], cwd=work).returncode == 0
        # the content is the same as an uninterrupted capture's (ids differ only by time)
        show = json.loads(run_cli(["show", "--json", ls.stdout.split()[0]], cwd=work).stdout)
        clean_show = json.loads(run_cli(["show", "--json", expected_id], cwd=clean).stdout)
        assert show["files"] == clean_show["files"]
        shutil.rmtree(work)
    assert os.environ.get("SEEDVAULT_FAULT_KILL_AFTER_PUTS") is None
