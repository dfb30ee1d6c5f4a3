"""The scheduler: one APScheduler job per watch, captures through a bounded gate, drain on stop.

:class:`Watches` turns the ``[[watch.hf]]`` entries of the config into jobs (and a reload's
changes into added, removed and rescheduled jobs); :class:`JobScheduler` runs them.

:class:`JobScheduler` wraps an APScheduler 3.x ``AsyncIOScheduler`` (UTC, in-memory jobs, on the
daemon's event loop). Each job has an interval with jitter, ``max_instances=1`` (a watch never
overlaps itself: a run still going when the next is due makes APScheduler skip that run, logged
as ``job_still_running``), ``coalesce=True`` (runs missed while the loop was busy or the machine
slept collapse into one) and a misfire grace of one interval. The first run of a new job comes
after a random delay of at most :data:`FIRST_RUN_SPREAD_S` (or its interval): soon after a
start — a restart after a crash completes what was interrupted — but not all in the same
instant (the capture gate and the Hub client's call budget bound the load anyway).

Gated jobs (captures) wait for one of ``max_captures`` slots; the number waiting is the queue
depth. Since a watch has at most one run in flight, the queue holds at most one entry per watch.

:meth:`JobScheduler.stop` is the SIGTERM path (arq-like): stop firing jobs, drop runs still
waiting for a slot, give running ones ``timeout_s`` to finish (or until ``force`` is set), then
cancel the rest and wait for their cleanup. A cancelled capture leaves the vault valid: refs
are written last.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import structlog

# APScheduler 3.x ships no type information
from apscheduler.events import (  # type: ignore[import-untyped]
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]

from seedvault.config import Config, HfWatch, ModelsApiWatch, PageWatch, ProbesWatch
from seedvault.errors import SeedvaultError
from seedvault.metrics import DaemonMetrics
from seedvault.mirror import HfTarget, PollResult, hub_client, poll_hf
from seedvault.sources.hf import HubClient

if TYPE_CHECKING:
    from seedvault.app import Node
    from seedvault.events import Event
    from seedvault.provider import WatchResult

log = structlog.get_logger(__name__)

FIRST_RUN_SPREAD_S = 5.0
RESCUE_CHECK_S = 900
"""How often, at most, a probes watch looks for due rescue runs (seconds)."""
RESCUE_TRIGGERS = frozenset({"deprecated", "shutdown_date_set", "shutdown_date_moved"})
"""Events after which the rescue checks run at once."""
MAX_JITTER_S = 300.0
JobFunc = Callable[[], Awaitable[None]]


def jitter_s(every_s: float) -> float:
    """Random delay added to each run: a tenth of the interval, at most :data:`MAX_JITTER_S`."""
    return min(every_s / 10.0, MAX_JITTER_S)


@dataclass(frozen=True)
class JobSpec:
    """What a job runs and how often."""

    func: JobFunc
    every_s: float
    gated: bool


class JobScheduler:
    """Interval jobs on the running event loop, with a capture gate and a draining stop."""

    def __init__(self, max_captures: int, *, rng: random.Random | None = None) -> None:
        self._aps = AsyncIOScheduler(timezone=UTC)
        self._aps.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self._slots = asyncio.Semaphore(max(1, max_captures))
        self._jobs: dict[str, JobSpec] = {}
        self._waiting: set[asyncio.Task[None]] = set()
        self._active: set[asyncio.Task[None]] = set()
        self._captures = 0
        self._stopping = False
        self._rng = rng or random.Random()

    @property
    def waiting(self) -> int:
        """Gated runs waiting for a slot (the capture queue depth)."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        """Gated runs holding a slot (captures running)."""
        return self._captures

    def job_ids(self) -> list[str]:
        return sorted(self._jobs)

    def every_s(self, job_id: str) -> float | None:
        """The interval of ``job_id`` (None: no such job)."""
        spec = self._jobs.get(job_id)
        return spec.every_s if spec is not None else None

    def start(self) -> None:
        self._aps.start()

    def set_job(
        self, job_id: str, func: JobFunc, every_s: float, *, gated: bool = True, first_s: float = -1
    ) -> None:
        """Add job ``job_id``, or replace it (a run in flight finishes with the old settings).

        ``first_s`` is the delay of the first run; negative picks a random one.
        """
        spec = JobSpec(func, max(1.0, every_s), gated)
        old = self._jobs.get(job_id)
        self._jobs[job_id] = spec
        if old is not None and old.every_s == spec.every_s:
            return  # same timing: the next run picks up the new spec
        if first_s < 0:
            first_s = self._rng.uniform(0.0, min(spec.every_s, FIRST_RUN_SPREAD_S))
        self._aps.add_job(
            self._run,
            IntervalTrigger(seconds=spec.every_s, jitter=jitter_s(spec.every_s), timezone=UTC),
            args=[job_id],
            id=job_id,
            name=job_id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(spec.every_s)),
            next_run_time=datetime.now(UTC) + timedelta(seconds=first_s),
            replace_existing=True,
        )

    def run_soon(self, job_id: str) -> None:
        """Run ``job_id`` now instead of at its next time (no-op for an unknown job)."""
        if job_id in self._jobs:
            with contextlib.suppress(LookupError):
                self._aps.modify_job(job_id, next_run_time=datetime.now(UTC))

    def remove_job(self, job_id: str) -> None:
        """Stop scheduling ``job_id`` (a run in flight finishes)."""
        if self._jobs.pop(job_id, None) is not None:
            with contextlib.suppress(LookupError):
                self._aps.remove_job(job_id)

    async def _run(self, job_id: str) -> None:
        spec = self._jobs.get(job_id)
        if spec is None or self._stopping:
            return
        task = asyncio.current_task()
        assert task is not None
        try:
            if spec.gated:
                self._waiting.add(task)
                try:
                    await self._slots.acquire()
                finally:
                    self._waiting.discard(task)
                if self._stopping:
                    self._slots.release()
                    return
                self._captures += 1
            self._active.add(task)
            try:
                await spec.func()
            finally:
                self._active.discard(task)
                if spec.gated:
                    self._captures -= 1
                    self._slots.release()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            log.warning("job_cancelled", job=job_id)
        except Exception:
            log.exception("job_failed", job=job_id)

    def _on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            log.info("job_still_running", job=event.job_id)
        else:
            log.warning("job_missed", job=event.job_id)

    async def stop(self, timeout_s: float, force: asyncio.Event | None = None) -> int:
        """Stop firing, drop waiting runs, drain running ones, then cancel; returns how many
        runs were cancelled mid-way."""
        self._stopping = True
        if self._aps.running:
            self._aps.pause()
        for task in list(self._waiting):
            task.cancel()
        running = set(self._active)
        cancelled = 0
        if running:
            log.info("drain_started", running=len(running), timeout_s=timeout_s)
            waiters: set[asyncio.Future[object]] = {asyncio.ensure_future(asyncio.wait(running))}
            if force is not None:
                waiters.add(asyncio.ensure_future(force.wait()))
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            late = [t for t in running if not t.done()]
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
                log.warning("drain_cancelled", cancelled=len(late))
            cancelled = len(late)
        if self._aps.running:
            self._aps.shutdown(wait=False)
        await asyncio.sleep(0)  # let the scheduler's deferred shutdown run
        return cancelled


def watch_id(watch: HfWatch) -> str:
    """A ``[[watch.hf]]``'s id (its job name and metrics label): ``id``, else ``hf:<repo>``."""
    return watch.id or f"hf:{watch.repo}"


class Watches:
    """The watch jobs: ``[[watch.hf]]`` polled with :func:`~seedvault.mirror.poll_hf` through
    one shared :class:`HubClient` per endpoint + token (one API budget each);
    ``[[watch.models_api]]`` and ``[[watch.page]]`` with :mod:`seedvault.provider` (jobs
    ``watch:api:<id>`` and ``watch:page:<id>``, each followed by the page/list cross-checks);
    ``[[watch.probes]]`` runs its suite on every model each ``every`` (job
    ``watch:probes:<id>``) and checks for due rescue runs every :data:`RESCUE_CHECK_S` at most
    (job ``watch:rescue:<id>``, also run at once after a provider poll that recorded a
    ``deprecated`` or shutdown-date event); every poll counted in the daemon's metrics."""

    def __init__(self, node: Node, scheduler: JobScheduler, metrics: DaemonMetrics) -> None:
        self.node, self.scheduler, self.metrics = node, scheduler, metrics
        self.on_events: Callable[[], None] | None = None
        """Called after a poll recorded events (the daemon wakes the alert dispatcher)."""
        self.cfg = node.config
        self.watches: dict[str, HfWatch] = {}
        self._clients: dict[tuple[str, str, int], HubClient] = {}
        self._retired: list[HubClient] = []
        self.probes: dict[str, ProbesWatch] = {}
        self.providers: dict[str, ModelsApiWatch | PageWatch] = {}

    @property
    def count(self) -> int:
        """Watches scheduled, of every kind (``[[watch.hf]]``, ``models_api``, ``page``,
        ``probes``)."""
        return len(self.watches) + len(self.providers) + len(self.probes)

    def apply(self, cfg: Config) -> None:
        """Schedule ``cfg``'s watches: add new ones, drop removed ones, reschedule changed ones
        (a poll in flight finishes with the settings it started with)."""
        if cfg.hub != self.cfg.hub:  # later polls get new clients; running ones keep theirs
            self._retired += self._clients.values()
            self._clients = {}
        self.cfg = cfg
        wanted = {watch_id(w): w for w in cfg.watch.hf}
        added = sorted(set(wanted) - set(self.watches))
        removed = sorted(set(self.watches) - set(wanted))
        changed = sorted(w for w in set(wanted) & set(self.watches) if wanted[w] != self.watches[w])
        self.watches = wanted
        for wid in removed:
            self.scheduler.remove_job(f"watch:{wid}")
        for wid in added + changed:
            poll = functools.partial(self.poll, wid)
            self.scheduler.set_job(f"watch:{wid}", poll, float(wanted[wid].every.seconds))
        providers: dict[str, ModelsApiWatch | PageWatch] = {
            **{f"api:{w.id}": w for w in cfg.watch.models_api},
            **{f"page:{w.id}": w for w in cfg.watch.page},
        }
        for pid in sorted(set(self.providers) - set(providers)):
            self.scheduler.remove_job(f"watch:{pid}")
        for pid, pwatch in sorted(providers.items()):
            if self.providers.get(pid) != pwatch:
                poll_p = functools.partial(self.poll_provider, pid)
                self.scheduler.set_job(f"watch:{pid}", poll_p, float(pwatch.every.seconds))
        self.providers = providers
        probes = {w.id: w for w in cfg.watch.probes}
        for wid in sorted(set(self.probes) - set(probes)):
            self.scheduler.remove_job(f"watch:probes:{wid}")
            self.scheduler.remove_job(f"watch:rescue:{wid}")
        for wid, pw in sorted(probes.items()):
            if self.probes.get(wid) != pw:
                run = functools.partial(self.poll_probes, wid)
                self.scheduler.set_job(f"watch:probes:{wid}", run, float(pw.every.seconds))
                check = functools.partial(self.poll_probes, wid, rescue=True)
                every = float(min(pw.every.seconds, RESCUE_CHECK_S))
                self.scheduler.set_job(f"watch:rescue:{wid}", check, every)
        self.probes = probes
        log.info(
            "watches_scheduled",
            watches=sorted(wanted),
            providers=sorted(providers),
            probes=sorted(probes),
            added=added,
            removed=removed,
            changed=changed,
        )

    def client(self, watch: HfWatch | None) -> HubClient:
        """The shared client of a watch's endpoint and token (None: the ``[hub]`` defaults)."""
        endpoint = ((watch.endpoint if watch else "") or self.cfg.hub.endpoint).rstrip("/")
        token_env = (watch.token_env if watch else "") or self.cfg.hub.token_env
        key = (endpoint, token_env, self.cfg.hub.requests_per_5min)
        if key not in self._clients:
            self._clients[key] = hub_client(self.cfg, watch)
        return self._clients[key]

    def repair_client(self, endpoint: str, repo: str) -> HubClient | None:
        """The client to fetch ``repo`` again from ``endpoint`` for a fixity repair: its watch's,
        the ``[hub]`` one on the ``[hub]`` endpoint, else anonymous (a token never goes to a
        host it was not configured for)."""
        endpoint, hub = endpoint.rstrip("/"), self.cfg.hub.endpoint.rstrip("/")
        for watch in self.watches.values():
            if watch.repo == repo and (watch.endpoint or hub).rstrip("/") == endpoint:
                return self.client(watch)
        if endpoint == hub:
            return self.client(None)
        key = (endpoint, "", self.cfg.hub.requests_per_5min)
        if key not in self._clients:
            self._clients[key] = HubClient(endpoint, None, self.cfg.hub.requests_per_5min)
        return self._clients[key]

    async def poll(self, wid: str) -> None:
        """One scheduled poll of watch ``wid`` (upstream trouble becomes events, not errors)."""
        watch = self.watches.get(wid)
        if watch is None:
            return  # removed by a reload while waiting for a slot
        structlog.contextvars.bind_contextvars(watch=wid)
        try:
            result = await poll_hf(
                HfTarget.from_watch(watch),
                client=self.client(watch),
                vault=self.node.vault,
                catalog=self.node.catalog,
                ingestor=self.node.ingestor,
                trigger="scheduled",
                file_concurrency=self.cfg.ingest.file_concurrency,
            )
        except SeedvaultError as exc:  # the vault or catalog failed: try again next time
            log.error("watch_failed", error=str(exc), error_type=type(exc).__name__)
            self.metrics.captures.inc(watch=wid, outcome="error")
            return
        finally:
            structlog.contextvars.unbind_contextvars("watch")
        self._account(wid, result)

    async def poll_provider(self, pid: str) -> None:
        """One scheduled poll of a models list or a deprecation page, then the cross-checks
        between pages and lists (upstream trouble becomes events, not errors)."""
        from seedvault import provider  # only nodes that watch providers load it

        watch = self.providers.get(pid)
        if watch is None:
            return
        node = self.node
        structlog.contextvars.bind_contextvars(watch=pid)
        try:
            result, crossed = await provider.poll_watch(
                watch,
                self.cfg.watch.models_api,
                self.cfg.watch.page,
                vault=node.vault,
                catalog=node.catalog,
                ingestor=node.ingestor,
            )
        except SeedvaultError as exc:  # the vault or catalog failed: try again next time
            log.error("watch_failed", error=str(exc), error_type=type(exc).__name__)
            self.metrics.captures.inc(watch=pid, outcome="error")
            return
        finally:
            structlog.contextvars.unbind_contextvars("watch")
        self._account_provider(pid, [result], crossed)

    async def poll_probes(self, wid: str, rescue: bool = False) -> None:
        """One scheduled run of ``[[watch.probes]]`` ``wid`` on every model, or (``rescue``)
        the rescue runs now due (usually none)."""
        from seedvault import probing

        watch = self.probes.get(wid)
        api = self._probe_api(watch)
        if watch is None or api is None:
            return
        node, pid = self.node, f"probes:{wid}"
        vault, catalog, ingestor = node.vault, node.catalog, node.ingestor
        structlog.contextvars.bind_contextvars(watch=pid)
        try:
            if rescue:
                results = await probing.rescue_probes(
                    watch, api, vault=vault, catalog=catalog, ingestor=ingestor
                )
            else:
                results = [
                    await probing.poll_probes(
                        watch, api, model, vault=vault, catalog=catalog, ingestor=ingestor
                    )
                    for model in watch.models
                ]
        except SeedvaultError as exc:
            log.error("watch_failed", error=str(exc), error_type=type(exc).__name__)
            self.metrics.captures.inc(watch=pid, outcome="error")
            return
        finally:
            structlog.contextvars.unbind_contextvars("watch")
        self._account_provider(pid, results)

    def _probe_api(self, watch: ProbesWatch | None) -> ModelsApiWatch | None:
        if watch is None:
            return None  # removed by a reload while waiting for a slot
        for api in self.cfg.watch.models_api:
            if api.id == watch.api:
                return api
        return None  # pragma: no cover - refused when the config is loaded

    def _account_provider(
        self, pid: str, results: Sequence[WatchResult], more: Sequence[Event] = ()
    ) -> None:
        for result in results:
            self.metrics.captures.inc(watch=pid, outcome=result.status)
            if result.ok:
                self.metrics.last_success.set(time.time(), watch=pid)
        events = [*(e for r in results for e in r.events), *more]
        for event in events:
            self.metrics.events.inc(type=event.type)
        if events and self.on_events is not None:
            self.on_events()
        if any(e.type in RESCUE_TRIGGERS for e in events):
            for wid in self.probes:
                self.scheduler.run_soon(f"watch:rescue:{wid}")

    def _account(self, wid: str, result: PollResult) -> None:
        m = self.metrics
        statuses: list[str] = [o.status for o in result.outcomes]
        if not statuses:
            statuses = ["blocked" if result.blocked else "failed"]
        for status in statuses:
            m.captures.inc(watch=wid, outcome=status)
        for outcome in result.outcomes:
            if outcome.capture is not None:
                m.bytes_ingested.inc(outcome.capture.bytes_read, watch=wid)
                m.bytes_stored.inc(outcome.capture.bytes_stored, watch=wid)
        if result.ok and result.outcomes:
            m.last_success.set(time.time(), watch=wid)
        for event in result.events:
            m.events.inc(type=event.type)
        if result.events and self.on_events is not None:
            self.on_events()

    async def close(self) -> None:
        for client in [*self._clients.values(), *self._retired]:
            await client.close()
