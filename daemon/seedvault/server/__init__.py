"""The node's HTTP server: Hub-compatible downloads, the /v1 JSON API, health endpoints.

:func:`make_app` builds the aiohttp application for an opened :class:`~seedvault.app.Node`
(the caller owns the node and closes it); :func:`serve` runs it on ``[server] listen`` until
SIGTERM/SIGINT (or ``stop``), then stops accepting, lets running downloads finish for up to
``[daemon] shutdown_timeout``, and releases the worker threads. The daemon (``seedvault run``)
passes ``handle_signals=False`` (it owns the signals), an :class:`~.ops.Ops` with its metrics,
and a ``ready`` event set once the socket is bound. Modules by concern:

* :mod:`.hf` — the Hub's read API (``HF_ENDPOINT=http://node:8470``), :mod:`.repos` resolves
  repo ids and revisions, :mod:`.hubfiles` the Hub's ETag and LFS conventions;
* :mod:`.api` — ``/v1/…`` (spec in :mod:`.openapi` and ``docs/api.md``), :mod:`.cursors`;
* :mod:`.content` — verified streaming with ranges; :mod:`.access` — node tokens and the
  access log (no headers logged, ever); :mod:`.ops` — ``/healthz``, ``/readyz``, ``/metrics``;
* :mod:`.state` — what the handlers share, owned by the app's cleanup context.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import structlog
from aiohttp import web

from seedvault.app import Node
from seedvault.config import parse_listen
from seedvault.server import api, feeds, hf
from seedvault.server import ops as ops_routes
from seedvault.server.access import AccessLogger, NodeTokens
from seedvault.server.ops import Ops
from seedvault.server.repos import Repos
from seedvault.server.state import (
    CHUNK_THREADS,
    STATE,
    STREAM_THREADS,
    WORKER_THREADS,
    ServerState,
)

__all__ = ["STATE", "Ops", "make_app", "parse_listen", "run_server", "serve"]

log = structlog.get_logger(__name__)

MAX_REQUEST_BODY_BYTES = 64 * 1024


def make_app(
    node: Node, *, tokens: NodeTokens | None = None, ops: Ops | None = None
) -> web.Application:
    """The server application for ``node``.

    ``tokens`` defaults to the node tokens in the env vars named by ``[server] tokens_env``.
    Links in responses are built from ``[server] public_url``. ``ops`` gives ``/metrics`` its
    registry and ``/readyz`` the daemon's state (default: build info only, never stopping).
    """
    app = web.Application(middlewares=[api.v1_errors], client_max_size=MAX_REQUEST_BODY_BYTES)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        pool = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="seedvault-serve")
        streams = ThreadPoolExecutor(STREAM_THREADS, thread_name_prefix="seedvault-stream")
        chunks = ThreadPoolExecutor(CHUNK_THREADS, thread_name_prefix="seedvault-chunk")
        repos = Repos(node)
        app[STATE] = ServerState(
            node=node,
            public_url=node.config.server.public_url,
            tokens=tokens
            if tokens is not None
            else NodeTokens.from_env(node.config.server.tokens_env),
            repos=repos,
            pool=pool,
            streams=streams,
            chunks=chunks,
        )
        try:
            yield
        finally:
            streams.shutdown(wait=True, cancel_futures=True)
            chunks.shutdown(wait=True, cancel_futures=True)
            pool.shutdown(wait=True, cancel_futures=True)
            repos.close()

    app.cleanup_ctx.append(lifecycle)
    ops_routes.add_routes(app, ops)
    api.add_routes(app)
    feeds.add_routes(app)
    app.router.add_get("/{tail:.*}", hf.dispatch)  # last: the Hub's paths start at the root
    return app


async def serve(
    node: Node,
    *,
    stop: asyncio.Event | None = None,
    ops: Ops | None = None,
    handle_signals: bool = True,
    ready: asyncio.Event | None = None,
) -> None:
    """Serve ``node`` on ``[server] listen`` until ``stop`` is set (or SIGTERM/SIGINT when
    ``handle_signals``); ``ready`` is set once the socket is bound.

    Raises:
        ConfigError: a malformed ``listen``.
        OSError: the address cannot be bound.
    """
    host, port = parse_listen(node.config.server.listen)
    runner = web.AppRunner(
        make_app(node, ops=ops),
        access_log_class=AccessLogger,
        handle_signals=False,
        shutdown_timeout=float(node.config.daemon.shutdown_timeout.seconds),
    )
    await runner.setup()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    try:
        await web.TCPSite(runner, host, port).start()
        for sig in (signal.SIGTERM, signal.SIGINT) if handle_signals else ():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
        log.info(
            "server_started", listen=f"{host}:{port}", public_url=node.config.server.public_url
        )
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("server_stopping")
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    log.info("server_stopped")


def run_server(node: Node) -> int:
    """``seedvault serve``: block serving ``node`` until SIGTERM/SIGINT; returns exit status 0."""
    asyncio.run(serve(node))
    return 0
