"""Hostile event text — CR/LF header-injection attempts in a model name, HTML, control and
bidi characters, very long values — is escaped or folded: it never adds a mail header, breaks
a message, a feed or a webhook body, nor reaches a reader as markup."""

from __future__ import annotations

import email
import json
from datetime import timedelta
from email.policy import SMTP, default
from typing import Any

import feedparser

from seedvault.catalog_outbox import OutboxRow
from seedvault.events import Event
from seedvault.notify import atom_feed, json_feed
from seedvault.notify.email import build_message
from seedvault.notify.render import EventFacts, build_content
from seedvault.notify.webhook import json_body, slack_body
from tests.test_alerts_support import PAGE_KEY, SmtpSink, at, email_toml

EVIL_MODEL = "gpt-x\r\nBcc: victim@example.com\r\nX-Injected: yes\r\n\r\n<script>alert(1)</script>"
LONG = "A" * 5000 + " " + "word " * 4000
QUOTE = "]]> <b>bold</b> & \x00\x1b[31m \u202eevil\u202c " + LONG
HEADERS = {
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "auto-submitted",
    "x-auto-response-suppress",
    "x-seedvault-event",
    "mime-version",
    "content-type",
}


def evil_event() -> Event:
    return Event(
        "deprecated",
        PAGE_KEY,
        {"provider": "openai\nX-Other: 1", "model": EVIL_MODEL},
        "p1",
        after={"shutdown": {"date": "2031-09-01", "qualifier": "exact"}, "replacement": LONG},
        payload={"quote": QUOTE, "source_url": 'https://example.com/"><script>x</script>'},
    )


def evil_alert() -> tuple[OutboxRow, Any]:
    doc = evil_event().to_json("2031-03-03T06:00:00.000000Z")
    row = OutboxRow(
        id="a" * 64,
        destination="email:list@example.edu",
        kind="event",
        events=(doc["id"],),
        message_id=f"<{doc['id']}@node.example.edu>",
        enqueued_at="2031-03-03T06:00:00.000000Z",
        thread="model:x",
        thread_root="<root@node.example.edu>",
    )
    return row, build_content(row, [EventFacts(doc)], "https://node.example.edu")


def test_header_injection_and_long_values_never_break_the_message() -> None:
    """CR/LF in a model name stays inside the Subject as visible ``\\r\\n``; the flattened
    message has exactly the expected headers, no defects and no line over 998 bytes."""
    row, content = evil_alert()
    msg = build_message(row, content, sender="s@node.example.edu", recipients=["list@x.edu"])
    raw = msg.as_bytes(policy=SMTP)
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    back = email.message_from_bytes(raw, policy=default)
    names = {k.lower() for k in back}
    assert names == HEADERS | {"in-reply-to", "references"}
    assert back["Bcc"] is None
    assert back["X-Injected"] is None
    subject = str(back["Subject"])
    assert "\r" not in subject
    assert "\n" not in subject
    assert "gpt-x\\r\\nBcc: victim@example.com" in subject
    assert len(subject) < 260
    for part in back.walk():
        assert not part.defects
    text = back.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "more characters]" in text  # the very long value was cut, with a note
    assert "\\u202e" in text
    assert "\x00" not in text
    assert "\x1b" not in text


def test_html_part_escapes_everything() -> None:
    """No event text reaches the HTML part as markup, not even through a link."""
    row, content = evil_alert()
    msg = build_message(row, content, sender="s@node.example.edu", recipients=["list@x.edu"])
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html
    assert "<b>bold" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="https://example.com/\\"' not in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp;" in html


def test_feeds_stay_well_formed_with_hostile_text() -> None:
    """Atom parses without error and shows the text as text; JSON Feed stays valid JSON."""
    doc = evil_event().to_json("2031-03-03T06:00:00.000000Z")
    body = atom_feed([doc], public_url="https://n.example.edu", model=EVIL_MODEL)
    assert b"<script" not in body
    assert b"\x00" not in body
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    [entry] = parsed.entries
    assert entry.id == f"urn:seedvault:event:{doc['id']}"
    assert "\\r\\nBcc" in entry.title
    feed = json.loads(json_feed([doc], public_url="https://n.example.edu"))
    assert feed["items"][0]["id"] == entry.id
    assert "\x1b" not in feed["items"][0]["content_text"]


def test_webhook_bodies_stay_valid_json() -> None:
    """Both webhook formats are valid ASCII JSON whatever the event says."""
    row, content = evil_alert()
    for body in (json_body(row, content), slack_body(content)):
        assert body.isascii()
        json.loads(body)
    assert "<script>" not in json.loads(slack_body(content))["text"]


async def test_hostile_event_over_real_smtp_is_one_clean_message(
    smtp: SmtpSink, nodes: Any
) -> None:
    """Through aiosmtplib and a real server: one message, only the expected headers."""
    node = nodes(email_toml(smtp.port))
    d = node.dispatcher()
    await d.run_once(at(timedelta(0)))
    node.record(evil_event(), at(timedelta(minutes=1)))
    result = await d.run_once(at(timedelta(minutes=2)))
    assert result.sent == 1
    [got] = smtp.messages
    assert got.rcpt_tos == ["ai-archive@lists.example.edu"]
    assert {k.lower() for k in got.message} == HEADERS
    assert "victim" not in " ".join(got.rcpt_tos)
    assert "<script>" not in got.html()
