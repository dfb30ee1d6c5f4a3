"""The /v1 JSON API: sources, snapshots, manifests, file content, events, deprecations.

Paths and fields are specified in ``docs/api.md`` (OpenAPI 3, also served at
``/v1/openapi.json``). Lists are paged with opaque cursors (:mod:`seedvault.server.cursors`):
the response holds ``next_cursor`` and a ``Link: <absolute url>; rel="next"`` header while more
remain. Every error is ``{"error": {"code", "message"}}`` with a 4xx/5xx status; query
parameters are checked (type, length, pattern) before anything is read.

Access follows the contract: listings show every snapshot (with its ``access``); a manifest
and a file's content need a node token unless a public snapshot lists them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

import structlog
from aiohttp import web

from seedvault.errors import (
    CatalogError,
    IntegrityError,
    NotInVault,
    StoreError,
    UsageError,
)
from seedvault.server.access import may_read
from seedvault.server.content import stream_file
from seedvault.server.cursors import CursorError
from seedvault.server.openapi import SPEC
from seedvault.server.state import STATE, ServerState
from seedvault.sources.pages import current_deprecations

log = structlog.get_logger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# every pattern is matched in full (``fullmatch``), as JSON Schema's ``^…$`` means
_PREFIX_RE = re.compile(r"[0-9a-f]{8,64}")
_BLAKE3_RE = re.compile(r"[0-9a-f]{64}")
_EVENT_TYPE_RE = re.compile(r"[a-z][a-z_]{0,63}")
_SINCE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?Z?)?")
_SOURCE_RE = re.compile(r"[!-~]+")  # source keys are printable ASCII (others are %XX)
_KEY_SEGMENT = r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})(?:[A-Za-z0-9._-]|%[0-9A-F]{2})*"
_KEY_RE = re.compile(rf"{_KEY_SEGMENT}(?:/{_KEY_SEGMENT})*")
"""What ``manifest.key_segment`` produces, segments joined by ``/``: every source key."""
SOURCE_ENCODING_HINT = (
    "is not a source key: keys hold %XX, so in a URL each % must be encoded again as %25 "
    "(hf/127.0.0.1%3A8470/… is sent as hf/127.0.0.1%253A8470/…, %2F as %252F); "
    "GET /v1/sources lists the keys"
)
_TEXT_MAX = {"source": 1024, "provider": 200, "model": 200}


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_STATUS_CODES = {
    400: "bad_request",
    401: "token_required",
    404: "not_found",
    405: "method_not_allowed",
    416: "range_not_satisfiable",
    500: "damaged",
    503: "unavailable",
}


def api_error(status: int, message: str, code: str | None = None) -> web.Response:
    body = {"error": {"code": code or _STATUS_CODES.get(status, "error"), "message": message}}
    headers = {"WWW-Authenticate": 'Bearer realm="seedvault"'} if status == 401 else None
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def v1_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn every failure under ``/v1/`` into the JSON error shape."""
    if not request.path.startswith("/v1/"):
        return await handler(request)  # type: ignore[no-any-return]
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except ApiError as exc:
        return api_error(exc.status, exc.message, exc.code)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = api_error(exc.status, exc.reason)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except (StoreError, CatalogError) as exc:
        log.warning("archive_unavailable", error=str(exc))
        return api_error(503, "the archive is unavailable; try again later")


def _text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    if value is not None and (not value or len(value) > _TEXT_MAX.get(name, 200)):
        raise ApiError(400, "bad_request", f"{name} must be 1 to {_TEXT_MAX.get(name, 200)} chars")
    if name == "source" and value is not None and not _SOURCE_RE.fullmatch(value):
        raise ApiError(400, "bad_request", "source is a source key as /v1/sources lists it")
    return value


def is_source_key(value: str) -> bool:
    """Whether ``value`` has the shape of a source key (``hf/huggingface.co/model/org/name``).

    A key pasted into a URL without encoding its ``%`` again arrives decoded (``%3A`` as
    ``:``, ``%2F`` as ``/``, so ``//``): never a key's shape.
    """
    return _KEY_RE.fullmatch(value) is not None


def _refuse_mangled_source(source: str | None, found_nothing: bool) -> None:
    """400 for a ``source=`` that matched nothing and cannot be a source key (the hint says
    how to encode one); a well-formed key that matches nothing is an empty list as before."""
    if source is not None and found_nothing and not is_source_key(source):
        raise ApiError(400, "bad_request", f"source {source!r} {SOURCE_ENCODING_HINT}")


def _limit(request: web.Request) -> int:
    text = request.query.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or len(text) > 4 or not 1 <= int(text) <= MAX_LIMIT:
        raise ApiError(400, "bad_request", f"limit must be an integer from 1 to {MAX_LIMIT}")
    return int(text)


def _cursor(state: ServerState, request: web.Request, kind: str, bound: dict[str, Any]) -> Any:
    """The position in the request's cursor (None without one), checked against ``bound``."""
    text = request.query.get("cursor")
    if text is None:
        return None
    try:
        position = state.cursors.decode(kind, text)
    except CursorError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    if not isinstance(position, dict) or position.get("q") != bound:
        raise ApiError(400, "bad_request", "cursor belongs to another listing")
    return position


def _page(
    state: ServerState, request: web.Request, kind: str, bound: dict[str, Any], position: Any
) -> tuple[str, dict[str, str]]:
    """``next_cursor`` and the absolute ``Link`` header of the next page."""
    cursor = state.cursors.encode(kind, {"q": bound, **position})
    params = {k: v for k, v in request.query.items() if k != "cursor"}
    params["cursor"] = cursor
    link = state.link(f"{request.path}?{urlencode(params)}")
    return cursor, {"Link": f'<{link}>; rel="next"'}


async def sources(request: web.Request) -> web.Response:
    state = request.app[STATE]
    rows = await state.run(state.node.catalog.snapshots)
    all_refs = await state.run(state.node.catalog.refs)
    by_key: dict[str, dict[str, Any]] = {}
    for row in rows:  # newest first: the first row of a source is its latest snapshot
        entry = by_key.setdefault(
            row.source_key,
            {
                "key": row.source_key,
                "kind": row.kind,
                "snapshots": 0,
                "latest": {"snapshot": row.id, "captured_at": row.captured_at},
                "refs": [],
            },
        )
        entry["snapshots"] += 1
    for key, revision, snapshot, commit, updated in all_refs:
        if key in by_key:
            ref = {"revision": revision, "snapshot": snapshot, "updated": updated}
            if commit:
                ref["commit"] = commit
            by_key[key]["refs"].append(ref)
    return web.json_response({"sources": [by_key[k] for k in sorted(by_key)]})


async def snapshots(request: web.Request) -> web.Response:
    state = request.app[STATE]
    source = _text(request, "source")
    limit = _limit(request)
    bound = {"source": source or ""}
    position = _cursor(state, request, "snapshots", bound)
    after: tuple[str, int] | None = None
    if position is not None:  # the last row's whole sort key: (captured_at, rowid)
        at, rowid = position.get("at"), position.get("n")
        if not isinstance(at, str) or type(rowid) is not int:
            raise ApiError(400, "bad_request", "cursor belongs to another listing")
        after = (at, rowid)
    rows = await state.run(state.node.catalog.snapshot_page, source, limit + 1, after)
    if position is None:
        _refuse_mangled_source(source, not rows)
    page = rows[:limit]
    body: dict[str, Any] = {"snapshots": [row.to_json() for _, row in page]}
    headers: dict[str, str] = {}
    if len(rows) > limit:
        (at, rowid), _ = page[-1]
        body["next_cursor"], headers = _page(
            state, request, "snapshots", bound, {"at": at, "n": rowid}
        )
    return web.json_response(body, headers=headers)


async def _snapshot_id(state: ServerState, text: str) -> str:
    if not _PREFIX_RE.fullmatch(text):
        raise ApiError(400, "bad_request", "a snapshot id is 64 hex digits (or a prefix of ≥ 8)")
    try:
        return await state.run(state.node.catalog.find_snapshot_prefix, text)
    except UsageError:
        raise ApiError(404, "not_found", "no such snapshot (or the prefix is ambiguous)") from None


async def snapshot(request: web.Request) -> web.Response:
    state = request.app[STATE]
    sid = await _snapshot_id(state, request.match_info["id"])
    row = await state.run(state.node.catalog.snapshot_row, sid)
    if row is None:
        raise ApiError(404, "not_found", "no such snapshot")
    if not may_read(row.access, state.tokens.authorized(request)):
        raise ApiError(401, "token_required", "this snapshot needs a node token")
    try:
        data = await state.run(state.node.vault.snapshot_bytes, sid)
    except NotInVault:
        raise ApiError(404, "not_found", "the snapshot is indexed but not in the vault") from None
    except IntegrityError:
        raise ApiError(500, "damaged", "the stored manifest is damaged") from None
    return web.Response(
        body=data,
        content_type="application/json",
        headers={"ETag": f'"{sid}"', "X-Seedvault-Snapshot": sid},
    )


def _file_uses(state: ServerState, blake3: str) -> tuple[list[tuple[str, str]], bool, int]:
    """(snapshot, path) pairs listing the file, whether any is public, and its size (-1: the
    manifests listing it are unreadable). Stops looking at snapshots at the first public one."""
    uses = sorted(state.node.catalog.snapshots_with_file(blake3))
    public, size = False, -1
    for sid, path in uses:
        if size < 0:
            try:
                manifest = state.repos.manifest(sid)
            except (NotInVault, IntegrityError):
                continue
            size = next((f.size for f in manifest.files if f.path == path), -1)
        row = state.node.catalog.snapshot_row(sid)
        if row is not None and row.access == "public":
            public = True
        if public and size >= 0:
            break
    return uses, public, size


async def file_content(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    blake3 = request.match_info["blake3"]
    if not _BLAKE3_RE.fullmatch(blake3):
        raise ApiError(400, "bad_request", "a file id is the 64-hex BLAKE3 of its content")
    uses, public, size = await state.run(_file_uses, state, blake3)
    if not uses or size < 0:
        raise ApiError(404, "not_found", "no archived snapshot lists this file")
    if not (public or state.tokens.authorized(request)):
        raise ApiError(401, "token_required", "only token snapshots list this file")
    headers = {
        "ETag": f'"{blake3}"',
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }
    if request.method == "HEAD":
        response = web.StreamResponse(headers=headers)
        response.content_length = size
        await response.prepare(request)
        await response.write_eof()
        return response
    return await stream_file(
        request, state, blake3=blake3, size=size, headers=headers, uses=uses, error=api_error
    )


async def events(request: web.Request) -> web.Response:
    state = request.app[STATE]
    event_type, source, since = (_text(request, n) for n in ("type", "source", "since"))
    if event_type is not None and not _EVENT_TYPE_RE.fullmatch(event_type):
        raise ApiError(400, "bad_request", "type is an event type such as repo_gated")
    if since is not None and not _SINCE_RE.fullmatch(since):
        raise ApiError(400, "bad_request", "since is a UTC time such as 2026-11-27T10:00:00Z")
    limit = _limit(request)
    bound = {"type": event_type or "", "source": source or "", "since": since or ""}
    position = _cursor(state, request, "events", bound)
    inner = position.get("c") if position is not None else None
    if position is not None and not isinstance(inner, str):
        raise ApiError(400, "bad_request", "cursor belongs to another listing")
    catalog = state.node.catalog
    if not hasattr(catalog, "events"):  # a catalog from before events were indexed
        return web.json_response({"events": []})
    try:
        page = await state.run(
            catalog.events, type=event_type, source=source, since=since, limit=limit, cursor=inner
        )
    except UsageError as exc:
        raise ApiError(400, "bad_request", str(exc)) from None
    if position is None:
        _refuse_mangled_source(source, not page.events)
    body: dict[str, Any] = {"events": page.events}
    headers: dict[str, str] = {}
    if page.next_cursor is not None:
        body["next_cursor"], headers = _page(
            state, request, "events", bound, {"c": page.next_cursor}
        )
    return web.json_response(body, headers=headers)


async def deprecations(request: web.Request) -> web.Response:
    """The merged lifecycle state of every archived page (``sources.pages``)."""
    state = request.app[STATE]
    provider, model = _text(request, "provider"), _text(request, "model")
    items = await state.run(
        current_deprecations, state.node.vault, state.node.catalog, provider=provider, model=model
    )
    return web.json_response({"deprecations": items})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(SPEC)


async def not_found(request: web.Request) -> web.Response:
    raise ApiError(404, "not_found", "no such /v1 resource")


def add_routes(app: web.Application) -> None:
    """Register the /v1 routes (before the Hub catch-all)."""
    app.router.add_get("/v1/openapi.json", openapi)
    app.router.add_get("/v1/sources", sources)
    app.router.add_get("/v1/snapshots", snapshots)
    app.router.add_get("/v1/snapshots/{id}", snapshot)
    app.router.add_get("/v1/files/{blake3}", file_content)
    app.router.add_get("/v1/events", events)
    app.router.add_get("/v1/deprecations", deprecations)
    app.router.add_get("/v1/{tail:.*}", not_found)
