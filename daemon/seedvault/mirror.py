"""The Hugging Face mirror: poll a watched Hub repo and freeze every new revision into the vault.

:func:`poll_hf` looks at one repo (model or dataset) once. ``refs`` (one API call) gives every
branch and tag → commit, and one ``revision`` call pinned to a watched commit gives the repo's
state (gated, disabled, private, license, card data); a watched name ``refs`` lacks is gone
(``ref_deleted``) unless it is a hidden ref (``refs/pr/1``), asked for directly. A revision whose
commit the vault's ref already holds is *unchanged*: a journal record, no snapshot, no download.
Otherwise the archived commit is looked up in the new head's history (``commits``: False →
``history_rewritten``; unknown → capture normally, no event), the tree is listed, a revision
over ``max_bytes`` is skipped whole (``over_quota``, remembered so later polls cost nothing),
and the rest goes through the one capture path (:func:`seedvault.capture.capture`): files the
catalog knows by upstream oid or SHA-256 are not downloaded again, every downloaded file is
verified before the snapshot listing it is written, and ``revision_new`` lists the files
added, removed and changed against the parent snapshot.

Upstream states (gated, disabled, deleted-or-private, moved, a watched ref deleted) are *source
state* (:class:`~seedvault.events.SourceState`: catalog + journal); their event fires once per
transition, so three polls of a gated repo give one ``repo_gated``, and a repo that goes, comes
back and goes again gives two ``repo_unavailable``. Nothing archived is touched by any of them.
``capture_failed`` fires on the first failed poll of a streak (routine) and at the third in a
row (urgent); ``verification_failed`` once per distinct bad file of a commit. ``access`` of new
snapshots is the watch's override (``public``/``token``), else the most restrictive state ever
seen upstream (gated or private → ``token``, for good).

Rate-limit arithmetic (the Hub's anonymous API quota is 500 calls per 5-minute window;
``[hub] requests_per_5min`` = 400 leaves headroom, and :class:`HubClient` enforces it):

- an unchanged poll costs 2 API calls per repo (``refs`` + ``revision``), plus 1 per watched
  hidden ref (``refs/pr/N``); a changed revision adds 1 ``revision`` (when it is not the first
  watched one), 1+ ``commits`` pages and ⌈files / 1000⌉ ``tree`` pages. Downloads count in the
  separate Resolvers bucket (3,000 per 5 minutes anonymous), not against this budget;
- N repos polled every T seconds at c calls each spend N·c·300/T calls per window. 300 repos
  every 6 h at 2 calls: 300·2/21,600 s ≈ 0.028 calls/s ≈ 1.7 calls/min ≈ 8 per window, 2% of
  the budget; the shortest safe interval is T ≥ N·c·300/400 s = 1.5 s per repo (300 repos:
  7.5 min; 1,000 repos: 25 min). A burst above the budget is not refused: the shared client
  delays calls into the next windows, so use one :class:`HubClient` per endpoint and token for
  all watches (:func:`hub_client`) and let the scheduler spread the polls.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import structlog

from seedvault.capture import CaptureResult, FileVerificationError, Progress, capture
from seedvault.catalog import Catalog
from seedvault.config import Config, HfWatch
from seedvault.errors import SeedvaultError, UpstreamError, VerificationError
from seedvault.events import Event, SourceState, record_event_async
from seedvault.ingest import Ingestor
from seedvault.manifest import Manifest, diff
from seedvault.sources.base import Observation
from seedvault.sources.hf import (
    HfSource,
    HubClient,
    RateLimited,
    RepoDisabled,
    RepoGated,
    RepoMoved,
    RepoUnavailable,
    RevisionNotFound,
)
from seedvault.sources.hf_types import HEX40, Refs, RepoType, RevisionInfo
from seedvault.sources.spec import hf_source_key
from seedvault.vault import Ref, Vault

log = structlog.get_logger(__name__)


Status = Literal[
    "captured",
    "unchanged",
    "over_quota",
    "verification_failed",
    "capture_failed",
    "ref_missing",
    "blocked",
]


@dataclass(frozen=True)
class HfTarget:
    """What to mirror: a repo, its revisions, the file selection and the limits of a watch."""

    repo_type: RepoType
    repo_id: str
    revisions: tuple[str, ...] = ("main",)
    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    max_bytes: int = 0
    """Skip a revision whose selected files add up to more (0: no limit)."""
    access: str = "auto"
    """``auto`` (follow upstream), ``public`` or ``token``."""
    labels: tuple[str, ...] = ()

    @classmethod
    def from_watch(cls, watch: HfWatch, revisions: tuple[str, ...] | None = None) -> HfTarget:
        return cls(
            repo_type="dataset" if watch.type == "dataset" else "model",
            repo_id=watch.repo,
            revisions=revisions or tuple(watch.revisions),
            include=tuple(watch.include),
            exclude=tuple(watch.exclude),
            max_bytes=watch.max_bytes,
            access=watch.access,
        )

    @classmethod
    def for_snapshot(
        cls, repo_type: str, repo_id: str, revision: str, watch: HfWatch | None
    ) -> HfTarget:
        """``seedvault snapshot hf:…@revision``: the watch's settings if it has one."""
        if watch is not None:
            return cls.from_watch(watch, (revision,))
        return cls("dataset" if repo_type == "dataset" else "model", repo_id, (revision,))


@dataclass(frozen=True)
class RevisionOutcome:
    """What one poll did for one revision."""

    revision: str
    status: Status
    commit: str | None = None
    snapshot: str | None = None
    """The new snapshot (captured) or the archived one (unchanged)."""
    capture: CaptureResult | None = None
    detail: str = ""


@dataclass(frozen=True)
class PollResult:
    """What one poll of one repo did."""

    source_key: str
    outcomes: tuple[RevisionOutcome, ...]
    events: tuple[Event, ...]
    """Events recorded by this poll (not those already recorded before)."""
    state: dict[str, Any]
    blocked: str | None = None
    """``gated``, ``disabled``, ``unavailable`` or ``moved`` when the whole repo is out of reach."""
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Every revision captured or unchanged, and the repo reachable."""
        return self.blocked is None and all(
            o.status in ("captured", "unchanged") for o in self.outcomes
        )


def find_watch(cfg: Config, repo_type: str, repo_id: str) -> HfWatch | None:
    """The ``[[watch.hf]]`` of ``repo_id`` (its selection, limits and token apply to it)."""
    for watch in cfg.watch.hf:
        if watch.repo == repo_id and watch.type == repo_type:
            return watch
    return None


def hub_client(
    cfg: Config,
    watch: HfWatch | None = None,
    *,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> HubClient:
    """A :class:`HubClient` for ``[hub]``, with a watch's ``endpoint``/``token_env`` overrides.

    The token is read from the environment variable named by ``token_env``; unset or empty
    means anonymous. It is never logged. ``options`` go to :class:`HubClient` (backoff, …).
    """
    environ = os.environ if env is None else env
    endpoint = (watch.endpoint if watch else "") or cfg.hub.endpoint
    token_env = (watch.token_env if watch else "") or cfg.hub.token_env
    token = environ.get(token_env) if token_env else None
    log.debug("hub_client", endpoint=endpoint, authenticated=bool(token))
    return HubClient(endpoint, token or None, cfg.hub.requests_per_5min, **options)


def json_safe(value: Any) -> Any:
    """``value`` reduced to v1 canonical JSON: floats and nulls dropped, recursively.

    Card data (YAML front matter) carries metric values as floats; a manifest cannot hold them,
    so they are left out rather than rounded. A dropped scalar gives None.
    """
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            kept = json_safe(item)
            if isinstance(key, str) and kept is not None:
                out[key] = kept
        return out
    if isinstance(value, list | tuple):
        return [kept for kept in (json_safe(item) for item in value) if kept is not None]
    return None


class _Observed:
    """A :class:`~seedvault.sources.base.Source` whose observation was already made."""

    def __init__(self, source: HfSource, observation: Observation) -> None:
        self._source = source
        self._observation = observation

    @property
    def key(self) -> str:
        return self._source.key

    @property
    def kind(self) -> str:
        return self._source.kind

    @property
    def revision(self) -> str:
        return self._source.revision

    async def observe(self) -> Observation:
        return self._observation


async def poll_hf(
    target: HfTarget,
    *,
    client: HubClient,
    vault: Vault,
    catalog: Catalog,
    ingestor: Ingestor,
    trigger: str = "scheduled",
    file_concurrency: int = 4,
    progress: Progress | None = None,
) -> PollResult:
    """Poll ``target`` once: capture every watched revision with a new commit, derive events.

    Upstream trouble never raises: it becomes source state, events and the outcomes of the
    result. Raises only when the vault or catalog cannot record what happened
    (:class:`~seedvault.errors.StoreError`, :class:`~seedvault.errors.CatalogError`).
    """
    poll = _Poll(target, client, vault, catalog, ingestor)
    return await poll.run(trigger, file_concurrency, progress)


async def snapshot_hf(
    cfg: Config,
    target: HfTarget,
    *,
    vault: Vault,
    catalog: Catalog,
    ingestor: Ingestor,
    watch: HfWatch | None = None,
    progress: Progress | None = None,
) -> PollResult:
    """``seedvault snapshot hf:…``: one manual poll with a client built from the config."""
    async with hub_client(cfg, watch) as client:
        return await poll_hf(
            target,
            client=client,
            vault=vault,
            catalog=catalog,
            ingestor=ingestor,
            trigger="manual",
            file_concurrency=cfg.ingest.file_concurrency,
            progress=progress,
        )


class _Poll:
    """One poll of one repo: the source state being updated and the events derived."""

    def __init__(
        self,
        target: HfTarget,
        client: HubClient,
        vault: Vault,
        catalog: Catalog,
        ingestor: Ingestor,
    ) -> None:
        self.t = target
        self.client = client
        self.vault = vault
        self.catalog = catalog
        self.ingestor = ingestor
        self.key = hf_source_key(client.endpoint, target.repo_type, target.repo_id)
        self.state = SourceState.load(catalog, self.key)
        self.state.doc.setdefault("repo", target.repo_id)
        self.events: list[Event] = []
        self.outcomes: list[RevisionOutcome] = []
        self.failure: tuple[str, SeedvaultError] | None = None
        self.ref_names: dict[str, str] = {}
        """Watched bare names as the Hub's refs list them (``refs/heads/…`` or ``refs/tags/…``)."""
        self.blocked: str | None = None
        self.log = log.bind(source=self.key)

    async def run(
        self, trigger: str, file_concurrency: int, progress: Progress | None
    ) -> PollResult:
        try:
            heads, infos, state_info = await self._look()
        except (RepoDisabled, RepoUnavailable, RepoMoved, RepoGated) as exc:
            await self._blocked(exc, None)
            return await self._finish(str(exc))
        except SeedvaultError as exc:
            self.failure = ("", exc)
            self.log.warning("hub_poll_failed", error=str(exc))
            return await self._finish(str(exc))
        await self._emit(self.state.transition("availability", "ok"))
        if state_info is not None:
            if state_info.disabled:
                await self._blocked(RepoDisabled(self.t.repo_id), state_info)
                return await self._finish(f"{self.t.repo_id}: disabled upstream")
            await self._gating(state_info.gated)
            if state_info.private:
                self.state.doc["access"] = "token"
        marks = self.state.doc.get("announcing")
        for revision in list(marks) if isinstance(marks, dict) else []:
            if revision not in self.t.revisions:  # no longer watched: nothing to announce
                self._clear_mark(revision)
        for revision in self.t.revisions:
            outcome = await self._revision(
                revision, heads.get(revision), infos, trigger, file_concurrency, progress
            )
            self.outcomes.append(outcome)
            if self.blocked is not None:
                return await self._finish(outcome.detail)
        return await self._finish("")

    async def _look(
        self,
    ) -> tuple[dict[str, str | None], dict[str, RevisionInfo], RevisionInfo | None]:
        """Commits of the watched revisions (``refs``), and one revision answer for the state."""
        client, rtype, repo = self.client, self.t.repo_type, self.t.repo_id
        refs: Refs | None = None
        try:
            refs = await client.refs(rtype, repo)
        except (RepoDisabled, RepoUnavailable, RepoMoved, RepoGated, RateLimited):
            raise
        except UpstreamError as exc:  # no refs endpoint: ask per revision instead
            self.log.info("hub_refs_unusable", error=str(exc))
        heads: dict[str, str | None] = {}
        infos: dict[str, RevisionInfo] = {}
        for revision in self.t.revisions:
            if HEX40.match(revision):
                heads[revision] = revision
                continue
            if refs is not None:
                heads[revision] = refs.branches.get(revision) or refs.tags.get(revision)
                if revision in refs.branches:
                    self.ref_names[revision] = f"refs/heads/{revision}"
                elif revision in refs.tags:
                    self.ref_names[revision] = f"refs/tags/{revision}"
                if heads[revision] is not None or not revision.startswith("refs/"):
                    continue
            try:  # no refs, or a hidden ref (refs/pr/1) that refs does not list
                info = await client.revision_info(rtype, repo, revision)
            except RevisionNotFound:
                heads[revision] = None
                continue
            heads[revision], infos[revision] = info.sha, info
        state_info = next(iter(infos.values()), None)
        for revision, head in heads.items():
            if state_info is not None:
                break
            if head is None:
                continue
            try:
                state_info = infos[revision] = await client.revision_info(rtype, repo, head)
            except RevisionNotFound:
                heads[revision] = None
        return heads, infos, state_info

    async def _revision(
        self,
        revision: str,
        head: str | None,
        infos: dict[str, RevisionInfo],
        trigger: str,
        file_concurrency: int,
        progress: Progress | None,
    ) -> RevisionOutcome:
        current = await asyncio.to_thread(self.vault.read_ref, self.key, revision)
        archived = current[0] if current else None
        old = archived.commit if archived else None
        if archived is not None and old is not None and self._mark(revision) == old:
            # the ref already holds the commit a capture was announcing: that process stopped
            # after moving the ref (wherever upstream has gone since)
            await self._announce_after_crash(revision, archived)
        if head is None:
            return await self._ref_gone(revision, old)
        await self._emit(self.state.transition(f"ref:{revision}", "present"))
        if archived is not None and old == head:
            await asyncio.to_thread(
                self.vault.journal,
                "unchanged",
                source=self.key,
                revision=revision,
                snapshot=archived.snapshot,
                commit=head,
            )
            self.log.info("hub_revision_unchanged", revision=revision, commit=head)
            return RevisionOutcome(revision, "unchanged", head, archived.snapshot)
        limit, quota = self.t.max_bytes, f"quota:{revision}"
        if limit and self.state.value(quota) == {"commit": head, "max_bytes": limit}:
            detail = f"commit {head} was skipped as larger than max_bytes = {limit}"
            return RevisionOutcome(revision, "over_quota", head, detail=detail)
        client, rtype, repo = self.client, self.t.repo_type, self.t.repo_id
        info = infos.get(revision)
        try:
            ancestor = await client.is_ancestor(rtype, repo, old, head) if old else None
            if info is None or info.sha != head:
                info = await client.revision_info(rtype, repo, head)
            include, exclude = list(self.t.include), list(self.t.exclude)
            source = HfSource(client, rtype, repo, revision, include, exclude)
            observation = await source.observe(info)
            total = sum(a.expected.size or 0 for a in observation.artifacts)
            if limit and total > limit:
                subject = self._subject(revision=revision, commit=head)
                after = {"commit": head, "max_bytes": limit}
                payload = {"bytes": total, "limit": limit}
                await self._emit(
                    self.state.transition(quota, after, "over_quota", subject, payload)
                )
                self.log.warning("hub_over_quota", revision=revision, bytes=total, limit=limit)
                detail = f"{total} bytes selected, more than max_bytes = {limit}"
                return RevisionOutcome(revision, "over_quota", head, detail=detail)
            if self.state.value(quota):  # skipped before: no longer
                self.state.transition(quota, False)
            # Write-ahead: once the ref moves, the next poll sees nothing new. Should this
            # process die between the ref and the events, the mark tells that poll to derive
            # them (same event ids, so nothing doubles if they were recorded after all).
            self.state.doc.setdefault("announcing", {})[revision] = head
            await asyncio.to_thread(self.state.save, self.vault, self.catalog)
            upstream = dict(observation.upstream)
            full_ref = revision if revision.startswith("refs/") else self.ref_names.get(revision)
            if full_ref:
                upstream["ref"] = full_ref  # a branch or a tag: the Hub's refs say which
            card = json_safe(info.card_data)
            if card:
                upstream["cardData"] = card
            result = await capture(
                _Observed(source, replace(observation, upstream=upstream)),
                vault=self.vault,
                catalog=self.catalog,
                ingestor=self.ingestor,
                trigger=trigger,
                access=self._access(),
                labels=self.t.labels,
                file_concurrency=file_concurrency,
                progress=progress,
            )
        except RevisionNotFound:
            return await self._ref_gone(revision, old)
        except (RepoGated, RepoDisabled, RepoUnavailable, RepoMoved) as exc:
            await self._blocked(exc, info)
            return RevisionOutcome(revision, "blocked", head, detail=str(exc))
        except VerificationError as exc:
            await self._verification_failed(revision, head, exc)
            return RevisionOutcome(revision, "verification_failed", head, detail=str(exc))
        except SeedvaultError as exc:
            self.failure = self.failure or (revision, exc)
            self.log.warning("hub_capture_failed", revision=revision, error=str(exc))
            return RevisionOutcome(revision, "capture_failed", head, detail=str(exc))
        await self._captured(revision, result, old, ancestor)
        self._clear_mark(revision)
        return RevisionOutcome(revision, "captured", head, result.snapshot, result)

    # -- deriving events -----------------------------------------------------------------------

    async def _emit(self, event: Event | None) -> None:
        if event is not None and await record_event_async(self.vault, self.catalog, event):
            self.events.append(event)

    def _subject(self, **extra: str) -> dict[str, Any]:
        return {"repo": self.t.repo_id, "type": self.t.repo_type, **extra}

    async def _blocked(self, exc: SeedvaultError, info: RevisionInfo | None) -> None:
        """The repo is out of reach: record the state (and its event, on a transition)."""
        self.log.warning("hub_repo_blocked", error=str(exc))
        if isinstance(exc, RepoGated):
            self.blocked = "gated"
            await self._gating(info.gated if info and info.gated else exc.mode)
            return
        payload = {}
        if isinstance(exc, RepoDisabled):
            self.blocked, event_type = "disabled", "repo_disabled"
        elif isinstance(exc, RepoMoved):
            self.blocked, event_type = "moved", "repo_moved"
            payload["new_id"] = exc.new_id  # never followed: an operator decides
        else:
            self.blocked, event_type = "unavailable", "repo_unavailable"
        subject = self._subject()
        await self._emit(
            self.state.transition("availability", self.blocked, event_type, subject, payload)
        )

    async def _gating(self, gated: bool | str) -> None:
        if gated is False:
            await self._emit(self.state.transition("gated", False))
            return
        self.state.doc["access"] = "token"
        mode = str(gated) if isinstance(gated, str) else "unknown"
        await self._emit(self.state.transition("gated", mode, "repo_gated", self._subject()))

    async def _ref_gone(self, revision: str, last_commit: str | None) -> RevisionOutcome:
        name = f"ref:{revision}"
        event_type = "ref_deleted" if self.state.value(name) == "present" else None
        payload = {"last_commit": last_commit} if last_commit else {}
        subject = self._subject(revision=revision)
        await self._emit(self.state.transition(name, "missing", event_type, subject, payload))
        self.log.warning("hub_revision_missing", revision=revision)
        return RevisionOutcome(revision, "ref_missing", detail=f"{revision}: not found")

    async def _verification_failed(
        self, revision: str, commit: str, exc: VerificationError
    ) -> None:
        path = ""
        expected: dict[str, Any] = {}
        actual: dict[str, Any] = {"detail": str(exc)}
        if isinstance(exc, FileVerificationError):
            path, actual = exc.path, {**exc.actual} or actual
            expected = {k: v for k, v in asdict(exc.expected).items() if v is not None}
        subject = self._subject(revision=revision, commit=commit, path=path)
        payload = {"detail": str(exc)}
        event = Event("verification_failed", self.key, subject, commit, expected, actual, payload)
        await self._emit(event)
        self.log.error("hub_verification_failed", revision=revision, path=path)

    def _mark(self, revision: str) -> str | None:
        """The commit a capture of ``revision`` started on and whose events are not derived
        yet (the source state's ``announcing``), or None."""
        marks = self.state.doc.get("announcing")
        found = marks.get(revision) if isinstance(marks, dict) else None
        return found if isinstance(found, str) else None

    def _clear_mark(self, revision: str) -> None:
        marks = self.state.doc.get("announcing")
        if isinstance(marks, dict):
            marks.pop(revision, None)
            if not marks:
                del self.state.doc["announcing"]

    async def _announce_after_crash(self, revision: str, archived: Ref) -> None:
        """The ref already names the commit a capture was announcing: the capturing process
        stopped after moving the ref, perhaps before its journal record and events. Derive
        them now from the snapshot and its parent; events already recorded keep their ids."""
        try:
            manifest = await asyncio.to_thread(self.vault.snapshot, archived.snapshot)
            old: str | None = None
            if manifest.parent is not None:
                old = (await asyncio.to_thread(self.vault.snapshot, manifest.parent)).commit
            head = archived.commit or ""
            client, rtype, repo = self.client, self.t.repo_type, self.t.repo_id
            ancestor = await client.is_ancestor(rtype, repo, old, head) if old else None
        except SeedvaultError as exc:  # the mark stays: the next poll tries again
            self.log.warning("hub_announce_deferred", revision=revision, error=str(exc))
            return
        result = CaptureResult(
            self.key, revision, archived.snapshot, True, manifest.parent, manifest, 0, 0, 0, 0.0
        )
        await asyncio.to_thread(
            self.vault.journal_capture, archived.snapshot, manifest, recovered=True
        )
        await self._captured(revision, result, old, ancestor)
        self._clear_mark(revision)
        self.log.info("hub_capture_announced_after_restart", revision=revision, commit=head)

    async def _captured(
        self, revision: str, result: CaptureResult, old: str | None, ancestor: bool | None
    ) -> None:
        if not result.created:
            return
        parent: Manifest | None = None
        if result.parent is not None:
            parent = await asyncio.to_thread(self.vault.snapshot, result.parent)
        changes = diff(parent, result.manifest)
        new, evidence = result.manifest.commit, result.snapshot
        payload: dict[str, Any] = {
            "added": list(changes.added),
            "removed": list(changes.removed),
            "changed": list(changes.changed),
            "files": len(result.manifest.files),
            "bytes": result.manifest.total_bytes,
        }
        if result.parent:
            payload["parent"] = result.parent
        subject = self._subject(revision=revision, commit=new or "")
        await self._emit(Event("revision_new", self.key, subject, evidence, old, new, payload))
        if ancestor is False:
            subject = self._subject(revision=revision)
            payload = {"snapshot": evidence}
            event = Event("history_rewritten", self.key, subject, evidence, old, new, payload)
            await self._emit(event)

    def _access(self) -> str:
        if self.t.access in ("public", "token"):
            return self.t.access
        return str(self.state.doc.get("access", "public"))

    async def _finish(self, detail: str) -> PollResult:
        if self.failure is not None:
            revision, exc = self.failure
            extra = {"revision": revision} if revision else {}
            await self._emit(self.state.failed(self._subject(), exc, **extra))
        elif any(o.status in ("captured", "unchanged") for o in self.outcomes):
            self.state.succeeded()
        await asyncio.to_thread(self.state.save, self.vault, self.catalog)
        self.log.info(
            "hub_poll_done",
            outcomes={o.revision: o.status for o in self.outcomes},
            blocked=self.blocked,
            events=[e.type for e in self.events],
        )
        return PollResult(
            self.key,
            tuple(self.outcomes),
            tuple(self.events),
            self.state.doc,
            self.blocked,
            detail,
        )
