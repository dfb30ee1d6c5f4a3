"""`seedvault run` as a real process watching the fake Hub: captures, metrics, readiness.

The daemon polls every 2 s; the tests wait for log events and metric values with deadlines.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakehub import FakeHub
from tests.helpers import float_weights, safetensors_bytes
from tests.test_daemon_support import (
    Daemons,
    cli,
    free_port,
    hf_watch,
    ls_json,
    write_config,
)

WEIGHTS = safetensors_bytes({"w": ("BF16", float_weights(300_000, 1))})


async def test_run_captures_each_new_commit_and_reports_it(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """The first revision is captured, then the commit the Hub advances to; /metrics and
    `seedvault ls` tell the same story; SIGTERM exits 0 and the vault verifies."""
    repo = fake_hub.create_repo("org/m")
    first = repo.commit({"config.json": b'{"v": 1}', "model.safetensors": WEIGHTS})
    config = write_config(tmp_path, fake_hub, free_port(), hf_watch("org/m"))
    watch = {"watch": "hf:org/m"}
    with Daemons() as daemons:
        daemon = daemons.start(tmp_path, config)
        await daemon.wait_log("daemon_ready")
        await daemon.wait_metric("seedvault_captures_total", 1, outcome="captured", **watch)
        second = repo.commit({"config.json": b'{"v": 2}'})
        await daemon.wait_metric("seedvault_captures_total", 2, outcome="captured", **watch)

        listed = await ls_json(tmp_path)
        metrics = await daemon.metrics()

        def value(name: str, **labels: str) -> float:
            return metrics.get((name, frozenset(labels.items())), 0.0)

        assert [row["commit"] for row in listed] == [second, first]
        assert value("seedvault_captures_total", outcome="captured", **watch) == len(listed)
        downloaded = sum(f.size for f in repo.files(first).values()) + len(b'{"v": 2}')
        assert value("seedvault_bytes_ingested_total", **watch) == downloaded
        assert value("seedvault_bytes_stored_total", **watch) > 0
        assert value("seedvault_last_success_timestamp_seconds", **watch) > 0
        assert value("seedvault_events_total", type="revision_new") == 2
        assert value("seedvault_capture_queue_depth") == 0
        assert value("seedvault_outbox_size") == 0
        assert value("seedvault_watches") == 1
        captured = [r for r in daemon.logged("capture_done") if r["created"]]
        assert [r["commit"] for r in captured] == [first, second]
        assert all(r["watch"] == "hf:org/m" for r in captured)

        assert await daemon.stop() == 0
        assert daemon.logged("daemon_stopped")
    verified = await cli(tmp_path, "verify")
    assert verified.returncode == 0, verified.stdout


async def test_readyz_fails_while_the_vault_is_unreachable(tmp_path: Path) -> None:
    """/readyz answers 503 naming the vault while its directory is replaced by a file, 200
    again once it is back; /healthz stays 200 throughout."""
    config = write_config(tmp_path, None, free_port())
    with Daemons() as daemons:
        daemon = daemons.start(tmp_path, config)
        await daemon.wait_log("daemon_ready")
        assert (await daemon.get("/readyz"))[0] == 200
        vault, away = tmp_path / "vault", tmp_path / "vault.away"
        vault.rename(away)
        vault.write_text("not a vault any more")

        status, body = await daemon.get("/readyz")
        assert status == 503
        assert json.loads(body)["checks"]["vault"] != "ok"
        assert (await daemon.get("/healthz"))[0] == 200

        vault.unlink()
        away.rename(vault)
        assert (await daemon.get("/readyz"))[0] == 200
        assert await daemon.stop() == 0


async def test_catalog_behind_the_vault_is_caught_up_at_start(
    fake_hub: FakeHub, tmp_path: Path
) -> None:
    """A catalog that lost snapshots (a crash between the ref and the catalog; here: deleted)
    is caught up when `run` starts, and the count is logged; `reindex` after deleting the
    catalog gives the same `ls` output."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"{}"})
    write_config(tmp_path, fake_hub, free_port())
    assert (await cli(tmp_path, "snapshot", "hf:org/m")).returncode == 0
    repo.commit({"config.json": b'{"x": 1}'})
    assert (await cli(tmp_path, "snapshot", "hf:org/m")).returncode == 0
    before = (await cli(tmp_path, "ls")).stdout
    assert len(before.splitlines()) == 2

    catalog = tmp_path / "catalog.sqlite"
    catalog.unlink()
    assert (await cli(tmp_path, "reindex")).returncode == 0
    assert (await cli(tmp_path, "ls")).stdout == before

    for name in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with Daemons() as daemons:
        daemon = daemons.start(tmp_path, tmp_path / "seedvault.toml")
        record = await daemon.wait_log("catalog_caught_up")
        assert record["snapshots"] == 2
        await daemon.wait_log("daemon_ready")
        assert await daemon.stop() == 0
    assert (await cli(tmp_path, "ls")).stdout == before
