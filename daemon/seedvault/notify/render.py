"""Alert content: every fact of an event, as sections a mail, a chat message or a feed renders.

An alert tells a list reader what happened, since when, the evidence (source URL and quoted
row when the event has them, the snapshot or transition id), what this node has archived of
the model or repo and the exact command to retrieve it. :func:`event_sections` and
:func:`digest_sections` produce that as :class:`Section` rows; notifiers turn sections into
text/plain, HTML, Slack text or feed entries.

Untrusted text (model names, quotes, URLs from pages and hubs) goes through :func:`clean`:
control characters, line and paragraph separators and bidi overrides become visible escapes
(``\\n``, ``\\u202e``) and very long values are cut with a note, so a value can never start a
line, a header or a markup construct of its own. Rendering layers escape on top of that.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from seedvault.catalog import Catalog, SnapshotRow
from seedvault.catalog_outbox import OutboxRow

MAX_VALUE_CHARS = 2000
MAX_ARCHIVED_SHOWN = 5
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HUB_KINDS = ("hf-model", "hf-dataset")


def _is_unsafe(c: str) -> bool:
    o = ord(c)
    return (
        o < 0x20
        or 0x7F <= o <= 0x9F
        or o in (0x2028, 0x2029, 0xFEFF)
        or 0x202A <= o <= 0x202E
        or 0x2066 <= o <= 0x2069
        or 0xD800 <= o <= 0xDFFF
    )


def clean(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """``value`` as one safe line: unsafe characters escaped, cut after ``limit`` characters."""
    text = value if isinstance(value, str) else compact(value)
    out = "".join((_ESCAPES.get(c) or f"\\u{ord(c):04x}") if _is_unsafe(c) else c for c in text)
    if len(out) > limit:
        out = f"{out[:limit]}… [{len(out) - limit} more characters]"
    return out


def compact(value: Any) -> str:
    """A JSON value as compact, readable text (strings unquoted)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


def _subject(event: dict[str, Any]) -> dict[str, Any]:
    subject = event.get("subject")
    return subject if isinstance(subject, dict) else {}


def model_of(event: dict[str, Any]) -> str | None:
    """The model (provider events) or repo (hub events, ``org/name``) an event is about."""
    subject = _subject(event)
    for key in ("model", "repo"):
        value = subject.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def provider_of(event: dict[str, Any]) -> str:
    """The provider or API id of a provider event (``""`` for other events)."""
    subject = _subject(event)
    for key in ("provider", "api"):
        value = subject.get(key)
        if isinstance(value, str) and value:
            return value
    return ""


def thread_key(event: dict[str, Any]) -> str:
    """What an event's mail thread is about: one thread per repo, per model, else per source."""
    subject = _subject(event)
    if isinstance(subject.get("repo"), str):
        return f"repo:{event.get('source', '')}"
    if isinstance(subject.get("model"), str) and subject.get("model"):
        return f"model:{provider_of(event)}/{subject['model']}"
    if event.get("type") == "alert_dead_lettered":
        return "alerts"
    return f"source:{event.get('source', '')}"


def shutdown_of(value: Any) -> tuple[str, str] | None:
    """(date, qualifier) of a shutdown value: a lifecycle state, a shutdown object or a date."""
    if isinstance(value, dict) and isinstance(value.get("shutdown"), dict):
        value = value["shutdown"]
    if isinstance(value, dict) and isinstance(value.get("date"), str):
        return value["date"], str(value.get("qualifier", "exact"))
    if isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-":
        return value, "exact"
    return None


def _name(event: dict[str, Any]) -> str:
    subject = _subject(event)
    if isinstance(subject.get("repo"), str):
        revision = subject.get("revision")
        rev = f"@{revision}" if isinstance(revision, str) and revision else ""
        return f"{subject['repo']}{rev}"
    model = subject.get("model")
    if isinstance(model, str) and model:
        provider = provider_of(event)
        return f"{provider}/{model}" if provider else model
    for key in ("page", "api", "destination", "object"):
        if isinstance(subject.get(key), str):
            return str(subject[key])
    return str(event.get("source", ""))


_WHAT = {
    "revision_new": "A new revision of {name} was archived on this node.",
    "history_rewritten": "The history of {name} was rewritten upstream: the branch no longer "
    "contains the commit archived before. Both commits stay archived here.",
    "repo_gated": "{name} became gated upstream: downloading it now needs accepting conditions.",
    "repo_disabled": "{name} was disabled upstream and can no longer be downloaded there.",
    "repo_unavailable": "{name} is no longer reachable upstream (deleted or made private).",
    "repo_moved": "{name} was moved or renamed upstream; this node did not follow the move.",
    "ref_deleted": "The revision {name} was deleted upstream.",
    "over_quota": "A revision of {name} is larger than this node's limit and was not archived.",
    "verification_failed": "Files downloaded from {name} did not match the hashes the hub "
    "published; nothing from that download was archived.",
    "capture_failed": "Capturing {name} failed.",
    "model_added": "{name} appeared in the models list.",
    "model_removed": "{name} is no longer in the models list (confirmed twice and by a direct "
    "request).",
    "lifecycle_changed": "The provider changed a lifecycle field of {name}.",
    "list_failed": "Reading the models list of {name} failed.",
    "deprecated": "{name} was announced as deprecated.",
    "shutdown_date_set": "A shutdown date was announced for {name}.",
    "shutdown_date_moved": "The shutdown date of {name} moved.",
    "shutdown_date_withdrawn": "The shutdown date of {name} was withdrawn.",
    "replacement_changed": "The recommended replacement for {name} changed.",
    "retired": "{name} was retired: the provider no longer serves it.",
    "page_moved": "The deprecation page {name} moved or stopped answering as before.",
    "parse_failed": "The deprecation page {name} could not be read reliably; no lifecycle "
    "change was derived from it.",
    "not_announced_removal": "{name} was removed from the models list without any watched page "
    "announcing it.",
    "announced_still_listed": "{name} is announced as deprecated but the API still lists it.",
    "behaviour_changed": "The measured behaviour of {name} changed beyond its usual noise.",
    "shutdown_reminder": "{name} is due to shut down soon.",
    "fixity_failed": "The scrubber found damaged data in this node's vault.",
    "fixity_repaired": "Damaged data in this node's vault was repaired from a verified copy.",
    "alert_dead_lettered": "An alert could not be delivered to {name} and was given up.",
}


def describe(event: dict[str, Any]) -> str:
    """One sentence: what happened, for a list reader."""
    template = _WHAT.get(str(event.get("type")), "{name}: " + str(event.get("type")))
    return clean(template.format(name=_name(event)), 600)


def headline(event: dict[str, Any]) -> str:
    """A one-line title (mail Subject, chat first line, feed entry title)."""
    event_type = str(event.get("type", "event"))
    extra = ""
    if event_type in ("deprecated", "shutdown_date_set", "shutdown_date_moved"):
        found = shutdown_of(event.get("after"))
        extra = f", shutdown {found[0]}" if found else ""
    elif event_type == "shutdown_reminder":
        subject, payload = _subject(event), event.get("payload") or {}
        extra = f", {payload.get('days_left', '?')} days to shutdown on {subject.get('shutdown')}"
    elif event_type == "revision_new":
        extra = f" ({str(event.get('after', ''))[:12]})" if event.get("after") else ""
    elif event_type == "behaviour_changed":
        payload = event.get("payload") or {}
        if isinstance(payload, dict) and payload.get("measure"):
            extra = (
                f", {payload['measure']} {payload.get('magnitude', '?')}"
                f" (noise {payload.get('noise', '?')})"
            )
    title = event_type.replace("_", " ").capitalize()
    return clean(f"{title}: {_name(event)}{extra}", 200)


@dataclass(frozen=True)
class EventFacts:
    """An event with what this node has archived of its repo or model."""

    event: dict[str, Any]
    archived: tuple[SnapshotRow, ...] = ()
    archived_total: int = 0


def archived_for(catalog: Catalog, event: dict[str, Any]) -> EventFacts:
    """The event with the newest snapshots of its source (and of probes of its model)."""
    source = str(event.get("source", ""))
    keys = {source}
    model = _subject(event).get("model")
    if isinstance(model, str) and model:
        keys |= {
            k for k, *_ in catalog.refs() if k.startswith("probes/") and k.endswith(f"/{model}")
        }
    rows = [row for key in sorted(keys) for row in catalog.snapshots(key)]
    rows.sort(key=lambda r: r.captured_at, reverse=True)
    return EventFacts(event, tuple(rows[:MAX_ARCHIVED_SHOWN]), len(rows))


def commands(facts: EventFacts, public_url: str) -> list[str]:
    """The exact commands that retrieve what this node archived (newest and evidenced)."""
    picks = list(facts.archived[:1])
    evidence = facts.event.get("evidence")
    picks += [r for r in facts.archived[1:] if r.id == evidence]
    out: list[str] = []
    repo = _subject(facts.event).get("repo")
    for row in picks:
        out.append(f"seedvault export {row.id} --to DIR")
        if row.kind in _HUB_KINDS and row.commit and isinstance(repo, str):
            dataset = " --repo-type dataset" if row.kind == "hf-dataset" else ""
            endpoint = shlex.quote(public_url.rstrip("/"))
            token = "HF_TOKEN=<node token> " if row.access == "token" else ""
            out.append(
                f"{token}HF_ENDPOINT={endpoint} hf download {shlex.quote(repo)}{dataset} "
                f"--revision {row.commit}"
            )
    return [clean(c, 600) for c in out]


@dataclass(frozen=True)
class Section:
    """A titled block of labelled rows and preformatted lines (all values already clean)."""

    title: str
    rows: tuple[tuple[str, str], ...] = ()
    lines: tuple[str, ...] = ()


def _archived_lines(facts: EventFacts) -> tuple[str, ...]:
    return tuple(
        clean(
            f"{r.id}  {r.source_key}  {r.revision} @ {r.commit or '-'}  captured {r.captured_at}",
            600,
        )
        for r in facts.archived
    )


def _evidence_rows(event: dict[str, Any]) -> list[tuple[str, str]]:
    payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    rows: list[tuple[str, str]] = []
    for key, label in (("source_url", "Source URL"), ("url", "URL"), ("quote", "Quote")):
        if key in payload:
            value = clean(payload[key])
            rows.append((label, f"“{value}”" if key == "quote" else value))
    rows.append(("Evidence id", clean(event.get("evidence", ""))))
    return rows


def event_sections(facts: EventFacts, public_url: str, *, archive: bool = True) -> list[Section]:
    """Every fact of one event, for a message of its own (``archive``: with what is kept)."""
    event = facts.event
    payload = event.get("payload") if isinstance(event.get("payload"), dict) else {}
    assert isinstance(payload, dict)
    head: list[tuple[str, str]] = [
        ("What happened", describe(event)),
        ("Event", clean(f"{event.get('type')} ({event.get('severity')})")),
        ("Since", clean(f"{event.get('at', '?')} (recorded by this node)")),
        ("Source", clean(event.get("source", ""))),
    ]
    subject = _subject(event)
    if subject:
        head.append(
            ("About", clean(", ".join(f"{k}={compact(v)}" for k, v in sorted(subject.items()))))
        )
    for key in ("before", "after"):
        if key in event:
            head.append((key.capitalize(), clean(event[key])))
    found = shutdown_of(event.get("after"))
    if found is not None and event.get("type") != "retired":
        head.append(("Shutdown date", clean(f"{found[0]} ({found[1]})")))
    sections = [Section("", tuple(head)), Section("Evidence", tuple(_evidence_rows(event)))]
    details = [
        (clean(k, 80), clean(v, 800))
        for k, v in sorted(payload.items())
        if k not in ("source_url", "url", "quote")
    ]
    if details:
        sections.append(Section("Details", tuple(details)))
    if archive:
        sections += _archive_sections(facts, public_url)
    query = urlencode({"source": str(event.get("source", ""))})
    base = public_url.rstrip("/")
    sections.append(
        Section(
            "This event",
            (
                ("Event id", clean(event.get("id", ""))),
                ("Events of this source", clean(f"{base}/v1/events?{query}")),
                ("Feed", clean(f"{base}/feeds/alerts.atom?{query}")),
            ),
        )
    )
    return sections


def _archive_sections(facts: EventFacts, public_url: str) -> list[Section]:
    if not facts.archived:
        return [Section("Archived on this node", (), ("Nothing of this is archived here.",))]
    shown = len(facts.archived)
    title = f"Archived on this node ({facts.archived_total} snapshots, newest {shown} shown)"
    return [
        Section(title, (), _archived_lines(facts)),
        Section("Retrieve", (), tuple(commands(facts, public_url))),
    ]


def digest_sections(items: Sequence[EventFacts], public_url: str) -> list[Section]:
    """One section per event of a digest, with its key facts and retrieval command."""
    sections: list[Section] = []
    for facts in items:
        event = facts.event
        rows: list[tuple[str, str]] = [
            ("What happened", describe(event)),
            ("Since", clean(event.get("at", "?"))),
            ("Source", clean(event.get("source", ""))),
        ]
        for key in ("before", "after"):
            if key in event:
                rows.append((key.capitalize(), clean(event[key], 400)))
        rows += [r for r in _evidence_rows(event) if r[0] != "Evidence id"]
        rows.append(("Archived", f"{facts.archived_total} snapshots on this node"))
        rows += [("Retrieve", c) for c in commands(facts, public_url)]
        rows.append(("Event id", clean(event.get("id", ""))))
        sections.append(Section(headline(event), tuple(rows)))
    return sections


@dataclass(frozen=True)
class AlertContent:
    """What one alert says: a one-line title and its sections, with the events behind them."""

    title: str
    sections: tuple[Section, ...]
    items: tuple[EventFacts, ...] = field(default=())
    public_url: str = ""

    @property
    def text(self) -> str:
        return render_text(self.title, self.sections)


def build_content(alert: OutboxRow, items: Sequence[EventFacts], public_url: str) -> AlertContent:
    """The content of an outbox alert from its events (with their archive facts)."""
    if alert.kind == "digest":
        day = (alert.window_end or "")[:10]
        title = clean(f"Daily digest {day}: {len(items)} routine events", 200)
        return AlertContent(
            title, tuple(digest_sections(items, public_url)), tuple(items), public_url
        )
    facts = items[0]
    return AlertContent(
        headline(facts.event), tuple(event_sections(facts, public_url)), tuple(items), public_url
    )


def render_text(title: str, sections: Sequence[Section]) -> str:
    """Plain text: the title, then each section's rows and lines."""
    out = [title, "=" * min(len(title), 72), ""]
    for section in sections:
        if section.title:
            out += [section.title, "-" * min(len(section.title), 72)]
        width = max((len(label) for label, _ in section.rows), default=0)
        out += [f"{label + ':':<{width + 1}} {value}" for label, value in section.rows]
        out += [f"  {line}" for line in section.lines]
        out.append("")
    out += [
        "-- ",
        "Sent by a seedvault archival node. This is an automated message; replies are not read.",
    ]
    return "\n".join(out) + "\n"
