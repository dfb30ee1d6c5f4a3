"""Deprecation-page parsers: provider pages in, lifecycle records out (pure functions, no I/O).

``PARSERS`` maps a ``[[watch.page]]`` provider name to its parser; :func:`parse_page` runs one
and returns its records de-duplicated and sorted (model, shutdown, region, announced, …), the
order ``seedvault deprecations parse`` prints them in. :func:`~.diff.diff_records` turns two
parses of the same page into field-level lifecycle changes.

Modules: :mod:`.records` (the record type), :mod:`.dates` (date forms and qualifiers),
:mod:`.cells` (footnotes, aliases, regions), :mod:`.blocks` / :mod:`.mdpage` /
:mod:`.htmlpage` (page structure and tables), :mod:`.generic` (column roles, the generic
parser), one module per provider, and :mod:`.diff`.
"""

from __future__ import annotations

from collections.abc import Callable

from seedvault.errors import UsageError
from seedvault.sources.parsers import anthropic, bedrock, gemini, generic, openai
from seedvault.sources.parsers.diff import Change, diff_records
from seedvault.sources.parsers.records import Record, Shutdown, normalise_records

Parser = Callable[[str, str], list[Record]]
"""``parser(page_text, source_url) -> records`` (unsorted, possibly with duplicates)."""

PARSERS: dict[str, Parser] = {
    "openai": openai.parse,
    "anthropic": anthropic.parse,
    "gemini": gemini.parse,
    "bedrock": bedrock.parse,
    "generic": generic.parse,
}


def parse_page(provider: str, text: str, url: str) -> list[Record]:
    """Parse one deprecation page with the named provider's parser.

    Args:
        provider: a key of :data:`PARSERS`.
        text: the page (markdown or HTML); untrusted, never executed or fetched from.
        url: the page's address, copied into every record's ``source_url``.

    Returns:
        The records, de-duplicated and sorted deterministically; [] when the page has none
        (the caller decides whether that is a ``parse_failed``).

    Raises:
        UsageError: for an unknown provider name (the message lists the known ones).
    """
    try:
        parser = PARSERS[provider]
    except KeyError:
        known = ", ".join(sorted(PARSERS))
        message = f"unknown deprecation-page provider {provider!r}; known: {known}"
        raise UsageError(message) from None
    return normalise_records(parser(text, url))


__all__ = [
    "PARSERS",
    "Change",
    "Parser",
    "Record",
    "Shutdown",
    "diff_records",
    "parse_page",
]
