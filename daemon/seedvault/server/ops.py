"""Operations endpoints: ``/healthz`` (the process answers) and ``/readyz`` (it can serve).

``/readyz`` reads the vault's format marker through the store and runs a catalog query, each
in a worker thread with a time limit; 503 names what is not reachable.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from seedvault.errors import SeedvaultError
from seedvault.server.state import STATE
from seedvault.vault import MARKER_KEY

log = structlog.get_logger(__name__)

READY_TIMEOUT_S = 5.0


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
    ready = all(v == "ok" for v in results.values())
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "checks": results},
        status=200 if ready else 503,
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
