"""The outbox across crashes and rebuilds: a process killed between the SMTP server's
acceptance and the marking resends with the same Message-ID; ``rebuild`` restores pending and
sent alerts (and threads) from the journal, so nothing is lost and nothing sent twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta
from typing import Any

from seedvault.notify import Dispatcher
from seedvault.notify.dispatch import FAULT_KILL_ENV
from tests.test_alerts_support import (
    SmtpSink,
    at,
    email_toml,
    gone,
    lifecycle,
    running_sink,
    shutdown,
)

CHILD = """
import asyncio, sys
from seedvault.app import Node
from seedvault.config import load_config
from seedvault.events import Event, record_event
from seedvault.notify import Dispatcher

async def main() -> None:
    cfg = load_config(sys.argv[1])
    node = Node.open(cfg)
    dispatcher = Dispatcher.from_config(cfg, node.vault, node.catalog)
    await dispatcher.run_once()
    subject = {"repo": "org/m", "type": "model"}
    event = Event("repo_unavailable", "hf/huggingface.co/model/org/m", subject, "t1", "ok", "gone")
    record_event(node.vault, node.catalog, event)
    await dispatcher.run_once()
    print("not killed")

asyncio.run(main())
"""


async def test_killed_between_acceptance_and_marking_resends_same_message_id(
    smtp: SmtpSink, nodes: Any
) -> None:
    """A real process SIGKILLed right after the server accepted (fault hook, before marking):
    the alert is still pending, and the restarted node resends it with the same
    Message-ID — the one duplicate the guarantee allows."""
    node = nodes(email_toml(smtp.port))
    env = {**os.environ, FAULT_KILL_ENV: "1"}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(node.root / "seedvault.toml"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == -signal.SIGKILL, stderr.decode()
    assert b"not killed" not in stdout
    assert len(smtp.messages) == 1
    [row] = node.catalog.outbox.rows()
    assert row.state == "pending"
    assert [r["alert"] for r in node.journal("alert_enqueued")] == [row.id]
    assert node.journal("alert_sent") == []

    restarted = node.dispatcher()  # the node after the restart, real clock
    result = await restarted.run_once()
    assert result.sent == 1
    first, second = smtp.message_ids()
    assert first == second == row.message_id
    assert node.catalog.outbox.rows()[0].state == "sent"
    await restarted.run_once()
    assert len(smtp.messages) == 2


async def test_rebuild_restores_pending_and_sent_alerts(nodes: Any) -> None:
    """``Catalog.rebuild`` brings back every alert in its state, with its thread root; the
    sent ones are not sent again and the pending one is delivered once the server is up."""
    with running_sink(start=False) as sink:
        node = nodes(email_toml(sink.port))
        d = node.dispatcher()
        await d.run_once(at(timedelta(0)))
        sink.start()
        first = lifecycle("deprecated", "gpt-x", {"shutdown": shutdown("2031-09-01")})
        node.record(first, at(timedelta(minutes=1)))
        await d.run_once(at(timedelta(minutes=2)))
        sink.stop()
        sink.messages.clear()
        later = lifecycle("retired", "gpt-x", {"status": "retired"})
        node.record(later, at(timedelta(minutes=3)))
        await d.run_once(at(timedelta(minutes=4)))
        before = {r.id: (r.state, r.thread_root, r.message_id) for r in node.catalog.outbox.rows()}
        assert sorted(s for s, _, _ in before.values()) == ["pending", "sent"]

        node.catalog.rebuild(node.vault)
        after = {r.id: (r.state, r.thread_root, r.message_id) for r in node.catalog.outbox.rows()}
        assert after == before
        assert node.catalog.outbox.destination_since("email:ai-archive@lists.example.edu") == (
            "2031-03-03T06:00:00.000000Z"
        )

        sink.start()
        restarted = node.dispatcher()
        await restarted.run_once(at(timedelta(minutes=30)))
        await restarted.run_once(at(timedelta(minutes=40)))
        assert sink.message_ids() == [f"<{later.id}@node.example.edu>"]
        assert sink.messages[0].message["In-Reply-To"] == f"<{first.id}@node.example.edu>"
        assert {r.state for r in node.catalog.outbox.rows()} == {"sent"}


async def test_events_recorded_before_a_destination_existed_are_not_sent(
    smtp: SmtpSink, nodes: Any
) -> None:
    """A destination gets the events recorded from its first pass on, not the history."""
    node = nodes(email_toml(smtp.port))
    node.record(gone(evidence="old"), at(timedelta(minutes=-5)))
    d = node.dispatcher()
    await d.run_once(at(timedelta(0)))
    node.record(gone(evidence="new"), at(timedelta(minutes=1)))
    await d.run_once(at(timedelta(minutes=2)))
    assert smtp.message_ids() == [f"<{gone(evidence='new').id}@node.example.edu>"]


async def test_alerts_of_a_destination_not_configured_here_stay_pending(nodes: Any) -> None:
    """A dispatcher never tries — nor dead-letters — alerts of destinations it does not have
    (one removed from the config, or another node's): they stay pending and counted."""
    with running_sink(start=False) as sink:
        node = nodes(email_toml(sink.port))
        d = node.dispatcher()
        await d.run_once(at(timedelta(0)))
        node.record(gone(), at(timedelta(minutes=1)))
        await d.run_once(at(timedelta(minutes=2)))
        other = Dispatcher(node.vault, node.catalog, [], public_url="http://n", retry_for_s=60)
        result = await other.run_once(at(timedelta(days=30)))
        assert (result.failed, result.dead_lettered) == (0, 0)
        assert node.catalog.outbox.counts() == {"pending": 1, "sent": 0, "dead": 0}
