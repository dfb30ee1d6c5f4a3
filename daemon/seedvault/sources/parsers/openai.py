"""OpenAI deprecations page: dated announcement entries, each with prose and tables.

Layouts handled (all seen in stored copies of the page):

- 2025-11: ``## Deprecation history`` then one ``### YYYY-MM-DD: title`` entry per
  announcement, prose, optional ``####`` sub-headings and converter-style tables
  (``Shutdown date| Model / system| Recommended replacement``), sometimes two tables back to
  back, ISO dates written with U+2011 hyphens, "at earliest 2024-06-13".
- 2026-08: the same entries split into ``## Upcoming deprecations`` and ``## Past
  deprecations``, GitHub-style tables, ``Dec 11, 2026`` dates, aliases after an escaped pipe
  (``gpt-4-0613 \\| gpt-4, …``), product entries with ``Date | Update`` timelines, entries
  without a heading date, and a ``Plain-text aliases`` list.
- a consolidated layout: one table with ``Status`` and ``Notice date`` columns.

Rules:

- Entries, and the announcement date (heading date unless the prose says "On <date>, we
  notified"), are read by :mod:`.entries`; the 2025-08-20 Assistants API entry's prose says
  August 26, so that is its announcement date.
- ``status`` is ``deprecated``; ``legacy`` for a table whose model column says "Legacy
  model"; ``retired`` only when the entry's prose says so in the past tense ("was shut
  down", "were retired", "was deprecated and removed") or a Status column says so. Being
  listed under "Past deprecations" is not taken as evidence: that section also holds entries
  whose prose was never updated, and reading it as "retired" would turn a layout change
  into a flood of retirement alerts.
- A ``Date | Update`` timeline gives one record for the entry's title (``Agent Builder``),
  dated by the row that says the product shuts down; timelines without such a row give none.
"""

from __future__ import annotations

import re
from dataclasses import replace

from seedvault.sources.parsers.blocks import Table, row_quote
from seedvault.sources.parsers.cells import clean_text
from seedvault.sources.parsers.dates import find_date
from seedvault.sources.parsers.entries import Entry, read_entries
from seedvault.sources.parsers.generic import RowContext, column_roles, table_records
from seedvault.sources.parsers.mdpage import read_page
from seedvault.sources.parsers.records import Record, Shutdown

PROVIDER = "openai"

_SHUTS_DOWN = re.compile(r"shut[ \t]?down|retire|sunset|turned[ \t]+off", re.IGNORECASE)
_ALIAS_LINE = re.compile(r"^[-*+][ \t]+([^|\n]{1,200}?)[ \t]*\|[ \t]*([^\n]{1,2000})$")


def _timeline_records(entry: Entry, table: Table, ctx: RowContext) -> list[Record]:
    """A ``Date | Update`` table: the row announcing the shutdown dates the entry's product."""
    for pairs in table.aligned():
        texts = [cell for _, cell in pairs]
        date = find_date(texts[0]) if texts else None
        if date and _SHUTS_DOWN.search(" ".join(texts[1:])):
            record = Record(
                provider=PROVIDER,
                model=entry.title,
                announced=ctx.announced,
                shutdown=Shutdown(date, "exact"),
                status=ctx.status,
                source_url=ctx.source_url,
                quote=row_quote(texts),
            )
            return [record]
    return []


def _entry_records(entry: Entry, url: str) -> list[Record]:
    ctx = RowContext(PROVIDER, url, announced=entry.announced(), status=entry.status())
    out: list[Record] = []
    for table in entry.tables:
        roles = column_roles(table.header)
        if "model" not in roles:
            out.extend(_timeline_records(entry, table, ctx))
            continue
        table_ctx = ctx
        if ctx.status == "deprecated" and "legacy" in table.header[roles["model"]].lower():
            table_ctx = replace(ctx, status="legacy")
        out.extend(table_records(table, table_ctx))
    return out


def _alias_lists(paragraphs: list[str]) -> dict[str, tuple[str, ...]]:
    """``- model | alias, alias`` lines of a plain-text alias list."""
    aliases: dict[str, tuple[str, ...]] = {}
    for text in paragraphs:
        for line in text.split("\n"):
            if m := _ALIAS_LINE.match(line.strip()):
                model = clean_text(m[1])
                names = tuple(a for a in (clean_text(x) for x in m[2].split(",")) if a)
                aliases[model] = names
    return aliases


def parse(text: str, url: str) -> list[Record]:
    """Records of an OpenAI deprecations page in any of the layouts of the module docstring."""
    page = read_entries(read_page(text))
    out: list[Record] = []
    for entry in page.entries:
        out.extend(_entry_records(entry, url))
    for table in page.loose_tables:
        out.extend(table_records(table, RowContext(PROVIDER, url, status="deprecated")))
    alias_prose = [
        t for h, texts in page.loose_prose.items() if "alias" in h.lower() for t in texts
    ]
    extra = _alias_lists(alias_prose)
    return [_with_aliases(record, extra.get(record.model, ())) for record in out]


def _with_aliases(record: Record, names: tuple[str, ...]) -> Record:
    merged = tuple(a for a in dict.fromkeys((*record.aliases, *names)) if a != record.model)
    return record if merged == record.aliases else replace(record, aliases=merged)
