"""Atom and JSON Feed 1.1 of recorded events: parse with ``feedparser`` (Atom) and against the
JSON Feed 1.1 required fields, entry ids ``urn:seedvault:event:<id>`` stable across renders,
newest first, bounded, filtered by source and model."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import feedparser

from seedvault.catalog import Catalog
from seedvault.notify import atom_feed, json_feed
from seedvault.notify.feed import JSON_FEED_VERSION, entry_id
from tests.test_alerts_support import HUB_KEY, PAGE_KEY, gone, lifecycle, shutdown

URL = "https://node.example.edu:8470"


def recorded() -> list[dict[str, Any]]:
    """Four events, oldest first, as the catalog returns them."""
    events = [
        gone(evidence="t1"),
        lifecycle("deprecated", "gpt-x", {"shutdown": shutdown("2031-09-01")}),
        lifecycle("model_added", "gpt-new", None, evidence="r2"),
        gone(repo="org/other", evidence="t3", source="hf/huggingface.co/model/org/other"),
    ]
    return [e.to_json(f"2031-03-03T06:0{i}:00.000000Z") for i, e in enumerate(events)]


def test_atom_feed_parses_with_expected_entries_and_stable_ids() -> None:
    """Newest first; ids urn:seedvault:event:<id>; the same ids on every render."""
    events = recorded()
    parsed = feedparser.parse(atom_feed(events, public_url=URL))
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "seedvault alerts"
    assert parsed.feed.id == f"{URL}/feeds/alerts.atom"
    ids = [e.id for e in parsed.entries]
    assert ids == [entry_id(e["id"]) for e in reversed(events)]
    assert ids[0] == f"urn:seedvault:event:{events[3]['id']}"
    top = parsed.entries[1]
    assert top.title == "Model added: openai/gpt-new"
    assert top.updated == "2031-03-03T06:02:00.000000Z"
    assert {t.term for t in top.tags} == {"model_added", "routine"}
    assert top.content[0].type == "text/plain"
    assert events[2]["id"] in top.content[0].value
    again = feedparser.parse(
        atom_feed([*events, gone(evidence="t9").to_json("2031-03-04T00:00:00Z")], public_url=URL)
    )
    assert [e.id for e in again.entries][1:] == ids


def test_filters_and_bound() -> None:
    """``source`` and ``model`` select; ``limit`` keeps the newest."""
    events = recorded()
    by_source = feedparser.parse(atom_feed(events, public_url=URL, source=HUB_KEY))
    assert [e.id for e in by_source.entries] == [entry_id(events[0]["id"])]
    assert (
        by_source.feed.id == f"{URL}/feeds/alerts.atom?source=hf%2Fhuggingface.co%2Fmodel%2Forg%2Fm"
    )
    by_model = feedparser.parse(atom_feed(events, public_url=URL, model="gpt-x"))
    assert [e.id for e in by_model.entries] == [entry_id(events[1]["id"])]
    by_repo = feedparser.parse(atom_feed(events, public_url=URL, model="org/other"))
    assert [e.id for e in by_repo.entries] == [entry_id(events[3]["id"])]
    bounded = feedparser.parse(atom_feed(events, public_url=URL, limit=2))
    assert [e.id for e in bounded.entries] == [entry_id(e["id"]) for e in events[:1:-1]]
    empty = feedparser.parse(atom_feed([], public_url=URL, source="nothing"))
    assert empty.bozo == 0
    assert empty.entries == []


def test_json_feed_has_the_required_fields_and_the_same_ids() -> None:
    """JSON Feed 1.1: version, title, items with id and content_text, RFC 3339 dates.

    (feedparser 6.0, the newest release, reads no JSON Feed: the structure is checked here.)
    """
    events = recorded()
    doc = json.loads(json_feed(events, public_url=URL, source=PAGE_KEY))
    assert doc["version"] == JSON_FEED_VERSION
    assert doc["title"] == f"seedvault alerts (source {PAGE_KEY})"
    assert doc["feed_url"] == f"{URL}/feeds/alerts.json?source=page%2Fopenai-deprecations"
    assert doc["home_page_url"] == f"{URL}/"
    assert [i["id"] for i in doc["items"]] == [entry_id(events[2]["id"]), entry_id(events[1]["id"])]
    for item in doc["items"]:
        assert isinstance(item["content_text"], str)
        assert item["content_text"]
        datetime.fromisoformat(item["date_published"].replace("Z", "+00:00"))
        assert item["_seedvault"]["event"]["id"] in item["id"]
        assert "content_html" not in item
    assert doc["items"][1]["title"] == "Deprecated: openai/gpt-x, shutdown 2031-09-01"


def test_catalog_recent_events_feed_the_feeds(tmp_path: Any) -> None:
    """``Catalog.recent_events``: newest first, by source key and by model or repo."""
    catalog = Catalog(tmp_path / "c.sqlite")
    events = recorded()
    for doc in events:
        catalog.add_event(doc)
    assert [e["id"] for e in catalog.recent_events(limit=2)] == [events[3]["id"], events[2]["id"]]
    assert [e["id"] for e in catalog.recent_events(source=HUB_KEY)] == [events[0]["id"]]
    assert [e["id"] for e in catalog.recent_events(model="gpt-x")] == [events[1]["id"]]
    assert [e["id"] for e in catalog.recent_events(model="org/m")] == [events[0]["id"]]
    catalog.close()
