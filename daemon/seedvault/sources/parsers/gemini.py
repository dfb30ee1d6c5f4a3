"""Gemini API deprecations page: one table per model family, dates that are lower bounds.

Each ``## <family> models`` section has a ``Model | Release date | Shutdown date |
Recommended replacement`` table; "Preview models" rows inside it are sub-headings and are
skipped. The page says its shutdown dates are the *earliest possible* ones, so when its prose
says so every bare date reads as ``not_before`` (an exact qualifier would claim more than the
page does, and a tracker that marks such models retired once the date passes is wrong).
"No shutdown date announced" is no date. Release dates are not announcements and are not
recorded; announcements live on the release-notes page. Shut-down rows are only greyed out on
the page, which markdown does not keep, so no status is recorded either.
"""

from __future__ import annotations

from seedvault.sources.parsers.blocks import Table
from seedvault.sources.parsers.generic import RowContext, page_qualifier, table_records
from seedvault.sources.parsers.mdpage import read_page
from seedvault.sources.parsers.records import Record

PROVIDER = "gemini"


def parse(text: str, url: str) -> list[Record]:
    """Records of the Gemini API deprecations page, one per model row."""
    blocks = read_page(text)
    ctx = RowContext(PROVIDER, url, qualifier=page_qualifier(blocks))
    out: list[Record] = []
    for block in blocks:
        if isinstance(block, Table):
            out.extend(table_records(block, ctx))
    return out
