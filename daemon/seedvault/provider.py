"""Provider watch: poll a models list or a deprecation page once, and turn changes into events.

:func:`poll_models_api` reads the *complete* models list of one ``[[watch.models_api]]``
(:mod:`seedvault.sources.models_api`), captures its normalised form through the one capture
path (an unchanged list writes no snapshot) and compares it with the models the source state
knows. The first complete list is the baseline (no event). Later lists give ``model_added``
and ``lifecycle_changed`` (one per changed lifecycle field, before → after). A known model the
list lacks is asked for directly; ``model_removed`` needs a not-found answer on two runs in a
row (:func:`~seedvault.sources.models_api.compare_models`; the pending-removal counters live in
the source state; a run whose direct request is inconclusive does not count, a run that lists
the model or where it answers clears the counter). A failed or incomplete list is ``list_failed``
(routine; urgent at the third in a row) and changes nothing else, so it can never remove a
model.

:func:`poll_page` fetches one ``[[watch.page]]`` under the fetcher safety rules
(:mod:`seedvault.sources.pages`): a redirect is ``page_moved`` (once per transition, never
followed), a rejected or failed fetch is ``capture_failed`` and keeps the last good copy. An
accepted page is captured; a *new* copy is parsed (:func:`~seedvault.sources.parsers.parse_page`)
and diffed field by field (:func:`~seedvault.sources.parsers.diff_records`) against the
*baseline* — the newest copy whose parse was accepted. Each change is an event of its own type
(``deprecated``, ``shutdown_date_*``, ``replacement_changed``, ``retired``) whose evidence is the
new snapshot and whose payload holds the source URL and the quoted row. A parse with no
records, or under a third of the baseline's, is one ``parse_failed`` (once per transition) and
leaves the baseline as it was: a broken parse never reads as a flood of retirements. The first
good parse is the baseline (no events); an unchanged page gives no snapshot and no event.

:func:`cross_check` (call it after the polls) compares pages with lists: a model the page of the
API's provider says is deprecated or retired while the API still lists it is
``announced_still_listed`` (routine; again when its exact shutdown date has passed), and a
confirmed ``model_removed`` that no watched page of that provider announced is
``not_announced_removal`` (urgent). A page watch maps to the models lists whose ``flavor``
equals its ``provider``. :func:`poll_watch` is one poll of either kind followed by the
cross-checks, as the daemon's jobs and ``seedvault snapshot <watch id>`` run it.

Behaviour probes (``[[watch.probes]]``) are run by :mod:`seedvault.probing`.

Events are recorded (journal + catalog) before the source state is saved, so a crash in
between re-derives the same event ids on the next poll and records nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import aiohttp
import structlog

from seedvault.capture import capture
from seedvault.catalog import Catalog
from seedvault.config import ModelsApiWatch, PageWatch
from seedvault.errors import IntegrityError, NotInVault
from seedvault.events import Event, SourceState, record_event_async
from seedvault.ingest import Ingestor
from seedvault.sources.models_api import (
    ListFailed,
    ModelsApi,
    ModelsListSource,
    compare_models,
    models_source_key,
    normalise_models,
)
from seedvault.sources.pages import (
    DEFAULT_RETRY,
    FetchError,
    PageMoved,
    PageRejected,
    PageSource,
    RetryPolicy,
    fetch_page,
    http_session,
    lifecycle_states,
    page_records,
    page_source_key,
    page_text,
    where,
)
from seedvault.sources.parsers import Record, diff_records, parse_page
from seedvault.vault import Vault

log = structlog.get_logger(__name__)

QUOTE_MAX = 600
"""Evidence quotes are cut to this many characters in event payloads."""

Status = Literal["captured", "unchanged", "failed", "incomplete", "moved", "rejected"]


@dataclass(frozen=True)
class WatchResult:
    """What one poll of one models list or page did."""

    source_key: str
    status: Status
    events: tuple[Event, ...]
    """Events recorded by this poll (not those already recorded before)."""
    snapshot: str | None = None
    """The new snapshot (captured) or the current one (unchanged)."""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("captured", "unchanged")


class Poll:
    """Source state, the events recorded so far, and the vault they go to."""

    def __init__(self, vault: Vault, catalog: Catalog, key: str) -> None:
        self.vault, self.catalog, self.key = vault, catalog, key
        self.state = SourceState.load(catalog, key)
        self.events: list[Event] = []
        self.log = log.bind(source=key)

    async def emit(self, event: Event | None) -> None:
        if event is not None and await record_event_async(self.vault, self.catalog, event):
            self.events.append(event)

    async def done(
        self, status: Status, snapshot: str | None = None, detail: str = ""
    ) -> WatchResult:
        await asyncio.to_thread(self.state.save, self.vault, self.catalog)
        self.log.info("provider_poll_done", status=status, events=[e.type for e in self.events])
        return WatchResult(self.key, status, tuple(self.events), snapshot, detail)


def _clip(text: str) -> str:
    return text if len(text) <= QUOTE_MAX else text[: QUOTE_MAX - 1] + "…"


# -- models lists -------------------------------------------------------------------------------


async def poll_models_api(
    watch: ModelsApiWatch,
    *,
    vault: Vault,
    catalog: Catalog,
    ingestor: Ingestor,
    session: aiohttp.ClientSession | None = None,
    env: Mapping[str, str] | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    trigger: str = "scheduled",
) -> WatchResult:
    """Poll one models list (see the module docstring). The key is read from ``env``
    (default ``os.environ``) by the watch's ``api_key_env`` and used for this poll only.

    Raises only when the vault or catalog cannot record what happened.
    """
    poll = Poll(vault, catalog, models_source_key(watch.id))
    subject = {"api": watch.id}
    api_key = (os.environ if env is None else env).get(watch.api_key_env, "")
    async with http_session(session) as http:
        api = ModelsApi(watch.flavor, watch.base_url, api_key, http, policy=policy)
        try:
            if not api_key:
                raise ListFailed("failed", f"environment variable {watch.api_key_env} is not set")
            cards = normalise_models(watch.flavor, await api.list_models())
        except ListFailed as exc:
            poll.log.warning("models_list_failed", reason=exc.reason, error=str(exc))
            await poll.emit(poll.state.failed(subject, exc, "list_failed", reason=exc.reason))
            return await poll.done(exc.reason, detail=str(exc))
        source = ModelsListSource(watch.id, watch.flavor, watch.base_url, cards)
        result = await capture(
            source, vault=vault, catalog=catalog, ingestor=ingestor, trigger=trigger
        )
        changes = await compare_models(poll.state, watch.id, api, cards, result.snapshot)
        for event in changes:
            await poll.emit(event)
    poll.state.succeeded()
    return await poll.done("captured" if result.created else "unchanged", result.snapshot)


# -- pages ----------------------------------------------------------------------------------------


async def poll_page(
    watch: PageWatch,
    *,
    vault: Vault,
    catalog: Catalog,
    ingestor: Ingestor,
    session: aiohttp.ClientSession | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    trigger: str = "scheduled",
) -> WatchResult:
    """Poll one deprecation page (see the module docstring).

    Raises only when the vault or catalog cannot record what happened.
    """
    poll = Poll(vault, catalog, page_source_key(watch.id))
    subject = {"page": watch.id, "provider": watch.provider}
    last_good = await asyncio.to_thread(_last_size, vault, poll.key)
    try:
        async with http_session(session) as http:
            fetched = await fetch_page(http, watch, last_good_bytes=last_good, policy=policy)
    except PageMoved as exc:
        poll.log.warning("page_moved", status=exc.status, location=exc.location)
        payload = {"url": where(watch.url), "status": exc.status}
        event = poll.state.transition("location", exc.location, "page_moved", subject, payload)
        await poll.emit(event)
        return await poll.done("moved", detail=str(exc))
    except FetchError as exc:
        poll.log.warning("page_fetch_rejected", reason=exc.reason, error=str(exc))
        await poll.emit(poll.state.failed(subject, exc, reason=exc.reason))
        status: Status = "rejected" if isinstance(exc, PageRejected) else "failed"
        return await poll.done(status, detail=str(exc))
    poll.state.transition("location", where(watch.url))
    source = PageSource(watch.id, watch.provider, fetched)
    result = await capture(source, vault=vault, catalog=catalog, ingestor=ingestor, trigger=trigger)
    poll.state.succeeded()
    if poll.state.doc.get("checked") != result.snapshot:
        text = page_text(fetched.body, fetched.content_type)
        records = await asyncio.to_thread(parse_page, watch.provider, text, watch.url)
        await _judge_page(poll, watch, subject, records, result.snapshot)
        poll.state.doc["checked"] = result.snapshot
    return await poll.done("captured" if result.created else "unchanged", result.snapshot)


def _last_size(vault: Vault, key: str) -> int | None:
    """Bytes of the last accepted copy of a page (None before the first)."""
    current = vault.read_ref(key, "_")
    if current is None:
        return None
    files = vault.snapshot(current[0].snapshot).files
    return files[0].size if files else None


async def _judge_page(
    poll: Poll, watch: PageWatch, subject: dict[str, str], records: list[Record], snapshot: str
) -> None:
    state = poll.state
    baseline = state.doc.get("baseline")
    old: list[Record] = []
    if isinstance(baseline, str):
        try:
            old = await asyncio.to_thread(page_records, poll.vault, baseline)
        except (NotInVault, IntegrityError) as exc:  # damaged: this copy becomes the baseline
            poll.log.error("page_baseline_unreadable", snapshot=baseline, error=str(exc))
            baseline = None
    changes = diff_records(old, records) if old or not records else []
    if changes and changes[0].type == "parse_failed":
        if state.value("parse") != "failed":
            state.transition("parse", "failed")
            evidence = state.doc["fields"]["parse"]["transition"]
            payload = {"snapshot": snapshot, "source_url": watch.url, "quote": changes[0].quote}
            if isinstance(baseline, str):
                payload["baseline"] = baseline
            event = Event(
                "parse_failed", poll.key, subject, evidence, len(old), len(records), payload
            )
            await poll.emit(event)
        poll.log.warning("page_parse_failed", records=len(records), previous=len(old))
        return
    for change in changes:
        about = {**subject, "provider": change.provider, "model": change.model}
        if change.region is not None:
            about["region"] = change.region
        payload = {"source_url": watch.url, "quote": _clip(change.quote)}
        if isinstance(baseline, str):
            payload["baseline"] = baseline
        event = Event(change.type, poll.key, about, snapshot, change.before, change.after, payload)
        await poll.emit(event)
    state.transition("parse", "ok")
    state.doc["baseline"] = snapshot
    poll.log.info("page_parsed", records=len(records), changes=len(changes), first=not old)


# -- cross-checks ---------------------------------------------------------------------------------


_SOURCE_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _source_lock_in_loop(key: str) -> asyncio.Lock:
    """The lock that runs one source's polls one at a time, in the running loop.

    Per loop: an :class:`asyncio.Lock` belongs to the loop it first waited in, so one shared
    across loops (a second ``asyncio.run`` in the same process, as the CLI and tests do) would
    fail with "bound to a different event loop" the first time it was contended there.
    """
    locks = _SOURCE_LOCKS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(key, asyncio.Lock())


LOCK_POLL_S = 0.5
"""How often a run waiting for another process's run of the same source tries again."""


def source_lock_path(catalog: Catalog, key: str) -> Path | None:
    """The file whose ``flock`` runs one provider source's polls (a models list, a page, a
    probed model) one process at a time: beside the catalog (every process of a node opens
    the same one); None for an in-memory catalog. (Named ``probes-…`` for every kind: the
    name probe runs used first, so a node's processes agree across the upgrade.)"""
    if catalog.path == ":memory:":
        return None
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return Path(catalog.path + ".locks") / f"probes-{digest}"


@contextlib.asynccontextmanager
async def source_lock(catalog: Catalog, key: str) -> AsyncIterator[None]:
    """Hold source ``key`` for one poll: first against other polls in this event loop, then
    against other processes of the node (the daemon, ``seedvault probe`` and ``snapshot``), with an
    exclusive ``flock`` on :func:`source_lock_path`, tried every :data:`LOCK_POLL_S` so the
    wait can be cancelled. The kernel releases the lock when its holder exits, also by
    SIGKILL."""
    async with _source_lock_in_loop(key):
        path = source_lock_path(catalog, key)
        if path is None:
            yield
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            told = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told:
                        log.info("poll_waiting", source=key, reason="another process polls it")
                        told = True
                    await asyncio.sleep(LOCK_POLL_S)
            yield
        finally:
            os.close(fd)  # closing releases the flock


async def poll_watch(
    watch: ModelsApiWatch | PageWatch,
    apis: Sequence[ModelsApiWatch],
    pages: Sequence[PageWatch],
    *,
    vault: Vault,
    catalog: Catalog,
    ingestor: Ingestor,
    trigger: str = "scheduled",
) -> tuple[WatchResult, tuple[Event, ...]]:
    """One poll of a models list or a page, then the cross-checks between all the watched
    ``apis`` and ``pages``: the poll's result and the events the cross-checks recorded. The
    daemon's jobs and ``seedvault snapshot <watch id>`` (``trigger`` ``manual``) poll here.

    Raises only when the vault or catalog cannot record what happened.
    """
    if isinstance(watch, PageWatch):
        async with source_lock(catalog, page_source_key(watch.id)):
            result = await poll_page(
                watch, vault=vault, catalog=catalog, ingestor=ingestor, trigger=trigger
            )
    else:
        async with source_lock(catalog, models_source_key(watch.id)):
            result = await poll_models_api(
                watch, vault=vault, catalog=catalog, ingestor=ingestor, trigger=trigger
            )
    async with source_lock(catalog, CROSS_CHECK_LOCK):
        crossed = await cross_check(apis, pages, vault=vault, catalog=catalog)
    return result, crossed


CROSS_CHECK_LOCK = "cross-check"
"""The :func:`source_lock` key of the cross-checks (they keep their own marks)."""


async def cross_check(
    apis: Sequence[ModelsApiWatch],
    pages: Sequence[PageWatch],
    *,
    vault: Vault,
    catalog: Catalog,
    today: date | None = None,
) -> tuple[Event, ...]:
    """Compare watched pages with watched lists (see the module docstring); the new events.

    A list is judged only against pages of its provider that have a baseline; a removal is
    judged once, at the first cross-check after it. Raises only when the vault or catalog
    cannot record what happened.
    """
    day = (today or datetime.now(UTC).date()).isoformat()
    events: list[Event] = []
    for api in apis:
        same = [p for p in pages if p.provider == api.flavor]
        announced, judged = await asyncio.to_thread(_announced, vault, catalog, same)
        if judged:
            events += await _cross_check_api(api, announced, judged, vault, catalog, day)
    return tuple(events)


def _announced(
    vault: Vault, catalog: Catalog, pages: Sequence[PageWatch]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Model name or alias → what a page says about it (deprecated, legacy or retired models
    only), and the ids of the pages that could be read (those with a baseline)."""
    out: dict[str, dict[str, Any]] = {}
    judged: list[str] = []
    for page in pages:
        state = catalog.source_state(page_source_key(page.id)) or {}
        baseline = state.get("baseline")
        if not isinstance(baseline, str):
            continue
        try:
            items = lifecycle_states(page_records(vault, baseline))
        except (NotInVault, IntegrityError) as exc:
            log.warning("page_unreadable", page=page.id, snapshot=baseline, error=str(exc))
            continue
        judged.append(page.id)
        for item in items:
            status, dated = item.get("status"), "date" in item["shutdown"]
            if status in ("legacy", "deprecated", "retired") or (status is None and dated):
                info = {"page": page.id, **item, "quote": _clip(item["quote"])}
                for name in (item["model"], *item["aliases"]):
                    out.setdefault(name, info)
    return out, judged


def _listing_state(info: dict[str, Any] | None, day: str) -> str:
    """``no``, ``announced``, or ``past_shutdown`` (retired, or an exact date before today)."""
    if info is None:
        return "no"
    shutdown = info["shutdown"]
    exact_past = shutdown["qualifier"] == "exact" and str(shutdown.get("date")) < day
    return "past_shutdown" if info.get("status") == "retired" or exact_past else "announced"


async def _cross_check_api(
    api: ModelsApiWatch,
    announced: dict[str, dict[str, Any]],
    judged: list[str],
    vault: Vault,
    catalog: Catalog,
    day: str,
) -> list[Event]:
    key = models_source_key(api.id)
    # its own state slot: the list poll may save the list's state at the same time
    poll = Poll(vault, catalog, f"crosscheck/{key}")
    listed = (catalog.source_state(key) or {}).get("models") or {}
    fields = poll.state.doc.get("fields", {})
    seen = {name.removeprefix("listed:") for name in fields if name.startswith("listed:")}
    for model in sorted(seen | (set(listed) & set(announced))):
        info = announced.get(model) if model in listed else None
        value = _listing_state(info, day)
        kind = "announced_still_listed" if value != "no" else None
        subject = {"api": api.id, "model": model}
        event = poll.state.transition(f"listed:{model}", value, kind, subject, info or {})
        await poll.emit(replace(event, source=key) if event is not None else None)
    checked: list[str] = poll.state.doc.setdefault("removals_checked", [])
    for removal in await asyncio.to_thread(_removals, catalog, key):
        if removal["id"] in checked:
            continue
        model = str(removal["subject"].get("model", ""))
        if model not in announced:
            subject = {"api": api.id, "model": model}
            payload = {"removed_at": str(removal.get("at", "")), "pages_checked": judged}
            event = Event("not_announced_removal", key, subject, removal["id"], payload=payload)
            await poll.emit(event)
        checked.append(removal["id"])
    await asyncio.to_thread(poll.state.save, vault, catalog)
    poll.log.info("cross_check_done", events=[e.type for e in poll.events])
    return poll.events


def _removals(catalog: Catalog, key: str) -> list[dict[str, Any]]:
    """Every ``model_removed`` event of a models list, oldest first."""
    return list(catalog.each_event(type="model_removed", source=key))
