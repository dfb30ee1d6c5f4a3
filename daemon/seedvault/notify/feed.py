"""Alert feeds: Atom 1.0 and JSON Feed 1.1 bodies of recorded events, as pure functions.

The server serves them at ``/feeds/alerts.atom`` and ``/feeds/alerts.json`` with the filters
``?source=`` (a source key) and ``?model=`` (a model, or a hub repo ``org/name``)::

    events = catalog.recent_events(source=source, model=model, limit=FEED_ENTRIES)
    body = atom_feed(events, public_url=public_url, source=source, model=model)

Entries are newest first, at most ``limit`` of them, and their ids are
``urn:seedvault:event:<event id>``: event ids come from content, so an entry keeps its id
forever and two different events never share one. All text is escaped for its format (XML
character escaping by ElementTree, JSON string escaping), characters XML 1.0 cannot carry
are replaced, and no entry carries HTML: content is ``text`` (Atom) / ``content_text`` (JSON
Feed), so nothing from an upstream page is ever rendered as markup by a feed reader.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from seedvault.notify.render import (
    EventFacts,
    clean,
    describe,
    event_sections,
    headline,
    model_of,
    render_text,
)

FEED_ENTRIES = 50
"""Entries per feed by default."""
MAX_FEED_ENTRIES = 500
ATOM_CONTENT_TYPE = "application/atom+xml; charset=utf-8"
JSON_FEED_CONTENT_TYPE = "application/feed+json; charset=utf-8"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
_EPOCH = "1970-01-01T00:00:00Z"
_ATOM_NS = "http://www.w3.org/2005/Atom"


def entry_id(event_id: str) -> str:
    """The feed entry id of an event: ``urn:seedvault:event:<event id>``."""
    return f"urn:seedvault:event:{event_id}"


def select_events(
    events: Iterable[dict[str, Any]],
    *,
    source: str | None = None,
    model: str | None = None,
    limit: int = FEED_ENTRIES,
) -> list[dict[str, Any]]:
    """The events a feed shows: filtered, newest first, at most ``limit`` (≤ 500)."""
    kept = [
        e
        for e in events
        if (source is None or e.get("source") == source) and (model is None or model_of(e) == model)
    ]
    kept.sort(key=lambda e: (str(e.get("at", "")), str(e.get("id", ""))), reverse=True)
    return kept[: max(0, min(limit, MAX_FEED_ENTRIES))]


def feed_url(public_url: str, name: str, source: str | None, model: str | None) -> str:
    """The absolute URL of feed ``name`` (``alerts.atom``) with its filters."""
    query = urlencode([(k, v) for k, v in (("source", source), ("model", model)) if v])
    return f"{public_url.rstrip('/')}/feeds/{name}" + (f"?{query}" if query else "")


def _xml_safe(text: str) -> str:
    """Replace the characters XML 1.0 cannot carry (even escaped) with U+FFFD."""
    return "".join(
        c
        if c in "\t\n\r"
        or 0x20 <= ord(c) <= 0xD7FF
        or 0xE000 <= ord(c) <= 0xFFFD
        or ord(c) >= 0x10000
        else "\ufffd"
        for c in text
    )


def _title(source: str | None, model: str | None) -> str:
    parts = [f"source {clean(source, 200)}" if source else "", ""]
    parts[1] = f"model {clean(model, 200)}" if model else ""
    filters = ", ".join(p for p in parts if p)
    return "seedvault alerts" + (f" ({filters})" if filters else "")


def _entry_text(event: dict[str, Any], public_url: str) -> str:
    sections = event_sections(EventFacts(event), public_url, archive=False)
    return render_text(headline(event), sections)


def _events_link(public_url: str, event: dict[str, Any]) -> str:
    query = urlencode({"source": str(event.get("source", ""))})
    return f"{public_url.rstrip('/')}/v1/events?{query}"


def atom_feed(
    events: Iterable[dict[str, Any]],
    *,
    public_url: str,
    source: str | None = None,
    model: str | None = None,
    limit: int = FEED_ENTRIES,
) -> bytes:
    """An Atom 1.0 document (UTF-8 bytes) of ``events`` (see :func:`select_events`)."""
    chosen = select_events(events, source=source, model=model, limit=limit)

    def sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, tag, {k: _xml_safe(v) for k, v in attrs.items()})
        if text is not None:
            element.text = _xml_safe(text)
        return element

    self_url = feed_url(public_url, "alerts.atom", source, model)
    feed = ET.Element("feed", {"xmlns": _ATOM_NS})
    sub(feed, "id", self_url)
    sub(feed, "title", _title(source, model), type="text")
    sub(feed, "updated", str(chosen[0].get("at")) if chosen else _EPOCH)
    sub(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    sub(feed, "link", rel="alternate", href=f"{public_url.rstrip('/')}/")
    sub(sub(feed, "author"), "name", "seedvault")
    sub(feed, "generator", "seedvault")
    for event in chosen:
        entry = sub(feed, "entry")
        at = str(event.get("at", _EPOCH))
        sub(entry, "id", entry_id(str(event.get("id", ""))))
        sub(entry, "title", headline(event), type="text")
        sub(entry, "updated", at)
        sub(entry, "published", at)
        sub(entry, "link", rel="alternate", href=_events_link(public_url, event))
        for term in (str(event.get("type", "")), str(event.get("severity", ""))):
            if term:
                sub(entry, "category", term=term)
        sub(entry, "summary", describe(event), type="text")
        sub(entry, "content", _entry_text(event, public_url), type="text")
    body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return body


def json_feed(
    events: Iterable[dict[str, Any]],
    *,
    public_url: str,
    source: str | None = None,
    model: str | None = None,
    limit: int = FEED_ENTRIES,
) -> bytes:
    """A JSON Feed 1.1 document (ASCII JSON bytes) of ``events`` (see :func:`select_events`).

    Each item carries the recorded event under the ``_seedvault`` extension key.
    """
    chosen = select_events(events, source=source, model=model, limit=limit)
    items = [
        {
            "id": entry_id(str(event.get("id", ""))),
            "url": _events_link(public_url, event),
            "title": headline(event),
            "summary": describe(event),
            "content_text": _entry_text(event, public_url),
            "date_published": str(event.get("at", _EPOCH)),
            "tags": [t for t in (event.get("type"), event.get("severity")) if isinstance(t, str)],
            "_seedvault": {"event": event},
        }
        for event in chosen
    ]
    doc = {
        "version": JSON_FEED_VERSION,
        "title": _title(source, model),
        "home_page_url": f"{public_url.rstrip('/')}/",
        "feed_url": feed_url(public_url, "alerts.json", source, model),
        "description": "Events recorded by a seedvault archival node",
        "authors": [{"name": "seedvault"}],
        "items": items,
    }
    return json.dumps(doc, sort_keys=True, indent=1).encode("ascii")
