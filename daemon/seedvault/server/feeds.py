"""Alert feeds over HTTP: ``/feeds/alerts.atom`` and ``/feeds/alerts.json``.

Thin handlers around :mod:`seedvault.notify.feed`: the events come from the catalog (in a
worker thread), filtered by ``?source=`` (a source key) and ``?model=`` (a model or a hub repo
``org/name``); both answer 404 when ``[alerts.feed] enabled = false``. A ``source=`` that
matches nothing and cannot be a source key (a key put in the URL without encoding its ``%``
again) is a plain-text 400 saying so, rather than a feed that stays empty forever.
"""

from __future__ import annotations

from aiohttp import web

from seedvault.notify.feed import (
    ATOM_CONTENT_TYPE,
    FEED_ENTRIES,
    JSON_FEED_CONTENT_TYPE,
    atom_feed,
    json_feed,
)
from seedvault.server.api import SOURCE_ENCODING_HINT, is_source_key
from seedvault.server.state import STATE

MAX_FILTER_CHARS = 512


def _filters(request: web.Request) -> tuple[str | None, str | None]:
    source = request.query.get("source") or None
    model = request.query.get("model") or None
    for name, value in (("source", source), ("model", model)):
        if value is not None and len(value) > MAX_FILTER_CHARS:
            raise web.HTTPBadRequest(text=f"{name} filter is too long")
    return source, model


async def _feed(request: web.Request, render: str) -> web.Response:
    state = request.app[STATE]
    if not state.node.config.alerts.feed.enabled:
        raise web.HTTPNotFound(text="feeds are disabled on this node")
    source, model = _filters(request)
    catalog = state.node.catalog
    events = await state.run(
        lambda: catalog.recent_events(source=source, model=model, limit=FEED_ENTRIES)
    )
    if source is not None and not events and not is_source_key(source):
        raise web.HTTPBadRequest(text=f"source {source!r} {SOURCE_ENCODING_HINT}\n")
    public_url = state.public_url
    if render == "atom":
        body = atom_feed(events, public_url=public_url, source=source, model=model)
        return web.Response(body=body, headers={"Content-Type": ATOM_CONTENT_TYPE})
    body = json_feed(events, public_url=public_url, source=source, model=model)
    return web.Response(body=body, headers={"Content-Type": JSON_FEED_CONTENT_TYPE})


async def atom(request: web.Request) -> web.Response:
    return await _feed(request, "atom")


async def json_(request: web.Request) -> web.Response:
    return await _feed(request, "json")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/feeds/alerts.atom", atom)
    app.router.add_get("/feeds/alerts.json", json_)
