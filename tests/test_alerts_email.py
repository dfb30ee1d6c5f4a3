"""Email alerts against a real SMTP server (aiosmtpd on loopback): one message per urgent
event with list-friendly headers and every fact in the body, threads per model, one daily
digest, outages survived without loss or duplicates, dead letters reported and counted."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from seedvault.errors import StoreError
from seedvault.events import record_event
from seedvault.notify import alert_metrics
from tests.test_alerts_support import (
    COMMIT,
    HUB_KEY,
    SmtpSink,
    at,
    email_toml,
    gone,
    lifecycle,
    running_sink,
    shutdown,
)


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
