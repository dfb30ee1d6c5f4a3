"""Operations endpoints: ``/healthz`` (the process answers), ``/readyz`` (it can serve) and
``/metrics`` (Prometheus text format); and ``/``, a small JSON index of what the node serves
(the feeds' home page link points there).

``/readyz`` reads the vault's format marker through the store and runs a catalog query, each
in a worker thread with a time limit; 503 names what is not reachable (an fs vault directory
gone or replaced, an S3 endpoint down). A daemon that is shutting down also answers 503
(``"daemon": "stopping"``), so a load balancer stops sending it work while it drains.

``/metrics`` renders the :class:`~seedvault.metrics.Registry` the app was built with (the
daemon's counters and gauges; ``serve`` alone exposes only ``seedvault_build_info``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from seedvault.errors import SeedvaultError
from seedvault.metrics import CONTENT_TYPE, Registry, node_registry
from seedvault.server.state import STATE
from seedvault.vault import MARKER_KEY

log = structlog.get_logger(__name__)

READY_TIMEOUT_S = 5.0


def _never_stopping() -> bool:
    return False


@dataclass
class Ops:
    """What the operations endpoints report beyond the node itself."""

    metrics: Registry = field(default_factory=node_registry)
    stopping: Callable[[], bool] = _never_stopping
    """True once the daemon began shutting down (``/readyz`` then answers 503)."""


OPS = web.AppKey("seedvault_ops", Ops)


async def index(request: web.Request) -> web.Response:
    """``/``: where the Hub API, the /v1 API, the feeds and the docs are (absolute URLs)."""
    state = request.app[STATE]
    body: dict[str, object] = {
        "service": "seedvault",
        "about": "an archive of AI models: every snapshot it holds, read-only",
        "hub": {
            "endpoint": state.link(""),
            "usage": f"HF_ENDPOINT={state.link('')} hf download org/name",
        },
        "api": {
            "openapi": state.link("/v1/openapi.json"),
            "sources": state.link("/v1/sources"),
            "snapshots": state.link("/v1/snapshots"),
            "events": state.link("/v1/events"),
        },
        "docs": "docs/researcher-guide.md and docs/api.md in the seedvault source",
        "health": {"healthz": state.link("/healthz"), "readyz": state.link("/readyz")},
    }
    if state.node.config.alerts.feed.enabled:
        body["feeds"] = {
            "atom": state.link("/feeds/alerts.atom"),
            "json": state.link("/feeds/alerts.json"),
        }
    return web.json_response(body)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    checks = {
        "vault": lambda: state.node.vault.store.exists(MARKER_KEY),
        "catalog": lambda: state.node.catalog.snapshot_row("readyz") is None,
    }
    results: dict[str, str] = {}
    for name, check in checks.items():
        try:
            ok = await asyncio.wait_for(state.run(check), READY_TIMEOUT_S)
            results[name] = "ok" if ok else "missing"
        except (SeedvaultError, OSError, TimeoutError) as exc:
            log.warning("readiness_failed", component=name, error=type(exc).__name__)
            results[name] = "unreachable"
    if request.app[OPS].stopping():
        results["daemon"] = "stopping"
    ready = all(v == "ok" for v in results.values())
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "checks": results},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[OPS].metrics
    text = await asyncio.get_running_loop().run_in_executor(None, registry.render)
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def add_routes(app: web.Application, ops: Ops | None = None) -> None:
    app[OPS] = ops or Ops()
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
