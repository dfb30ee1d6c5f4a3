"""Lifecycle dates: every date form the providers' pages use, normalised to ``YYYY-MM-DD``.

Forms seen on real pages, sometimes several on one page: ``2024-01-04`` (also written with
U+2011 NON-BREAKING HYPHEN or other unicode dashes), ``Dec 11, 2026``, ``October 23, 2026``,
``July 15th, 2025 (all Regions)``, ``11 December 2026``, US ``9/23/2024``. A date preceded by
"Not sooner than", "No sooner than", "no earlier than", "at earliest", "earliest possible" or
"on or after" is a lower bound (qualifier ``not_before``), never a firm shutdown date.
``NA``, ``N/A``, ``---``, ``—``, "TBD" and "No shutdown date announced" mean no date.

Month-only dates (``June 2024``) are not dates here: they cannot become ``YYYY-MM-DD``
without inventing a day, so they read as no date and the quote keeps the words.
All patterns are linear (no nested quantifiers): page text is untrusted.
"""

from __future__ import annotations

import datetime as dt
import re

from seedvault.sources.parsers.records import NO_SHUTDOWN, Qualifier, Shutdown

DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
"""Unicode hyphens and dashes that pages put inside ISO dates and ids."""

_SPACES = re.compile("[\u00a0\u2007\u202f\u2009\u200a\u3000]")
_DASH_BETWEEN_DIGITS = re.compile(f"(?<=\\d)[{DASHES}](?=\\d)")

MONTHS: dict[str, int] = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4,
    "april": 4, "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8,
    "sep": 9, "sept": 9, "september": 9, "oct": 10, "october": 10, "nov": 11, "november": 11,
    "dec": 12, "december": 12,
}  # fmt: skip
_MONTH = "(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + ")"

_ISO = re.compile(r"(?<![\w/.-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\d/-])")
_US = re.compile(r"(?<![\d/-])(\d{1,2})/(\d{1,2})/(\d{4})(?![\d/])")
_MONTH_FIRST = re.compile(
    rf"\b({_MONTH})\.?[ \t]+(\d{{1,2}})(?:st|nd|rd|th)?,?[ \t]+(\d{{4}})\b", re.IGNORECASE
)
_DAY_FIRST = re.compile(
    rf"\b(\d{{1,2}})(?:st|nd|rd|th)?[ \t]+({_MONTH})\.?,?[ \t]+(\d{{4}})\b", re.IGNORECASE
)

_NOT_BEFORE = re.compile(
    r"\b(?:not|no)[ \t]+(?:sooner|earlier)[ \t]+than\b"
    r"|\bat[ \t]+(?:the[ \t]+)?earliest\b|\bearliest\b|\bon[ \t]+or[ \t]+after\b",
    re.IGNORECASE,
)
_NO_DATE_PHRASE = re.compile(
    r"\bno[ \t]+(?:shutdown[ \t]+|retirement[ \t]+|end[ \t]+)?date[ \t]+"
    r"(?:announced|set|scheduled|yet)\b|\bnot[ \t]+(?:yet[ \t]+)?(?:announced|scheduled)\b",
    re.IGNORECASE,
)
NONE_MARKERS = frozenset(
    {"", "na", "n/a", "n.a.", "none", "-", "--", "---", "tbd", "tba", "not applicable"}
    | set(DASHES)
)
"""Whole-cell values that mean "nothing here" (compared lower-cased, stripped)."""


def normalise_text(text: str) -> str:
    """Unicode spaces to plain spaces, dashes between digits to ``-``, runs of space to one."""
    text = _SPACES.sub(" ", text)
    text = _DASH_BETWEEN_DIGITS.sub("-", text)
    return " ".join(text.split())


def is_none_marker(text: str) -> bool:
    """True when a whole cell says "nothing" (``NA``, ``N/A``, ``---``, ``—``, empty…)."""
    value = normalise_text(text).strip().lower().replace("\\", "")
    return value in NONE_MARKERS or (bool(value) and set(value) <= set("-" + DASHES))


def _valid(year: int, month: int, day: int) -> str | None:
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def _candidates(text: str) -> list[tuple[int, str | None]]:
    found: list[tuple[int, str | None]] = []
    if m := _ISO.search(text):
        found.append((m.start(), _valid(int(m[1]), int(m[2]), int(m[3]))))
    if m := _US.search(text):
        found.append((m.start(), _valid(int(m[3]), int(m[1]), int(m[2]))))
    if m := _MONTH_FIRST.search(text):
        found.append((m.start(), _valid(int(m[3]), MONTHS[m[1].lower()], int(m[2]))))
    if m := _DAY_FIRST.search(text):
        found.append((m.start(), _valid(int(m[3]), MONTHS[m[2].lower()], int(m[1]))))
    return found


def find_date(text: str) -> str | None:
    """The first valid date in ``text`` as ``YYYY-MM-DD``, or None.

    >>> find_date("July 15th, 2025 (all Regions)")
    '2025-07-15'
    """
    text = normalise_text(text)
    for _, value in sorted(_candidates(text), key=lambda c: c[0]):
        if value is not None:
            return value
    return None


def find_dates(text: str) -> list[str]:
    """Every valid date in ``text``, in page order (used for prose, which may hold several)."""
    text = normalise_text(text)
    out: list[tuple[int, str]] = []
    for pattern, order in ((_ISO, "ymd"), (_US, "mdy"), (_MONTH_FIRST, "Mdy"), (_DAY_FIRST, "dMy")):
        for m in pattern.finditer(text):
            parts = dict(zip(order, m.groups(), strict=True))
            month = MONTHS[parts["M"].lower()] if "M" in parts else int(parts["m"])
            value = _valid(int(parts["y"]), month, int(parts["d"]))
            if value is not None:
                out.append((m.start(), value))
    return [value for _, value in sorted(out)]


def has_not_before(text: str) -> bool:
    """True when the text marks its date as a lower bound ("Not sooner than", "earliest"…)."""
    # emphasis markers glue to words ("_earliest possible dates_") and would hide them
    plain = text.replace("_", " ").replace("*", " ")
    return _NOT_BEFORE.search(normalise_text(plain)) is not None


def parse_shutdown(text: str, default: Qualifier = "exact") -> Shutdown:
    """Read a shutdown cell or phrase into a :class:`Shutdown`.

    Args:
        text: the cell text (footnote markers may still be attached; they do not matter).
        default: the qualifier of a bare date; ``not_before`` where the page says all its
            dates are earliest-possible ones (Gemini) or the column is "Tentative".

    Returns:
        ``not_before`` when the text says so, ``default`` for a bare date, and no date for
        none-markers, "No shutdown date announced" and text without a full date.
    """
    if is_none_marker(text) or _NO_DATE_PHRASE.search(normalise_text(text)):
        return NO_SHUTDOWN
    date = find_date(text)
    if date is None:
        return NO_SHUTDOWN
    qualifier: Qualifier = "not_before" if has_not_before(text) else default
    if qualifier == "none":
        qualifier = "exact"
    return Shutdown(date, qualifier)
