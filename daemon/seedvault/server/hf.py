"""Hub-compatible routes: what ``huggingface_hub`` (``HF_ENDPOINT=<node>``) needs to download.

Routes (``{T}`` is ``models`` or ``datasets``; model files resolve at the root, dataset files
under ``/datasets``), all answered from archived snapshots:

* ``GET /api/{T}/{org}/{name}`` and ``/api/{T}/{org}/{name}/revision/{rev}`` — repo info:
  ``id``, ``sha`` (the archived commit), ``siblings`` (with ``?blobs=true`` sizes, blob ids and
  LFS data), ``private``/``gated``/``disabled`` false, ``lastModified``;
* ``GET /api/{T}/{org}/{name}/tree/{rev}[/{path}]`` — listing (``?recursive=true``) in pages of
  :data:`TREE_PAGE_ENTRIES`, the next page in an ABSOLUTE ``Link`` from ``[server] public_url``;
* ``GET /api/{T}/{org}/{name}/refs`` — archived branches and tags (for federation): see
  :func:`ref_entry` for how an archived revision is listed;
* ``HEAD``/``GET /[datasets/]{org}/{name}/resolve/{rev}/{path}`` — the file: ``X-Repo-Commit``,
  the Hub's ``ETag``, the true ``Content-Length`` also on HEAD, ``Accept-Ranges``, ``206``;
* ``/api/{T}/…/xet-read-token/…`` — always 404: no Xet signal is ever sent, so the client
  downloads over plain HTTP.

The path is parsed from the raw request target, segment by segment, each percent-decoded on
its own, so a revision such as ``refs%2Fpr%2F1`` stays one segment and nothing is normalised
before it is checked: repo ids, revisions and file paths that could traverse (``..``, encoded
or not, backslashes, control characters) are refused with 400 before any lookup. Errors carry
the ``X-Error-Code`` the client turns into its exceptions (RepoNotFound, RevisionNotFound,
EntryNotFound with ``X-Repo-Commit``, GatedRepo for a token snapshot without a node token),
and every answer about a snapshot carries ``X-HF-Warning`` naming the archived snapshot served.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlencode

import structlog
from aiohttp import web

from seedvault.errors import CatalogError, IntegrityError, NotInVault, StoreError, UnsafePathError
from seedvault.manifest import check_path
from seedvault.server.access import may_read
from seedvault.server.content import stream_file
from seedvault.server.repos import (
    RepoNotFound,
    RevisionNotFound,
    ServedSnapshot,
    valid_repo_id,
    valid_revision,
)
from seedvault.server.state import STATE, ServerState

log = structlog.get_logger(__name__)

TREE_PAGE_ENTRIES = 1000
MAX_HEAD_SIZE = 50_000_000_000
"""The client refuses plain-HTTP downloads it is told on HEAD are larger than 50 GB."""


def header_text(text: str) -> str:
    """``text`` as a header value: printable ASCII, anything else as ``?`` (paths may not be)."""
    return "".join(c if " " <= c <= "~" else "?" for c in text)


def hub_error(
    status: int, code: str | None, message: str, commit: str | None = None
) -> web.Response:
    """An error the Hub client understands (``X-Error-Code``; JSON body ``{"error"}``)."""
    headers = {"X-Error-Message": header_text(message)}
    if code is not None:
        headers["X-Error-Code"] = code
    if commit is not None:
        headers["X-Repo-Commit"] = commit
    return web.json_response({"error": message}, status=status, headers=headers)


@dataclass(frozen=True)
class HubPath:
    """A parsed Hub request target."""

    repo_type: str
    repo_id: str
    api: bool
    rest: list[str]
    """Decoded segments after ``org/name`` (``["tree", rev, …]``, ``["resolve", rev, …]``)."""


def parse_hub_path(raw_path: str) -> HubPath | None:
    """Split a raw request path into repo type, repo id and the rest; None if not a Hub path."""
    segments = [unquote(s) for s in raw_path.split("?", 1)[0].split("/")[1:]]
    if len(segments) >= 4 and segments[0] == "api" and segments[1] in ("models", "datasets"):
        return HubPath(segments[1][:-1], f"{segments[2]}/{segments[3]}", True, segments[4:])
    if len(segments) >= 6 and segments[0] == "datasets" and segments[3] == "resolve":
        return HubPath("dataset", f"{segments[1]}/{segments[2]}", False, segments[3:])
    if len(segments) >= 5 and segments[2] == "resolve" and segments[0] not in ("api", "v1"):
        return HubPath("model", f"{segments[0]}/{segments[1]}", False, segments[2:])
    return None


def _not_found() -> web.Response:
    return web.json_response({"error": "not found"}, status=404)


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Every Hub route (registered last, as a catch-all)."""
    hub = parse_hub_path(request.raw_path)
    if hub is None:
        return _not_found()
    if not valid_repo_id(hub.repo_id):
        return hub_error(400, None, "invalid repo id")
    rest = hub.rest
    state = request.app[STATE]
    if not hub.api:  # ["resolve", rev, *path]
        if len(rest) < 3:
            return _not_found()
        return await resolve_file(request, state, hub, rest[1], "/".join(rest[2:]))
    if not rest:
        return await repo_info(request, state, hub, None)
    if rest[0] == "revision" and len(rest) >= 2:
        return await repo_info(request, state, hub, "/".join(rest[1:]))
    if rest[0] == "tree" and len(rest) >= 2:
        return await tree(request, state, hub, rest[1], "/".join(rest[2:]))
    if rest == ["refs"]:
        return await refs(request, state, hub)
    return _not_found()  # includes xet-read-token: this node never speaks Xet


async def _snapshot(
    request: web.Request, state: ServerState, hub: HubPath, revision: str | None
) -> ServedSnapshot | web.Response:
    """The snapshot to serve, or the error response the client understands."""
    if revision is not None and not valid_revision(revision):
        return hub_error(400, None, "invalid revision")
    try:
        snap = await state.run(state.repos.resolve, hub.repo_type, hub.repo_id, revision)
    except RepoNotFound:
        return hub_error(404, "RepoNotFound", f"{hub.repo_type} {hub.repo_id} is not archived here")
    except RevisionNotFound:
        return hub_error(404, "RevisionNotFound", f"{hub.repo_id} has no archived {revision}")
    except (IntegrityError, NotInVault) as exc:
        log.error("snapshot_unreadable", repo=hub.repo_id, error=str(exc))
        return hub_error(500, None, "the archived snapshot is damaged")
    except (StoreError, CatalogError) as exc:
        log.warning("archive_unavailable", error=str(exc))
        return hub_error(503, None, "the archive is unavailable; try again later")
    if not may_read(snap.manifest.access, state.tokens.authorized(request)):
        return hub_error(
            401,
            "GatedRepo",
            f"{hub.repo_id} is archived with restricted access: a node token is needed",
        )
    return snap


def warning_header(snap: ServedSnapshot, revision: str | None) -> str:
    """``X-HF-Warning``: which archived snapshot is served (one topic per snapshot)."""
    asked = revision or snap.manifest.revision
    return header_text(
        f"seedvault-{snap.snapshot_id[:12]}; {snap.repo_id}@{asked} is served from the seedvault "
        f"archive: snapshot {snap.snapshot_id[:12]}, commit {snap.commit}, captured "
        f"{snap.manifest.captured_at}"
    )


def _hub_time(text: Any, fallback: str) -> str:
    """A time in the Hub's format (``2026-11-27T10:00:00.000Z``)."""
    for candidate in (text, fallback):
        if isinstance(candidate, str):
            try:
                moment = datetime.fromisoformat(candidate.replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return "1970-01-01T00:00:00.000Z"


async def repo_info(
    request: web.Request, state: ServerState, hub: HubPath, revision: str | None
) -> web.Response:
    found = await _snapshot(request, state, hub, revision)
    if isinstance(found, web.Response):
        return found
    snap = found
    blobs = request.query.get("blobs", "").lower() in ("1", "true")
    if blobs:
        files = await state.run(state.repos.hub_files, list(snap.manifest.files))
        siblings = [f.sibling(True) for f in files]
    else:
        siblings = [{"rfilename": f.path} for f in snap.manifest.files]
    m = snap.manifest
    body: dict[str, Any] = {
        "id": snap.repo_id,
        "sha": snap.commit,
        "siblings": siblings,
        "private": False,
        "gated": False,
        "disabled": False,
        "lastModified": _hub_time(m.upstream.get("lastModified"), m.captured_at),
        "tags": [],
        "downloads": 0,
        "likes": 0,
        "seedvault": {
            "snapshot": snap.snapshot_id,
            "source": m.source_key,
            "revision": m.revision,
            "captured_at": m.captured_at,
            "access": m.access,
        },
    }
    if hub.repo_type == "model":
        body["modelId"] = snap.repo_id
    if isinstance(m.upstream.get("license"), str):
        body["cardData"] = {"license": m.upstream["license"]}
    return web.json_response(body, headers={"X-HF-Warning": warning_header(snap, revision)})


def _listing(snap: ServedSnapshot, base: str, recursive: bool) -> list[tuple[str, bool]]:
    """(path, is_directory) under ``base``, sorted by path."""
    prefix = f"{base}/" if base else ""
    out: list[tuple[str, bool]] = []
    for paths, is_dir in ((snap.files, False), (snap.directories, True)):
        for path in paths:
            if path.startswith(prefix) and (recursive or "/" not in path[len(prefix) :]):
                out.append((path, is_dir))
    out.sort()
    return out


async def tree(
    request: web.Request, state: ServerState, hub: HubPath, revision: str, base: str
) -> web.Response:
    found = await _snapshot(request, state, hub, revision)
    if isinstance(found, web.Response):
        return found
    snap = found
    if base:
        try:
            check_path(base)
        except UnsafePathError:
            return hub_error(400, None, "invalid path")
        if base not in snap.directories:
            return hub_error(404, "EntryNotFound", f"no folder {base} here", snap.commit)
    flags = {k: request.query.get(k, "false").lower() for k in ("recursive", "expand")}
    if any(v not in ("true", "false", "1", "0") for v in flags.values()):
        return hub_error(400, None, "recursive and expand take true or false")
    recursive = flags["recursive"] in ("true", "1")
    entries = _listing(snap, base, recursive)
    start = 0
    listing = {"s": snap.snapshot_id, "b": base, "r": recursive}
    if "cursor" in request.query:
        try:
            position = state.cursors.decode("tree", request.query["cursor"])
        except ValueError as exc:
            return hub_error(400, None, str(exc))
        if not isinstance(position, dict) or not isinstance(position.get("a"), str):
            return hub_error(400, None, "cursor belongs to another listing")
        if {k: position.get(k) for k in listing} != listing:
            return hub_error(400, None, "cursor belongs to another listing")
        start = bisect.bisect_right(entries, (position["a"], True))
    page = entries[start : start + TREE_PAGE_ENTRIES]
    files = await state.run(state.repos.hub_files, [snap.files[p] for p, d in page if not d])
    by_path = {f.path: f for f in files}
    tree_oids = await state.run(state.repos.tree_oids, snap) if any(d for _, d in page) else {}
    body = [
        {"type": "directory", "oid": tree_oids[p], "path": p, "size": 0}
        if is_dir
        else by_path[p].tree_entry()
        for p, is_dir in page
    ]
    headers = {"X-HF-Warning": warning_header(snap, revision)}
    if start + TREE_PAGE_ENTRIES < len(entries):
        cursor = state.cursors.encode("tree", {**listing, "a": page[-1][0]})
        query = urlencode(
            {"recursive": flags["recursive"], "expand": flags["expand"], "cursor": cursor}
        )
        org, name = hub.repo_id.split("/")
        path = f"/api/{hub.repo_type}s/{quote(org)}/{quote(name)}/tree/{quote(revision, safe='')}"
        if base:
            path += "/" + quote(base)
        headers["Link"] = f'<{state.link(f"{path}?{query}")}>; rel="next"'
    return web.json_response(body, headers=headers)


_SHA_RE = re.compile(r"[0-9a-f]{40}")
_REF_GROUPS = {"refs/heads/": "branches", "refs/tags/": "tags", "refs/convert/": "converts"}
_PR_REF_RE = re.compile(r"refs/pr/[1-9][0-9]{0,9}")


def ref_entry(revision: str) -> tuple[str, str, str] | None:
    """(group, name, full ref) under which the Hub's ``refs`` lists an archived revision.

    A 40-hex revision is a commit pinned by a watch, not a ref: None. A full ref name keeps
    its kind (``refs/tags/v1`` → a tag ``v1``; ``refs/pr/1`` → a pull request; other
    ``refs/…`` namespaces: None). A bare name (``main``, ``v1.0``) arrives here as the full
    ref its snapshot recorded from the Hub's refs (:meth:`Repos.refs`); one captured before
    captures recorded that is listed as a branch.
    """
    if _SHA_RE.fullmatch(revision):
        return None
    if _PR_REF_RE.fullmatch(revision):
        return "pullRequests", revision, revision
    for prefix, group in _REF_GROUPS.items():
        if revision.startswith(prefix):
            name = revision[len(prefix) :]
            return (group, name, revision) if name else None
    if revision.startswith("refs/"):
        return None
    return "branches", revision, f"refs/heads/{revision}"


async def refs(request: web.Request, state: ServerState, hub: HubPath) -> web.Response:
    """The archived refs as the Hub lists them; ``pullRequests`` with ``?include_prs=1``."""
    try:
        found = await state.run(state.repos.refs, hub.repo_type, hub.repo_id)
    except RepoNotFound:
        return hub_error(404, "RepoNotFound", f"{hub.repo_type} {hub.repo_id} is not archived here")
    newest: dict[tuple[str, str], tuple[str, str, str]] = {}  # (group, name) → (updated, …)
    for revision, commit, updated in found:
        entry = ref_entry(revision)
        if entry is None:
            continue
        group, name, ref = entry
        known = newest.get((group, name))
        if known is None or updated > known[0]:  # ``main`` and ``refs/heads/main``: newest
            newest[(group, name)] = (updated, ref, commit)
    body: dict[str, list[dict[str, str]]] = {"branches": [], "tags": [], "converts": []}
    if request.query.get("include_prs", "").lower() in ("1", "true"):
        body["pullRequests"] = []
    for (group, name), (_, ref, commit) in sorted(newest.items()):
        if group in body:
            body[group].append({"name": name, "ref": ref, "targetCommit": commit})
    return web.json_response(body)


async def resolve_file(
    request: web.Request, state: ServerState, hub: HubPath, revision: str, path: str
) -> web.StreamResponse:
    found = await _snapshot(request, state, hub, revision)
    if isinstance(found, web.Response):
        return found
    snap = found
    try:
        check_path(path)
    except UnsafePathError:
        return hub_error(400, None, "invalid file path")
    entry = snap.files.get(path)
    if entry is None:
        return hub_error(404, "EntryNotFound", f"{path} is not in this snapshot", snap.commit)
    try:
        hub_file = await state.run(state.repos.hub_file, entry)
    except (IntegrityError, NotInVault) as exc:
        await state.run(state.report_damage, entry.blake3, str(exc), [(snap.snapshot_id, path)])
        return hub_error(500, None, "this file is damaged in the archive")
    headers = {
        "X-Repo-Commit": snap.commit,
        "ETag": f'"{hub_file.etag}"',
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
        "X-HF-Warning": warning_header(snap, revision),
        "X-Seedvault-Snapshot": snap.snapshot_id,
    }
    if request.method == "HEAD":
        response = web.StreamResponse(headers=headers)
        if entry.size <= MAX_HEAD_SIZE:
            response.content_length = entry.size
        await response.prepare(request)
        await response.write_eof()
        return response

    def error(status: int, message: str) -> web.Response:
        return hub_error(status, None, message)

    return await stream_file(
        request,
        state,
        blake3=entry.blake3,
        size=entry.size,
        headers=headers,
        uses=[(snap.snapshot_id, path)],
        error=error,
    )
