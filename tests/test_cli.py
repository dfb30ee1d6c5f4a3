"""The command line as people and scripts use it: columns, JSON, exit codes, help, logs."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from seedvault import cas
from seedvault.logs import redact
from tests.helpers import run_cli


def _archive(tmp_path: Path) -> str:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text('{"a": 1}')
    (model / "w.bin").write_bytes(bytes(range(256)) * 100)
    result = run_cli(["snapshot", f"dir:{model}"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[0]


def test_ls_columns_and_json(tmp_path: Path) -> None:
    """ls prints id, source key, revision, commit (or -), captured_at; --json one object a line."""
    sid = _archive(tmp_path)
    (tmp_path / "model" / "new.txt").write_text("more")
    sid2 = _archive(tmp_path)
    lines = run_cli(["ls"], cwd=tmp_path).stdout.splitlines()
    assert [line.split()[0] for line in lines] == [sid2, sid]
    fields = lines[0].split()
    assert re.fullmatch(r"[0-9a-f]{64}", fields[0])
    assert fields[1].startswith("dir/")
    assert fields[2:4] == ["_", "-"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields[4])
    rows = [json.loads(x) for x in run_cli(["ls", "--json"], cwd=tmp_path).stdout.splitlines()]
    assert rows[0]["snapshot"] == sid2
    assert rows[0]["parent"] == sid
    assert rows[0]["files"] == 3
    only = run_cli(["ls", f"dir:{tmp_path / 'model'}"], cwd=tmp_path).stdout.split()
    assert sid in only


def test_show_json_is_the_stored_bytes(tmp_path: Path) -> None:
    """show --json prints exactly the stored manifest: its BLAKE3 is the snapshot id."""
    sid = _archive(tmp_path)
    out = run_cli(["show", "--json", sid[:10]], cwd=tmp_path).stdout
    assert cas.address(out.encode()) == sid
    assert not out.endswith("\n")
    human = run_cli(["show", f"dir:{tmp_path / 'model'}"], cwd=tmp_path).stdout
    assert f"snapshot     {sid}" in human
    assert "w.bin" in human


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    """Unknown commands, unknown snapshots and bad prefixes are usage errors (exit 2)."""
    assert run_cli(["frobnicate"], cwd=tmp_path).returncode == 2
    assert run_cli(["show", "deadbeefdeadbeef"], cwd=tmp_path).returncode == 2
    assert run_cli(["show", "abc"], cwd=tmp_path).returncode == 2
    short = run_cli(["verify", "--sample", "0"], cwd=tmp_path)
    assert short.returncode == 2


def test_help_lists_commands_and_sources(tmp_path: Path) -> None:
    """--help names every command and the source forms."""
    text = run_cli(["--help"], cwd=tmp_path).stdout
    for word in [
        "snapshot",
        "ls",
        "show",
        "export",
        "verify",
        "gc",
        "reindex",
        "check-config",
        "deprecations",
        "dir:PATH",
        "hf:org/name",
    ]:
        assert word in text


def test_logs_are_json_on_stderr_and_data_alone_on_stdout(tmp_path: Path) -> None:
    """Off a TTY, logs are JSON lines on stderr; data stays alone on stdout."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "a").write_text("x")
    result = run_cli(["snapshot", f"dir:{model}"], cwd=tmp_path)
    assert re.fullmatch(r"[0-9a-f]{64}\n", result.stdout)
    events = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    assert any(e["event"] == "capture_done" and e["files"] == 1 for e in events)


def test_redaction_of_secrets() -> None:
    """Secret-named fields and bearer/hf tokens inside values never reach a log line (the
    processor alone; through the real logging set-up: tests/test_logs.py)."""
    event = {
        "event": "x",
        "token": "hf_abcdefghijklmnop",
        "password": "pw",
        "detail": "sent Authorization: Bearer sk-live-123 and hf_AAAAAAAAAAAA",
    }
    out = redact(None, "info", dict(event))
    assert out["token"] == "***"
    assert out["password"] == "***"
    assert "sk-live-123" not in out["detail"]
    assert "hf_AAAAAAAAAAAA" not in out["detail"]


@pytest.mark.parametrize(
    ("env", "tuned"),
    [
        ({}, True),
        ({"MALLOC_ARENA_MAX": "4"}, False),
        ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"}, False),
    ],
)
def test_malloc_is_tuned_unless_the_operator_did(
    env: dict[str, str], tuned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ctypes

    from seedvault import cli

    for name in [n for n in os.environ if n.startswith("MALLOC_") or n == "GLIBC_TUNABLES"]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    calls: list[tuple[int, int]] = []

    class Libc:
        def mallopt(self, param: int, value: int) -> int:
            calls.append((param, value))
            return 1

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libc())
    cli.tune_malloc()
    expected = [(-8, 2), (-3, cli.MALLOC_MMAP_THRESHOLD), (-1, cli.MALLOC_TRIM_THRESHOLD)]
    assert calls == (expected if tuned else [])
