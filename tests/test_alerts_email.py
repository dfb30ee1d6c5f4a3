"""Email alerts against a real SMTP server (aiosmtpd on loopback): one message per urgent
event with list-friendly headers and every fact in the body, threads per model, one daily
digest, outages and stalled servers survived without loss or duplicates, dead letters
reported and counted."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session
from structlog.testing import capture_logs

from seedvault.errors import StoreError
from seedvault.events import record_event
from seedvault.notify import alert_metrics
from tests.test_alerts_support import (
    COMMIT,
    HUB_KEY,
    Received,
    SmtpSink,
    at,
    email_toml,
    gone,
    lifecycle,
    received,
    running_sink,
    shutdown,
)

STALL_TIMEOUT = "1s"
"""The ``timeout`` of the destinations that stall: a stalled try must end after about this."""
BOUND_S = 10.0
"""Every wait on a stalled server is bounded by this (the default timeout is 30 s), so a test
fails — rather than hangs — if the configured timeout is not the one in effect."""


async def test_urgent_event_gives_one_message_with_headers_and_body(
    smtp: SmtpSink, nodes: Any
) -> None:
    """An urgent event → exactly one text/plain-first message: deterministic Message-ID,
    Auto-Submitted, no List-* headers, every fact and the exact retrieval commands."""
    node = nodes(email_toml(smtp.port))
    snapshot = node.archive()
    d = node.dispatcher()
    await d.run_once(at(timedelta(0)))
    event = gone()
    node.record(event, at(timedelta(minutes=1)))
    result = await d.run_once(at(timedelta(minutes=2)))
    assert (result.enqueued, result.sent) == (1, 1)
    await d.run_once(at(timedelta(minutes=3)))
    assert len(smtp.messages) == 1
    got = smtp.messages[0]
    msg = got.message
    assert got.rcpt_tos == ["ai-archive@lists.example.edu"]
    assert msg["Message-ID"] == f"<{event.id}@node.example.edu>"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["From"] == "seedvault@node.example.edu"
    assert msg["In-Reply-To"] is None
    assert not [k for k in msg if k.lower().startswith("list-")]
    assert "org/m" in str(msg["Subject"])
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert parts[0].get_content_type() == "text/plain"
    assert parts[0].get_content_charset() == "utf-8"
    assert parts[1].get_content_type() == "text/html"
    text = got.text()
    for fact in (
        "no longer reachable upstream",
        "2031-03-03T06:01:00.000000Z",  # since when
        HUB_KEY,
        event.id,
        "Evidence id: t1",
        snapshot,
        "captured 2031-03-01T10:00:00Z",
        f"seedvault export {snapshot} --to DIR",
        f"HF_ENDPOINT=https://node.example.edu:8470 hf download org/m --revision {COMMIT}",
    ):
        assert fact in text, fact
    [row] = node.catalog.outbox.rows()
    assert (row.state, row.attempts) == ("sent", 1)
    assert [r["alert"] for r in node.journal("alert_enqueued")] == [row.id]
    assert [r["alert"] for r in node.journal("alert_sent")] == [row.id]


async def test_three_events_about_one_model_form_one_thread(smtp: SmtpSink, nodes: Any) -> None:
    """Later alerts about a model reply to its first one; another model starts its own
    thread; the thread survives a catalog rebuild."""
    node = nodes(email_toml(smtp.port))
    d = node.dispatcher()
    await d.run_once(at(timedelta(0)))
    events = [
        lifecycle("deprecated", "gpt-x", {"shutdown": shutdown("2031-09-01")}),
        lifecycle("shutdown_date_moved", "gpt-x", shutdown("2031-10-01"), shutdown("2031-09-01")),
        lifecycle("retired", "gpt-y", {"status": "retired", "shutdown": shutdown("2031-01-01")}),
        lifecycle("retired", "gpt-x", {"status": "retired", "shutdown": shutdown("2031-10-01")}),
    ]
    for i, event in enumerate(events[:3]):
        node.record(event, at(timedelta(minutes=1 + i)))
        await d.run_once(at(timedelta(minutes=1 + i, seconds=30)))
    node.catalog.rebuild(node.vault)
    node.record(events[3], at(timedelta(minutes=10)))
    await node.dispatcher().run_once(at(timedelta(minutes=11)))
    ids = smtp.message_ids()
    assert ids == [f"<{e.id}@node.example.edu>" for e in events]
    by_id = {str(m.message["Message-ID"]): m.message for m in smtp.messages}
    root = ids[0]
    assert by_id[root]["In-Reply-To"] is None
    for mid in (ids[1], ids[3]):
        assert by_id[mid]["In-Reply-To"] == root
        assert by_id[mid]["References"] == root
    assert by_id[ids[2]]["In-Reply-To"] is None  # gpt-y: a thread of its own


async def test_routine_events_arrive_as_one_digest_at_digest_time(
    smtp: SmtpSink, nodes: Any
) -> None:
    """Routine events wait for ``digest_at`` (08:00 UTC) and go out as ONE message; urgent
    ones go at once and not into the digest; the next day without events sends nothing."""
    node = nodes(email_toml(smtp.port))
    d = node.dispatcher()
    await d.run_once(at(timedelta(0)))  # 06:00
    routine = [
        lifecycle("replacement_changed", "gpt-x", "gpt-z", "gpt-y", evidence="r1"),
        lifecycle("model_added", "gpt-new", None, evidence="r2"),
        lifecycle("announced_still_listed", "gpt-x", None, evidence="r3"),
    ]
    for i, event in enumerate(routine):
        node.record(event, at(timedelta(minutes=10 + i)))
    node.record(gone(), at(timedelta(minutes=20)))
    await d.run_once(at(timedelta(minutes=30)))
    await d.run_once(at(timedelta(hours=1, minutes=59)))  # 07:59: not yet
    assert len(smtp.messages) == 1  # the urgent one
    result = await d.run_once(at(timedelta(hours=2, minutes=2)))  # 08:02
    assert (result.enqueued, result.sent) == (1, 1)
    for hours in (3, 12, 26, 50):
        await d.run_once(at(timedelta(hours=hours, minutes=5)))
    assert len(smtp.messages) == 2
    digest = smtp.messages[1]
    assert "Daily digest 2031-03-03: 3 routine events" in str(digest.message["Subject"])
    assert digest.message["In-Reply-To"] is None
    text = digest.text()
    for event in routine:
        assert event.id in text
    assert gone().id not in text
    [row] = [r for r in node.catalog.outbox.rows() if r.kind == "digest"]
    assert digest.message["Message-ID"] == f"<{row.id}@node.example.edu>"
    assert row.window_end == "2031-03-03T08:00:00.000000Z"


async def test_a_connection_cut_after_the_data_resends_with_the_same_message_id(
    nodes: Any,
) -> None:
    """The server took the message but the connection died before its reply reached us: the
    alert stays pending, and the resend (the only duplicate possible) carries the same
    Message-ID; then it is marked sent and never sent again."""
    with running_sink(cut=1) as sink:
        node = nodes(email_toml(sink.port), retry_for="1d")
        d = node.dispatcher()
        await d.run_once(at(timedelta(0)))
        event = gone(evidence="cut")
        node.record(event, at(timedelta(seconds=10)))
        first = await d.run_once(at(timedelta(minutes=1)))
        assert (first.sent, first.failed) == (0, 1)
        assert len(sink.messages) == 1
        [row] = node.catalog.outbox.rows()
        assert (row.state, row.attempts) == ("pending", 1)
        for hours in (1, 2, 3):
            await d.run_once(at(timedelta(hours=hours)))
        await d.aclose()
        assert sink.message_ids() == [f"<{event.id}@node.example.edu>"] * 2
        assert [r.state for r in node.catalog.outbox.rows()] == ["sent"]


@pytest.mark.parametrize("failing", ["alert_enqueued", "alert_sent"])
async def test_a_store_that_goes_away_during_a_pass_loses_no_alert(
    nodes: Any, failing: str
) -> None:
    """The vault's store fails the journal write of an alert's enqueueing, or of its marking as
    sent (after the server took it): the pass fails, the alert is not lost, and once the store
    is back it is delivered — a resend, if any, with the same Message-ID."""
    with running_sink() as sink:
        node = nodes(email_toml(sink.port), retry_for="1d")
        d = node.dispatcher()
        await d.run_once(at(timedelta(0)))
        event = gone(evidence=failing)
        node.record(event, at(timedelta(seconds=10)))
        store = node.vault.store
        put = store.put

        def vanishing_put(key: str, data: bytes) -> None:
            if key.startswith("journal/") and f'"type":"{failing}"'.encode() in data:
                raise StoreError("the store went away")
            put(key, data)

        store.put = vanishing_put
        with pytest.raises(StoreError):
            await d.run_once(at(timedelta(minutes=1)))
        store.put = put
        for hours in (1, 2, 3):
            await d.run_once(at(timedelta(hours=hours)))
        await d.aclose()
        copies = 2 if failing == "alert_sent" else 1
        assert sink.message_ids() == [f"<{event.id}@node.example.edu>"] * copies
        assert [r.state for r in node.catalog.outbox.rows()] == ["sent"]
        assert alert_metrics(node.catalog)["seedvault_alerts_dead_lettered_total"] == 0


async def test_smtp_down_then_up_delivers_every_alert_once(nodes: Any) -> None:
    """While the server is down alerts stay pending with growing backoff, across a restart of
    the dispatcher; once it is up, each is delivered exactly once."""
    with running_sink(start=False) as sink:
        node = nodes(email_toml(sink.port), retry_for="1d")
        d = node.dispatcher()
        await d.run_once(at(timedelta(0)))
        events = [gone(evidence=f"t{i}") for i in range(3)]
        for i, event in enumerate(events):
            node.record(event, at(timedelta(seconds=10 + i)))
        first = await d.run_once(at(timedelta(minutes=1)))
        assert (first.enqueued, first.sent, first.failed) == (3, 0, 3)
        rows = node.catalog.outbox.rows()
        assert {r.state for r in rows} == {"pending"}
        assert all(r.next_attempt_at > "2031-03-03T06:01:00" for r in rows)
        for minutes in (2, 3, 5, 9, 17):
            await d.run_once(at(timedelta(minutes=minutes)))
        assert max(r.attempts for r in node.catalog.outbox.rows()) >= 3
        await d.aclose()
        sink.start()
        restarted = node.dispatcher()  # a restart: retry state comes from the catalog
        for hours in (1, 2, 3):
            await restarted.run_once(at(timedelta(hours=hours)))
        assert sorted(sink.message_ids()) == sorted(f"<{e.id}@node.example.edu>" for e in events)
        assert {r.state for r in node.catalog.outbox.rows()} == {"sent"}
        assert alert_metrics(node.catalog)["seedvault_alerts_dead_lettered_total"] == 0


async def test_undeliverable_alert_is_dead_lettered_reported_and_counted(
    smtp: SmtpSink, nodes: Any
) -> None:
    """After ``retry_for`` an alert is dead-lettered: journaled, counted for /metrics, and an
    ``alert_dead_lettered`` event goes to the other destination (not to the dead one)."""
    with running_sink(start=False) as dead:
        toml = email_toml(dead.port, to=["dead@lists.example.edu"]) + email_toml(smtp.port)
        node = nodes(toml, retry_for="30m")
        d = node.dispatcher()
        await d.run_once(at(timedelta(0)))
        event = gone()
        node.record(event, at(timedelta(minutes=1)))
        await d.run_once(at(timedelta(minutes=2)))
        assert smtp.message_ids() == [f"<{event.id}@node.example.edu>"]
        for minutes in (5, 10, 20, 31):
            await d.run_once(at(timedelta(minutes=minutes)))
        assert node.catalog.outbox.counts()["dead"] == 0  # 06:31: the deadline is 06:32
        result = await d.run_once(at(timedelta(minutes=40)))
        assert result.dead_lettered == 1
        again = await d.run_once(at(timedelta(minutes=50)))
        assert (again.dead_lettered, again.sent) == (0, 0)
        [dead_row] = node.catalog.outbox.rows(state="dead")
        assert dead_row.destination == "email:dead@lists.example.edu"
        [record] = node.journal("alert_dead_lettered")
        assert record["alert"] == dead_row.id
        assert alert_metrics(node.catalog)["seedvault_alerts_dead_lettered_total"] == 1
        assert len(smtp.messages) == 2
        report = smtp.messages[1]
        assert "Alert dead lettered" in str(report.message["Subject"])
        assert dead_row.id in report.text()
        assert event.id in report.text()
        events = node.catalog.events(type="alert_dead_lettered").events
        assert [e["subject"]["destination"] for e in events] == [dead_row.destination]


async def test_permanent_refusal_is_dead_lettered_at_once(smtp: SmtpSink, nodes: Any) -> None:
    """A 5xx reply to DATA cannot get better by retrying: dead-lettered on the first try."""
    smtp.reply = "554 5.7.1 rejected by policy"
    node = nodes(email_toml(smtp.port))
    d = node.dispatcher()
    await d.run_once(at(timedelta(0)))
    node.record(gone(), at(timedelta(minutes=1)))
    result = await d.run_once(at(timedelta(minutes=2)))
    assert result.dead_lettered == 1
    assert node.catalog.outbox.counts()["dead"] == 1
    assert "554" in (node.catalog.outbox.rows(state="dead")[0].last_error or "")


async def test_starttls_required_is_never_downgraded(smtp: SmtpSink, nodes: Any) -> None:
    """``tls = "starttls"`` against a server without STARTTLS sends nothing in clear text."""
    node = nodes(email_toml(smtp.port, tls="starttls"))
    d = node.dispatcher()
    await d.run_once(at(timedelta(0)))
    node.record(gone(), at(timedelta(minutes=1)))
    result = await d.run_once(at(timedelta(minutes=2)))
    assert (result.sent, result.failed) == (0, 1)
    assert smtp.messages == []


async def test_smtp_auth_password_never_appears_in_logs(nodes: Any) -> None:
    """AUTH with the password from ``password_env``; neither a refused nor an accepted login
    puts the password in a log line, the outbox or the journal."""
    password = "s3cret-Pa55word-xyz"
    env = {"SEEDVAULT_SMTP_PASSWORD": password}
    with running_sink(password="other") as sink:
        toml = email_toml(sink.port, username="seedvault", password_env="SEEDVAULT_SMTP_PASSWORD")
        node = nodes(toml, env=env)
        d = node.dispatcher(env=env)
        with capture_logs() as logs:
            await d.run_once(at(timedelta(0)))
            node.record(gone(), at(timedelta(minutes=1)))
            refused = await d.run_once(at(timedelta(minutes=2)))
            sink.password = password
            node.record(gone(evidence="t2"), at(timedelta(minutes=3)))
            accepted = await d.run_once(at(timedelta(minutes=4)))
        assert refused.dead_lettered == 1  # 535: a permanent refusal
        assert accepted.sent >= 1
        assert set(sink.logins) == {"seedvault"}
        assert len(sink.messages) >= 1
    assert password not in repr(logs)
    assert password not in repr(node.catalog.outbox.rows())
    assert password not in repr([r for _, r in node.vault.journal_records()])


async def test_started_dispatcher_sends_on_wake_and_stops(smtp: SmtpSink, nodes: Any) -> None:
    """``start`` runs passes in the background (real clock); ``wake`` starts one at once;
    ``stop`` ends the loop and closes the notifiers."""
    node = nodes(email_toml(smtp.port))
    d = node.dispatcher(interval_s=3600.0)
    d.start()
    for _ in range(200):  # the first pass registers the destination
        if node.catalog.outbox.destination_since("email:ai-archive@lists.example.edu"):
            break
        await asyncio.sleep(0.01)
    event = gone()
    record_event(node.vault, node.catalog, event)
    d.wake()
    for _ in range(500):
        if smtp.messages:
            break
        await asyncio.sleep(0.01)
    await d.stop(timeout_s=5)
    assert smtp.message_ids() == [f"<{event.id}@node.example.edu>"]


# ---------------------------------------------------------------- stalled servers


@dataclass
class StallingSink(SmtpSink):
    """An :class:`SmtpSink` that takes the data of its next ``stalls`` messages and then goes
    silent — no reply — until :meth:`resume` (a stuck content filter, an overloaded relay).
    Those messages are kept in ``stalled``: the server has them, the sender never heard so."""

    stalls: int = 0
    stalled: list[Received] = field(default_factory=list)
    _resume: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        with self._lock:
            stall, self.stalls = self.stalls > 0, max(self.stalls - 1, 0)
        if not stall:
            return await super().handle_DATA(server, session, envelope)
        got = received(envelope)
        with self._lock:
            self.stalled.append(got)
        await self._resume.wait()  # set from the test's thread, in the server's loop
        return "250 OK"

    def resume(self) -> None:
        """End the stall: later messages get their replies again."""
        with self._lock:
            self.stalls = 0
        if self._controller is not None:
            self._controller.loop.call_soon_threadsafe(self._resume.set)


@contextlib.contextmanager
def stalling_sink(stalls: int) -> Iterator[StallingSink]:
    sink = StallingSink(stalls=stalls)
    sink.start()
    try:
        yield sink
    finally:
        sink.resume()
        sink.stop()


@dataclass
class SilentServer:
    """A TCP server on loopback that accepts connections and never sends a byte (no SMTP
    greeting), keeping each connection open until the client gives up."""

    port: int = 0
    accepted: list[float] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(time.monotonic())
        self.writers.append(writer)
        with contextlib.suppress(OSError):
            await reader.read()  # b"" once the client closes
        writer.close()


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[SilentServer]:
    silent = SilentServer()
    server = await asyncio.start_server(silent.hold, "127.0.0.1", 0)
    silent.port = int(server.sockets[0].getsockname()[1])
    try:
        yield silent
    finally:
        server.close()
        for writer in silent.writers:
            writer.close()
        await server.wait_closed()


async def timed_pass(d: Any, when: timedelta) -> tuple[Any, float]:
    """``run_once`` at ``when`` (bounded by ``BOUND_S``) and how long it took."""
    started = time.monotonic()
    result = await asyncio.wait_for(d.run_once(at(when)), BOUND_S)
    return result, time.monotonic() - started


async def test_a_server_stalled_after_the_data_fails_the_try_then_sends_once(
    nodes: Any,
) -> None:
    """The server takes the message data and never answers it: after ``timeout`` (1 s, not the
    30 s default) the try fails as retryable, the alert stays pending (not dead-lettered) and
    is not retried before its backoff; once the server answers again it is delivered exactly
    once more, with the same Message-ID as the copy the stalled server kept, and marked sent."""
    with stalling_sink(stalls=1) as sink:
        node = nodes(email_toml(sink.port, timeout=STALL_TIMEOUT), retry_for="1d")
        d = node.dispatcher()
        await d.run_once(at(timedelta(0)))
        event = gone(evidence="stall")
        node.record(event, at(timedelta(seconds=10)))
        first, took = await timed_pass(d, timedelta(minutes=1))
        assert (first.sent, first.failed, first.dead_lettered) == (0, 1, 0)
        assert 0.9 <= took < 5.0, took
        assert (len(sink.stalled), sink.messages) == (1, [])
        [row] = node.catalog.outbox.rows()
        assert (row.state, row.attempts) == ("pending", 1)
        assert "Timed out" in (row.last_error or ""), row.last_error
        assert row.next_attempt_at > "2031-03-03T06:01:00"
        early, _ = await timed_pass(d, timedelta(minutes=1, seconds=5))
        assert (early.sent, early.failed) == (0, 0)  # its backoff has not passed yet
        sink.resume()
        for hours in (1, 2, 3):
            await timed_pass(d, timedelta(hours=hours))
        await d.aclose()
    sent_id = f"<{event.id}@node.example.edu>"
    assert sink.message_ids() == [sent_id]
    assert [str(m.message["Message-ID"]) for m in sink.stalled] == [sent_id]
    [row] = node.catalog.outbox.rows()
    assert (row.state, row.attempts) == ("sent", 2)
    assert [r["alert"] for r in node.journal("alert_sent")] == [row.id]
    assert node.journal("alert_dead_lettered") == []
    assert alert_metrics(node.catalog)["seedvault_alerts_dead_lettered_total"] == 0


async def test_a_server_that_never_greets_times_out_and_is_retried(nodes: Any) -> None:
    """A server that accepts the TCP connection and never sends its greeting: each try ends
    after ``timeout`` as a retryable failure and a later pass tries again (a new connection);
    when a real SMTP server answers on that port, the alert is delivered once."""
    async with silent_server() as silent:
        port = silent.port
        node = nodes(email_toml(port, timeout=STALL_TIMEOUT), retry_for="1d")
        d = node.dispatcher()
        await d.run_once(at(timedelta(0)))
        event = gone(evidence="silent")
        node.record(event, at(timedelta(seconds=10)))
        for tries, when in enumerate((timedelta(minutes=1), timedelta(hours=1)), start=1):
            result, took = await timed_pass(d, when)
            assert (result.sent, result.failed, result.dead_lettered) == (0, 1, 0)
            assert 0.9 <= took < 5.0, took
            assert len(silent.accepted) == tries
            [row] = node.catalog.outbox.rows()
            assert (row.state, row.attempts) == ("pending", tries)
            assert "Timed out" in (row.last_error or ""), row.last_error
    with running_sink(port=port) as sink:  # the server is back, and speaks SMTP
        for hours in (2, 3, 4):
            await timed_pass(d, timedelta(hours=hours))
        await d.aclose()
    assert sink.message_ids() == [f"<{event.id}@node.example.edu>"]
    [row] = node.catalog.outbox.rows()
    assert (row.state, row.attempts) == ("sent", 3)
    assert node.journal("alert_dead_lettered") == []


async def test_a_silent_server_holds_up_neither_another_list_nor_stop(
    smtp: SmtpSink, nodes: Any
) -> None:
    """Destinations are delivered in parallel: while one list's server stays silent, the other
    list gets its alert at once, before the stalled try has even timed out; ``stop`` returns
    once that try times out (2 s here), and the stalled list's alert stays pending."""
    async with silent_server() as silent:
        toml = email_toml(silent.port, to=["stalled@lists.example.edu"], timeout="2s")
        node = nodes(toml + email_toml(smtp.port), retry_for="1d")
        d = node.dispatcher(interval_s=3600.0)
        stalled_id, other_id = (
            "email:stalled@lists.example.edu",
            "email:ai-archive@lists.example.edu",
        )
        d.start()
        for _ in range(500):  # the first pass registers both destinations
            if all(node.catalog.outbox.destination_since(x) for x in (stalled_id, other_id)):
                break
            await asyncio.sleep(0.01)
        event = gone()
        record_event(node.vault, node.catalog, event)
        started = time.monotonic()
        d.wake()
        for _ in range(500):
            if smtp.messages:
                break
            await asyncio.sleep(0.01)
        assert smtp.message_ids() == [f"<{event.id}@node.example.edu>"]
        [stalled] = node.catalog.outbox.rows(destination=stalled_id)
        assert (stalled.state, stalled.attempts) == ("pending", 0)  # its try is still waiting
        assert len(silent.accepted) == 1
        await asyncio.wait_for(d.stop(timeout_s=BOUND_S), BOUND_S + 1)
        assert time.monotonic() - started < 5.0
    [stalled] = node.catalog.outbox.rows(destination=stalled_id)
    assert (stalled.state, stalled.attempts) == ("pending", 1)  # timed out, to be retried
    [other] = node.catalog.outbox.rows(destination=other_id)
    assert other.state == "sent"


@dataclass
class MuteAtQuitSink(SmtpSink):
    """An :class:`SmtpSink` that accepts every message and then never answers ``QUIT``."""

    goodbyes: list[float] = field(default_factory=list)
    _never: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_QUIT(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.goodbyes.append(time.monotonic())  # a connection left waiting for its goodbye
        await self._never.wait()
        return "221 Bye"


async def test_a_server_mute_at_quit_delays_nothing_and_sends_nothing_twice(
    nodes: Any,
) -> None:
    """A message is delivered once the server answers its data: a server that then never
    answers ``QUIT`` holds up neither the list's next alerts (six in one pass take far less
    than one timeout, here the default 30 s) nor ``stop`` (it waits 5 s for the goodbyes, not
    30); at most four connections wait for their goodbye at once (the rest are closed); every
    alert is marked sent at once, so the next start sends none of them again."""
    from seedvault.notify.email import GOODBYE_WAIT_S, MAX_GOODBYES

    sink = MuteAtQuitSink()
    sink.start()
    try:
        node = nodes(email_toml(sink.port, timeout="30s"), retry_for="1d")
        d = node.dispatcher()
        await d.run_once(at(timedelta(0)))
        events = [gone(evidence=f"mute-{i}") for i in range(6)]
        for i, event in enumerate(events):
            node.record(event, at(timedelta(seconds=10 + i)))
        result, took = await timed_pass(d, timedelta(minutes=1))
        assert (result.sent, result.failed) == (6, 0)
        assert took < 5.0, took
        assert {r.state for r in node.catalog.outbox.rows()} == {"sent"}
        started = time.monotonic()
        await asyncio.wait_for(d.stop(timeout_s=BOUND_S), BOUND_S + 1)
        assert time.monotonic() - started < GOODBYE_WAIT_S + 2.0
        assert 1 <= len(sink.goodbyes) <= MAX_GOODBYES
        again = node.dispatcher()  # the next start of the node
        later, _ = await timed_pass(again, timedelta(hours=1))
        await again.aclose()
    finally:
        sink.stop()
    assert (later.sent, later.failed) == (0, 0)
    assert sorted(sink.message_ids()) == sorted(f"<{e.id}@node.example.edu>" for e in events)
