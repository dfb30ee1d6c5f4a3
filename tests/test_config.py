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


def test_example_loads_without_warnings(tmp_path: Path) -> None:
    """The example's values draw no warning: a timeout in seconds is usual, not a slip (the
    ``short_duration`` warning is for intervals such as ``every``), and it still warns there."""
    from structlog.testing import capture_logs

    with capture_logs() as quiet:
        load_config(EXAMPLE, env=EXAMPLE_ENV)
    assert quiet == []
    short = EXAMPLE.read_text().replace('every = "6h"', 'every = "30s"', 1)
    assert short != EXAMPLE.read_text()
    (tmp_path / "short.toml").write_text(short)
    with capture_logs() as warned:
        load_config(tmp_path / "short.toml", env=EXAMPLE_ENV)
    assert [e["event"] for e in warned] == ["short_duration"]


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


PAGE = "[[watch.page]]\nid = 'p'\nprovider = 'generic'\nurl = 'http://127.0.0.1:9/a'\n"
EMAIL = '[[alerts.email]]\nto = ["l@example.org"]\nfrom = "n@example.org"\n'

# Values that only `run` used to refuse (its alert dispatcher and server), and duplicate
# watch ids and values nothing can use that were accepted silently: refused when the config
# is loaded.
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
    (
        '[[alerts.email]]\nto = []\nfrom = "n@example.org"\n',
        "alerts.email[0].to: at least one recipient address",
    ),
    (
        '[[watch.hf]]\nrepo = "org/m"\n[[watch.hf]]\nrepo = "org/n"\nrevisions = []\n',
        "watch.hf[1].revisions: at least one branch, tag or commit",
    ),
    (
        f"{PAGE}max_shrink = 5.0\n",
        "watch.page[0].max_shrink: expected a fraction from 0 to 1",
    ),
    (
        f"{PAGE}max_shrink = -0.1\n",
        "watch.page[0].max_shrink: expected a fraction from 0 to 1",
    ),
    (
        f"{PAGE}min_bytes = 6000\nmax_bytes = 5000\n",
        "watch.page[0].min_bytes: 6000 is more than max_bytes (5000)",
    ),
    (
        f"{PAGE}min_bytes = 0\nmax_bytes = 0\n",
        "watch.page[0].max_bytes: at least 1",
    ),
    ('[[watch.hf]]\nrepo = "org/m"\nevery = "0s"\n', 'watch.hf[0].every: expected at least "1s"'),
    (f'{PAGE}every = "0m"\n', 'watch.page[0].every: expected at least "1s"'),
    (
        '[daemon]\nscrub_period = "23h"\n',
        "daemon.scrub_period: expected at least \"1d\", got '23h'",
    ),
    (
        '[hub]\nendpoint = "huggingface.co"\n',
        "hub.endpoint: expected an http(s) URL such as \"https://host/…\", got 'huggingface.co'",
    ),
    (
        '[[watch.hf]]\nrepo = "org/m"\nendpoint = "http://"\n',
        "watch.hf[0].endpoint: expected an http(s) URL",
    ),
    (
        "[[watch.models_api]]\nid = 'o'\nflavor = 'openai'\nbase_url = 'api.openai.com/v1'\n"
        "api_key_env = 'SV_TEST_KEY'\n",
        "watch.models_api[0].base_url: expected an http(s) URL",
    ),
    (
        "[[watch.page]]\nid = 'p'\nprovider = 'openai'\nurl = 'file:///etc/passwd'\n",
        "watch.page[0].url: expected an http(s) URL",
    ),
    ('[vault]\nendpoint_url = "localhost:8333"\n', "vault.endpoint_url: expected an http(s) URL"),
    ('[server]\npublic_url = "node.example.edu"\n', "server.public_url: expected an http(s) URL"),
    (
        f'{EMAIL}timeout = "0s"\n',
        "alerts.email[0].timeout: expected at least \"1s\", got '0s'",
    ),
    (
        f'{EMAIL}timeout = "soon"\n',
        "alerts.email[0].timeout: expected a duration like \"6h\", got 'soon'",
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
    "email-no-recipient",
    "hf-no-revision",
    "page-max_shrink-over-1",
    "page-max_shrink-negative",
    "page-min-over-max",
    "page-max_bytes-0",
    "hf-every-0s",
    "page-every-0m",
    "scrub_period-under-a-day",
    "hub-endpoint-no-scheme",
    "hf-endpoint-no-host",
    "models_api-base_url-no-scheme",
    "page-url-file",
    "vault-endpoint_url-no-scheme",
    "public_url-no-scheme",
    "email-timeout-0s",
    "email-timeout-unparsable",
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


def test_values_at_their_limits_load(tmp_path: Path) -> None:
    """The smallest accepted values still load: a 1 s poll, a 1-day scrub (a 36 h period
    counts as 1 day), max_shrink 0 and 1, min_bytes equal to max_bytes."""
    path = tmp_path / "node.toml"
    path.write_text(
        '[daemon]\nscrub_period = "36h"\n[[watch.hf]]\nrepo = "org/m"\nevery = "1s"\n'
        f'{PAGE}every = "1s"\nmin_bytes = 10\nmax_bytes = 10\nmax_shrink = 0\n'
        "[[watch.page]]\nid = 'q'\nprovider = 'generic'\nurl = 'http://127.0.0.1:9/b'\n"
        "max_shrink = 1\n"
    )
    cfg = load_config(path, env={})
    assert cfg.watch.hf[0].every.seconds == 1
    assert cfg.daemon.scrub_period.seconds == 36 * 3600
    assert [w.max_shrink for w in cfg.watch.page] == [0.0, 1.0]


@pytest.mark.parametrize(
    ("server", "public_url"),
    [
        ('listen = "127.0.0.1:18482"\n', "http://127.0.0.1:18482"),
        ('listen = "[::1]:18482"\n', "http://[::1]:18482"),
        ('listen = "node.example.edu:8080"\n', "http://node.example.edu:8080"),
        ('listen = "0.0.0.0:18482"\n', "http://127.0.0.1:18482"),
        ('listen = "[::]:18482"\n', "http://[::1]:18482"),
        ('listen = "127.0.0.1:18482"\npublic_url = ""\n', "http://127.0.0.1:18482"),
        (
            'listen = "0.0.0.0:18482"\npublic_url = "https://mirror.example.edu/"\n',
            "https://mirror.example.edu/",
        ),
        ("", "http://127.0.0.1:8470"),
    ],
    ids=["ipv4", "ipv6", "name", "wildcard-ipv4", "wildcard-ipv6", "empty", "explicit", "none"],
)
def test_public_url_follows_listen(tmp_path: Path, server: str, public_url: str) -> None:
    """Without a public_url, links and feeds use the address the server listens on (a
    wildcard host as its loopback address); a public_url in the file wins."""
    path = tmp_path / "node.toml"
    path.write_text(f"[server]\n{server}")
    assert load_config(path, env={}).server.public_url == public_url


def test_defaults_public_url_without_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No config file: public_url is the default listen's, http://127.0.0.1:8470."""
    monkeypatch.chdir(tmp_path)
    assert load_config(None, env={}).server.public_url == "http://127.0.0.1:8470"


def test_check_config_shows_the_derived_public_url(tmp_path: Path) -> None:
    """check-config prints the public_url in effect, derived from listen."""
    path = tmp_path / "node.toml"
    path.write_text('[server]\nlisten = "127.0.0.1:18482"\n')
    result = run_cli(["check-config", "--config", str(path)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "server.public_url = http://127.0.0.1:18482" in result.stdout


def test_bad_webhook_secret_refused_where_secrets_are_checked(tmp_path: Path) -> None:
    """A webhook secret that is not whsec_<base64> is refused at load (check-config and run
    exit 2, naming the key, never the value); the vault commands, which check no secrets,
    still load the file."""
    path = tmp_path / "node.toml"
    path.write_text(
        '[vault]\npath = "vault"\n[catalog]\npath = "catalog.sqlite"\n'
        '[[alerts.webhook]]\nurl = "http://127.0.0.1:9/h"\nsecret_env = "SV_TEST_HOOK"\n'
    )
    env = {"SV_TEST_HOOK": "whsec_not*base64!"}
    with pytest.raises(ConfigError) as err:
        load_config(path, env=env)
    assert str(err.value).startswith("alerts.webhook[0].secret_env: ")
    assert "not base64" in str(err.value)
    assert "not*base64!" not in str(err.value)
    assert load_config(path, env=env, secrets=False).alerts.webhook[0].secret_env == "SV_TEST_HOOK"
    for command in ("check-config", "run"):
        result = run_cli([command, "--config", str(path)], cwd=tmp_path, env=env, timeout=60)
        assert result.returncode == 2, (command, result.stderr)
        assert f"seedvault: error: {err.value}" in result.stderr
        assert "not*base64!" not in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["node.toml"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"0m"', "expected at least \"1s\", got '0m'"),
        ('"500ms"', "expected a duration like \"6h\", got '500ms'"),
        ('"1.5s"', "expected a duration like \"6h\", got '1.5s'"),
        ('""', "expected a duration like \"6h\", got ''"),
        ("30", 'expected a duration like "6h", got 30'),
    ],
    ids=["0m", "milliseconds", "fraction", "empty", "a-number"],
)
def test_email_timeout_refused_under_a_second_or_unparsable(
    tmp_path: Path, value: str, message: str
) -> None:
    """``[[alerts.email]] timeout`` is a duration of at least 1 s: anything else is refused
    when the file is loaded, naming the key (the second list here, so its index)."""
    path = tmp_path / "node.toml"
    path.write_text(f"{EMAIL}{EMAIL.replace('l@', 'm@')}timeout = {value}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, env={})
    assert str(err.value) == f"alerts.email[1].timeout: {message}"


def test_email_timeout_default_and_accepted_values(tmp_path: Path) -> None:
    """Without ``timeout`` an email destination waits 30 s for its server; "1s" (the
    smallest accepted) and longer durations load."""
    path = tmp_path / "node.toml"
    path.write_text(
        EMAIL
        + EMAIL.replace("l@", "m@")
        + 'timeout = "1s"\n'
        + EMAIL.replace("l@", "n@")
        + 'timeout = "2m"\n'
    )
    cfg = load_config(path, env={})
    assert [e.timeout.seconds for e in cfg.alerts.email] == [30, 1, 120]
    assert load_config(EXAMPLE, env=EXAMPLE_ENV).alerts.email[0].timeout.seconds == 30
