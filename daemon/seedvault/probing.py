"""Behaviour probes: run a ``[[watch.probes]]`` suite against a model, keep it, judge it.

:func:`poll_probes` runs the suite once (:mod:`seedvault.sources.probes`), keeps the run as an
``api-probes`` snapshot under ``probes/<watch id>/<model>`` and compares it with the baseline
run (:mod:`seedvault.sources.probe_compare`): a change beyond the noise is one
``behaviour_changed`` event; an inconclusive run (rate limits, server errors, network, auth,
answers that are no answers) is ``capture_failed`` and is never compared.
:func:`rescue_probes` runs the extra ``last-known-behaviour`` runs that a ``deprecated`` event
or a ``rescue_before`` lead time before a known shutdown calls for. The polls share
:mod:`seedvault.provider`'s bookkeeping (:class:`~seedvault.provider.WatchResult`, events
recorded before the source state is saved).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
import structlog

from seedvault.capture import capture
from seedvault.catalog import Catalog
from seedvault.config import Duration, ModelsApiWatch, ProbesWatch
from seedvault.errors import ConfigError, IntegrityError, NotInVault, UpstreamError
from seedvault.events import Event, SourceState
from seedvault.ingest import Ingestor
from seedvault.notify.reminders import SHUTDOWN_EVENT_TYPES, due_reminders, known_shutdowns
from seedvault.provider import Poll, WatchResult, source_lock
from seedvault.sources.pages import DEFAULT_RETRY, RetryPolicy, http_session
from seedvault.sources.probe_compare import compare_runs, text_hashes
from seedvault.sources.probe_suite import Suite, load_suite
from seedvault.sources.probes import (
    ChatApi,
    ProbeRun,
    ProbeRunSource,
    probes_source_key,
    run_suite,
)
from seedvault.vault import Vault

log = structlog.get_logger(__name__)

RESCUE_LABEL = "last-known-behaviour"
RESCUE_REPEAT = 5
"""Repeats of a rescue run (at least; a watch's ``repeat`` if larger)."""
SEEN_MAX = 50
"""Text hashes kept per probe from the unchanged runs since the baseline."""


async def poll_probes(
    watch: ProbesWatch,
    api_watch: ModelsApiWatch,
    model: str,
    *,
    vault: Vault,
    catalog: Catalog,
    ingestor: Ingestor,
    session: aiohttp.ClientSession | None = None,
    env: Mapping[str, str] | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
    trigger: str = "scheduled",
    labels: Sequence[str] = (),
    repeat: int | None = None,
    suite: Suite | None = None,
) -> WatchResult:
    """Run ``watch``'s suite against ``model`` once, keep the run, and judge it.

    The run is captured (kind ``api-probes``, ``trigger`` and ``labels`` in its manifest)
    whatever it holds. A run with an inconclusive error (rate limits, server errors, network,
    auth) is ``capture_failed`` (routine; urgent at the third in a row) and is not compared.
    Otherwise it is compared with the baseline (:func:`~seedvault.sources.probe_compare
    .compare_runs`): the first comparable run of a suite version is the baseline; a change
    beyond the noise is one ``behaviour_changed`` event (evidence: the new run; before/after:
    the two snapshots), and the new run becomes the baseline. The baseline does not move on
    runs that show no change, so slow drift adds up until it shows.

    Runs of one model never overlap (:func:`source_lock`): a scheduled run waits for a rescue
    run and the other way round, and a manual ``seedvault probe`` waits for the daemon's run
    of the same model (and the other way round), so no run overwrites another's source state
    and one change is never reported twice.

    Raises only when the vault or catalog cannot record what happened.
    """
    key = probes_source_key(watch.id, model)
    async with source_lock(catalog, key):
        return await _poll_probes(
            watch, api_watch, model, vault=vault, catalog=catalog, ingestor=ingestor,
            session=session, env=env, policy=policy, trigger=trigger, labels=labels,
            repeat=repeat, suite=suite,
        )  # fmt: skip


async def _poll_probes(
    watch: ProbesWatch,
    api_watch: ModelsApiWatch,
    model: str,
    *,
    vault: Vault,
    catalog: Catalog,
    ingestor: Ingestor,
    session: aiohttp.ClientSession | None,
    env: Mapping[str, str] | None,
    policy: RetryPolicy,
    trigger: str,
    labels: Sequence[str],
    repeat: int | None,
    suite: Suite | None,
) -> WatchResult:
    poll = Poll(vault, catalog, probes_source_key(watch.id, model))
    await _flush_pending(poll)
    subject = {"watch": watch.id, "api": api_watch.id, "model": model}
    api_key = (os.environ if env is None else env).get(api_watch.api_key_env, "")
    try:
        suite = suite or load_suite(watch.suite)
        if not api_key:
            raise ConfigError(f"environment variable {api_watch.api_key_env} is not set")
        async with http_session(session) as http:
            api = ChatApi(api_watch.flavor, api_watch.base_url, api_key, http, policy=policy)
            run = await run_suite(api, model, suite, repeat or watch.repeat, labels=labels)
    except ConfigError as exc:
        poll.log.warning("probe_run_failed", error=str(exc))
        await poll.emit(poll.state.failed(subject, exc))
        return await poll.done("failed", detail=str(exc))
    source = ProbeRunSource(watch.id, api_watch.id, run)
    result = await capture(
        source, vault=vault, catalog=catalog, ingestor=ingestor, trigger=trigger, labels=labels
    )
    if run.inconclusive:
        classes = run.inconclusive_classes
        detail = f"{'/'.join(classes)} answers to {', '.join(run.inconclusive)}"
        poll.log.warning(
            "probe_run_inconclusive", snapshot=result.snapshot, probes=run.inconclusive
        )
        error = UpstreamError(detail)
        failed = poll.state.failed(subject, error, snapshot=result.snapshot, classes=classes)
        await poll.emit(failed)
        return await poll.done("incomplete", result.snapshot, detail)
    poll.state.succeeded()
    await _judge_run(poll, subject, run, result.snapshot)
    return await poll.done("captured", result.snapshot)


async def _judge_run(poll: Poll, subject: dict[str, str], run: ProbeRun, snapshot: str) -> None:
    state = poll.state
    version = f"{run.suite.name}@{run.suite.version}"
    baseline = state.doc.get("baseline")
    old: dict[str, Any] | None = None
    if isinstance(baseline, str) and state.doc.get("suite") == version:
        try:
            old = await asyncio.to_thread(read_run, poll.vault, baseline)
        except (NotInVault, IntegrityError, ValueError) as exc:
            poll.log.error("probe_baseline_unreadable", snapshot=baseline, error=str(exc))
    now_seen = {p: sorted(h) for p, h in text_hashes(run.doc).items()}
    if old is None:
        state.doc.update(baseline=snapshot, suite=version, seen=now_seen)
        poll.log.info("probe_baseline", snapshot=snapshot, suite=version)
        return
    seen: dict[str, list[str]] = state.doc.get("seen") or {}
    verdict = compare_runs(old, run.doc, seen)
    if not verdict.changed:
        for p, hashes in now_seen.items():  # answers of unchanged runs are noise too
            known = seen.get(p, [])
            seen[p] = [*known, *(h for h in hashes if h not in known)][-SEEN_MAX:]  # newest
        state.doc["seen"] = seen
        poll.log.info("probe_run_unchanged", snapshot=snapshot, baseline=baseline)
        return
    first = verdict.measures[0]
    payload: dict[str, Any] = {
        "measure": first.measure,
        "magnitude": first.to_json()["magnitude"],
        "noise": first.to_json()["noise"],
        "probes": sorted({p for m in verdict.measures for p in m.probes}),
        "measures": [m.to_json() for m in verdict.measures],
        "baseline": baseline,
        "snapshot": snapshot,
        "suite": version,
    }
    for name, (before, after) in (
        ("system_fingerprint", verdict.fingerprints),
        ("omitted_parameters", verdict.omitted),
    ):
        if before != after:
            payload[name] = {"before": list(before), "after": list(after)}
    event = Event("behaviour_changed", poll.key, subject, snapshot, baseline, snapshot, payload)
    # the verdict is saved with the new baseline before the event is recorded: a crash in
    # between records this same event at the next poll, never a second one for the change
    state.doc.update(baseline=snapshot, seen=now_seen, pending=event.to_json(""))
    await asyncio.to_thread(state.save, poll.vault, poll.catalog)
    await poll.emit(event)
    state.doc.pop("pending")
    poll.log.warning("behaviour_changed", measure=first.measure, magnitude=payload["magnitude"])


async def _flush_pending(poll: Poll) -> None:
    """Record the event a crashed poll decided on but may not have recorded (once: an event
    already recorded is recognised by its id)."""
    doc = poll.state.doc.pop("pending", None)
    if not isinstance(doc, dict):
        return
    event = Event(
        doc["type"], doc["source"], doc["subject"], doc["evidence"], doc.get("before"),
        doc.get("after"), doc.get("payload", {}), doc.get("severity"),
    )  # fmt: skip
    await poll.emit(event)
    await asyncio.to_thread(poll.state.save, poll.vault, poll.catalog)
    poll.log.warning("probe_pending_event_flushed", event_id=event.id)


def read_run(vault: Vault, snapshot_id: str) -> dict[str, Any]:
    """The ``run.json`` of a stored probe run. Blocking.

    Raises:
        NotInVault, IntegrityError: missing or damaged; ValueError: not a probe run.
    """
    manifest = vault.snapshot(snapshot_id)
    entry = next((f for f in manifest.files if f.path == "run.json"), None)
    if manifest.kind != "api-probes" or entry is None:
        raise ValueError(f"snapshot {snapshot_id[:12]} is not a probe run")
    doc = json.loads(b"".join(vault.iter_file(entry.blake3)))
    if not isinstance(doc, dict):
        raise ValueError(f"snapshot {snapshot_id[:12]}: run.json is not an object")
    return doc


def rescue_reasons(
    watch: ProbesWatch,
    flavor: str,
    model: str,
    lifecycle: Sequence[dict[str, Any]],
    now: datetime,
    done: Sequence[str],
) -> list[str]:
    """Why ``model`` needs a rescue run now, as ids not in ``done``: each ``deprecated`` event
    naming it (from a page of the API's provider or a generic page), and the reminder id of each
    ``rescue_before`` lead time reached before its known shutdown (the reminders' rule: only the
    smallest due lead, never for a date already past). ``lifecycle`` is every recorded event of
    the reminders' :data:`~seedvault.notify.reminders.SHUTDOWN_EVENT_TYPES`."""
    reasons: list[str] = []
    for event in lifecycle:
        if event.get("type") != "deprecated":
            continue
        names = {event.get("subject", {}).get("model")}
        after = event.get("after")
        if isinstance(after, dict) and isinstance(after.get("aliases"), list):
            names.update(after["aliases"])
        provider = event.get("subject", {}).get("provider")
        if model in names and provider in (flavor, "generic", None):
            reasons.append(str(event["id"]))
    leads = [Duration(lead).seconds for lead in watch.rescue_before]
    known = [
        k for k in known_shutdowns(lifecycle)
        if k.model == model and k.provider in (flavor, "generic", "")
    ]  # fmt: skip
    reasons += [event.id for event in due_reminders(known, leads, now)]
    return [r for r in dict.fromkeys(reasons) if r not in done]


def _lifecycle_events(catalog: Catalog) -> list[dict[str, Any]]:
    return [e for t in SHUTDOWN_EVENT_TYPES for e in catalog.each_event(type=t)]


async def rescue_probes(
    watch: ProbesWatch,
    api_watch: ModelsApiWatch,
    *,
    vault: Vault,
    catalog: Catalog,
    ingestor: Ingestor,
    now: datetime | None = None,
    session: aiohttp.ClientSession | None = None,
    env: Mapping[str, str] | None = None,
    policy: RetryPolicy = DEFAULT_RETRY,
) -> list[WatchResult]:
    """Rescue runs due for ``watch``'s models (:func:`rescue_reasons`): each one extra run of
    ``max(repeat, RESCUE_REPEAT)`` repeats labelled ``last-known-behaviour`` with trigger
    ``rescue``. The reasons are marked done (source state ``rescued``) once a conclusive run
    is captured; a run that could not start or was inconclusive (rate limits, server errors)
    is tried again at the next check."""
    moment = now or datetime.now(UTC)
    results: list[WatchResult] = []
    lifecycle = await asyncio.to_thread(_lifecycle_events, catalog)  # once for all models
    for model in watch.models:
        key = probes_source_key(watch.id, model)
        async with source_lock(catalog, key):
            state = await asyncio.to_thread(SourceState.load, catalog, key)
            done = list(state.doc.get("rescued", []))
            reasons = rescue_reasons(watch, api_watch.flavor, model, lifecycle, moment, done)
            if not reasons:
                continue
            log.warning("probe_rescue", source=key, reasons=reasons)
            result = await _poll_probes(
                watch, api_watch, model, vault=vault, catalog=catalog, ingestor=ingestor,
                session=session, env=env, policy=policy, trigger="rescue",
                labels=(RESCUE_LABEL,), repeat=max(watch.repeat, RESCUE_REPEAT), suite=None,
            )  # fmt: skip
            results.append(result)
            if result.status == "captured":  # an inconclusive rescue is tried again
                state = await asyncio.to_thread(SourceState.load, catalog, key)
                state.doc["rescued"] = [*state.doc.get("rescued", []), *reasons]
                await asyncio.to_thread(state.save, vault, catalog)
    return results
