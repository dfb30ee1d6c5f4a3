"""Anthropic model deprecations page: a status table for all models plus dated history entries.

- The "Model status" table (``API model name | Current state | Deprecated | Tentative
  retirement date``) gives one record per model: ``status`` from the state, ``announced`` from
  the "Deprecated" date (``N/A`` → absent). A "Tentative retirement date" is a lower bound
  (``not_before``) — always when written "Not sooner than …", and for a bare date while the
  model is Active or Legacy. Once a model is Deprecated or Retired its date is the assigned
  retirement date, so a bare date then reads as ``exact`` (the history tables agree).
- Each ``### YYYY-MM-DD: title`` history entry gives records from its ``Retirement date |
  Deprecated model | Recommended replacement`` table: announced = the heading date (or the
  prose's "On <date>, Anthropic notified" date, see :mod:`.entries`), status ``retired`` when
  the entry's note says the models "were retired", else ``deprecated``.
- The API-parameter table has no model column and yields nothing.
"""

from __future__ import annotations

from seedvault.sources.parsers.blocks import Table, row_quote
from seedvault.sources.parsers.cells import map_status, parse_model_cell
from seedvault.sources.parsers.dates import find_date, has_not_before, parse_shutdown
from seedvault.sources.parsers.entries import read_entries
from seedvault.sources.parsers.generic import (
    RowContext,
    column_roles,
    is_lifecycle_table,
    table_records,
)
from seedvault.sources.parsers.mdpage import read_page
from seedvault.sources.parsers.records import Record

PROVIDER = "anthropic"


def _is_status_table(table: Table) -> bool:
    roles = column_roles(table.header)
    return "model" in roles and "status" in roles


def _status_records(table: Table, url: str) -> list[Record]:
    roles = column_roles(table.header)
    out: list[Record] = []
    for pairs in table.aligned():
        cells = [cell for _, cell in pairs]
        model, aliases = parse_model_cell(cells[roles["model"]])
        if not model:
            continue
        status = map_status(cells[roles["status"]])
        shutdown_text = cells[roles["shutdown"]] if "shutdown" in roles else ""
        firm = status in ("deprecated", "retired") and not has_not_before(shutdown_text)
        announced_text = cells[roles["announced"]] if "announced" in roles else ""
        out.append(
            Record(
                provider=PROVIDER,
                model=model,
                aliases=aliases,
                announced=find_date(announced_text),
                shutdown=parse_shutdown(shutdown_text, "exact" if firm else "not_before"),
                status=status,
                source_url=url,
                quote=row_quote(cells),
            )
        )
    return out


def parse(text: str, url: str) -> list[Record]:
    """Records of an Anthropic model-deprecations page (status table + history entries)."""
    page = read_entries(read_page(text))
    out: list[Record] = []
    for table in page.loose_tables:
        if _is_status_table(table):
            out.extend(_status_records(table, url))
        elif is_lifecycle_table(column_roles(table.header)):
            out.extend(table_records(table, RowContext(PROVIDER, url)))
    for entry in page.entries:
        ctx = RowContext(PROVIDER, url, announced=entry.announced(), status=entry.status())
        for table in entry.tables:
            if _is_status_table(table):
                out.extend(_status_records(table, url))
            else:
                out.extend(table_records(table, ctx))
    return out
