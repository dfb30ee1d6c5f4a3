"""Generic deprecation tables: records from any page whose tables have a model and a date column.

Column roles come from header words, the same vocabulary every provider page uses:

=============  ====================================================================
role           header words (case-insensitive)
=============  ====================================================================
model          model, model id, API model name, name, system, snapshot, API endpoints
shutdown       shutdown, shut down, retirement, retire, EOL, end-of-life, sunset,
               discontinued, removal
announced      deprecation, deprecated (without "model"), legacy date, announced, notice
replacement    replacement, recommended, alternative, substitute, successor, migrate
status         status, state
=============  ====================================================================

Price, modality, region, launch and release columns are ignored. When two columns claim the
model role, the one naming an id (``Model ID``, ``API model name``, ``API Endpoints``) wins;
when two claim replacement, one naming an id wins, else the first. A table without a model
column, or without any shutdown or announced column, is not a deprecation table and yields
nothing. Rows whose only text is in the model column (sub-headings such as "Preview models")
are skipped. A shutdown cell naming regions gives one record per region. The provider
parsers reuse :func:`table_records` with their own :class:`RowContext`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from seedvault.sources.parsers.blocks import Block, Paragraph, Table, row_quote
from seedvault.sources.parsers.cells import (
    clean_text,
    clean_value,
    map_status,
    parse_model_cell,
    parse_regions,
)
from seedvault.sources.parsers.dates import find_date, has_not_before, parse_shutdown
from seedvault.sources.parsers.mdpage import read_page
from seedvault.sources.parsers.records import NO_SHUTDOWN, Qualifier, Record, Shutdown, Status

Role = Literal["model", "shutdown", "announced", "replacement", "status"]

_IGNORED = re.compile(
    r"price|cost|modalit|context|token|region|launch|release|provider|endpoint type"
    r"|extended access|input|output|behaviou?r|update",
    re.IGNORECASE,
)
_REPLACEMENT = re.compile(
    r"replacement|recommended|alternative|substitute|successor|migrat", re.IGNORECASE
)
_SHUTDOWN = re.compile(
    r"shut[ \t]?down|retire|\beol\b|end[- ]of[- ]life|sunset|discontinu|removal", re.IGNORECASE
)
_MODEL = re.compile(r"model|^name$|^id$|system|snapshot|api[ \t]+endpoints?", re.IGNORECASE)
_MODEL_ID = re.compile(r"\bid\b|\bapi\b|endpoint", re.IGNORECASE)
_ANNOUNCED = re.compile(r"deprecat|legacy|announce|notice", re.IGNORECASE)
_STATUS = re.compile(r"status|state", re.IGNORECASE)
_TENTATIVE = re.compile(r"tentative|earliest|sooner|no earlier", re.IGNORECASE)


def header_role(header: str) -> Role | None:
    """The role a column plays, from its header text (see the module docstring)."""
    text = clean_text(header)
    if not text:
        return None
    if _REPLACEMENT.search(text):
        return "replacement"
    if _IGNORED.search(text):
        return None
    if _SHUTDOWN.search(text):
        return "shutdown"
    if _MODEL.search(text):
        return "model"
    if _ANNOUNCED.search(text):
        return "announced"
    if _STATUS.search(text):
        return "status"
    return None


def column_roles(header: Sequence[str]) -> dict[Role, int]:
    """Column index per role, choosing among competing columns as the module docstring says."""
    roles: dict[Role, int] = {}
    for index, name in enumerate(header):
        role = header_role(name)
        if role is None:
            continue
        if role not in roles or (
            role in ("model", "replacement")
            and _MODEL_ID.search(name)
            and not _MODEL_ID.search(header[roles[role]])
        ):
            roles[role] = index
    return roles


@dataclass(frozen=True)
class RowContext:
    """What the page around a table says about its rows (the provider parsers fill it in)."""

    provider: str
    source_url: str
    announced: str | None = None
    status: Status | None = None
    qualifier: Qualifier = "exact"
    """Qualifier of a bare date in the shutdown column."""


def _cell(pairs: Sequence[tuple[str, str]], index: int | None) -> str:
    return pairs[index][1] if index is not None and index < len(pairs) else ""


def _shutdown_cell(pairs: Sequence[tuple[str, str]], roles: dict[Role, int]) -> str:
    """The shutdown cell, or an unnamed cell holding a date (a header shorter than its rows)."""
    if "shutdown" in roles:
        return _cell(pairs, roles["shutdown"])
    for name, cell in pairs:
        if name == "" and find_date(cell) is not None:
            return cell
    return ""


def row_records(
    pairs: Sequence[tuple[str, str]], roles: dict[Role, int], ctx: RowContext, table: Table
) -> list[Record]:
    """Records of one aligned table row (one per region when the shutdown cell names regions)."""
    model, aliases = parse_model_cell(_cell(pairs, roles.get("model")))
    others = [cell for index, (_, cell) in enumerate(pairs) if index != roles.get("model")]
    if not model or not any(clean_text(cell) for cell in others):
        return []
    shutdown_text = _shutdown_cell(pairs, roles)
    qualifier = ctx.qualifier
    if "shutdown" in roles and _TENTATIVE.search(table.header[roles["shutdown"]]):
        qualifier = "not_before"
    shutdown: Shutdown = parse_shutdown(shutdown_text, qualifier) if shutdown_text else NO_SHUTDOWN
    announced_text = _cell(pairs, roles.get("announced"))
    announced = find_date(announced_text) if announced_text else None
    status = map_status(_cell(pairs, roles.get("status"))) if "status" in roles else None
    record = Record(
        provider=ctx.provider,
        model=model,
        aliases=aliases,
        announced=announced or ctx.announced,
        shutdown=shutdown,
        replacement=clean_value(_cell(pairs, roles.get("replacement"))),
        status=status or ctx.status,
        source_url=ctx.source_url,
        quote=row_quote([cell for _, cell in pairs]),
    )
    regions = parse_regions(shutdown_text)
    return [replace(record, region=region) for region in regions] or [record]


def is_lifecycle_table(roles: dict[Role, int]) -> bool:
    """A table is a deprecation table when it has a model column and a date column."""
    return "model" in roles and ("shutdown" in roles or "announced" in roles)


def table_records(table: Table, ctx: RowContext) -> list[Record]:
    """Every record of a deprecation table; [] for any other table."""
    roles = column_roles(table.header)
    if not is_lifecycle_table(roles) and not ("model" in roles and _has_unnamed_dates(table)):
        return []
    out: list[Record] = []
    for pairs in table.aligned():
        out.extend(row_records(pairs, roles, ctx, table))
    return out


def _has_unnamed_dates(table: Table) -> bool:
    return any(name == "" and find_date(cell) for row in table.aligned() for name, cell in row)


def page_qualifier(blocks: Sequence[Block]) -> Qualifier:
    """``not_before`` when the page's prose says its dates are earliest-possible ones."""
    for block in blocks:
        if (
            isinstance(block, Paragraph)
            and has_not_before(block.text)
            and re.search(r"shut[ \t]?down|retire", block.text, re.IGNORECASE)
        ):
            return "not_before"
    return "exact"


def parse(text: str, url: str, provider: str = "generic") -> list[Record]:
    """Records from every deprecation table of a markdown or HTML page."""
    blocks = read_page(text)
    ctx = RowContext(provider=provider, source_url=url)
    out: list[Record] = []
    for block in blocks:
        if isinstance(block, Table):
            out.extend(table_records(block, ctx))
    return out
