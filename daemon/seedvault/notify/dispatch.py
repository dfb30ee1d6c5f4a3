"""The alert dispatcher: recorded events → the outbox → mailing lists and webhooks, never lost.

One pass (:meth:`Dispatcher.run_once`, with an injectable clock) does, in order:

1. registers new destinations (journal ``alert_destination``): a destination receives the
   events recorded from then on, never the node's whole history;
2. records the ``shutdown_reminder`` events that are due (:mod:`.reminders`);
3. routes newly recorded events (:class:`~seedvault.notify.base.Destination`): each
   ``urgent`` one becomes an alert per destination;
4. enqueues each destination's daily digest once its ``digest_at`` (UTC) has passed: ONE
   alert for all its ``routine`` events since its previous digest (a node that was down over
   several digest times sends one digest covering them all);
5. delivers due alerts, destinations in parallel, alerts of one destination in order.

The guarantee (``architecture.md``, "what never lost means"): an alert is enqueued — journal
``alert_enqueued``, then the catalog outbox — before any try; it is marked sent — journal
``alert_sent``, then the catalog — only after the server accepted it. ``reindex`` and
``catch_up`` restore the outbox from the journal. So delivery is at-least-once: the one
duplicate possible is a resend after a crash between acceptance and marking, and it carries
the same ``Message-ID`` / ``webhook-id``.

(The journaled writes themselves live in :mod:`.outbox`.) A failed try is retried with
exponential backoff and jitter (``next_attempt_at`` is stored,
so retries survive restarts) until ``[alerts] retry_for`` after enqueueing; then, or at once
for a permanent refusal, the alert is dead-lettered: journal ``alert_dead_lettered``, state
``dead`` (counted by :func:`alert_metrics`), and an ``alert_dead_lettered`` event that the
router sends to the *other* destinations (never for an alert that was itself about a dead
letter, so two dead destinations cannot ping-pong).

Test-only fault hook: with ``SEEDVAULT_FAULT_KILL_AFTER_ALERTS_ACCEPTED=N`` in the environment
the process SIGKILLs itself right after the N-th accepted alert, before marking it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import blake3
import structlog

from seedvault.catalog import Catalog
from seedvault.catalog_outbox import OutboxRow
from seedvault.config import Config
from seedvault.errors import AlertDeliveryError, ConfigError
from seedvault.events import AT_FORMAT, Event
from seedvault.manifest import canonical_json
from seedvault.notify.base import (
    Destination,
    Notifier,
    email_destination,
    webhook_destination,
)
from seedvault.notify.email import EmailNotifier, message_id, node_host
from seedvault.notify.outbox import AlertOutbox, iso
from seedvault.notify.reminders import catalog_shutdowns, due_reminders
from seedvault.notify.render import AlertContent, archived_for, build_content, thread_key
from seedvault.notify.webhook import WebhookNotifier, decode_secret
from seedvault.vault import Vault, utc_now

log = structlog.get_logger(__name__)

FAULT_KILL_ENV = "SEEDVAULT_FAULT_KILL_AFTER_ALERTS_ACCEPTED"
ROUTE_LOOKBACK = timedelta(minutes=10)
"""Each pass re-reads this much before its routing mark (idempotent), for concurrent writers."""
ALERTS_SOURCE = "alerts"


def _parse(at: str) -> datetime:
    return datetime.strptime(at, AT_FORMAT).replace(tzinfo=UTC)


def _hash_id(**identity: str) -> str:
    return blake3.blake3(canonical_json(identity)).hexdigest()


def backoff_s(
    attempts: int,
    base_s: float,
    max_s: float,
    rng: Callable[[], float],
    retry_after_s: float | None = None,
) -> float:
    """Delay before try ``attempts + 1``: exponential, capped, with equal jitter."""
    delay = float(min(max_s, base_s * 2 ** max(0, attempts - 1)))
    delay = delay / 2 + rng() * delay / 2
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, max_s))
    return delay


@dataclass
class PassResult:
    """What one pass did (also logged as ``alert_pass``)."""

    reminders: int = 0
    enqueued: int = 0
    sent: int = 0
    failed: int = 0
    dead_lettered: int = 0


def alert_metrics(catalog: Catalog) -> dict[str, int]:
    """Outbox gauges and counters for ``/metrics`` (durable: read from the catalog)."""
    counts = catalog.outbox.counts()
    return {
        "seedvault_alerts_pending": counts["pending"],
        "seedvault_alerts_sent_total": counts["sent"],
        "seedvault_alerts_dead_lettered_total": counts["dead"],
    }


class Dispatcher:
    """Routes, enqueues and delivers alerts for one node (see the module docstring)."""

    def __init__(
        self,
        vault: Vault,
        catalog: Catalog,
        notifiers: Sequence[Notifier],
        *,
        public_url: str,
        retry_for_s: float,
        clock: Callable[[], datetime] = utc_now,
        retry_base_s: float = 30.0,
        retry_max_s: float = 3600.0,
        digest_settle_s: float = 60.0,
        interval_s: float = 30.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.vault, self.catalog, self.outbox = vault, catalog, catalog.outbox
        self.writes = AlertOutbox(vault, catalog)
        self.notifiers = {n.destination.id: n for n in notifiers}
        if len(self.notifiers) != len(notifiers):
            raise ConfigError("alerts: two destinations have the same recipients or URL")
        self.public_url = public_url
        self.host = node_host(public_url)
        self.retry_for = timedelta(seconds=retry_for_s)
        self.clock, self.rng = clock, rng
        self.retry_base_s, self.retry_max_s = retry_base_s, retry_max_s
        self.digest_settle = timedelta(seconds=digest_settle_s)
        self.interval_s = interval_s
        self._since: dict[str, str] = {}
        self._leads = sorted({lead for n in notifiers for lead in n.destination.reminders})
        self._kill_after = int(os.environ.get(FAULT_KILL_ENV, "0") or 0)
        self._accepted = 0
        self._lock = asyncio.Lock()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        vault: Vault,
        catalog: Catalog,
        *,
        env: dict[str, str] | None = None,
        **options: Any,
    ) -> Dispatcher:
        """A dispatcher for ``[[alerts.email]]`` and ``[[alerts.webhook]]`` of ``cfg``.

        Secrets are read here from the env vars the config names (``env`` overrides
        ``os.environ``). ``options`` go to the constructor (clock, retry settings, …).

        Raises:
            ConfigError: a secret env var is unset, a webhook secret is not base64, a bad
                ``digest_at``/lead time/event type, or two identical destinations.
        """
        environ = dict(os.environ) if env is None else env
        notifiers: list[Notifier] = []
        for i, e in enumerate(cfg.alerts.email):
            where = f"alerts.email[{i}]"
            password = None
            if e.username:
                password = environ.get(e.password_env)
                if not password:
                    raise ConfigError(f"{where}.password_env: environment variable is not set")
            notifiers.append(EmailNotifier(email_destination(e, where), e, password=password))
        for i, w in enumerate(cfg.alerts.webhook):
            where = f"alerts.webhook[{i}]"
            key = None
            if w.secret_env:
                raw = environ.get(w.secret_env)
                if not raw:
                    raise ConfigError(
                        f"{where}.secret_env: environment variable {w.secret_env} is not set"
                    )
                try:
                    key = decode_secret(raw)
                except ValueError as exc:
                    raise ConfigError(f"{where}.secret_env: {exc}") from None
            notifiers.append(WebhookNotifier(webhook_destination(w, where), w, secret=key))
        return cls(
            vault,
            catalog,
            notifiers,
            public_url=cfg.server.public_url,
            retry_for_s=cfg.alerts.retry_for.seconds,
            **options,
        )

    @property
    def destinations(self) -> list[Destination]:
        return [n.destination for n in self.notifiers.values()]

    # ------------------------------------------------------------------ one pass

    async def run_once(self, now: datetime | None = None) -> PassResult:
        """One pass at ``now`` (default: the clock). Safe to call concurrently (serialised)."""
        async with self._lock:
            moment = now or self.clock()
            result = PassResult()
            await asyncio.to_thread(self._prepare, moment, result)
            await self._deliver(moment, result)
            if result.dead_lettered:  # tell the other destinations in this same pass
                await asyncio.to_thread(self._route, moment, result)
                await self._deliver(moment, result)
            if any(vars(result).values()):
                log.info("alert_pass", **vars(result))
            return result

    def _prepare(self, now: datetime, result: PassResult) -> None:
        self._register(now)
        for event in due_reminders(catalog_shutdowns(self.catalog), self._leads, now):
            if self.writes.record(event, now):
                result.reminders += 1
        self._route(now, result)
        for dest in self.destinations:
            result.enqueued += self._digest(dest, now)

    def _register(self, now: datetime) -> None:
        for dest in self.destinations:
            if dest.id not in self._since:
                self._since[dest.id] = self.writes.register(dest.id, dest.label, now)

    def _events_from(self, start: str) -> Iterator[dict[str, Any]]:
        return self.catalog.each_event(since=start)

    def _route(self, now: datetime, result: PassResult) -> None:
        if not self._since:
            return
        start = min(self._since.values())
        mark = self.outbox.mark("routed")
        if mark is not None:
            start = max(start, iso(_parse(mark) - ROUTE_LOOKBACK))
        last = mark
        for event in self._events_from(start):
            at = str(event["at"])
            last = max(last or at, at)
            for dest in self.destinations:
                if at >= self._since[dest.id] and dest.route(event) == "now":
                    result.enqueued += self._enqueue_event(dest, event, now)
        if last is not None and last != mark:
            self.outbox.set_mark("routed", last)

    def _message_id(self, dest: Destination, ident: str) -> str:
        return message_id(ident, self.host) if dest.kind == "email" else ident

    def _enqueue_event(self, dest: Destination, event: dict[str, Any], now: datetime) -> int:
        alert_id = _hash_id(destination=dest.id, event=str(event["id"]))
        if self.outbox.get(alert_id) is not None:
            return 0
        thread = thread_key(event) if dest.kind == "email" else None
        root = self.outbox.thread_root(dest.id, thread) if thread else None
        row = OutboxRow(
            id=alert_id,
            destination=dest.id,
            kind="event",
            events=(str(event["id"]),),
            message_id=self._message_id(dest, str(event["id"])),
            enqueued_at=iso(now),
            thread=thread,
            thread_root=root,
        )
        return int(self.writes.enqueue(row))

    def _digest(self, dest: Destination, now: datetime) -> int:
        """Enqueue ``dest``'s digest if a digest time has passed since its last one."""
        settled = now - self.digest_settle
        hour, minute = dest.digest_at
        due = settled.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if due > settled:
            due -= timedelta(days=1)
        end, since = iso(due), self._since[dest.id]
        if end <= since:
            return 0
        done = self.outbox.mark(f"digest:{dest.id}") or self.outbox.last_digest_end(dest.id)
        if done is not None and done >= end:
            return 0
        start = max(done, since) if done is not None else since
        picked: list[dict[str, Any]] = []
        for event in self._events_from(start):
            at = str(event["at"])
            if at > end:
                break
            if (at > start or start == since) and dest.route(event) == "digest":
                picked.append(event)
        count = 0
        if picked:
            digest_id = _hash_id(destination=dest.id, digest=end)
            row = OutboxRow(
                id=digest_id,
                destination=dest.id,
                kind="digest",
                events=tuple(str(e["id"]) for e in picked),
                message_id=self._message_id(dest, digest_id),
                enqueued_at=iso(now),
                window_start=start,
                window_end=end,
            )
            count = int(self.writes.enqueue(row))
        self.outbox.set_mark(f"digest:{dest.id}", end)
        return count

    # ------------------------------------------------------------------ delivery

    async def _deliver(self, now: datetime, result: PassResult) -> None:
        # only this node's destinations: alerts of a destination that left the config (or of
        # another node sharing the vault's journal) stay pending, never dead-lettered here
        due = await asyncio.to_thread(self.outbox.due, iso(now), list(self.notifiers), 1000)
        by_dest: dict[str, list[OutboxRow]] = {}
        for row in due:
            by_dest.setdefault(row.destination, []).append(row)
        await asyncio.gather(
            *(self._deliver_to(dest, rows, now, result) for dest, rows in by_dest.items())
        )

    async def _deliver_to(
        self, dest_id: str, rows: list[OutboxRow], now: datetime, result: PassResult
    ) -> None:
        notifier = self.notifiers[dest_id]
        down: AlertDeliveryError | None = None
        for row in rows:
            if down is not None:  # the destination is down: count a try, don't hammer it
                await asyncio.to_thread(self._failed, row, down, now, result)
                continue
            try:
                content = await asyncio.to_thread(self._content, row)
                await notifier.send(row, content)
            except AlertDeliveryError as exc:
                await asyncio.to_thread(self._failed, row, exc, now, result)
                if not exc.permanent:
                    down = exc
                continue
            except Exception as exc:  # a bug or a catalog error must not stop the other alerts
                log.exception("alert_send_crashed", alert=row.id, destination=dest_id)
                error = AlertDeliveryError(f"{dest_id}: {type(exc).__name__}")
                await asyncio.to_thread(self._failed, row, error, now, result)
                continue
            self._fault_after_accept()
            await asyncio.to_thread(self.writes.sent, row, row.attempts + 1, now)
            result.sent += 1

    def _content(self, row: OutboxRow) -> AlertContent:
        items = []
        for event_id in row.events:
            event = self.catalog.event(event_id) or {"id": event_id, "type": "unknown"}
            items.append(archived_for(self.catalog, event))
        return build_content(row, items, self.public_url)

    def _fault_after_accept(self) -> None:
        if self._kill_after:
            self._accepted += 1
            if self._accepted >= self._kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    def _failed(
        self, row: OutboxRow, exc: AlertDeliveryError, now: datetime, result: PassResult
    ) -> None:
        attempts = row.attempts + 1
        deadline = _parse(row.enqueued_at) + self.retry_for
        error = str(exc)[:500]
        if exc.permanent or now >= deadline:
            self._dead_letter(row, error, attempts, now)
            result.dead_lettered += 1
            return
        delay = backoff_s(
            attempts, self.retry_base_s, self.retry_max_s, self.rng, exc.retry_after_s
        )
        self.writes.retry(row, attempts, min(now + timedelta(seconds=delay), deadline), error)
        result.failed += 1

    def _dead_letter(self, row: OutboxRow, error: str, attempts: int, now: datetime) -> None:
        self.writes.dead(row, error, attempts, now)
        types = {(self.catalog.event(e) or {}).get("type") for e in row.events}
        if types == {"alert_dead_lettered"}:
            return
        payload: dict[str, Any] = {
            "events": list(row.events),
            "kind": row.kind,
            "error": error,
            "attempts": attempts,
            "enqueued_at": row.enqueued_at,
        }
        subject = {"destination": row.destination, "alert": row.id}
        self.writes.record(
            Event("alert_dead_lettered", ALERTS_SOURCE, subject, row.id, payload=payload), now
        )

    # ------------------------------------------------------------------ lifecycle

    def wake(self) -> None:
        """Start the next pass now (call after recording events)."""
        self._wakeup.set()

    async def run_forever(self) -> None:
        """Passes every ``interval_s`` (or at :meth:`wake`) until :meth:`stop`."""
        while not self._stopping:
            self._wakeup.clear()  # a wake() during the pass starts the next one at once
            try:
                await self.run_once()
            except Exception:
                log.exception("alert_pass_failed")
            if self._stopping:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.interval_s)

    def start(self) -> None:
        """Run :meth:`run_forever` as a task of the running loop."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self.run_forever())

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the pass in flight (up to ``timeout_s``, then cancel) and close notifiers.

        An alert cancelled mid-send stays pending and is retried at the next start.
        """
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout_s)
            except (TimeoutError, asyncio.CancelledError):
                pass
            self._task = None
        await self.aclose()

    async def aclose(self) -> None:
        for notifier in self.notifiers.values():
            await notifier.aclose()
