"""Page blocks: the headings, prose and tables a deprecation page is read into.

Both readers (:mod:`.mdpage` for markdown, :mod:`.htmlpage` for HTML) turn a page into a flat
list of :class:`Heading`, :class:`Paragraph` and :class:`Table` blocks in page order; the
provider parsers walk that list. A table cell keeps its markup (cleaned later by
:mod:`.cells`), with list items and line breaks as ``\\n``.

Tables from converted pages can have a header row with fewer cells than their data rows
(Bedrock's "Active versions" table lacks the EOL column's header). :meth:`Table.aligned`
pairs cells with header names anyway: for each row length it picks where the unnamed cells
sit, so that date cells fall under date headers and other cells under other headers
(unnamed cells get the name ``""``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from seedvault.sources.parsers.dates import find_date

_DATE_HEADER = re.compile(r"\bdate\b|\beol\b|sunset|shut ?down|retire", re.IGNORECASE)


@dataclass(frozen=True)
class Heading:
    """A section heading; ``level`` 1–6 as in ``#``…``######`` or ``<h1>``…``<h6>``."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    """A run of prose (a paragraph, a list, a note) with its line breaks kept."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table: header cell texts and data rows (cells as the page wrote them)."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    _splits: dict[int, int] = field(default_factory=dict, compare=False, repr=False)

    def aligned(self) -> list[list[tuple[str, str]]]:
        """Each row as ``(header name, cell)`` pairs; see the module docstring for long rows."""
        return [self._align(row) for row in self.rows]

    def _align(self, row: tuple[str, ...]) -> list[tuple[str, str]]:
        width = len(self.header)
        if len(row) <= width:
            cells = list(row) + [""] * (width - len(row))
            return list(zip(self.header, cells, strict=True))
        extra = len(row) - width
        split = self._split_for(len(row))
        names = [*self.header[:split], *([""] * extra), *self.header[split:]]
        return list(zip(names, row, strict=True))

    def _split_for(self, length: int) -> int:
        """Where the unnamed cells of rows of this length start (best fit, rightmost on ties)."""
        if length not in self._splits:
            rows = [row for row in self.rows if len(row) == length]
            extra = length - len(self.header)
            best, best_score = len(self.header), -1
            for split in range(len(self.header) + 1):
                names = [*self.header[:split], *([None] * extra), *self.header[split:]]
                score = sum(
                    _fit(name, cell) for row in rows for name, cell in zip(names, row, strict=True)
                )
                if score >= best_score:
                    best, best_score = split, score
            self._splits[length] = best
        return self._splits[length]


def _fit(name: str | None, cell: str) -> int:
    """1 when a cell suits its column (dates under date headers, others elsewhere)."""
    if name is None or not cell.strip():
        return 1
    return int(bool(_DATE_HEADER.search(name)) == (find_date(cell) is not None))


Block = Heading | Paragraph | Table


def row_quote(cells: Sequence[str]) -> str:
    """A table row as evidence text: cells joined by `` | ``, list items by ``, ``."""
    joined = " | ".join(cell.replace("\n", ", ") for cell in cells)
    return " ".join(joined.split())
