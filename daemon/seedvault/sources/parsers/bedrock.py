"""AWS Bedrock model lifecycle page: Active, Legacy and End-of-Life tables, dates per region.

- "Active versions": ``Provider | Model name | Model ID | Regions supported | Launch date |
  … | Input modalities | Output modalities``. The header has no cell for the EOL column its
  data rows carry ("No sooner than 9/23/2025"); :meth:`Table.aligned` finds that unnamed
  column. One record per model id (the display name is its alias), status ``active``, the
  EOL date as ``not_before``. The launch dates are per region but the EOL date is not, so
  active records carry no region.
- "Legacy versions" and "End-of-Life (EOL) versions": ``Model version | Legacy date | … |
  EOL date | Recommended model version replacement | Recommended model ID``. Status
  ``legacy`` or ``retired``; ``announced`` is the legacy date; the replacement is the
  recommended model id. Dates name their regions ("May 20, 2025 (us-east-1 and us-west-2)",
  "(only in us-west-2)"): one record per region named by the EOL cell, or else by the legacy
  cell; "(all Regions)" gives one record without a region. The same model listed twice for
  different regions (Ai21 J2 in the sample) is two sets of records.

These tables name legacy models by display name only. The model stays the display name (a
key that does not change when the model leaves the Active table); when an Active row on the
same page has that display name, its model id is added as an alias.
"""

from __future__ import annotations

from dataclasses import replace

from seedvault.sources.parsers.blocks import Heading, Table, row_quote
from seedvault.sources.parsers.cells import (
    clean_text,
    clean_value,
    parse_model_cell,
    parse_regions,
)
from seedvault.sources.parsers.dates import find_date, parse_shutdown
from seedvault.sources.parsers.generic import Role, column_roles
from seedvault.sources.parsers.mdpage import read_page
from seedvault.sources.parsers.records import Record, Status

PROVIDER = "bedrock"


def _section_status(heading: str) -> Status | None:
    text = heading.lower()
    if "end-of-life" in text or "eol" in text.split() or "(eol)" in text:
        return "retired"
    if "legacy" in text:
        return "legacy"
    if "active" in text:
        return "active"
    return None


def _pick(pairs: list[tuple[str, str]], roles: dict[Role, int], role: Role) -> str:
    index = roles.get(role)
    return pairs[index][1] if index is not None and index < len(pairs) else ""


def _active_records(table: Table, url: str) -> list[Record]:
    names = [name.lower() for name in table.header]
    id_col = next((i for i, n in enumerate(names) if "model id" in n), None)
    name_col = next((i for i, n in enumerate(names) if "model name" in n), None)
    if id_col is None:
        return []
    out: list[Record] = []
    for pairs in table.aligned():
        model, aliases = parse_model_cell(pairs[id_col][1])
        if not model:
            continue
        display = clean_text(pairs[name_col][1]) if name_col is not None else ""
        eol = next((cell for name, cell in pairs if name == "" and find_date(cell)), "")
        if not eol:
            eol = next((c for n, c in pairs if "eol" in n.lower() or "end" in n.lower()), "")
        out.append(
            Record(
                provider=PROVIDER,
                model=model,
                aliases=tuple(dict.fromkeys((*aliases, *([display] if display else [])))),
                shutdown=parse_shutdown(eol, "not_before"),
                status="active",
                source_url=url,
                quote=row_quote([cell for _, cell in pairs]),
            )
        )
    return out


def _lifecycle_records(table: Table, status: Status, url: str) -> list[Record]:
    roles = column_roles(table.header)
    if "model" not in roles or "shutdown" not in roles:
        return []
    out: list[Record] = []
    for pairs in table.aligned():
        model, aliases = parse_model_cell(_pick(pairs, roles, "model"))
        if not model:
            continue
        eol = _pick(pairs, roles, "shutdown")
        legacy = _pick(pairs, roles, "announced")
        record = Record(
            provider=PROVIDER,
            model=model,
            aliases=aliases,
            announced=find_date(legacy),
            shutdown=parse_shutdown(eol, "exact"),
            replacement=clean_value(_pick(pairs, roles, "replacement")),
            status=status,
            source_url=url,
            quote=row_quote([cell for _, cell in pairs]),
        )
        regions = parse_regions(eol) or parse_regions(legacy)
        out.extend([replace(record, region=r) for r in regions] or [record])
    return out


def parse(text: str, url: str) -> list[Record]:
    """Records of the Bedrock model-lifecycle page (see the module docstring)."""
    status: Status | None = None
    active: list[Record] = []
    other: list[Record] = []
    for block in read_page(text):
        if isinstance(block, Heading) and block.level <= 2:
            status = _section_status(block.text)
        elif isinstance(block, Table):
            if status == "active":
                active.extend(_active_records(block, url))
            elif status is not None:
                other.extend(_lifecycle_records(block, status, url))
    ids = {alias.lower(): r.model for r in active for alias in r.aliases}
    linked = [
        replace(r, aliases=(*r.aliases, ids[r.model.lower()]))
        if r.model.lower() in ids and ids[r.model.lower()] not in r.aliases
        else r
        for r in other
    ]
    return active + linked
