"""Deployment files: the systemd units pass `systemd-analyze verify`, and the Dockerfile's
ENTRYPOINT + CMD run (without Docker) into a node whose /healthz answers its HEALTHCHECK."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from tests.test_daemon_support import Daemons, free_port, write_config
from tests.testdata import missing

ROOT = Path(__file__).parent.parent
VENV_BIN = Path(sys.executable).parent


def instruction(dockerfile: str, name: str) -> str:
    """The argument of the last ``NAME`` instruction (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", dockerfile)
    found = re.findall(rf"^{name}\s+(.+)$", text, flags=re.MULTILINE)
    assert found, f"no {name} in the Dockerfile"
    return str(found[-1]).strip()


def test_systemd_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify accepts seedvault.service (ExecStart pointed at this venv's
    seedvault) and the verify timer with its service; the main unit is Type=notify."""
    if shutil.which("systemd-analyze") is None:
        missing("systemd-analyze (Debian's systemd package)")
    seedvault = VENV_BIN / "seedvault"
    assert seedvault.is_file()
    for name in ("seedvault.service", "seedvault-verify.service", "seedvault-verify.timer"):
        text = (ROOT / "systemd" / name).read_text()
        text = re.sub(r"^ExecStart=\S+", f"ExecStart={seedvault}", text, flags=re.MULTILINE)
        (tmp_path / name).write_text(text)
    service = (tmp_path / "seedvault.service").read_text()
    assert "Type=notify" in service
    assert f"ExecStart={seedvault} run " in service
    done = subprocess.run(
        ["systemd-analyze", "verify", *(str(tmp_path / n) for n in sorted(os.listdir(tmp_path)))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    about_ours = [line for line in done.stderr.splitlines() if str(tmp_path) in line]
    assert done.returncode == 0, done.stderr
    assert about_ours == [], done.stderr


async def test_dockerfile_entrypoint_runs_a_healthy_node(tmp_path: Path) -> None:
    """ENTRYPOINT + CMD from the Dockerfile (config path swapped for a test config) start a
    node; the HEALTHCHECK command (port swapped) exits 0; STOPSIGNAL stops it with exit 0."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    argv = json.loads(instruction(dockerfile, "ENTRYPOINT")) + json.loads(
        instruction(dockerfile, "CMD")
    )
    config = write_config(tmp_path, None, free_port())
    argv = [str(config) if a == "/etc/seedvault/seedvault.toml" else a for a in argv]
    assert argv[:2] == ["seedvault", "run"]
    assert str(config) in argv
    health = instruction(dockerfile, "HEALTHCHECK")
    health_argv = json.loads(health.split(" CMD ", 1)[1])
    stop_signal = getattr(signal, instruction(dockerfile, "STOPSIGNAL"))

    env = {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    with Daemons() as daemons:
        # argv[0] ("seedvault") is found through PATH, as in the image
        daemon = daemons.start(tmp_path, config, env, argv=argv)
        await daemon.wait_log("daemon_ready")
        check = [a.replace("8470", str(daemon.port)) for a in health_argv]
        check[0] = shutil.which(check[0], path=env["PATH"]) or check[0]

        def healthcheck() -> int:
            return subprocess.run(check, timeout=30, check=False).returncode

        assert await asyncio.to_thread(healthcheck) == 0, shlex.join(check)
        daemon.signal(stop_signal)
        assert await daemon.wait_exit() == 0


def unit_settings(name: str) -> dict[str, list[str]]:
    """``Key=value`` lines of a unit file (every value of a repeated key, in order)."""
    out: dict[str, list[str]] = {}
    for line in (ROOT / "systemd" / name).read_text().splitlines():
        match = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if match:
            out.setdefault(match.group(1), []).append(match.group(2).strip())
    return out


def test_units_share_one_user_and_state_directory() -> None:
    """seedvault.service and seedvault-verify.service run as the same (dynamic) user with the
    same state directory, mode and umask — two different dynamic users would re-chown
    /var/lib/seedvault at every start of the other — and point at no uninstalled document."""
    daemon, verify = unit_settings("seedvault.service"), unit_settings("seedvault-verify.service")
    assert daemon["User"] == verify["User"] == ["seedvault"]
    for key in ("DynamicUser", "Group", "StateDirectory", "StateDirectoryMode", "UMask"):
        assert daemon.get(key) == verify.get(key), key
        assert daemon.get(key), key
    for settings in (daemon, verify):
        assert not any(d.startswith("file:///opt/") for d in settings.get("Documentation", []))


def _seconds(value: str) -> int:
    units = {"s": 1, "min": 60, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+)(s|min|m|h)", value)
    assert match, value
    return int(match.group(1)) * units[match.group(2)]


def test_healthcheck_start_period_covers_the_catch_up() -> None:
    """The container's HEALTHCHECK start period is as long as the systemd unit's start timeout:
    the server binds only after the catalog caught up with the vault."""
    health = instruction((ROOT / "Dockerfile").read_text(), "HEALTHCHECK")
    start_period = re.search(r"--start-period=(\S+)", health)
    assert start_period
    (timeout,) = unit_settings("seedvault.service")["TimeoutStartSec"]
    assert _seconds(start_period.group(1)) >= _seconds(timeout)
