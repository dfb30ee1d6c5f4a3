"""Provider pages: the guarded fetch of a deprecation page, and the page as a capture source.

The fetcher safety rules of ``providers.md`` §1 hold before anything is stored.
:func:`http_request` (and :func:`http_get`) never follows a redirect, retries network errors,
408, 429, 5xx and 529 with backoff, honours ``Retry-After`` (seconds or an HTTP date) up to a
cap, and stops reading a body over its byte limit (:mod:`.models_api` and :mod:`.probes` use
it too). :func:`fetch_page` accepts only a 200 whose body passes :func:`check_page`: the
watch's size bounds, every required marker (so same-sized login, error and bot-challenge pages
are refused) and the shrink limit against the last good copy. A redirect raises
:class:`PageMoved`, a refused body :class:`PageRejected`, anything else :class:`FetchError`;
none reaches the vault, so a failed or truncated fetch never replaces the last good copy.

An accepted body is the single file (``page.md``/``.html``/``.txt``, bytes as served) of a
:class:`PageSource` (kind ``page``, key ``page/<id>``), so an unchanged page is an unchanged
capture. :func:`page_records` parses a stored copy back (cached by snapshot id);
:func:`current_deprecations` gives the merged state of every watched page, as
``/v1/deprecations`` serves it.

Page text is untrusted: it is only decoded and handed to the pure parsers, never logged,
executed, or used to build a URL, a path, a command or a query.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import random
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import aiohttp
import structlog

from seedvault import __version__
from seedvault.catalog import Catalog
from seedvault.config import PageWatch
from seedvault.errors import IntegrityError, NotInVault, UpstreamError, UsageError
from seedvault.manifest import key_segment
from seedvault.sources.base import Artifact, Expected, Observation
from seedvault.sources.parsers import Record, parse_page
from seedvault.sources.parsers.diff import merge_records
from seedvault.vault import Vault

log = structlog.get_logger(__name__)

USER_AGENT = f"seedvault/{__version__}"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})  # 529: Anthropic overloaded
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_ACCEPT = "text/markdown, text/plain;q=0.9, text/html;q=0.8, */*;q=0.1"
_SUFFIXES = {"text/markdown": ".md", "text/x-markdown": ".md", "text/html": ".html"}


@dataclass(frozen=True)
class RetryPolicy:
    """How hard :func:`http_get` tries.

    Args:
        attempts: tries per request (network errors and retryable statuses count alike).
        backoff_base_s: first wait without ``Retry-After``; doubles per attempt, with jitter.
        max_wait_s: the longest single wait; a longer ``Retry-After`` is cut to it.
        timeout_s: the whole of one attempt (connect, headers and body).
    """

    attempts: int = 4
    backoff_base_s: float = 1.0
    max_wait_s: float = 60.0
    timeout_s: float = 60.0


DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True)
class HttpAnswer:
    """One HTTP answer, body read whole (never a redirect followed)."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class FetchError(UpstreamError):
    """A fetch that gave nothing usable; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class PageRejected(FetchError):
    """The page answered 200 but failed a safety check (size, marker, shrink)."""


class PageMoved(FetchError):
    """The page answered with a redirect; ``location`` is where it points (absolute, no query)."""

    def __init__(self, url: str, status: int, location: str) -> None:
        self.status = status
        self.location = where(location)[:2000] if location else ""
        super().__init__("moved", f"{where(url)}: HTTP {status} to {self.location or '(nowhere)'}")


@contextlib.asynccontextmanager
async def http_session(
    session: aiohttp.ClientSession | None = None,
) -> AsyncIterator[aiohttp.ClientSession]:
    """``session`` as is, or a new one (no cookies kept, seedvault's User-Agent) closed after."""
    if session is not None:
        yield session
        return
    jar = aiohttp.DummyCookieJar()
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}, cookie_jar=jar) as own:
        yield own


def where(url: str) -> str:
    """The URL without credentials, query or fragment: what logs and messages may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is no number
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def retry_after_s(value: str, now_s: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for (delta-seconds or HTTP date), None if neither."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now_s is None else now_s))


async def http_get(
    session: aiohttp.ClientSession,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    max_bytes: int = 64 * 1024 * 1024,
) -> HttpAnswer:
    """GET ``url``: :func:`http_request` with no body."""
    return await http_request(
        session, "GET", url, headers=headers, policy=policy, max_bytes=max_bytes
    )


async def http_request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    max_bytes: int = 64 * 1024 * 1024,
) -> HttpAnswer:
    """Send one request without following redirects, retrying transient failures.

    Returns the first answer that is not retryable, or the last one when the attempts are used
    up on 408/429/5xx; the caller judges the status. ``headers`` may hold credentials: they are
    sent, never logged and never part of any message or answer.

    Raises:
        FetchError: ``network`` (connection, timeout, truncated body) on every attempt, or
            ``too_large`` (a body over ``max_bytes``; not retried).
    """
    shown = where(url)
    timeout = aiohttp.ClientTimeout(total=policy.timeout_s)
    attempts = max(1, policy.attempts)
    for attempt in range(1, attempts + 1):
        advised: float | None = None
        try:
            async with session.request(
                method,
                url,
                headers=dict(headers or {}),
                data=body,
                allow_redirects=False,
                timeout=timeout,
            ) as resp:
                declared = resp.content_length
                if declared is not None and declared > max_bytes:
                    raise FetchError("too_large", f"{shown}: {declared} bytes, over {max_bytes}")
                content = await _read_capped(resp, max_bytes, shown)
                answer = HttpAnswer(
                    url, resp.status, {k.lower(): v for k, v in resp.headers.items()}, content
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = type(exc).__name__
            if attempt == attempts:
                raise FetchError("network", f"{shown}: {reason} after {attempt} attempts") from None
        else:
            if answer.status not in RETRY_STATUSES or attempt == attempts:
                return answer
            reason = f"HTTP {answer.status}"
            advised = retry_after_s(answer.header("retry-after"))
        ceiling = min(policy.max_wait_s, policy.backoff_base_s * 2.0 ** (attempt - 1))
        wait_s = min(advised, policy.max_wait_s) if advised is not None else ceiling
        if advised is None:
            wait_s *= random.uniform(0.5, 1.0)
        log.warning("http_retry", url=shown, reason=reason, attempt=attempt, wait_s=wait_s)
        await asyncio.sleep(wait_s)
    raise AssertionError("unreachable")  # pragma: no cover


async def _read_capped(resp: aiohttp.ClientResponse, max_bytes: int, shown: str) -> bytes:
    pieces: list[bytes] = []
    total = 0
    async for piece in resp.content.iter_chunked(1 << 16):
        total += len(piece)
        if total > max_bytes:
            raise FetchError("too_large", f"{shown}: more than {max_bytes} bytes")
        pieces.append(piece)
    return b"".join(pieces)


@dataclass(frozen=True)
class PageFetch:
    """An accepted page: its bytes exactly as served, and its ``Content-Type``."""

    url: str
    body: bytes
    content_type: str


def page_text(body: bytes, content_type: str = "") -> str:
    """The page as text: the charset the server declared (else UTF-8), bad bytes replaced."""
    charset = "utf-8"
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    return text.removeprefix("\ufeff")


def check_page(
    body: bytes, watch: PageWatch, *, content_type: str = "", last_good_bytes: int | None
) -> None:
    """Accept or reject a fetched copy of ``watch``'s page (the fetcher safety rules).

    Raises:
        PageRejected: ``too_small``, ``too_large``, ``marker_missing`` or ``shrunk`` (more
            than ``max_shrink`` shorter than the last good copy).
    """
    shown, size = where(watch.url), len(body)
    if size < watch.min_bytes:
        raise PageRejected("too_small", f"{shown}: {size} bytes, fewer than {watch.min_bytes}")
    if size > watch.max_bytes:
        raise PageRejected("too_large", f"{shown}: {size} bytes, more than {watch.max_bytes}")
    text = page_text(body, content_type)
    for marker in watch.required_markers:
        if marker not in text:
            raise PageRejected("marker_missing", f"{shown}: required marker {marker!r} missing")
    if last_good_bytes and size < (1.0 - watch.max_shrink) * last_good_bytes:
        message = f"{shown}: {size} bytes, over {watch.max_shrink:.0%} shorter than the last good"
        raise PageRejected("shrunk", f"{message} copy ({last_good_bytes} bytes)")


async def fetch_page(
    session: aiohttp.ClientSession,
    watch: PageWatch,
    *,
    last_good_bytes: int | None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> PageFetch:
    """Fetch ``watch``'s page and accept it only if it passes :func:`check_page`.

    Raises:
        PageMoved: a redirect (not followed).
        PageRejected: a 200 that failed a safety check, or a body over ``max_bytes``.
        FetchError: network failure or an error status.
    """
    url = watch.url
    try:
        answer = await http_get(
            session, url, headers={"Accept": _ACCEPT}, policy=policy, max_bytes=watch.max_bytes
        )
    except FetchError as exc:
        if exc.reason == "too_large":
            raise PageRejected(exc.reason, str(exc)) from None
        raise
    if answer.status in REDIRECT_STATUSES:
        location = answer.header("location")
        raise PageMoved(url, answer.status, urljoin(url, location) if location else "")
    if answer.status != 200:
        raise FetchError("http_status", f"{where(url)}: HTTP {answer.status}")
    content_type = answer.header("content-type")[:200]
    check_page(answer.body, watch, content_type=content_type, last_good_bytes=last_good_bytes)
    return PageFetch(url, answer.body, content_type)


def bytes_artifact(path: str, data: bytes) -> Artifact:
    """An artifact holding ``data`` (its SHA-256 announced, so a known copy is not re-read)."""

    async def read() -> AsyncIterator[bytes]:
        yield data

    expected = Expected(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    return Artifact(path=path, open=read, expected=expected)


def page_source_key(page_id: str) -> str:
    """``page/<id>`` (the id percent-encoded as one key segment)."""
    return f"page/{key_segment(page_id)}"


def page_file_name(url: str, content_type: str) -> str:
    """``page.md``, ``page.html`` or ``page.txt``: from the media type, else the URL's suffix."""
    path = urlsplit(url).path.lower()
    by_url = (
        ".md" if path.endswith(".md") else ".html" if path.endswith((".html", ".htm")) else ".txt"
    )
    return "page" + _SUFFIXES.get(content_type.split(";")[0].strip().lower(), by_url)


class PageSource:
    """An accepted page as a :class:`~seedvault.sources.base.Source` (already fetched)."""

    kind = "page"
    revision = "_"

    def __init__(self, page_id: str, provider: str, fetched: PageFetch) -> None:
        self.key = page_source_key(page_id)
        self.provider = provider
        self.fetched = fetched

    async def observe(self) -> Observation:
        f = self.fetched
        artifact = bytes_artifact(page_file_name(f.url, f.content_type), f.body)
        upstream = {"content_type": f.content_type} if f.content_type else {}
        extra = {"url": f.url, "provider": self.provider}
        return Observation(artifacts=[artifact], upstream=upstream, source_extra=extra)


# -- reading stored pages back ------------------------------------------------------------------


_RECORDS: dict[str, list[Record]] = {}
_RECORDS_MAX = 64
_RECORDS_LOCK = threading.Lock()  # the server parses in worker threads


def page_records(vault: Vault, snapshot_id: str) -> list[Record]:
    """The records of a stored page, parsed with the provider its manifest names. Blocking.

    A snapshot never changes, so parses are kept in a small cache keyed by snapshot id.

    Raises:
        NotInVault, IntegrityError: the snapshot or its file is missing, damaged, or no page.
    """
    with _RECORDS_LOCK:
        if snapshot_id in _RECORDS:
            return _RECORDS[snapshot_id]
    manifest = vault.snapshot(snapshot_id)
    if manifest.kind != "page" or len(manifest.files) != 1:
        raise NotInVault(f"snapshot {snapshot_id} is not a page snapshot")
    body = b"".join(vault.iter_file(manifest.files[0].blake3))
    text = page_text(body, str(manifest.upstream.get("content_type", "")))
    source = manifest.source
    records = parse_page(str(source.get("provider", "generic")), text, str(source.get("url", "")))
    with _RECORDS_LOCK:
        if len(_RECORDS) >= _RECORDS_MAX:
            _RECORDS.pop(next(iter(_RECORDS)))
        _RECORDS[snapshot_id] = records
    return records


def good_page_snapshots(catalog: Catalog) -> dict[str, str]:
    """Page source key → the snapshot holding its current lifecycle facts.

    That is the *baseline* the page watch keeps (the newest copy whose parse was accepted), or
    the newest snapshot for a page captured without a watch.
    """
    out: dict[str, str] = {}
    for row in catalog.snapshots():  # newest first
        if row.kind == "page" and row.source_key not in out:
            state = catalog.source_state(row.source_key) or {}
            baseline = state.get("baseline")
            out[row.source_key] = baseline if isinstance(baseline, str) else row.id
    return out


def lifecycle_states(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Records merged per (provider, model, region) by the lifecycle diff's rule, as objects.

    Keys: ``provider``, ``model``, ``aliases`` (of every record of the model), ``region`` (when
    given), ``shutdown``, ``announced``/``replacement``/``status`` (when known), ``source_url``
    and ``quote`` (the winning record's row), sorted by provider, model and region.
    """
    records = list(records)
    aliases: dict[tuple[str, str], set[str]] = {}
    urls: dict[tuple[str, str], str] = {}
    for r in records:
        aliases.setdefault((r.provider, r.model), set()).update(r.aliases)
        urls.setdefault((r.provider, r.model), r.source_url)
    states = merge_records(records)
    out: list[dict[str, Any]] = []
    for prov, name, region in sorted(states, key=lambda k: (k[0], k[1], k[2] or "")):
        state = states[(prov, name, region)]
        item: dict[str, Any] = {"provider": prov, "model": name}
        item["aliases"] = sorted(aliases[(prov, name)] - {name})
        if region is not None:
            item["region"] = region
        item.update(state.to_json())
        item.update(source_url=urls[(prov, name)], quote=state.quote)
        out.append(item)
    return out


def current_deprecations(
    vault: Vault, catalog: Catalog, *, provider: str | None = None, model: str | None = None
) -> list[dict[str, Any]]:
    """:func:`lifecycle_states` of every page's :func:`good_page_snapshots` copy, each object
    with ``source``, ``page``, ``snapshot`` and ``captured_at`` added; ``model`` matches an id
    or an alias. Pages whose copy cannot be read are left out (and logged). Blocking.
    """
    out: list[dict[str, Any]] = []
    for key, snapshot_id in sorted(good_page_snapshots(catalog).items()):
        try:
            states = lifecycle_states(page_records(vault, snapshot_id))
            captured_at = vault.snapshot(snapshot_id).captured_at
        except (NotInVault, IntegrityError, UsageError) as exc:
            log.warning("page_unreadable", source=key, snapshot=snapshot_id, error=str(exc))
            continue
        origin = {"source": key, "page": unquote(key.removeprefix("page/"))}
        origin.update(snapshot=snapshot_id, captured_at=captured_at)
        for item in states:
            if provider is not None and item["provider"] != provider:
                continue
            if model is not None and model not in (item["model"], *item["aliases"]):
                continue
            out.append({**item, **origin})
    return out
