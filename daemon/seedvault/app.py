"""The composition root: a node's vault, catalog and ingest pipeline, and the daemon around them.

Only ``app`` and ``cli`` import everything; the CLI commands, the server and the daemon all
open the node through :class:`Node`. :class:`Daemon` is ``seedvault run``: the scheduler (one
job per ``[[watch.hf]]``, captures through ``[daemon] max_captures`` slots, the daily fixity
scrub), the HTTP server in the same process, background services, signals and sd_notify:

* start: :meth:`Node.open` catches the catalog up with the vault (a crash between a ref and
  the catalog leaves it behind; the count is logged as ``catalog_caught_up``), jobs are
  scheduled, services started, the server bound, then ``READY=1``;
* SIGTERM/SIGINT: ``STOPPING=1``, ``/readyz`` turns 503, no new runs, running captures get
  ``[daemon] shutdown_timeout`` to finish (a second signal cuts that short) and are then
  cancelled — the vault stays valid, refs are written last — and the process exits 0;
* SIGHUP: the config file is loaded again; a bad one is rejected (logged with its key path)
  and the old one kept; otherwise added, removed and changed watches take effect at once and
  services are rebuilt. Other sections (vault, catalog, ingest, server, daemon) need a restart.

Modules only the daemon needs are imported when a :class:`Daemon` is built, so that ``seedvault
ls`` does not pay for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Protocol

import structlog

from seedvault import sdnotify
from seedvault.catalog import Catalog
from seedvault.config import Config, load_config
from seedvault.errors import ConfigError
from seedvault.ingest import Ingestor
from seedvault.metrics import DaemonMetrics
from seedvault.store import BACKENDS
from seedvault.store.base import Store
from seedvault.vault import Vault

if TYPE_CHECKING:
    from seedvault.scheduler import JobScheduler, Watches
    from seedvault.scrub import Scrubber

log = structlog.get_logger(__name__)

SCRUB_JOB = "fixity-scrub"
SCRUB_TICK_S = 3600.0
"""The scrub job wakes hourly and scrubs once per UTC day (catching up days missed)."""
SCRUB_FIRST_S = 60.0
RESTART_SECTIONS = ("vault", "catalog", "ingest", "server", "daemon")


def open_store(cfg: Config, env: dict[str, str] | None = None) -> Store:
    """The store the config names (secrets read from the environment here, and only here)."""
    environ = os.environ if env is None else env
    v = cfg.vault
    if v.backend == "s3":
        return BACKENDS["s3"](
            endpoint_url=v.endpoint_url,
            bucket=v.bucket,
            prefix=v.prefix,
            region=v.region,
            access_key=environ.get(v.access_key_env, ""),
            secret_key=environ.get(v.secret_key_env, ""),
            put_checksum=v.put_checksum,
        )
    return BACKENDS[v.backend](path=v.path)


@dataclass
class Node:
    """An opened node: vault + catalog + ingest pipeline. Use as a context manager."""

    config: Config
    vault: Vault
    catalog: Catalog
    ingestor: Ingestor
    caught_up: int = 0
    """Snapshots the catalog lacked when the node opened (it was behind the vault)."""

    @classmethod
    def open(cls, cfg: Config, *, create: bool = True) -> Node:
        """Open (and if need be initialise) the vault, then the catalog, catching it up.

        Raises:
            VaultFormatError, StoreError, CatalogError: as the parts raise them.
        """
        store = open_store(cfg)
        try:
            vault = Vault.open(store, create=create, max_chunk_bytes=cfg.vault.max_chunk_bytes)
            catalog = Catalog(cfg.catalog.path)
        except BaseException:
            store.close()
            raise
        added = catalog.catch_up(vault)
        ingestor = Ingestor(
            vault, concurrency=cfg.ingest.concurrency, zstd_level=cfg.ingest.zstd_level
        )
        return cls(cfg, vault, catalog, ingestor, added)

    def close(self) -> None:
        self.ingestor.close()
        self.catalog.close()
        self.vault.store.close()

    def __enter__(self) -> Node:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# ---------------------------------------------------------------------- extension points


class Service(Protocol):
    """A long-running part of the daemon besides the scheduler and the server."""

    def start(self) -> None:
        """Start working (as tasks of the running loop); return at once."""

    async def stop(self, timeout_s: float) -> None:
        """Finish what is in flight within ``timeout_s``, then cancel; release everything."""


ServiceFactory = Callable[[Node, Config], Sequence[Service]]


def background_services(node: Node, cfg: Config) -> list[Service]:
    """The daemon's background services for ``cfg`` (built at start and on every accepted
    SIGHUP; raise ConfigError to reject a reload).

    The alert dispatcher (``seedvault.notify``) is one: it delivers the outbox to every
    ``[[alerts.email]]`` and ``[[alerts.webhook]]`` destination, retrying across restarts.
    """
    if not (cfg.alerts.email or cfg.alerts.webhook):
        return []
    from seedvault.notify import Dispatcher

    return [Dispatcher.from_config(cfg, node.vault, node.catalog)]


def alert_counts(node: Node) -> dict[str, int]:
    """The outbox's alerts by state for ``/metrics``: ``seedvault_outbox_size`` (pending),
    ``seedvault_alerts_sent_total`` and ``seedvault_alerts_dead_lettered_total``.

    Read from the catalog's outbox (durable across restarts); called from a worker thread at
    each scrape.
    """
    from seedvault.notify import alert_metrics

    counts = alert_metrics(node.catalog)
    return {
        "seedvault_outbox_size": counts["seedvault_alerts_pending"],
        "seedvault_alerts_sent_total": counts["seedvault_alerts_sent_total"],
        "seedvault_alerts_dead_lettered_total": counts["seedvault_alerts_dead_lettered_total"],
    }


# ---------------------------------------------------------------------- the daemon


class Daemon:
    """``seedvault run`` on an opened node (see the module docstring)."""

    def __init__(
        self,
        node: Node,
        *,
        config_path: str | None,
        services: ServiceFactory = background_services,
        alerts: Callable[[Node], dict[str, int]] = alert_counts,
    ) -> None:
        from seedvault.scheduler import JobScheduler, Watches
        from seedvault.scrub import Scrubber

        self.node = node
        self.cfg = node.config
        self.config_path = config_path
        self.metrics = DaemonMetrics()
        self.scheduler: JobScheduler = JobScheduler(self.cfg.daemon.max_captures)
        self.watches: Watches = Watches(node, self.scheduler, self.metrics)
        self.watches.on_events = self._wake_services
        self.scrubber: Scrubber = Scrubber(
            node.vault,
            node.catalog,
            period_days=max(1, self.cfg.daemon.scrub_period.seconds // 86400),
            clients=self.watches.repair_client,
            zstd_level=self.cfg.ingest.zstd_level,
        )
        self._services_for = services
        self._services: list[Service] = []
        self._stop = asyncio.Event()
        self._force = asyncio.Event()
        self._stopping = False
        self._reload_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[bool]] = set()
        r = self.metrics.registry
        scheduler = self.scheduler
        r.gauge_fn(
            "seedvault_capture_queue_depth",
            "Captures waiting for a slot.",
            lambda: float(scheduler.waiting),
        )
        r.gauge_fn(
            "seedvault_captures_running",
            "Captures holding a slot.",
            lambda: float(scheduler.running),
        )
        r.gauge_fn("seedvault_watches", "Watches scheduled.", lambda: float(self.watches.count))
        r.gauge_fn(
            "seedvault_outbox_size",
            "Alerts waiting in the outbox.",
            lambda: float(alerts(node)["seedvault_outbox_size"]),
        )
        r.counter_fn(
            "seedvault_alerts_sent_total",
            "Alerts accepted by their destination (kept in the outbox: survives restarts).",
            lambda: float(alerts(node)["seedvault_alerts_sent_total"]),
        )
        r.counter_fn(
            "seedvault_alerts_dead_lettered_total",
            "Alerts given up on after [alerts] retry_for or a permanent refusal.",
            lambda: float(alerts(node)["seedvault_alerts_dead_lettered_total"]),
        )

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; 0 after a clean stop, 1 when the server could not start."""
        from seedvault.server import Ops, serve

        loop = asyncio.get_running_loop()
        handled = self._install_signals(loop)
        ready, server_stop = asyncio.Event(), asyncio.Event()
        server: asyncio.Task[None] | None = None
        code = 0
        try:
            self.scheduler.start()
            self.watches.apply(self.cfg)
            self.scheduler.set_job(
                SCRUB_JOB, self._scrub, SCRUB_TICK_S, gated=False, first_s=SCRUB_FIRST_S
            )
            self._start_services(list(self._services_for(self.node, self.cfg)))
            ops = Ops(self.metrics.registry, lambda: self._stopping)
            server = loop.create_task(
                serve(self.node, stop=server_stop, ops=ops, handle_signals=False, ready=ready)
            )
            await _first(ready.wait(), server)
            if not server.done():
                sdnotify.notify(sdnotify.READY, sdnotify.status(self._status()))
                log.info("daemon_ready", watches=self.watches.count, pid=os.getpid())
                await _first(self._stop.wait(), server)
            if server.done() and not self._stop.is_set():
                exc = server.exception()
                log.error("server_failed", error=str(exc) if exc else "stopped")
                code = 1
        finally:
            await self._shutdown(server, server_stop)
            for sig in handled:
                loop.remove_signal_handler(sig)
        return code

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        handled = []
        actions = {
            signal.SIGTERM: self.request_stop,
            signal.SIGINT: self.request_stop,
            signal.SIGHUP: self._spawn_reload,
        }
        for sig, action in actions.items():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, action)
                handled.append(sig)
        return handled

    def request_stop(self) -> None:
        """Begin the graceful stop; a second request cancels running captures at once."""
        if self._stop.is_set():
            log.warning("daemon_stop_forced")
            self._force.set()
        self._stop.set()

    async def _shutdown(
        self, server: asyncio.Task[None] | None, server_stop: asyncio.Event
    ) -> None:
        self._stopping = True
        sdnotify.notify(sdnotify.STOPPING, sdnotify.status("stopping: draining captures"))
        timeout_s = float(self.cfg.daemon.shutdown_timeout.seconds)
        log.info(
            "daemon_stopping",
            running=self.scheduler.running,
            waiting=self.scheduler.waiting,
            timeout_s=timeout_s,
        )
        server_stop.set()  # stop accepting; running downloads get the same timeout
        cancelled, _ = await asyncio.gather(
            self.scheduler.stop(timeout_s, self._force),
            self._stop_services(self._services, timeout_s),
        )
        if server is not None:
            with contextlib.suppress(Exception):
                await server
        for task in list(self._tasks):
            task.cancel()
        await self.watches.close()
        log.info("daemon_stopped", cancelled=cancelled)

    def _wake_services(self) -> None:
        """New events: services that deliver them (the alert dispatcher) look now, so urgent
        alerts go out at once rather than at their next periodic pass."""
        for service in self._services:
            wake = getattr(service, "wake", None)
            if callable(wake):
                wake()

    def _start_services(self, services: list[Service]) -> None:
        self._services = services
        for service in services:
            service.start()

    async def _stop_services(self, services: list[Service], timeout_s: float) -> None:
        for service in services:
            try:
                await service.stop(timeout_s)
            except Exception:
                log.exception("service_stop_failed", service=type(service).__name__)

    def _status(self) -> str:
        return f"serving on {self.cfg.server.listen}; {self.watches.count} watches"

    # -- config reload -------------------------------------------------------------------------

    def _spawn_reload(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> bool:
        """Load the config file again and apply it; False (old config kept) when it is bad."""
        async with self._reload_lock:
            if self._stopping:
                return False
            sdnotify.notify(sdnotify.RELOADING)
            log.info("config_reload_started", path=self.config_path or "built-in defaults")
            try:
                new = await asyncio.to_thread(load_config, self.config_path)
                merged = replace(self.cfg, watch=new.watch, hub=new.hub, alerts=new.alerts)
                services = list(self._services_for(self.node, merged))
            except ConfigError as exc:
                log.error("config_reload_rejected", error=str(exc), kept="the running config")
                self.metrics.config_reloads.inc(result="rejected")
                sdnotify.notify(sdnotify.READY, sdnotify.status(self._status()))
                return False
            stale = [s for s in RESTART_SECTIONS if getattr(new, s) != getattr(self.cfg, s)]
            if stale:
                log.warning("config_reload_needs_restart", sections=stale)
            self.cfg = merged
            self.watches.apply(merged)
            await self._stop_services(self._services, float(merged.daemon.shutdown_timeout.seconds))
            self._start_services(services)
            self.metrics.config_reloads.inc(result="applied")
            log.info("config_reloaded", path=self.config_path or "built-in defaults")
            sdnotify.notify(sdnotify.READY, sdnotify.status(self._status()))
            return True

    # -- the scrub -----------------------------------------------------------------------------

    async def _scrub(self) -> None:
        result = await self.scrubber.run()
        if result is None:
            return
        m, report = self.metrics, result.report
        m.fixity_checked.inc(report.snapshots, kind="snapshot")
        m.fixity_checked.inc(report.files_checked, kind="file")
        m.fixity_checked.inc(report.chunks_checked, kind="chunk")
        m.fixity_bytes.inc(report.bytes_checked)
        m.fixity_damaged.inc(len(report.damage))
        m.fixity_repaired.inc(len(result.repaired))
        m.fixity_unrepaired.set(len(result.unrepaired))
        m.fixity_last_run.set(time.time())
        for event in result.events:
            m.events.inc(type=event.type)


async def _first(*aws: Awaitable[object]) -> None:
    """Wait until the first of ``aws`` is done; a coroutine still pending is cancelled, a task
    passed in keeps running."""
    futures = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut, original in zip(futures, aws, strict=True):
            if fut is not original:
                fut.cancel()


def run_daemon(cfg: Config, config_path: str | None) -> int:
    """``seedvault run``: open the node, run the daemon until SIGTERM, return the exit status."""
    with Node.open(cfg) as node:
        if node.caught_up:
            log.warning("catalog_caught_up", snapshots=node.caught_up)
        else:
            log.info("catalog_up_to_date")
        return asyncio.run(Daemon(node, config_path=config_path).run())
