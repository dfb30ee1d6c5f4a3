"""The command line as an operator meets it: config in either position, gc's grace from the
config, commands that only read refusing to create a vault, clear errors instead of tracebacks
(a busy port for `serve`, a file as export target, hf-cache for a non-Hub snapshot)."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import pytest

from seedvault.ingest import Ingestor
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.helpers import random_bytes, run_cli


def _archive(tmp_path: Path, config: Path | None = None) -> str:
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text('{"a": 1}')
    extra = ["--config", str(config)] if config else []
    result = run_cli(["snapshot", f"dir:{model}", *extra], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[0]


def _no_traceback(result: object) -> None:
    out = getattr(result, "stdout", "") + getattr(result, "stderr", "")
    assert "Traceback" not in out


# ---------------------------------------------------------------------- item: gc_grace


def test_gc_default_grace_is_the_configs(tmp_path: Path) -> None:
    """`gc` without --grace keeps objects younger than [daemon] gc_grace (not a fixed 24h);
    --grace still overrides the config."""
    config = tmp_path / "node.toml"
    config.write_text('[vault]\npath = "vault"\n[daemon]\ngc_grace = "1h"\n')
    _archive(tmp_path, config)
    vault = Vault.open(FsStore(tmp_path / "vault"))
    ingestor = Ingestor(vault)
    orphan = ingestor.put_bytes(random_bytes(300_000, 7))  # no snapshot lists it
    ingestor.close()
    keys = [f"files/{orphan.blake3[:2]}/{orphan.blake3}"]
    keys += [f"chunks/{h[:2]}/{h}" for h, _ in orphan.chunks]
    two_hours_ago = time.time() - 2 * 3600
    for key in keys:
        os.utime(tmp_path / "vault" / key, (two_hours_ago, two_hours_ago))

    by_config = run_cli(["gc", "--config", str(config)], cwd=tmp_path)
    assert by_config.returncode == 0, by_config.stderr
    assert f"would delete (dry run; add --delete) {len(keys)} objects" in by_config.stdout
    assert "younger than 1h kept" in by_config.stdout

    overridden = run_cli(["gc", "--grace", "3h", "--config", str(config)], cwd=tmp_path)
    assert overridden.returncode == 0, overridden.stderr
    assert "would delete (dry run; add --delete) 0 objects" in overridden.stdout
    assert "younger than 3h kept" in overridden.stdout

    deleted = run_cli(["gc", "--delete", "--config", str(config)], cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    assert not any((tmp_path / "vault" / k).exists() for k in keys)


# ---------------------------------------------------------------------- item: --config position


@pytest.mark.parametrize(
    "form",
    [
        ["--config", "{c}", "ls"],
        ["--config={c}", "ls"],
        ["ls", "--config", "{c}"],
        ["ls", "--config={c}"],
    ],
    ids=["before", "before-equals", "after", "after-equals"],
)
def test_config_before_or_after_the_command(tmp_path: Path, form: list[str]) -> None:
    """`--config PATH` (and `--config=PATH`) works before the command as well as after it."""
    config = tmp_path / "conf" / "node.toml"
    config.parent.mkdir()
    config.write_text('[vault]\npath = "v"\n[catalog]\npath = "c.sqlite"\n')
    sid = _archive(tmp_path, config)
    argv = [a.replace("{c}", str(config)) for a in form]
    result = run_cli(argv, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == sid
    assert not (tmp_path / "vault").exists()  # the config's vault, not the default one


def test_config_after_the_command_wins(tmp_path: Path) -> None:
    """Given in both places, the one after the command is used (argparse's last-wins)."""
    good = tmp_path / "good.toml"
    good.write_text('[vault]\npath = "v"\n')
    missing = tmp_path / "missing.toml"
    _archive(tmp_path, good)
    assert (
        run_cli(["--config", str(missing), "ls", "--config", str(good)], tmp_path).returncode == 0
    )
    late = run_cli(["--config", str(good), "ls", "--config", str(missing)], tmp_path)
    assert late.returncode == 2
    assert "missing.toml: cannot read the config file" in late.stderr


# ---------------------------------------------------------------------- item: no vault here


@pytest.mark.parametrize(
    "argv",
    [["ls"], ["ls", "--json"], ["show", "deadbeefdeadbeef"], ["export", "deadbeef00", "--to", "o"]],
    ids=["ls", "ls-json", "show", "export"],
)
def test_reading_commands_do_not_create_a_vault(tmp_path: Path, argv: list[str]) -> None:
    """In a directory without a vault, ls/show/export say so and exit 2 (as verify does),
    creating neither ./vault nor the catalog."""
    result = run_cli(argv, cwd=tmp_path)
    assert result.returncode == 2
    assert f"no vault at fs:{tmp_path / 'vault'}" in result.stderr
    assert result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == []
    _no_traceback(result)


def test_ls_of_a_source_with_nothing_archived(tmp_path: Path) -> None:
    """`ls SOURCE` for a source without snapshots reports it as show and export do: one line
    "nothing archived for KEY", exit 2; `ls` of an empty vault lists nothing and exits 0."""
    _archive(tmp_path)
    other = tmp_path / "other"
    for argv in (["ls", f"dir:{other}"], ["export", f"dir:{other}", "--to", "o"]):
        result = run_cli(argv, cwd=tmp_path)
        assert result.returncode == 2, argv
        assert re.fullmatch(
            r"seedvault: error: nothing archived for dir/\S+%2Fother\n", result.stderr
        )
        assert result.stdout == ""
    empty = tmp_path / "empty"
    empty.mkdir()
    Vault.open(FsStore(empty / "vault")).store.close()
    listed = run_cli(["ls"], cwd=empty)
    assert (listed.returncode, listed.stdout) == (0, "")


# ---------------------------------------------------------------------- item: export errors


@pytest.mark.parametrize("target", ["afile", "afile/sub/dir"])
def test_export_to_a_file_is_a_usage_error(tmp_path: Path, target: str) -> None:
    """`export --to` a regular file (or a path under one): one line, exit 2, no traceback."""
    sid = _archive(tmp_path)
    (tmp_path / "afile").write_text("keep me")
    result = run_cli(["export", sid, "--to", target], cwd=tmp_path)
    assert result.returncode == 2
    assert "exists and is not a directory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    _no_traceback(result)
    assert (tmp_path / "afile").read_text() == "keep me"


def test_hf_cache_export_of_a_directory_snapshot_names_its_source(tmp_path: Path) -> None:
    """--layout hf-cache of a dir: snapshot says the layout is for Hugging Face repos and
    names the snapshot's source (not "None"); exit 2, nothing written."""
    sid = _archive(tmp_path)
    result = run_cli(["export", sid, "--to", "cache", "--layout", "hf-cache"], cwd=tmp_path)
    assert result.returncode == 2
    assert "only for snapshots of Hugging Face repos (hf: and hf-dataset: sources)" in (
        result.stderr
    )
    key = run_cli(["ls"], cwd=tmp_path).stdout.split()[1]
    assert key in result.stderr
    assert "None" not in result.stderr
    assert not (tmp_path / "cache").exists()


# ---------------------------------------------------------------------- item: serve, busy port


def test_serve_on_a_busy_port_fails_cleanly(tmp_path: Path) -> None:
    """`serve` on an address in use: a server_failed log line and a one-line error, exit 1,
    no traceback (as `run`)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "node.toml"
        config.write_text(f'[vault]\npath = "vault"\n[server]\nlisten = "127.0.0.1:{port}"\n')
        result = run_cli(["serve", "--config", str(config)], cwd=tmp_path, timeout=60)
    assert result.returncode == 1
    _no_traceback(result)
    assert '"event": "server_failed"' in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("seedvault:")]
    assert len(errors) == 1
    assert f"cannot listen on 127.0.0.1:{port}" in errors[0]
    assert "address already in use" in errors[0]


# ---------------------------------------------------------------------- docs list every command


def test_docs_list_every_command() -> None:
    """The operator guide's command table and the README's CLI list name every command."""
    import argparse

    from seedvault.cli import build_parser

    root = Path(__file__).parent.parent
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = sorted(sub.choices)
    guide = (root / "docs" / "operations.md").read_text()
    table = guide.split("## Day-to-day commands", 1)[1].split("\n## ", 1)[0]
    readme = (root / "README.md").read_text()
    for command in commands:
        assert re.search(rf"^\| `seedvault {command}\b", table, re.MULTILINE), command
        assert re.search(rf"^seedvault {command}\b", readme, re.MULTILINE), command


@pytest.mark.parametrize("command", ["show", "export"])
def test_a_snapshot_prefix_too_short_says_so(tmp_path: Path, command: str) -> None:
    """``show 1f9c``: the prefix is too short (not "nothing archived for 1f9c"), exit 2."""
    snapshot = _archive(tmp_path)
    argv = [command, snapshot[:6]] + (
        ["--to", str(tmp_path / "out")] if command == "export" else []
    )
    result = run_cli(argv, tmp_path)
    assert result.returncode == 2
    assert f"{snapshot[:6]!r} is too short for a snapshot id: give at least 8 hex digits" in (
        result.stderr
    )
    _no_traceback(result)
    assert run_cli([command, snapshot[:8], *argv[2:]], tmp_path).returncode == 0
