"""`seedvault run` with a bad config: exit 2, a message naming the key, no traceback; the
quick-start config loads from anywhere and degrades to logged errors without a reachable Hub."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from tests.helpers import run_cli
from tests.test_config import REFUSED_AT_LOAD, REFUSED_IDS
from tests.test_daemon_support import Daemons, free_port, write_config

QUICKSTART = Path(__file__).parent.parent / "config" / "quickstart.toml"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[daemon]\nmax_capturez = 2\n", "daemon.max_capturez"),
        ('[daemon]\nmax_captures = "two"\n', "daemon.max_captures"),
        ('[[watch.hf]]\nrepo = "org/m"\nevery = "often"\n', "watch.hf[0].every"),
        (
            '[[watch.models_api]]\nid = "x"\nflavor = "openai"\nbase_url = "http://127.0.0.1:9"\n'
            'api_key_env = "SEEDVAULT_TEST_KEY_NOT_SET"\n',
            "watch.models_api[0].api_key_env",
        ),
    ],
    ids=["unknown-key", "wrong-type", "bad-duration", "missing-secret"],
)
def test_malformed_config_exits_2_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    """Each malformed config stops `run` before it starts: exit 2, the key path, no traceback."""
    config = tmp_path / "seedvault.toml"
    config.write_text(text)
    done = run_cli(["run", "--config", str(config)], tmp_path, timeout=60)
    assert done.returncode == 2, done.stderr
    assert key in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "vault").exists()


@pytest.mark.parametrize(("text", "message"), REFUSED_AT_LOAD, ids=REFUSED_IDS)
def test_run_refuses_at_load_before_creating_anything(
    tmp_path: Path, text: str, message: str
) -> None:
    """Alert settings the dispatcher cannot use, a malformed [server] listen and duplicate
    watch ids stop `run` before it opens anything: exit 2, one line naming the key path —
    neither the vault nor the catalog is created, no service starts."""
    config = tmp_path / "seedvault.toml"
    config.write_text(text)
    done = run_cli(["run", "--config", str(config)], tmp_path, env={"SV_TEST_KEY": "k"}, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr + done.stdout
    for started in ("daemon_stopping", "server_failed", "catalog_up_to_date", "server_started"):
        assert started not in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seedvault.toml"]


def test_unreadable_config_exits_2_naming_the_file(tmp_path: Path) -> None:
    """A config path that cannot be read (a directory: unreadable even for root) exits 2."""
    config = tmp_path / "seedvault.toml"
    config.mkdir()
    done = run_cli(["run", "--config", str(config)], tmp_path, timeout=60)
    assert done.returncode == 2
    assert str(config) in done.stderr
    assert "cannot read the config file" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_quickstart_loads_from_any_directory(tmp_path: Path) -> None:
    """check-config accepts config/quickstart.toml from an unrelated working directory."""
    done = run_cli(["check-config", "--config", str(QUICKSTART)], tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "watch.hf[0].repo = sentence-transformers/all-MiniLM-L6-v2" in done.stdout
    assert "server.listen = 127.0.0.1:8470" in done.stdout
    root = QUICKSTART.parent.parent
    assert f"vault.path = {root / 'vault'}" in done.stdout


async def test_quickstart_without_internet_logs_errors_and_keeps_running(tmp_path: Path) -> None:
    """The quick start with no reachable Hub (loopback port 9, nothing listening there)
    records capture_failed and stays up: /healthz answers, SIGTERM exits 0."""
    config = tmp_path / "quickstart.toml"
    shutil.copy(QUICKSTART, config)
    port = free_port()
    text = config.read_text().replace("127.0.0.1:8470", f"127.0.0.1:{port}")
    text = text.replace('path = "../vault"', 'path = "vault"')
    text = text.replace('path = "../seedvault-catalog.sqlite"', 'path = "catalog.sqlite"')
    # nothing leaves the machine: the page watch goes to a closed loopback port too
    text = text.replace(
        "https://developers.openai.com/api/docs/deprecations.md", "http://127.0.0.1:9/d.md"
    )
    config.write_text(text + '\n[hub]\nendpoint = "http://127.0.0.1:9"\n')
    with Daemons() as daemons:
        daemon = daemons.start(tmp_path, config)
        await daemon.wait_log(
            "event_recorded", event_type="capture_failed", source="page/openai-deprecations"
        )
        await daemon.wait_log("hub_retry", within_s=40)
        hub_key = "hf/127.0.0.1%3A9/model/sentence-transformers/all-MiniLM-L6-v2"
        failed = await daemon.wait_log(
            "event_recorded", event_type="capture_failed", source=hub_key, within_s=60
        )
        assert failed["source"].endswith("/model/sentence-transformers/all-MiniLM-L6-v2")
        assert (await daemon.get("/healthz"))[0] == 200
        assert await daemon.stop() == 0


async def test_address_in_use_exits_1(tmp_path: Path) -> None:
    """When [server] listen cannot be bound, `run` logs server_failed and exits 1."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        config = write_config(tmp_path, None, busy.getsockname()[1])
        with Daemons() as daemons:
            daemon = daemons.start(tmp_path, config)
            assert await daemon.wait_exit() == 1
            assert daemon.logged("server_failed")
            assert not daemon.logged("daemon_ready")
