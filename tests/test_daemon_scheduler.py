"""The scheduler in-process: a job never overlaps itself, captures wait for a free slot, a
reload's added/removed/changed watches become added/removed/rescheduled jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from structlog.testing import capture_logs

from seedvault.app import Node
from seedvault.config import load_config
from seedvault.events import Event
from seedvault.metrics import DaemonMetrics
from seedvault.provider import WatchResult
from seedvault.scheduler import JobScheduler, Watches
from tests.test_daemon_support import free_port, hf_watch, poll_until, write_config


async def test_a_job_never_overlaps_itself_and_captures_queue_for_a_slot() -> None:
    """Every 1 s, a run still going makes the next one skip (job_still_running); with one
    capture slot, a second job waits in the queue until the first frees it."""
    scheduler = JobScheduler(max_captures=1)
    release = asyncio.Event()
    runs = {"a": 0, "b": 0}

    def job(name: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            runs[name] += 1
            await release.wait()

        return run

    with capture_logs() as logs:
        scheduler.start()
        scheduler.set_job("a", job("a"), 1.0, first_s=0)
        scheduler.set_job("b", job("b"), 1.0, first_s=0)
        await poll_until("both jobs in", lambda: scheduler.running + scheduler.waiting == 2)
        assert (scheduler.running, scheduler.waiting) == (1, 1)
        await poll_until(
            "a skipped run", lambda: any(e["event"] == "job_still_running" for e in logs), 10
        )
        assert sum(runs.values()) == 1
        release.set()
        await poll_until("both ran", lambda: runs["a"] >= 1 and runs["b"] >= 1)
        assert await scheduler.stop(5.0) == 0


async def test_reload_adds_removes_and_reschedules_watches(tmp_path: Path) -> None:
    """apply() turns a new config's watch list into job changes (hub repos, provider pages,
    behaviour probes with their rescue checks)."""
    port = free_port()
    first = load_config(write_config(tmp_path, None, port, hf_watch("org/a") + hf_watch("org/b")))
    page = '[[watch.page]]\nid = "p"\nprovider = "openai"\nurl = "http://127.0.0.1:9/x"\n'
    page += '[[watch.models_api]]\nid = "api"\nflavor = "openai"\nbase_url = "http://127.0.0.1:9"\n'
    page += 'api_key_env = "PATH"\n'
    page += '[[watch.probes]]\nid = "q"\napi = "api"\nmodels = ["m"]\nevery = "2h"\n'
    second = load_config(
        write_config(tmp_path, None, port, hf_watch("org/a", "5s") + hf_watch("org/c") + page)
    )
    with Node.open(first) as node:
        scheduler = JobScheduler(max_captures=1)
        scheduler.start()
        watches = Watches(node, scheduler, DaemonMetrics())
        with capture_logs() as logs:
            watches.apply(first)
            assert scheduler.job_ids() == ["watch:hf:org/a", "watch:hf:org/b"]
            watches.apply(second)
            assert scheduler.job_ids() == [
                "watch:api:api",
                "watch:hf:org/a",
                "watch:hf:org/c",
                "watch:page:p",
                "watch:probes:q",
                "watch:rescue:q",
            ]
            assert scheduler.every_s("watch:hf:org/a") == 5.0
            assert scheduler.every_s("watch:probes:q") == 7200.0
            assert scheduler.every_s("watch:rescue:q") == 900.0
            watches.apply(second)
        scheduled = [e for e in logs if e["event"] == "watches_scheduled"]
        assert scheduled[1]["added"] == ["hf:org/c"]
        assert scheduled[1]["removed"] == ["hf:org/b"]
        assert scheduled[1]["changed"] == ["hf:org/a"]
        assert scheduled[2]["added"] == scheduled[2]["changed"] == []
        watches.apply(first)
        assert scheduler.job_ids() == ["watch:hf:org/a", "watch:hf:org/b"]
        await scheduler.stop(1.0)
        await watches.close()


async def test_a_deprecation_runs_the_rescue_checks_at_once(tmp_path: Path) -> None:
    """A provider poll that records `deprecated` moves every probes watch's rescue check to
    now; other events leave it at its time."""
    watches_toml = (
        '[[watch.models_api]]\nid = "api"\nflavor = "openai"\nbase_url = "http://127.0.0.1:9"\n'
        'api_key_env = "PATH"\n'
        '[[watch.probes]]\nid = "q"\napi = "api"\nmodels = ["m"]\nevery = "24h"\n'
    )
    cfg = load_config(write_config(tmp_path, None, free_port(), watches_toml))
    with Node.open(cfg) as node:
        scheduler = JobScheduler(max_captures=1)
        scheduler.start()
        watches = Watches(node, scheduler, DaemonMetrics())
        watches.apply(cfg)
        job = scheduler._aps.get_job("watch:rescue:q")
        far = datetime.now(UTC) + timedelta(hours=1)
        job.modify(next_run_time=far)

        def result(event_type: str) -> WatchResult:
            event = Event(event_type, "page/p", {"provider": "openai", "model": "m"}, "x")
            return WatchResult("page/p", "captured", (event,))

        watches._account_provider("page:p", [result("replacement_changed")])
        assert scheduler._aps.get_job("watch:rescue:q").next_run_time == far
        watches._account_provider("page:p", [result("deprecated")])
        soon = scheduler._aps.get_job("watch:rescue:q").next_run_time
        assert soon < datetime.now(UTC) + timedelta(seconds=5)
        await scheduler.stop(1.0)
        await watches.close()
