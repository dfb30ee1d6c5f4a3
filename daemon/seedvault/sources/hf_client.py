"""HubClient: the upstream side of the Hugging Face Hub protocol (refs, revision, tree, files).

Everything seedvault asks a Hub is one call of :class:`HubClient`; the facts it relies on are in
``shared/reference/hf-hub.md`` section B. The client is polite and defensive:

- every ``/api/`` call takes a slot in a client-side budget of ``requests_per_5min`` calls per
  sliding window (downloads do not count: they are in the Hub's separate "Resolvers" bucket);
- ``429`` is honoured (``Retry-After: N`` or ``RateLimit: "api";r=0;t=N``; the pause applies
  to every API call of the client), ``5xx``, timeouts and dropped connections are retried
  with jittered exponential backoff; both are bounded, then :class:`RateLimited` or
  :class:`~seedvault.errors.UpstreamError` is raised;
- the token goes only to the endpoint's origin: never to a CDN, never into a log line or an
  exception message; signed CDN URLs are neither logged nor kept beyond one request;
- redirects are never followed silently on the API: a redirect to another repo id, or an ``id``
  in the answer that differs from the one asked for, raises :class:`RepoMoved`.

Exceptions (all :class:`~seedvault.errors.UpstreamError`, defined with the result types in
:mod:`seedvault.sources.hf_types`)::

    UpstreamError
    ├── RepoGated(mode)            401/403 + X-Error-Code: GatedRepo (files need approval)
    ├── RepoDisabled               403 "Access to this resource is disabled." / disabled: true
    ├── RepoUnavailable            deleted or private: 401 anonymous, 404 + RepoNotFound
    ├── RepoMoved(new_id)          a redirect to another repo id, or a different ``id``
    ├── RevisionNotFound           404 + RevisionNotFound (branch or tag deleted)
    └── RateLimited(retry_after_s) still 429 after the bounded retries

Verification is not done here: the capture pipeline checks each file against the sizes and
hashes the tree announced (``hf_types.GitBlobHasher`` computes a non-LFS file's git blob id).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import structlog
from yarl import URL

from seedvault import __version__
from seedvault.errors import UpstreamError, UsageError
from seedvault.manifest import check_path
from seedvault.sources.base import Expected
from seedvault.sources.hf_types import (
    Commit,
    RateLimited,
    Refs,
    RepoDisabled,
    RepoGated,
    RepoMoved,
    RepoType,
    RepoUnavailable,
    RevisionInfo,
    RevisionNotFound,
    TreeEntry,
    answer_hex40,
    answer_str,
    card_license,
    is_file_entry,
    tree_entry,
)

log = structlog.get_logger(__name__)


_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*\brel="?next"?')
_RATELIMIT_T = re.compile(r"\bt=(\d+)")
_REDIRECTS = (301, 302, 303, 307, 308)
_EXPAND = ("sha", "gated", "disabled", "private", "lastModified", "cardData", "tags")
_DISABLED_MESSAGE = "Access to this resource is disabled."


class _Transient(Exception):
    """An answer worth retrying: 429 (with the advised wait) or 5xx."""

    def __init__(self, status: int, retry_after_s: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass
class _Attempts:
    failures: int = 0
    rate_limited: int = 0
    last_retry_after_s: float = 0.0


class _CallBudget:
    """At most ``calls`` acquisitions per sliding ``window_s``, plus a shared pause after 429."""

    def __init__(self, calls: int, window_s: float) -> None:
        self._calls = max(1, calls)
        self._window_s = window_s
        self._times: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, wait_s: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + wait_s)

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._times and now - self._times[0] >= self._window_s:
                    self._times.popleft()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                elif len(self._times) >= self._calls:
                    wait_s = self._times[0] + self._window_s - now
                    log.info("hub_budget_wait", wait_s=round(wait_s, 3))
                    await asyncio.sleep(wait_s)
                else:
                    self._times.append(now)
                    return


class HubClient:
    """An anonymous or token-holding client of one Hub endpoint.

    Use as ``async with HubClient(...) as client:`` or call :meth:`close`; a session passed in
    is used as is and not closed.

    Args:
        endpoint: ``https://huggingface.co`` or any server speaking the Hub API.
        token: sent as ``Authorization: Bearer`` to the endpoint's origin only; None is
            anonymous.
        requests_per_5min: API calls allowed per ``budget_window_s`` (the Hub counts per 5
            minutes; its anonymous quota is 500).
        backoff_base_s: first backoff after a 5xx, timeout or connection error; doubles per
            attempt, with jitter, capped by ``max_wait_s``.
        max_wait_s: the longest single wait (a longer ``Retry-After`` is cut to it).
        max_attempts: tries per request (or per download without progress) before failing.
        max_rate_limit_retries: 429 answers tolerated per request before :class:`RateLimited`.
        timeout_s: connect and per-read timeout (no limit on a whole download).
        max_commit_pages: commit pages :meth:`is_ancestor` reads before answering None.
    """

    def __init__(
        self,
        endpoint: str,
        token: str | None,
        requests_per_5min: int = 400,
        session: aiohttp.ClientSession | None = None,
        *,
        backoff_base_s: float = 1.0,
        max_wait_s: float = 60.0,
        max_attempts: int = 5,
        max_rate_limit_retries: int = 5,
        timeout_s: float = 60.0,
        budget_window_s: float = 300.0,
        max_commit_pages: int = 20,
    ) -> None:
        self._base = URL(endpoint.rstrip("/"))
        if self._base.scheme not in ("http", "https") or not self._base.host:
            raise UsageError(f"hub endpoint must be an http(s) URL, not {endpoint!r}")
        self._origin = self._base.origin()
        self._token = token or None
        self._session = session
        self._own_session = session is None
        self._budget = _CallBudget(requests_per_5min, budget_window_s)
        self._backoff_base_s = backoff_base_s
        self._max_wait_s = max_wait_s
        self._max_attempts = max_attempts
        self._max_rate_limit_retries = max_rate_limit_retries
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=timeout_s, sock_read=timeout_s
        )
        self._max_commit_pages = max_commit_pages

    @property
    def endpoint(self) -> str:
        """The endpoint URL without a trailing slash, e.g. ``https://huggingface.co``."""
        return str(self._base)

    async def __aenter__(self) -> HubClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- API calls -------------------------------------------------------------------------------

    async def refs(self, repo_type: RepoType, repo_id: str) -> Refs:
        """All branches and tags of the repo (one API call)."""
        data = await self._api_json(repo_type, repo_id, "refs")
        if not isinstance(data, dict):
            raise UpstreamError(f"{repo_id}: refs answer is not an object")

        def names(kind: str) -> dict[str, str]:
            items = data.get(kind) or []
            if not isinstance(items, list):
                raise UpstreamError(f"{repo_id}: refs.{kind} is not a list")
            return {
                answer_str(i, "name", repo_id): answer_hex40(i, "targetCommit", repo_id)
                for i in items
            }

        return Refs(branches=names("branches"), tags=names("tags"))

    async def revision_info(self, repo_type: RepoType, repo_id: str, revision: str) -> RevisionInfo:
        """The commit a revision points at, and the repo's state.

        Raises:
            RepoMoved: a redirect to another id, or the answer's ``id`` differs from ``repo_id``.
            RepoDisabled: the Hub refuses with 403 "Access to this resource is disabled.".
            RepoUnavailable, RevisionNotFound, RateLimited, UpstreamError.

        A disabled or gated repo whose metadata is still served is not an error here: the
        answer's ``disabled`` and ``gated`` say so (``HfSource.observe`` raises
        :class:`RepoDisabled`; downloads raise :class:`RepoGated` when the token is missing or
        not approved).
        """
        query = [("expand", key) for key in _EXPAND]
        data = await self._api_json(repo_type, repo_id, "revision", revision, query=query)
        if not isinstance(data, dict):
            raise UpstreamError(f"{repo_id}: revision answer is not an object")
        answered_id = data.get("id")
        if isinstance(answered_id, str) and answered_id != repo_id:
            raise RepoMoved(repo_id, answered_id)
        gated = data.get("gated", False)
        raw_card = data.get("cardData")
        card: dict[str, Any] = raw_card if isinstance(raw_card, dict) else {}
        last_modified = data.get("lastModified")
        return RevisionInfo(
            id=repo_id,
            sha=answer_hex40(data, "sha", repo_id),
            gated=gated if isinstance(gated, str) else bool(gated),
            disabled=data.get("disabled") is True,
            private=bool(data.get("private", False)),
            license=card_license(card, data.get("tags")),
            last_modified=last_modified if isinstance(last_modified, str) else None,
            card_data=card,
        )

    async def tree(self, repo_type: RepoType, repo_id: str, commit: str) -> list[TreeEntry]:
        """Every file of the repo at ``commit``, following every ``Link: rel="next"`` page."""
        url = self._api_url(repo_type, repo_id, "tree", commit).with_query(
            [("recursive", "true"), ("expand", "false")]
        )
        entries: list[TreeEntry] = []
        async for page in self._pages(url, repo_id):
            if not isinstance(page, list):
                raise UpstreamError(f"{repo_id}: tree page is not a list")
            entries.extend(tree_entry(item, repo_id) for item in page if is_file_entry(item))
        return entries

    async def commits(
        self, repo_type: RepoType, repo_id: str, revision: str
    ) -> AsyncIterator[Commit]:
        """The ancestry of ``revision``, newest first, one API call per page."""
        url = self._api_url(repo_type, repo_id, "commits", revision)
        async for page in self._pages(url, repo_id):
            if not isinstance(page, list):
                raise UpstreamError(f"{repo_id}: commits page is not a list")
            for item in page:
                title = item.get("title") if isinstance(item, dict) else None
                date = item.get("date") if isinstance(item, dict) else None
                yield Commit(
                    id=answer_hex40(item, "id", repo_id),
                    title=title if isinstance(title, str) else "",
                    date=date if isinstance(date, str) else None,
                )

    async def is_ancestor(
        self, repo_type: RepoType, repo_id: str, old_commit: str, new_head: str
    ) -> bool | None:
        """Whether ``old_commit`` is in the history of ``new_head`` (a normal advance).

        Returns None when it cannot be learnt: the commits endpoint is missing or answers
        garbage, or the history is longer than ``max_commit_pages`` pages. Callers then capture
        normally and emit no ``history_rewritten``. Repo-level errors (moved, unavailable, …)
        still raise.
        """
        if old_commit == new_head:
            return True
        url = self._api_url(repo_type, repo_id, "commits", new_head)
        pages = 0
        try:
            async for page in self._pages(url, repo_id):
                pages += 1
                if pages > self._max_commit_pages:
                    log.info("hub_history_too_long", repo=repo_id, pages=pages - 1)
                    return None
                if not isinstance(page, list):
                    raise UpstreamError(f"{repo_id}: commits page is not a list")
                if any(answer_hex40(item, "id", repo_id) == old_commit for item in page):
                    return True
        except (RepoMoved, RepoUnavailable, RepoDisabled, RepoGated, RateLimited):
            raise
        except UpstreamError as exc:  # includes a bare 404: the endpoint does not exist
            log.info("hub_commits_unusable", repo=repo_id, error=str(exc))
            return None
        return False

    # -- downloads -------------------------------------------------------------------------------

    async def stream_file(
        self,
        repo_type: RepoType,
        repo_id: str,
        commit: str,
        path: str,
        expected: Expected,
    ) -> AsyncIterator[bytes]:
        """The bytes of ``path`` at ``commit``, in the pieces the connection delivers them.

        With a ``Content-Length`` answer (what the Hub's CDN sends) the pieces are aiohttp's own
        receive buffers (each at most asyncio's 256 KiB read), handed on without being joined or
        copied; a chunked answer comes in its HTTP chunks.

        Follows a redirect to a CDN without the token. After a dropped connection, resumes
        with ``Range: bytes=N-``; a server that answers 200 instead of 206 is read from the
        start again and its first N bytes are skipped, so the consumer always sees one
        contiguous stream. ``expected`` is only used to know when the file is complete; the
        caller verifies the hashes.
        """
        url = self._resolve_url(repo_type, repo_id, commit, path)
        what = f"download {repo_id}@{commit[:12]}:{path}"
        attempts = _Attempts()
        offset = 0
        total = expected.size
        while True:
            if offset and total is not None and offset >= total:
                return
            try:
                async with self._open_download(url, offset, repo_id, commit) as resp:
                    skip = 0
                    if offset and resp.status == 416 and _range_total(resp) == offset:
                        return
                    if offset and resp.status == 200:
                        log.info("hub_download_restarted", repo=repo_id, path=path, skip=offset)
                        skip = offset
                    elif offset and _range_start(resp) != offset:
                        raise UpstreamError(f"{what}: server resumed at the wrong offset")
                    elif resp.status not in (200, 206):
                        raise UpstreamError(f"{what}: unexpected HTTP {resp.status}")
                    async for piece, _ in resp.content.iter_chunks():
                        if not piece:  # the end of an HTTP chunk: no bytes
                            continue
                        if skip:
                            dropped = min(skip, len(piece))
                            piece = piece[dropped:]
                            skip -= dropped
                            if not piece:
                                continue
                        offset += len(piece)
                        attempts.failures = 0
                        yield piece
                    if skip:
                        raise UpstreamError(f"{what}: file shorter than the bytes already read")
                    return
            except (aiohttp.ClientError, TimeoutError, _Transient) as exc:
                if offset:
                    log.info("hub_download_interrupted", repo=repo_id, path=path, offset=offset)
                await self._before_retry(attempts, what, exc)

    @contextlib.asynccontextmanager
    async def _open_download(
        self, url: URL, offset: int, repo_id: str, commit: str
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET ``url`` following up to 5 redirects; the token only on the endpoint's origin."""
        session = self._get_session()
        current = url
        for _hop in range(6):
            headers = {"Accept-Encoding": "identity", **self._auth_for(current)}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            resp = await session.get(
                current, headers=headers, allow_redirects=False, timeout=self._timeout
            )
            try:
                if resp.status in _REDIRECTS and "Location" in resp.headers:
                    # The Location of a CDN is a signed URL: used once, never logged or kept.
                    current = current.join(URL(resp.headers["Location"], encoded=True))
                    continue
                if resp.status == 416 and offset:
                    yield resp
                    return
                self._raise_for_status(resp, repo_id, commit)
                yield resp
                return
            finally:
                resp.release()
        raise UpstreamError(f"{repo_id}: too many redirects on a download")

    # -- plumbing --------------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": f"seedvault/{__version__}"}
            )
        return self._session

    def _auth_for(self, url: URL) -> dict[str, str]:
        if self._token and url.origin() == self._origin:
            return {"Authorization": f"Bearer {self._token}"}
        return {}

    def _api_url(self, repo_type: RepoType, repo_id: str, *parts: str) -> URL:
        tail = "".join("/" + quote(part, safe="") for part in parts)
        path = f"/api/{repo_type}s/{_quote_id(repo_id)}{tail}"
        return URL(str(self._base) + path, encoded=True)

    def _resolve_url(self, repo_type: RepoType, repo_id: str, commit: str, path: str) -> URL:
        segments = check_path(path).split("/")
        prefix = "/datasets" if repo_type == "dataset" else ""
        quoted = "/".join(quote(s, safe="") for s in segments)
        tail = f"{prefix}/{_quote_id(repo_id)}/resolve/{quote(commit, safe='')}/{quoted}"
        return URL(str(self._base) + tail, encoded=True)

    async def _api_json(
        self,
        repo_type: RepoType,
        repo_id: str,
        *parts: str,
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        url = self._api_url(repo_type, repo_id, *parts)
        if query:
            url = url.with_query(query)
        data, _next = await self._api_get(url, repo_id)
        return data

    async def _pages(self, url: URL, repo_id: str) -> AsyncIterator[Any]:
        """Each page of a ``Link: rel="next"``-paginated listing, in order."""
        seen: set[str] = set()
        next_url: URL | None = url
        while next_url is not None:
            if str(next_url) in seen:
                raise UpstreamError(f"{repo_id}: pagination loops back to a page already read")
            seen.add(str(next_url))
            data, next_url = await self._api_get(next_url, repo_id)
            yield data

    async def _api_get(self, url: URL, repo_id: str) -> tuple[Any, URL | None]:
        """One API GET with budget and retries: the decoded JSON and the next page's URL."""
        what = f"GET {url.path}"
        attempts = _Attempts()
        session = self._get_session()
        while True:
            await self._budget.acquire()
            try:
                async with session.get(
                    url, headers=self._auth_for(url), allow_redirects=False, timeout=self._timeout
                ) as resp:
                    if resp.status in _REDIRECTS:
                        raise self._moved(resp, url, repo_id)
                    self._raise_for_status(resp, repo_id, None)
                    body = await resp.read()
                    next_url = self._next_link(resp, url, repo_id)
            except (aiohttp.ClientError, TimeoutError, _Transient) as exc:
                await self._before_retry(attempts, what, exc, api=True)
                continue
            try:
                return json.loads(body), next_url
            except ValueError as exc:
                raise UpstreamError(f"{what}: answer is not JSON") from exc

    def _next_link(self, resp: aiohttp.ClientResponse, url: URL, repo_id: str) -> URL | None:
        match = _LINK_NEXT.search(resp.headers.get("Link", ""))
        if match is None:
            return None
        next_url = url.join(URL(match.group(1), encoded=True))
        if next_url.origin() != self._origin:
            raise UpstreamError(f"{repo_id}: next page is on another origin; not followed")
        return next_url

    def _moved(self, resp: aiohttp.ClientResponse, url: URL, repo_id: str) -> UpstreamError:
        location = resp.headers.get("Location")
        if not location:
            return UpstreamError(f"{repo_id}: HTTP {resp.status} without a Location")
        target = url.join(URL(location, encoded=True))
        # Same origin and same ".../api/models/" prefix and same "/revision/main" tail: the part
        # in between is the new id. Anything else is reported as the new location.
        old = url.raw_path
        api = old.index("/api/")
        prefix = old[: old.index("/", api + len("/api/")) + 1]
        tail = old[len(prefix) + len(_quote_id(repo_id)) :]
        new = target.raw_path
        if target.origin() == self._origin and new.startswith(prefix) and new.endswith(tail):
            new_id = unquote(new[len(prefix) : len(new) - len(tail)])
            if new_id and new_id != repo_id:
                return RepoMoved(repo_id, new_id)
        return RepoMoved(repo_id, str(target.with_query(None)))

    def _raise_for_status(
        self, resp: aiohttp.ClientResponse, repo_id: str, revision: str | None
    ) -> None:
        """Map an error answer to the exception tree; 429 and 5xx become ``_Transient``."""
        status = resp.status
        if status < 400:
            return
        if status == 429:
            raise _Transient(status, _retry_after_s(resp))
        if status >= 500:
            raise _Transient(status)
        code = resp.headers.get("X-Error-Code", "")
        message = resp.headers.get("X-Error-Message", "")
        if code == "GatedRepo":
            raise RepoGated(repo_id, "unknown")
        if status == 403 and message == _DISABLED_MESSAGE:
            raise RepoDisabled(repo_id)
        if code == "RepoNotFound" or (status == 401 and not code and not self._token):
            raise RepoUnavailable(repo_id)
        if code == "RevisionNotFound":
            raise RevisionNotFound(repo_id, revision or "?")
        hint = " (is the token valid?)" if status == 401 else ""
        raise UpstreamError(f"{repo_id}: HTTP {status} {code}{hint}".rstrip())

    async def _before_retry(
        self, attempts: _Attempts, what: str, exc: BaseException, *, api: bool = False
    ) -> None:
        """Sleep before the next attempt, or raise when the attempts are used up.

        A 429 on the API pauses every API call of this client, not only this one.
        """
        if isinstance(exc, _Transient) and exc.status == 429:
            attempts.rate_limited += 1
            advised_s = exc.retry_after_s
            if advised_s is None:
                advised_s = self._backoff_s(attempts.rate_limited)
            attempts.last_retry_after_s = advised_s
            if attempts.rate_limited > self._max_rate_limit_retries:
                raise RateLimited(what, math.ceil(advised_s))
            wait_s = min(advised_s, self._max_wait_s)
            if api:
                self._budget.pause(wait_s)
            log.warning("hub_rate_limited", request=what, wait_s=wait_s)
            await asyncio.sleep(wait_s)
            return
        attempts.failures += 1
        reason = str(exc) if isinstance(exc, _Transient) else type(exc).__name__
        if attempts.failures >= self._max_attempts:
            raise UpstreamError(f"{what}: {reason} after {attempts.failures} attempts") from None
        wait_s = self._backoff_s(attempts.failures)
        log.warning("hub_retry", request=what, reason=reason, attempt=attempts.failures)
        await asyncio.sleep(wait_s)

    def _backoff_s(self, attempt: int) -> float:
        ceiling = min(self._max_wait_s, self._backoff_base_s * 2.0 ** (attempt - 1))
        return ceiling * random.uniform(0.5, 1.0)


def _quote_id(repo_id: str) -> str:
    return "/".join(quote(part, safe="") for part in repo_id.split("/"))


def _retry_after_s(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass  # an HTTP date: fall back to RateLimit or backoff
    match = _RATELIMIT_T.search(resp.headers.get("RateLimit", ""))
    return float(match.group(1)) if match else None


def _range_start(resp: aiohttp.ClientResponse) -> int | None:
    match = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
    return int(match.group(1)) if resp.status == 206 and match else None


def _range_total(resp: aiohttp.ClientResponse) -> int | None:
    match = re.search(r"/(\d+)$", resp.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None
