"""Lifecycle records: one model's deprecation facts as read from one row or sentence of a page.

A :class:`Record` is exactly what ``seedvault deprecations parse`` prints, one JSON object per
(model, entry, region). Optional fields are ``None`` in Python and *absent* in JSON, never
``null``; no field is a float. Records are frozen and hashable so a page's records can be
de-duplicated and sorted into one deterministic order (:func:`normalise_records`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Qualifier = Literal["exact", "not_before", "none"]
"""How firm a shutdown date is: ``exact``, a lower bound (``not_before``), or no date (``none``)."""

Status = Literal["active", "legacy", "deprecated", "retired"]

STATUS_RANK: dict[str, int] = {"active": 0, "legacy": 1, "deprecated": 2, "retired": 3}
"""Lifecycle order, earliest first; used to break ties deterministically."""

QUALIFIER_RANK: dict[str, int] = {"none": 0, "not_before": 1, "exact": 2}
"""How much a shutdown value says: an exact date beats a lower bound beats no date."""


@dataclass(frozen=True, order=True)
class Shutdown:
    """A shutdown date and how firm it is; ``date`` is ``YYYY-MM-DD`` or None for ``none``."""

    date: str | None = None
    qualifier: Qualifier = "none"

    def __post_init__(self) -> None:
        if (self.date is None) != (self.qualifier == "none"):
            raise ValueError(f"shutdown date {self.date!r} contradicts qualifier {self.qualifier}")

    def to_json(self) -> dict[str, str]:
        """``{"date": …, "qualifier": …}``, or ``{"qualifier": "none"}`` without a date."""
        if self.date is None:
            return {"qualifier": "none"}
        return {"date": self.date, "qualifier": self.qualifier}


NO_SHUTDOWN = Shutdown()


@dataclass(frozen=True)
class Record:
    """One lifecycle fact about one model, with the text it came from.

    ``model`` is the id the page uses (a system name such as ``Assistants API`` when the page
    deprecates a whole product); ``aliases`` are other names the same row gives for it.
    ``announced`` is the date the deprecation was announced (or the model went legacy);
    ``region`` is set only when the page gives per-region dates. ``quote`` is the row or
    sentence the record came from, whitespace-normalised, kept as evidence.
    """

    provider: str
    model: str
    shutdown: Shutdown
    source_url: str
    quote: str
    aliases: tuple[str, ...] = ()
    announced: str | None = None
    replacement: str | None = None
    status: Status | None = None
    region: str | None = None

    def to_json(self) -> dict[str, object]:
        """The ``deprecations parse`` contract object: optional keys absent rather than null."""
        out: dict[str, object] = {
            "provider": self.provider,
            "model": self.model,
            "aliases": list(self.aliases),
            "shutdown": self.shutdown.to_json(),
            "source_url": self.source_url,
            "quote": self.quote,
        }
        for key, value in (
            ("announced", self.announced),
            ("replacement", self.replacement),
            ("status", self.status),
            ("region", self.region),
        ):
            if value is not None:
                out[key] = value
        return out

    def sort_key(self) -> tuple[str, ...]:
        """Model, then shutdown, then region, then announced, then every other field."""
        return (
            self.model,
            self.shutdown.date or "",
            self.shutdown.qualifier,
            self.region or "",
            self.announced or "",
            self.provider,
            self.status or "",
            self.replacement or "",
            "\n".join(self.aliases),
            self.source_url,
            self.quote,
        )


def normalise_records(records: Iterable[Record]) -> list[Record]:
    """Drop exact duplicates and sort into the one deterministic order of :meth:`sort_key`."""
    return sorted(set(records), key=Record.sort_key)
