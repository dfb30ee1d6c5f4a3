"""Server state: what every handler shares, owned by the app's cleanup context.

One :class:`ServerState` per application, under the typed key :data:`STATE`: the node (vault +
catalog), the repo resolver, node tokens, the cursor key, the public URL, and a worker thread
pool. Everything that may block — the catalog's SQLite, the vault's store (boto3 for S3),
decoding and verifying chunks — runs in worker threads, never on the event loop: short calls
in ``pool`` through :meth:`ServerState.run`, and each download's chunk reader in ``streams``,
so that slow downloads can never take the threads every other request needs.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from aiohttp import web

from seedvault.app import Node
from seedvault.events import Event, record_event
from seedvault.scrub import MAX_LISTED
from seedvault.server.access import NodeTokens
from seedvault.server.cursors import CursorCodec
from seedvault.server.repos import Repos
from seedvault.vault import sharded

log = structlog.get_logger(__name__)

T = TypeVar("T")

WORKER_THREADS = 32
STREAM_THREADS = 64
"""Downloads streamed at once (one reader thread each); more wait for a free reader."""
CHUNK_THREADS = 16
"""Chunk fetches and decodes at once, across all downloads."""


@dataclass
class ServerState:
    """Shared by every handler of one application."""

    node: Node
    public_url: str
    tokens: NodeTokens
    repos: Repos
    pool: ThreadPoolExecutor
    streams: ThreadPoolExecutor
    chunks: ThreadPoolExecutor
    cursors: CursorCodec = field(default_factory=CursorCodec)
    damage_reported: set[str] = field(default_factory=set)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking call in the server's worker threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    def link(self, path_and_query: str) -> str:
        """An absolute URL on this server (``[server] public_url`` + path)."""
        return self.public_url.rstrip("/") + path_and_query

    def report_damage(self, blake3: str, problem: str, uses: list[tuple[str, str]]) -> None:
        """Journal ``fixity_failed`` (and record the event) for a file found damaged on read.

        Once per file per server process: a client retrying a broken download would otherwise
        journal the same damage on every attempt. Blocking: call it through :meth:`run`.
        """
        if blake3 in self.damage_reported:
            return
        self.damage_reported.add(blake3)
        obj = sharded("files", blake3)
        snapshots = [{"snapshot": s, "path": p} for s, p in sorted(uses)]
        log.error("fixity_failed", object=obj, problem=problem, snapshots=len(snapshots))
        vault, catalog = self.node.vault, self.node.catalog
        vault.journal(
            "fixity_failed",
            object=obj,
            problem=problem,
            files=[blake3],
            snapshots=snapshots,
            detected_by="server",
        )
        for source in sorted({catalog_source(self, s) for s, _ in uses} - {""}):
            record_event(
                vault,
                catalog,
                Event(
                    type="fixity_failed",
                    source=source,
                    subject={"object": obj},
                    evidence=blake3,
                    payload={
                        "problem": problem,
                        "files": [blake3],
                        "snapshots": snapshots[:MAX_LISTED],
                        "snapshots_total": len(snapshots),
                        "detected_by": "server",
                    },  # the scrub's fields (scrub._payload): one shape for the alerts
                ),
            )


def catalog_source(state: ServerState, snapshot_id: str) -> str:
    row = state.node.catalog.snapshot_row(snapshot_id)
    return row.source_key if row is not None else ""


STATE = web.AppKey("seedvault_state", ServerState)
