"""HTML page reading: headings, prose and tables of an HTML deprecation page as blocks.

Built on the standard library's :class:`html.parser.HTMLParser`, which never fetches or runs
anything. ``<br>`` and list items inside a cell become ``\\n`` (so alias and region lists
survive); ``<sup>`` footnotes are dropped; ``<script>``, ``<style>`` and ``<template>`` are
skipped. A table's header is its first row holding ``<th>`` cells, else its first row.
Nested tables are flattened into the cell that holds them.
"""

from __future__ import annotations

from html.parser import HTMLParser

from seedvault.sources.parsers.blocks import Block, Heading, Paragraph, Table

_SKIP = frozenset({"script", "style", "template", "sup", "noscript"})
_BLOCK = frozenset({"p", "div", "li", "ul", "ol", "section", "article", "blockquote", "dd", "dt"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._text: list[str] = []
        self._skip = 0
        self._heading: int | None = None
        self._depth = 0  # table nesting
        self._rows: list[tuple[list[str], bool]] = []
        self._cells: list[str] | None = None
        self._cell: list[str] | None = None
        self._row_has_th = False

    # text routing -------------------------------------------------------------------------
    def _sink(self) -> list[str]:
        return self._cell if self._cell is not None else self._text

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self._sink().append(data)

    def _flush_text(self) -> None:
        text = "".join(self._text)
        self._text = []
        lines = [" ".join(line.split()) for line in text.split("\n")]
        joined = "\n".join(line for line in lines if line)
        if not joined:
            return
        if self._heading is not None:
            self.blocks.append(Heading(self._heading, " ".join(joined.split())))
        else:
            self.blocks.append(Paragraph(joined))

    # tags ---------------------------------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "table":
            self._depth += 1
            if self._depth == 1:
                self._flush_text()
                self._rows = []
        elif self._depth == 1 and tag == "tr":
            self._cells, self._row_has_th = [], False
        elif self._depth == 1 and tag in ("td", "th") and self._cells is not None:
            self._cell = []
            self._row_has_th |= tag == "th"
        elif tag == "br" or (tag in ("li", "p", "div") and self._cell is not None):
            self._sink().append("\n")
        elif tag in _HEADINGS and self._depth == 0:
            self._flush_text()
            self._heading = _HEADINGS[tag]
        elif tag in _BLOCK and self._depth == 0:
            self._flush_text()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "table" and self._depth:
            self._depth -= 1
            if self._depth == 0:
                self._finish_table()
        elif self._depth == 1 and tag in ("td", "th") and self._cell is not None:
            assert self._cells is not None
            self._cells.append(_cell_text("".join(self._cell)))
            self._cell = None
        elif self._depth == 1 and tag == "tr" and self._cells is not None:
            if self._cell is not None:
                self._cells.append(_cell_text("".join(self._cell)))
                self._cell = None
            if self._cells:
                self._rows.append((self._cells, self._row_has_th))
            self._cells = None
        elif tag in _HEADINGS and self._heading is not None:
            self._flush_text()
            self._heading = None
        elif tag in _BLOCK and self._depth == 0:
            self._flush_text()

    def _finish_table(self) -> None:
        rows = self._rows
        self._rows = []
        if not rows:
            return
        head = next((i for i, (_, th) in enumerate(rows) if th), 0)
        header = tuple(" ".join(c.split()) for c in rows[head][0])
        body = tuple(tuple(cells) for cells, _ in rows[head + 1 :])
        self.blocks.append(Table(header, body))

    def close(self) -> None:
        super().close()
        self._flush_text()


def _cell_text(raw: str) -> str:
    lines = (" ".join(line.split()) for line in raw.split("\n"))
    return "\n".join(line for line in lines if line)


def read_html_blocks(text: str) -> list[Block]:
    """Read an HTML page (or an HTML fragment such as one ``<table>``) into blocks."""
    reader = _Reader()
    reader.feed(text)
    reader.close()
    return reader.blocks
