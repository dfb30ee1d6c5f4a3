"""Announcement entries: the dated ``### YYYY-MM-DD: title`` sections of a deprecation page.

OpenAI and Anthropic (and Cohere-like pages) list deprecations as one entry per
announcement: a heading carrying the date, prose, then tables. :func:`read_entries` cuts a
page's blocks into such entries, keeping tables and prose outside any entry apart (status
tables, consolidated tables, alias lists).

- A heading whose text starts with a date (any level from 2 down) opens a dated entry; a
  level-3 heading without a date opens an undated one ("Update to …"), except headings that
  introduce alias lists. Level ≤ 2 headings without a date close the current entry; deeper
  ones are sub-headings inside it.
- The announcement date is the heading date unless the prose says "On <date>, we /
  <provider> notified | announced | informed" with another full date: the prose is the more
  specific statement (OpenAI's "2025-08-20: Assistants API" entry says "On August 26th").
- An entry's status is ``retired`` when its prose uses the past tense of a shutdown ("was
  shut down", "were retired", "was deprecated and removed", "has been discontinued"), else
  ``deprecated``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from seedvault.sources.parsers.blocks import Block, Heading, Paragraph, Table
from seedvault.sources.parsers.cells import clean_text
from seedvault.sources.parsers.dates import find_date, normalise_text
from seedvault.sources.parsers.records import Status

_HEADING_DATE = re.compile(r"^(\d{4}-\d{1,2}-\d{1,2})\b[ \t]*[:.\u2013\u2014-]?[ \t]*(.*)$")
_NOTIFIED = re.compile(
    r"\b[Oo]n[ \t]+(.{4,30}?)[ \t]*,?[ \t]+(?:we|OpenAI|Anthropic|Google|Cohere)[ \t]+"
    r"(?:notified|announced|informed)\b"
)
_PAST_TENSE = re.compile(
    r"\b(?:was|were|has[ \t]+been|have[ \t]+been)[ \t]+(?:deprecated[ \t]+and[ \t]+)?"
    r"(?:shut[ \t]?down|retired|removed|discontinued|turned[ \t]+off)\b",
    re.IGNORECASE,
)


def entry_heading(text: str) -> tuple[str | None, str]:
    """``(date, title)`` of an entry heading; the date is None when the heading has none."""
    plain = normalise_text(clean_text(text))
    m = _HEADING_DATE.match(plain)
    if m is None:
        return None, plain
    return find_date(m[1]), m[2].strip() or plain


def prose_announcement(prose: Iterable[str]) -> str | None:
    """The first "On <date>, we notified/announced" date in the prose, or None."""
    for text in prose:
        m = _NOTIFIED.search(normalise_text(text))
        if m and (date := find_date(m[1])):
            return date
    return None


@dataclass
class Entry:
    """One announcement: its heading, the section it sits in, its prose and tables."""

    title: str
    heading_date: str | None
    section: str = ""
    prose: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)

    def announced(self) -> str | None:
        """The heading date, or the prose's "On <date>, we notified" date when it has one."""
        return prose_announcement(self.prose) or self.heading_date

    def status(self) -> Status:
        """``retired`` when the prose says the models were shut down (past tense), else
        ``deprecated``: everything a deprecations page announces is deprecated at least."""
        past = any(_PAST_TENSE.search(text) for text in self.prose)
        return "retired" if past else "deprecated"


@dataclass
class EntryPage:
    """A page cut into entries, plus the tables and prose found outside any entry."""

    entries: list[Entry] = field(default_factory=list)
    loose_tables: list[Table] = field(default_factory=list)
    loose_prose: dict[str, list[str]] = field(default_factory=dict)
    """Prose outside entries, by the text of the heading above it ("" before any heading)."""


def read_entries(blocks: Iterable[Block]) -> EntryPage:
    """Cut blocks into :class:`Entry` objects as the module docstring describes."""
    page = EntryPage()
    current: Entry | None = None
    section = heading = ""
    for block in blocks:
        if isinstance(block, Heading):
            date, title = entry_heading(block.text)
            opens = date is not None and block.level >= 2
            opens |= block.level == 3 and "alias" not in title.lower()
            if opens:
                current = Entry(title, date, section)
                page.entries.append(current)
            elif block.level <= 3:
                current = None
                heading = title
                if block.level <= 2:
                    section = title
        elif isinstance(block, Paragraph):
            if current is not None:
                current.prose.append(block.text)
            else:
                page.loose_prose.setdefault(heading, []).append(block.text)
        elif current is not None:
            current.tables.append(block)
        else:
            page.loose_tables.append(block)
    return page
