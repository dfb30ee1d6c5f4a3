"""Signals: SIGTERM drains then cancels and exits 0, SIGKILL is recovered by a restart, SIGHUP
reloads the config (a broken file is rejected and the running config kept).

A capture is held "in flight" by stalling the fake Hub's CDN (the LFS download) for a few
seconds; the tests wait until the CDN received that request before sending the signal.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.fakehub import FakeHub
from tests.helpers import random_bytes
from tests.test_daemon_support import (
    Daemons,
    cli,
    free_port,
    hf_watch,
    ls_json,
    poll_until,
    write_config,
)

WATCH = {"watch": "hf:org/m"}


def cdn_requested(hub: FakeHub) -> bool:
    return any(r.server == "cdn" for r in hub.requests)


async def test_sigterm_mid_capture_cancels_after_the_timeout_and_exits_0(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """A capture still running when shutdown_timeout (1 s) ends is cancelled; exit 0 well
    within the timeout plus slack; nothing half-done is listed and the vault verifies."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"model.safetensors": random_bytes(200_000, 1)})
    fake_hub.stall_next(1, delay_s=3.0, scope="cdn")
    config = write_config(
        tmp_path, fake_hub, free_port(), hf_watch("org/m"), '[daemon]\nshutdown_timeout = "1s"\n'
    )
    with Daemons() as daemons:
        daemon = daemons.start(tmp_path, config)
        await poll_until("the LFS download to start", lambda: cdn_requested(fake_hub))
        started = time.monotonic()
        code = await daemon.stop(within_s=10)
        elapsed = time.monotonic() - started
        assert code == 0, daemon.tail()
        assert elapsed < 1 + 3, elapsed
        assert daemon.logged("drain_cancelled", cancelled=1)
        assert not daemon.logged("capture_done")
    assert await ls_json(tmp_path) == []
    verified = await cli(tmp_path, "verify")
    assert verified.returncode == 0, verified.stdout


async def test_sigterm_mid_capture_lets_it_finish_within_the_timeout(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """With time left (shutdown_timeout 30 s), SIGTERM waits for the running capture: it is
    committed, then the daemon exits 0."""
    repo = fake_hub.create_repo("org/m")
    commit = repo.commit({"model.safetensors": random_bytes(200_000, 2)})
    fake_hub.stall_next(1, delay_s=1.0, scope="cdn")
    config = write_config(tmp_path, fake_hub, free_port(), hf_watch("org/m"))
    with Daemons() as daemons:
        daemon = daemons.start(tmp_path, config)
        await poll_until("the LFS download to start", lambda: cdn_requested(fake_hub))
        assert await daemon.stop() == 0, daemon.tail()
        assert daemon.logged("capture_done", commit=commit)
        assert daemon.logged("drain_started", running=1)
    assert [row["commit"] for row in await ls_json(tmp_path)] == [commit]
    assert (await cli(tmp_path, "verify")).returncode == 0


async def test_sigkill_mid_capture_then_restart_completes_it(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """Killed (SIGKILL, from the fs store's fault hook) after a few objects of a capture, the
    restarted daemon captures the revision; the vault verifies after the kill and after."""
    repo = fake_hub.create_repo("org/m", gitattributes=False)
    files = {f"shard-{i}.bin": random_bytes(1_200_000, 10 + i) for i in range(4)}
    commit = repo.commit(files)
    config = write_config(
        tmp_path, fake_hub, free_port(), hf_watch("org/m"), "[ingest]\nfile_concurrency = 1\n"
    )
    with Daemons() as daemons:
        killed = daemons.start(tmp_path, config, {"SEEDVAULT_FAULT_KILL_AFTER_PUTS": "5"})
        assert await killed.wait_exit() == -signal.SIGKILL
        assert killed.logged("daemon_ready")
        assert not killed.logged("capture_done")
        assert await ls_json(tmp_path) == []
        assert (await cli(tmp_path, "verify")).returncode == 0

        daemon = daemons.start(tmp_path, config)
        await daemon.wait_metric("seedvault_captures_total", 1, outcome="captured", **WATCH)
        assert await daemon.stop() == 0
    assert [row["commit"] for row in await ls_json(tmp_path)] == [commit]
    verified = await cli(tmp_path, "verify")
    assert verified.returncode == 0, verified.stdout


async def test_sighup_adds_a_watch_and_rejects_a_broken_file(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """SIGHUP with a new [[watch.hf]] starts polling it; SIGHUP with a bad duration is rejected,
    the log names the key, and the running config keeps working."""
    fake_hub.create_repo("org/m").commit({"a.txt": b"a"})
    other = fake_hub.create_repo("org/n")
    other.commit({"b.txt": b"b"})
    port = free_port()
    config = write_config(tmp_path, fake_hub, port, hf_watch("org/m"))
    with Daemons() as daemons:
        daemon = daemons.start(tmp_path, config)
        await daemon.wait_metric("seedvault_captures_total", 1, outcome="captured", **WATCH)

        write_config(tmp_path, fake_hub, port, hf_watch("org/m") + hf_watch("org/n"))
        daemon.signal(signal.SIGHUP)
        await daemon.wait_log("watches_scheduled", added=["hf:org/n"])
        await daemon.wait_metric(
            "seedvault_captures_total", 1, outcome="captured", watch="hf:org/n"
        )

        write_config(tmp_path, fake_hub, port, hf_watch("org/m") + hf_watch("org/n", "often"))
        daemon.signal(signal.SIGHUP)
        rejected = await daemon.wait_log("config_reload_rejected")
        assert "watch.hf[1].every" in rejected["error"]
        newer = other.commit({"b.txt": b"b2"})
        await daemon.wait_metric(
            "seedvault_captures_total", 2, outcome="captured", watch="hf:org/n"
        )
        assert daemon.logged("capture_done", commit=newer)
        assert await daemon.stop() == 0
