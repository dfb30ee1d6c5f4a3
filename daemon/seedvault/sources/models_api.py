"""Provider models lists: every page of an API's list, normalised, and the events it implies.

Formats (``[[watch.models_api]] flavor``, ``providers.md`` §2): ``openai`` (also vLLM and
llama.cpp) and ``mistral`` — Bearer, ``{"data": [{"id", …}]}``, one page; ``anthropic`` —
``x-api-key`` + ``anthropic-version``, ``after_id`` = ``last_id`` while ``has_more``;
``gemini`` — ``x-goog-api-key``, ``{"models": [{"name": "models/…"}]}``, ``pageToken`` =
``nextPageToken``; ``cohere`` — Bearer, ``{"models": [{"name", …}]}``, ``page_token`` =
``next_page_token``. The key travels only in a request header (Gemini's header rather than its
``key`` URL parameter, so no URL holds it); no header or answer body is ever logged or stored,
and error messages carry only the URL without credentials or query, the status and the
provider's short error code.

:meth:`ModelsApi.list_models` reads *every* page or raises :class:`ListFailed`: ``failed``
(nothing usable) or ``incomplete`` (a later page failed, ``has_more`` without a ``last_id``, a
cursor seen before, too many pages); a partial list never looks like a removal.
:func:`normalise_models` drops what changes on every call — ``created`` when it is the request
time (vLLM, llama.cpp), vLLM's random ``permission[].id`` — and sorts by model id, so
:func:`list_bytes` of an unchanged list is byte-identical and its capture writes no snapshot.
:meth:`ModelsApi.lookup` asks for one model directly, the second witness a removal needs
(404/410, or a ``model_not_found``-class code); :func:`compare_models` turns a complete list
into ``model_added``, ``lifecycle_changed`` and ``model_removed``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote, urlencode

import aiohttp
import structlog

from seedvault.errors import UpstreamError
from seedvault.events import Event, SourceState
from seedvault.manifest import key_segment
from seedvault.sources.base import Observation
from seedvault.sources.pages import (
    DEFAULT_RETRY,
    FetchError,
    RetryPolicy,
    bytes_artifact,
    http_get,
    where,
)

log = structlog.get_logger(__name__)

ANTHROPIC_VERSION = "2023-06-01"
REMOVAL_CONFIRMATIONS = 2
"""Consecutive runs whose complete list lacks a model and whose direct request says not found."""
VOLATILE_CREATED_S = 600
"""A ``created`` this close to the time of the request is the request time, not a release."""
LIFECYCLE_FIELDS = (
    "shutdown_date",
    "deprecation",
    "deprecation_date",
    "deprecation_replacement_model",
    "deprecated",
    "is_deprecated",
    "retirement_date",
    "sunset_date",
)
"""Card fields whose change is a ``lifecycle_changed`` event (whichever flavor has them)."""
NOT_FOUND_CODES = frozenset({"model_not_found", "not_found_error", "NOT_FOUND", "not_found"})
_CODE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")

Presence = Literal["present", "not_found", "unknown"]


@dataclass(frozen=True)
class Flavor:
    """Where a list format keeps its items, ids and next-page cursor."""

    name: str
    items_key: str
    id_key: str = "id"
    id_prefix: str = ""
    first_query: tuple[tuple[str, str], ...] = ()
    cursor_param: str = ""
    """Query parameter that asks for the next page (empty: the list has one page)."""
    cursor_key: str = ""
    """Answer key holding the next page's cursor."""
    more_key: str = ""
    """Answer key saying whether more pages exist (Anthropic's ``has_more``)."""

    def auth_headers(self, api_key: str) -> dict[str, str]:
        if self.name == "anthropic":
            return {"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION}
        if self.name == "gemini":
            return {"x-goog-api-key": api_key}
        return {"Authorization": f"Bearer {api_key}"}

    def model_id(self, card: Mapping[str, Any]) -> str:
        return str(card[self.id_key]).removeprefix(self.id_prefix)


FLAVORS: dict[str, Flavor] = {
    "openai": Flavor("openai", "data"),
    "mistral": Flavor("mistral", "data"),
    "anthropic": Flavor(
        "anthropic", "data", first_query=(("limit", "1000"),),
        cursor_param="after_id", cursor_key="last_id", more_key="has_more",
    ),
    "gemini": Flavor(
        "gemini", "models", "name", "models/", (("pageSize", "1000"),),
        cursor_param="pageToken", cursor_key="nextPageToken",
    ),
    "cohere": Flavor(
        "cohere", "models", "name", first_query=(("page_size", "1000"),),
        cursor_param="page_token", cursor_key="next_page_token",
    ),
}  # fmt: skip


class ListFailed(UpstreamError):
    """No complete list: ``reason`` is ``failed`` or ``incomplete``."""

    def __init__(self, reason: Literal["failed", "incomplete"], message: str) -> None:
        super().__init__(message)
        self.reason = reason


def models_source_key(api_id: str) -> str:
    """``api/<id>`` (the id percent-encoded as one key segment)."""
    return f"api/{key_segment(api_id)}"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def error_codes(body: bytes) -> set[str]:
    """Short error codes an error answer carries (``error.code``/``type``/``status``, …)."""
    try:
        doc = json.loads(body, parse_constant=_no_constants)
    except ValueError:
        return set()
    if not isinstance(doc, dict):
        return set()
    err = doc.get("error")
    places = [doc, err] if isinstance(err, dict) else [doc]
    values = [p.get(k) for p in places for k in ("code", "type", "status")]
    return {v for v in values if isinstance(v, str) and _CODE_RE.fullmatch(v) and v != "error"}


class ModelsApi:
    """A client of one models-list endpoint (the session is the caller's).

    Args:
        flavor: a key of :data:`FLAVORS`.
        base_url: e.g. ``https://api.openai.com/v1`` (``/models`` is appended).
        api_key: sent in the flavor's auth header only.
        max_pages: pages read before the list counts as ``incomplete``.
    """

    def __init__(
        self,
        flavor: str,
        base_url: str,
        api_key: str,
        session: aiohttp.ClientSession,
        *,
        policy: RetryPolicy = DEFAULT_RETRY,
        max_list_bytes: int = 64 * 1024 * 1024,
        max_pages: int = 1000,
    ) -> None:
        self.flavor = FLAVORS[flavor]
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self._session = session
        self._policy = policy
        self._max_bytes = max_list_bytes
        self._max_pages = max_pages

    def _safe(self, message: str) -> str:
        """``message`` with the key masked (defence in depth: messages never hold it)."""
        return message.replace(self._key, "***") if self._key else message

    async def _get(self, path: str, query: Sequence[tuple[str, str]] = ()) -> tuple[int, bytes]:
        url = f"{self.base_url}/{path}" + (f"?{urlencode(list(query))}" if query else "")
        headers = {"Accept": "application/json", **self.flavor.auth_headers(self._key)}
        try:
            answer = await http_get(
                self._session, url, headers=headers, policy=self._policy, max_bytes=self._max_bytes
            )
        except FetchError as exc:
            raise ListFailed("failed", self._safe(str(exc))) from None
        return answer.status, answer.body

    async def list_models(self) -> list[dict[str, Any]]:
        """Every card of every page, in the order served.

        Raises:
            ListFailed: ``failed`` or ``incomplete`` (see the module docstring).
        """
        f = self.flavor
        cards: list[dict[str, Any]] = []
        cursors: set[str] = set()
        query = list(f.first_query)
        for page in range(1, self._max_pages + 1):
            try:
                doc = await self._page(query)
            except ListFailed as exc:
                if page == 1:
                    raise
                raise ListFailed("incomplete", f"page {page}: {exc}") from None
            reason: Literal["failed", "incomplete"] = "failed" if page == 1 else "incomplete"
            items = doc if isinstance(doc, list) else doc.get(f.items_key)
            if not isinstance(items, list):
                raise ListFailed(reason, f"page {page}: no {f.items_key!r} list in the answer")
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get(f.id_key), str):
                    raise ListFailed(reason, f"page {page}: an item without a string {f.id_key}")
                cards.append(item)
            cursor = self._next_cursor(doc, page)
            if cursor is None:
                return cards
            if cursor in cursors:
                raise ListFailed("incomplete", f"page {page}: paging returned a cursor again")
            cursors.add(cursor)
            query = [*f.first_query, (f.cursor_param, cursor)]
        raise ListFailed("incomplete", f"more than {self._max_pages} pages")

    async def _page(self, query: Sequence[tuple[str, str]]) -> Any:
        status, body = await self._get("models", query)
        if status != 200:
            codes = " ".join(sorted(error_codes(body)))
            raise ListFailed("failed", self._safe(f"GET {where(self.base_url)}/models: HTTP "
                                                  f"{status} {codes}".rstrip()))  # fmt: skip
        try:
            doc = json.loads(body, parse_constant=_no_constants)
        except ValueError:
            raise ListFailed("failed", "the models list is not JSON") from None
        if not isinstance(doc, dict | list):
            raise ListFailed("failed", "the models list is not a JSON object")
        return doc

    def _next_cursor(self, doc: Any, page: int) -> str | None:
        f = self.flavor
        if not f.cursor_param or not isinstance(doc, dict):
            return None
        if f.more_key:
            more = doc.get(f.more_key)
            if more is False:
                return None
            if more is not True:
                raise ListFailed("incomplete", f"page {page}: {f.more_key} is not a boolean")
            cursor = doc.get(f.cursor_key)
            if not isinstance(cursor, str) or not cursor:
                raise ListFailed("incomplete", f"page {page}: {f.more_key} without {f.cursor_key}")
            return cursor
        cursor = doc.get(f.cursor_key)
        if cursor is None or cursor == "":
            return None
        if not isinstance(cursor, str):
            raise ListFailed("incomplete", f"page {page}: {f.cursor_key} is not a string")
        return cursor

    async def lookup(self, model_id: str) -> Presence:
        """Ask for one model directly: ``present``, ``not_found`` or ``unknown`` (any doubt)."""
        try:
            status, body = await self._get(f"models/{quote(model_id, safe='')}")
        except ListFailed:
            return "unknown"
        if status == 200:
            return "present"
        if status in (404, 410) or (400 <= status < 500 and error_codes(body) & NOT_FOUND_CODES):
            return "not_found"
        return "unknown"


def normalise_models(
    flavor: str, cards: Sequence[Mapping[str, Any]], now_s: float | None = None
) -> list[dict[str, Any]]:
    """Cards without volatile fields, sorted by model id (then content) — see the module doc."""
    f = FLAVORS[flavor]
    now = time.time() if now_s is None else now_s
    out: list[dict[str, Any]] = []
    for card in cards:
        kept = dict(card)
        created = kept.get("created")
        if isinstance(created, int | float) and abs(created - now) <= VOLATILE_CREATED_S:
            del kept["created"]
        perms = kept.get("permission")
        if isinstance(perms, list):
            kept["permission"] = [
                {k: v for k, v in p.items() if k not in ("id", "created")}
                if isinstance(p, dict)
                else p
                for p in perms
            ]
        out.append(kept)
    return sorted(out, key=lambda c: (f.model_id(c), list_bytes([c])))


def list_bytes(cards: Sequence[Mapping[str, Any]]) -> bytes:
    """Canonical JSON of ``cards``: sorted keys, no spaces, UTF-8, one trailing newline."""
    text = json.dumps(list(cards), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


def lifecycle(card: Mapping[str, Any]) -> dict[str, str | int | bool]:
    """The card's :data:`LIFECYCLE_FIELDS` as event-safe values (absent when null)."""
    out: dict[str, str | int | bool] = {}
    for name in LIFECYCLE_FIELDS:
        value = card.get(name)
        if value is None:
            continue
        if isinstance(value, bool | int | str):
            out[name] = value
        else:
            out[name] = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return out


class ModelsListSource:
    """A complete, normalised models list as a :class:`~seedvault.sources.base.Source`."""

    kind = "api-models"
    revision = "_"

    def __init__(
        self, api_id: str, flavor: str, base_url: str, cards: Sequence[Mapping[str, Any]]
    ) -> None:
        self.key = models_source_key(api_id)
        self.flavor = flavor
        self.base_url = base_url
        self.cards = list(cards)

    async def observe(self) -> Observation:
        return Observation(
            artifacts=[bytes_artifact("models.json", list_bytes(self.cards))],
            upstream={"flavor": self.flavor, "models": len(self.cards)},
            source_extra={"endpoint": where(self.base_url)},
        )


async def compare_models(
    state: SourceState,
    api_id: str,
    api: ModelsApi,
    cards: Sequence[Mapping[str, Any]],
    evidence: str,
) -> list[Event]:
    """The events of one complete list, updating ``state`` (known models, pending removals).

    The first list is the baseline (no events). Then: ``model_added``; ``lifecycle_changed``
    per changed :func:`lifecycle` field; a known model the list lacks is looked up directly
    and ``model_removed`` needs a not-found answer on :data:`REMOVAL_CONFIRMATIONS` runs in a
    row (an inconclusive lookup does not count; listed again or answering clears the count).
    ``evidence`` is the list's snapshot. Record the events before saving ``state``.
    """
    listed = {api.flavor.model_id(c): lifecycle(c) for c in cards}
    doc, key = state.doc, state.source
    known: dict[str, Any] | None = doc.get("models")
    if known is None:
        doc["models"] = listed
        log.info("models_list_baseline", source=key, models=len(listed))
        return []
    pending: dict[str, int] = doc.setdefault("pending_removal", {})
    events: list[Event] = []

    def subject(model: str, **extra: str) -> dict[str, str]:
        return {"api": api_id, "model": model, **extra}

    for model in sorted(listed.keys() - known.keys()):
        payload = {"lifecycle": listed[model]}
        events.append(Event("model_added", key, subject(model), evidence, payload=payload))
    for model in sorted(listed.keys() & known.keys()):
        old, new = known[model], listed[model]
        for name in sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n)):
            about = subject(model, field=name)
            events.append(
                Event("lifecycle_changed", key, about, evidence, old.get(name), new.get(name))
            )
        pending.pop(model, None)
    for model in listed.keys() - known.keys():
        pending.pop(model, None)
    removed: set[str] = set()
    for model in sorted(known.keys() - listed.keys()):
        presence = await api.lookup(model)
        log.info("model_unlisted", source=key, model=model, lookup=presence)
        if presence == "present":
            pending.pop(model, None)
        elif presence == "not_found":
            pending[model] = pending.get(model, 0) + 1
            if pending[model] >= REMOVAL_CONFIRMATIONS:
                gone: dict[str, Any] = {"lifecycle": known[model]}
                gone["confirmations"] = pending.pop(model)
                events.append(Event("model_removed", key, subject(model), evidence, payload=gone))
                removed.add(model)
    everything = (known.keys() | listed.keys()) - removed
    doc["models"] = {m: listed[m] if m in listed else known[m] for m in everything}
    return events
