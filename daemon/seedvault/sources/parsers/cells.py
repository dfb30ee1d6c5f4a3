"""Table cells: markup, footnote markers, alias lists, region lists and statuses read out of them.

Cells arrive as the table readers leave them: list items and ``<br>`` breaks as newlines,
markdown otherwise untouched. Footnote markers (``*``, ``†``, ``‡``, ``[1]``, ``¹``,
``<sup>…</sup>``) are dropped wherever they hang off a word; ``---``, ``—``, ``NA`` and ``N/A``
mean "nothing". A model cell may carry aliases in several ways, all seen on real pages:

- ``gpt-4-0314 (alias: gpt-4)`` or ``(aliases: a, b)``
- ``gpt-4-0125-preview (including `a` and `b`, which point to this snapshot)``
- ``gpt-3.5-turbo-0125 | gpt-3.5-turbo, gpt-3.5-turbo-completions`` (an escaped pipe)
- a comma or ``<br>`` separated list of ids: the first is the model, the rest aliases.
"""

from __future__ import annotations

import re

from seedvault.sources.parsers.dates import is_none_marker, normalise_text
from seedvault.sources.parsers.records import Status

_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~])")
_IMAGE = re.compile(r"!\[([^\]\n]{0,300})\]\([^)\n]{0,2000}\)")
_LINK = re.compile(r"\[([^\]\n]{0,300})\]\([^)\n]{0,2000}\)")
_SUP = re.compile(r"<sup\b[^>]{0,200}>[^<]{0,80}</sup>", re.IGNORECASE)
_BR = re.compile(r"<br\s{0,5}/?>", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,500}>")
_BOLD = re.compile(r"\*\*|__")
_NUMBERED_NOTE = re.compile(r"\[\d{1,3}\]")
_SUPERSCRIPT = re.compile("[\u00b9\u00b2\u00b3\u2070\u2074-\u2079]+")
_TRAILING_MARK = re.compile(r"(?<=[\w.)\]`])[*\u2020\u2021\u00a7]+(?=[\s,;:)`]|$)")
_CODE = re.compile(r"`([^`\n]+)`")

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+=-]*")
_ALIAS_PAREN = re.compile(
    r"\(\s*(?:alias(?:es)?|including|also(?:[ \t]+known[ \t]+as)?|aka|a\.k\.a\.)\b:?([^()]*)\)",
    re.IGNORECASE,
)
_LIST_SPLIT = re.compile(r"\n|,|;|\band\b|\bor\b")
_REGION = re.compile(r"\b[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}\b")
_ALL_REGIONS = re.compile(r"\ball[ \t]+(?:aws[ \t]+|supported[ \t]+)?regions\b", re.IGNORECASE)


def strip_footnotes(text: str) -> str:
    """Drop footnote markers: ``<sup>…</sup>``, ``[1]``, ``¹``, and ``*``/``†``/``‡`` on a word."""
    text = _SUP.sub("", text)
    text = _NUMBERED_NOTE.sub("", text)
    text = _SUPERSCRIPT.sub("", text)
    return _TRAILING_MARK.sub("", text)


def _demarkup(text: str, *, keep_code: bool) -> str:
    text = _BR.sub("\n", text)
    text = _ESCAPE.sub(r"\1", text)
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _SUP.sub("", text)
    text = _TAG.sub("", text)
    text = _BOLD.sub("", text)
    text = strip_footnotes(text)
    if not keep_code:
        text = text.replace("`", "")
    return text


def clean_lines(cell: str) -> list[str]:
    """The cell's lines (list items, ``<br>`` parts) without markup, empty ones dropped."""
    lines = (normalise_text(line) for line in _demarkup(cell, keep_code=False).split("\n"))
    return [line for line in lines if line]


def clean_text(cell: str) -> str:
    """The cell as one line of plain text: markup and footnotes gone, lines joined by ``, ``."""
    return ", ".join(clean_lines(cell))


def clean_value(cell: str) -> str | None:
    """Plain text of the cell, or None when it is empty or a none-marker (``---``, ``N/A``…)."""
    text = clean_text(cell)
    return None if is_none_marker(text) else text


def _ids(text: str) -> list[str]:
    """Ids in an alias list: the backticked ones if any, else the id-shaped list items."""
    coded = [normalise_text(m) for m in _CODE.findall(text)]
    if coded:
        return [c for c in coded if c]
    items = (normalise_text(part).strip(" .") for part in _LIST_SPLIT.split(text))
    return [item for item in items if _ID.fullmatch(item)]


def parse_model_cell(cell: str) -> tuple[str, tuple[str, ...]]:
    """Split a model cell into the model id and its aliases (see the module docstring).

    Returns ``("", ())`` for an empty or none-marker cell.
    """
    text = _demarkup(cell, keep_code=True).strip()
    aliases: list[str] = []
    if m := _ALIAS_PAREN.search(text):
        aliases = _ids(m[1])
        main = text[: m.start()] + text[m.end() :]
    elif "|" in (masked := _CODE.sub(lambda c: c[0].replace("|", "\0"), text)):
        main, rest = (part.replace("\0", "|") for part in masked.split("|", 1))
        aliases = _ids(rest)
    else:
        items = [item for item in re.split(r"[\n,]", text) if item.strip()]
        bare = [normalise_text(item.replace("`", "")) for item in items]
        if len(items) > 1 and all(_ID.fullmatch(item) for item in bare):
            main, aliases = bare[0], bare[1:]
        else:
            main = text
    model = normalise_text(main.replace("`", "").replace("\n", " "))
    if is_none_marker(model):
        return "", ()
    unique = tuple(dict.fromkeys(a for a in aliases if a and a != model))
    return model, unique


def parse_regions(text: str) -> list[str]:
    """Region codes named in the text (``us-east-1``…), in order; [] when none or "all Regions"."""
    if _ALL_REGIONS.search(text):
        return []
    return list(dict.fromkeys(_REGION.findall(text)))


_STATUS_WORDS: tuple[tuple[re.Pattern[str], Status], ...] = (
    (re.compile(r"\bretired?\b|\bshut[ \t]?down\b|\beol\b|end[- ]of[- ]life|\bsunset\b"
                r"|\bdiscontinued\b|\bremoved\b", re.IGNORECASE), "retired"),
    (re.compile(r"\bdeprecat", re.IGNORECASE), "deprecated"),
    (re.compile(r"\blegacy\b", re.IGNORECASE), "legacy"),
    (re.compile(r"\bactive\b|\bgenerally[ \t]+available\b|\bGA\b|\bstable\b", re.IGNORECASE),
     "active"),
)  # fmt: skip


def map_status(cell: str) -> Status | None:
    """A status cell's lifecycle state; the first word decides, then any state word; else None."""
    text = clean_text(cell)
    words = text.split()
    first = words[0] if words else ""
    for candidate in (first, text):
        for pattern, status in _STATUS_WORDS:
            if pattern.search(candidate):
                return status
    return None
