"""Configuration: every key documented, clear errors naming the key path, exit 2, no traceback."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from seedvault.config import load_config, schema_keys
from seedvault.errors import ConfigError
from tests.helpers import run_cli

EXAMPLE = Path(__file__).parent.parent / "config" / "seedvault.example.toml"
EXAMPLE_ENV = {"OPENAI_API_KEY": "sk-test", "SEEDVAULT_WEBHOOK_SECRET": "whsec_dGVzdA=="}


def test_example_documents_every_key() -> None:
    """config/seedvault.example.toml names every key the schema knows."""
    text = EXAMPLE.read_text()
    sections: dict[str, set[str]] = {}
    current = ""
    for line in text.splitlines():
        header = re.match(r"^\[\[?([a-z_.]+)\]\]?", line)
        if header:
            current = header.group(1)
            continue
        key = re.match(r"^([a-z_0-9]+)\s*=", line)
        if key:
            sections.setdefault(current, set()).add(key.group(1))
    documented = {f"{sec}.{k}" if sec else k for sec, keys in sections.items() for k in keys}
    missing = sorted(set(schema_keys()) - documented)
    assert not missing, f"undocumented config keys: {missing}"


def test_example_loads_wherever_copied(tmp_path: Path) -> None:
    """The example loads from any directory; relative paths resolve against the file."""
    copy = tmp_path / "elsewhere" / "seedvault.toml"
    copy.parent.mkdir()
    shutil.copy(EXAMPLE, copy)
    cfg = load_config(copy, env=EXAMPLE_ENV)
    assert cfg.vault.path == str(copy.parent / "vault")
    assert cfg.catalog.path == str(copy.parent / "seedvault-catalog.sqlite")
    assert cfg.watch.hf[0].every.seconds == 6 * 3600
    assert cfg.alerts.email[0].from_ == "seedvault@node.example.edu"


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No config: fs vault ./vault and catalog ./seedvault-catalog.sqlite in the cwd."""
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, env={})
    assert cfg.vault.backend == "fs"
    assert cfg.vault.path == str(tmp_path / "vault")
    assert cfg.daemon.gc_grace.seconds == 86400


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[vault]\nbakend = 'fs'\n", "vault.bakend: unknown key"),
        ("[ingest]\nconcurrency = 'many'\n", "ingest.concurrency: expected an integer"),
        (
            "[[watch.hf]]\nrepo = 'a/b'\n[[watch.hf]]\nrepo = 'c/d'\nevery = 'often'\n",
            "watch.hf[1].every: expected a duration like \"6h\", got 'often'",
        ),
        ("[vault]\nbackend = 's3'\nbucket = 'b'\n", "vault.access_key_env: environment variable"),
        (
            "[[watch.models_api]]\nid='o'\nflavor='openai'\nbase_url='u'\napi_key_env='NOPE_KEY'\n",
            "watch.models_api[0].api_key_env: environment variable NOPE_KEY is not set",
        ),
        ("[vault]\nbackend = 'ftp'\n", "vault.backend: expected one of fs, s3"),
        ("[vault]\nput_checksum = 'md5'\n", "vault.put_checksum: expected one of crc32, sha256"),
        ("[[watch.hf]]\nid = 'x'\n", "watch.hf[0].repo: required key is missing"),
        ("not toml at all [", "not valid TOML"),
    ],
)
def test_bad_configs_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    """Each malformed config gives exit 2 and a message naming the key, without a traceback."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert message in str(err.value)
    result = run_cli(
        ["check-config", "--config", str(path)],
        cwd=tmp_path,
        env={"NOPE_KEY": "", "SEEDVAULT_S3_ACCESS_KEY": ""},
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unreadable_config(tmp_path: Path) -> None:
    """A missing or unreadable config file is exit 2 with the path in the message."""
    result = run_cli(["ls", "--config", str(tmp_path / "missing.toml")], cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot read the config file" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_masks_secrets(tmp_path: Path) -> None:
    """check-config prints env-var names and whether they are set, never their values."""
    path = tmp_path / "s.toml"
    path.write_text("[vault]\nbackend='s3'\nbucket='b'\n")
    result = run_cli(
        ["check-config", "--config", str(path)],
        cwd=tmp_path,
        env={"SEEDVAULT_S3_ACCESS_KEY": "AKIA-very-secret", "SEEDVAULT_S3_SECRET_KEY": "s3cr3t-v"},
    )
    assert result.returncode == 0, result.stderr
    assert "vault.secret_key_env = SEEDVAULT_S3_SECRET_KEY (set, value not shown)" in result.stdout
    assert "s3cr3t-v" not in result.stdout + result.stderr
    assert "AKIA-very-secret" not in result.stdout + result.stderr


def test_vault_commands_need_no_watch_or_alert_secrets(tmp_path: Path) -> None:
    """`ls` (and the other vault commands) work while a provider key or an SMTP password is
    unset; `check-config` and `run` still refuse, naming it."""
    path = tmp_path / "node.toml"
    path.write_text(
        '[vault]\npath = "vault"\n[catalog]\npath = "catalog.sqlite"\n'
        "[[watch.models_api]]\nid='o'\nflavor='openai'\nbase_url='http://127.0.0.1:9'\n"
        "api_key_env='SV_TEST_UNSET_KEY'\n"
        "[[alerts.email]]\nto=['l@example.org']\nfrom='n@example.org'\nusername='u'\n"
        "password_env='SV_TEST_UNSET_PASSWORD'\n"
    )
    env = {"SV_TEST_UNSET_KEY": "", "SV_TEST_UNSET_PASSWORD": ""}
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "a.txt").write_text("a")
    for command in (["snapshot", f"dir:{tmp_path / 'model'}"], ["ls"]):
        done = run_cli([*command, "--config", str(path)], cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
    for command in ("check-config", "run"):
        refused = run_cli([command, "--config", str(path)], cwd=tmp_path, env=env)
        assert refused.returncode == 2
        assert "SV_TEST_UNSET_KEY is not set" in refused.stderr + refused.stdout


# Values that only `run` used to refuse (its alert dispatcher and server), and duplicate
# watch ids that were accepted silently: refused when the config is loaded.
REFUSED_AT_LOAD = [
    (
        '[[alerts.webhook]]\nurl = "http://127.0.0.1:9/h"\nevents = ["nonexistent_event"]\n',
        "alerts.webhook[0].events[0]: unknown event type 'nonexistent_event'",
    ),
    (
        '[[alerts.email]]\nto = ["l@example.org"]\nfrom = "n@example.org"\ndigest_at = "25:99"\n',
        "alerts.email[0].digest_at: expected a UTC time",
    ),
    (
        '[[alerts.email]]\nto = ["l@example.org"]\nfrom = "n@example.org"\nreminders = ["soon"]\n',
        "alerts.email[0].reminders[0]: expected a duration",
    ),
    (
        '[[alerts.webhook]]\nurl = "ftp://127.0.0.1/h"\n',
        "alerts.webhook[0].url: expected an http(s) URL",
    ),
    (
        '[[alerts.webhook]]\nurl = "http://127.0.0.1:9/h"\n'
        '[[alerts.webhook]]\nurl = "http://127.0.0.1:9/h"\nformat = "slack"\n',
        "alerts.webhook[1].url: the same destination as alerts.webhook[0]",
    ),
    ('[server]\nlisten = "localhost"\n', "server.listen: expected host:port, got 'localhost'"),
    (
        '[server]\nlisten = "127.0.0.1:99999"\n',
        "server.listen: expected host:port, got '127.0.0.1:99999'",
    ),
    ('[server]\nlisten = ":18478"\n', "server.listen: expected host:port, got ':18478'"),
    (
        "[[watch.page]]\nid = 'p'\nprovider = 'openai'\nurl = 'http://127.0.0.1:9/a'\n"
        "[[watch.page]]\nid = 'p'\nprovider = 'generic'\nurl = 'http://127.0.0.1:9/b'\n",
        "watch.page[1].id: duplicate watch id 'p'",
    ),
    (
        "[[watch.models_api]]\nid = 'o'\nflavor = 'openai'\nbase_url = 'http://127.0.0.1:9'\n"
        "api_key_env = 'SV_TEST_KEY'\n"
        "[[watch.models_api]]\nid = 'o'\nflavor = 'mistral'\nbase_url = 'http://127.0.0.1:9'\n"
        "api_key_env = 'SV_TEST_KEY'\n",
        "watch.models_api[1].id: duplicate watch id 'o'",
    ),
]
REFUSED_IDS = [
    "webhook-event",
    "email-digest_at",
    "email-reminders",
    "webhook-url",
    "webhook-twice",
    "listen-no-port",
    "listen-port-range",
    "listen-no-host",
    "page-duplicate-id",
    "models_api-duplicate-id",
]


@pytest.mark.parametrize(("text", "message"), REFUSED_AT_LOAD, ids=REFUSED_IDS)
def test_check_config_refuses_what_run_refuses(tmp_path: Path, text: str, message: str) -> None:
    """load_config (so check-config and every command) refuses each: exit 2, one line naming
    the key path, no traceback, nothing created."""
    path = tmp_path / "node.toml"
    path.write_text(text)
    env = {"SV_TEST_KEY": "k"}
    with pytest.raises(ConfigError) as err:
        load_config(path, env=env)
    assert message in str(err.value)
    for command in ("check-config", "serve", "ls"):
        result = run_cli([command, "--config", str(path)], cwd=tmp_path, env=env, timeout=60)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr == f"seedvault: error: {err.value}\n", command
        assert result.stdout == ""
        assert sorted(p.name for p in tmp_path.iterdir()) == ["node.toml"]
