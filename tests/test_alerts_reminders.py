"""Shutdown reminders: one ``shutdown_reminder`` at each lead time before every known shutdown
date, sent once, none for a withdrawn date, and none for a date that moved away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from seedvault.notify.base import Destination
from seedvault.notify.reminders import KnownShutdown, due_reminders, known_shutdowns
from tests.test_alerts_support import (
    T0,
    SmtpSink,
    at,
    email_toml,
    lifecycle,
    shutdown,
)

DAY = 86400
LEADS = [30 * DAY, 7 * DAY, DAY]


async def test_reminders_fire_at_each_lead_time_once_and_never_for_withdrawn_dates(
    smtp: SmtpSink, nodes: Any
) -> None:
    """Twice-daily passes over four months: gpt-x (2031-05-02) and the moved gpt-v (now
    2031-06-20) get a 30d, 7d and 1d reminder each, on their day, once; the withdrawn gpt-w
    and gpt-v's old date get none. Reminders thread with the model's first alert."""
    node = nodes(email_toml(smtp.port))
    d = node.dispatcher()
    await d.run_once(T0)
    node.record(
        lifecycle("deprecated", "gpt-x", {"shutdown": shutdown("2031-05-02")}), at(timedelta(1))
    )
    node.record(lifecycle("shutdown_date_set", "gpt-w", shutdown("2031-04-10"), {}), T0)
    node.record(lifecycle("shutdown_date_set", "gpt-v", shutdown("2031-04-20"), {}), T0)
    node.record(
        lifecycle("shutdown_date_withdrawn", "gpt-w", {"qualifier": "none"}, evidence="p2"),
        at(timedelta(hours=1)),
    )
    node.record(
        lifecycle(
            "shutdown_date_moved",
            "gpt-v",
            shutdown("2031-06-20"),
            shutdown("2031-04-20"),
            evidence="p3",
        ),
        at(timedelta(hours=1)),
    )
    moment = T0.replace(hour=0, minute=30)
    while moment < datetime(2031, 6, 25, tzinfo=UTC):
        for hour in (0, 12):
            await d.run_once(moment.replace(hour=hour))
        moment += timedelta(days=1)

    reminders = node.catalog.events(type="shutdown_reminder").events
    fired = sorted(
        (e["subject"]["model"], e["subject"]["shutdown"], e["subject"]["lead"], e["at"][:16])
        for e in reminders
    )
    assert fired == [
        ("gpt-v", "2031-06-20", "1d", "2031-06-19T00:30"),
        ("gpt-v", "2031-06-20", "30d", "2031-05-21T00:30"),
        ("gpt-v", "2031-06-20", "7d", "2031-06-13T00:30"),
        ("gpt-x", "2031-05-02", "1d", "2031-05-01T00:30"),
        ("gpt-x", "2031-05-02", "30d", "2031-04-02T00:30"),
        ("gpt-x", "2031-05-02", "7d", "2031-04-25T00:30"),
    ]
    assert {e["payload"]["days_left"] for e in reminders} == {30, 7, 1}
    sent = [m for m in smtp.messages if "shutdown_reminder" in str(m.message["X-Seedvault-Event"])]
    assert len(sent) == 6
    assert len({str(m.message["Message-ID"]) for m in sent}) == 6
    roots = {
        str(m.message["Subject"]): m.message["In-Reply-To"]
        for m in smtp.messages
        if "gpt-x" in str(m.message["Subject"])
    }
    deprecated = next(m for m in smtp.messages if "Deprecated" in str(m.message["Subject"]))
    assert {r for s, r in roots.items() if "reminder" in s} == {deprecated.message["Message-ID"]}
    assert "30 days to shutdown on 2031-05-02" in " ".join(roots)


def known(date: str, known_at: str) -> KnownShutdown:
    return KnownShutdown("openai", "gpt-x", None, date, "exact", "page/x", "e1", known_at)


def test_a_date_learnt_late_skips_the_leads_already_passed() -> None:
    """A shutdown announced 5 days ahead gets no 30d/7d reminder (the announcement was the
    alert), then the 1d one; after the date, nothing."""
    item = known("2031-03-10", "2031-03-05T09:00:00.000000Z")
    assert due_reminders([item], LEADS, datetime(2031, 3, 5, 10, tzinfo=UTC)) == []
    [one] = due_reminders([item], LEADS, datetime(2031, 3, 9, 0, 1, tzinfo=UTC))
    assert one.subject["lead"] == "1d"
    assert due_reminders([item], LEADS, datetime(2031, 3, 10, 0, 0, tzinfo=UTC)) == []


def test_a_node_down_across_a_lead_sends_only_the_nearest_reminder() -> None:
    """Back at 6 days left after missing the 30-day point: the 7d reminder, not both; the
    same reminder derived twice has the same id (recorded and sent once)."""
    item = known("2031-05-02", "2031-03-01T00:00:00.000000Z")
    now = datetime(2031, 4, 26, tzinfo=UTC)
    [first] = due_reminders([item], LEADS, now)
    [again] = due_reminders([item], LEADS, now + timedelta(hours=5))
    assert first.subject["lead"] == "7d"
    assert first.id == again.id


def test_known_shutdowns_follow_set_moved_withdrawn_and_retired() -> None:
    """Only the current date of each model counts; withdrawn and retired models have none."""

    def doc(event: Any, minute: int) -> dict[str, Any]:
        return dict(event.to_json(f"2031-03-03T06:{minute:02d}:00.000000Z"))

    events = [
        doc(lifecycle("deprecated", "a", {"shutdown": shutdown("2031-09-01")}), 1),
        doc(lifecycle("shutdown_date_moved", "a", shutdown("2031-10-01"), evidence="2"), 2),
        doc(lifecycle("shutdown_date_set", "b", shutdown("2031-09-01")), 1),
        doc(lifecycle("shutdown_date_withdrawn", "b", {"qualifier": "none"}, evidence="2"), 2),
        doc(lifecycle("deprecated", "c", {"shutdown": shutdown("2031-09-01")}), 1),
        doc(lifecycle("retired", "c", {"status": "retired"}, evidence="2"), 2),
        doc(lifecycle("deprecated", "d", {"shutdown": {"qualifier": "none"}}), 1),
    ]
    assert [(k.model, k.date) for k in known_shutdowns(reversed(events))] == [("a", "2031-10-01")]


def test_destinations_get_only_the_lead_times_they_asked_for() -> None:
    """A destination with ``reminders = ["7d"]`` routes the 7d reminder and not the 30d one."""
    dest = Destination("email:x", "email", "email:x", reminders=(7 * DAY,))
    for lead, route in (("7d", "now"), ("30d", None)):
        event = lifecycle("shutdown_reminder", "gpt-x", None).to_json("2031-03-03T00:00:00Z")
        event["subject"] = {**event["subject"], "lead": lead}
        assert dest.route(event) == route
