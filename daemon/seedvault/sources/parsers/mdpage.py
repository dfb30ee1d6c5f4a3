"""Markdown page reading: headings, prose and pipe tables of a markdown page as blocks.

Two table dialects occur and both are read:

- GitHub style, one row per line with outer pipes: ``| a | b |``;
- HTML-to-markdown converter style without outer pipes (``a| b| c``), where a row whose
  line ends with ``|`` continues on the next lines: cells can hold bullet lists spread over
  many lines, with blank lines between (the Bedrock page).

A pipe inside a backtick code span or escaped as ``\\|`` is cell text, not a separator. A data
row directly followed by a separator line is the header of a new table (two tables printed
back to back). HTML ``<table>`` fragments embedded in markdown go to :mod:`.htmlpage`, and a
page that is HTML as a whole is read by it entirely (:func:`read_page`).
"""

from __future__ import annotations

import re

from seedvault.sources.parsers.blocks import Block, Heading, Paragraph, Table
from seedvault.sources.parsers.htmlpage import read_html_blocks

_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t#]*$")
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_HTML_PAGE = re.compile(r"^\s*(?:<!doctype\s+html|<html\b)|<body\b|<h[1-6]\b", re.IGNORECASE)
_MAX_ROW_LINES = 400
"""A converter-style row longer than this is malformed input; it is cut there."""


def read_page(text: str) -> list[Block]:
    """Read a page into blocks, as HTML when it is an HTML document, else as markdown."""
    if _HTML_PAGE.search(text[:20000]) and "<table" in text.lower():
        return read_html_blocks(text)
    return read_markdown_blocks(text)


def _mask_code(line: str) -> str:
    """The line with pipes inside code spans and escaped pipes replaced by NUL."""
    masked = _CODE_SPAN.sub(lambda m: m[0].replace("|", "\0"), line)
    return masked.replace("\\|", "\\\0")


def _has_pipe(line: str) -> bool:
    return "|" in _mask_code(line)


def is_separator(line: str) -> bool:
    """True for a table separator line such as ``---|---`` or ``| :--- | ---: |``."""
    stripped = line.strip()
    if "|" not in stripped or "-" not in stripped:
        return False
    parts = stripped.strip("|").split("|")
    for part in parts:
        cell = part.strip().strip(":")
        if len(cell) < 2 or cell.strip("-"):
            return False
    return True


def split_row(text: str, *, outer: bool) -> tuple[str, ...]:
    """Split one table row (possibly several lines) into cells, honouring code spans and ``\\|``.

    Cells holding bullet lists become their items joined by ``\\n``; other cells are stripped.
    """
    masked = _mask_code(text).strip()
    if outer:
        masked = masked.removeprefix("|")
        if masked.endswith("|") and not masked.endswith("\\|"):
            masked = masked[:-1]
    return tuple(_cell(part.replace("\0", "|")) for part in masked.split("|"))


def _cell(raw: str) -> str:
    if "\n" not in raw:
        return raw.strip()
    items: list[str] = []
    for line in raw.split("\n"):
        text = line.strip()
        if not text:
            continue
        if text[0] in "*-+" and (len(text) == 1 or text[1] in " \t"):
            while text[:1] in ("*", "-", "+") and (len(text) == 1 or text[1] in " \t"):
                text = text[1:].lstrip()
                items.append("")
            items[-1] = text
        elif items:
            items[-1] = f"{items[-1]} {text}".strip()
        else:
            items.append(text)
    return "\n".join(items)


def _row_complete(pending: list[str], line: str, width: int) -> bool:
    """Whether a converter-style row ends with ``line`` (see the module docstring).

    A line with a pipe that does not end in one closes the row; so does a line ending in a
    pipe once the row already has a full header's worth of cells (an empty last cell).
    Lines without pipes (bullet items, blank lines) continue the open row.
    """
    if len(pending) >= _MAX_ROW_LINES:
        return True
    masked = _mask_code(line).rstrip()
    if "|" not in masked:
        return False
    if not masked.endswith("|"):
        return True
    pipes = sum(_mask_code(part).count("|") for part in pending)
    return pipes + 1 >= width


def _read_table(lines: list[str], start: int) -> tuple[Table, int]:
    """Read the table whose header is ``lines[start]``; return it and the next line index."""
    outer = lines[start].lstrip().startswith("|")
    header = split_row(lines[start], outer=outer)
    rows: list[tuple[str, ...]] = []
    pending: list[str] | None = None
    i = start + 2
    while i < len(lines):
        line = lines[i]
        if pending is None:
            if not line.strip() or not _has_pipe(line):
                break
            if i + 1 < len(lines) and is_separator(lines[i + 1]):
                break  # the next table's header
            pending = []
        elif _HEADING.match(line):
            break
        pending.append(line)
        i += 1
        if outer or _row_complete(pending, line, len(header)):
            rows.append(split_row("\n".join(pending), outer=outer))
            pending = None
    if pending is not None:
        rows.append(split_row("\n".join(pending), outer=outer))
    return Table(header, tuple(rows)), i


def read_markdown_blocks(text: str) -> list[Block]:
    """Read a markdown page into headings, paragraphs and tables, in page order."""
    lines = text.splitlines()
    blocks: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(Paragraph("\n".join(line.strip() for line in para)))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().lower().startswith("<table"):
            flush()
            end = i
            while end < len(lines) and "</table>" not in lines[end].lower():
                end += 1
            blocks.extend(read_html_blocks("\n".join(lines[i : end + 1])))
            i = end + 1
        elif m := _HEADING.match(line):
            flush()
            blocks.append(Heading(len(m[1]), m[2].strip()))
            i += 1
        elif i + 1 < len(lines) and _has_pipe(line) and is_separator(lines[i + 1]):
            flush()
            table, i = _read_table(lines, i)
            blocks.append(table)
        elif not line.strip():
            flush()
            i += 1
        else:
            para.append(line)
            i += 1
    flush()
    return blocks
