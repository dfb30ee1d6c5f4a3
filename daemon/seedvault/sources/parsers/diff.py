"""Lifecycle diff: field-level changes between two parses of the same deprecation page.

Records are first merged into one *state* per (provider, model, region), because one model
can appear in several entries of a page (an old "at earliest" table and a later dated one, a
status table and a history table). The merge rule, applied independently of record order:

1. Records are ranked by ``announced`` (latest wins; none ranks lowest), then by how much the
   shutdown value says (an exact date beats ``not_before`` beats no date — so within one
   entry an exact date wins over a lower bound), then the later date, then the lifecycle
   status (retired > deprecated > legacy > active), then replacement and quote text.
2. The best-ranked record gives the state's ``shutdown``, ``announced`` and evidence quote.
3. ``status`` and ``replacement`` come from the best-ranked record that *has* one, so a status
   table without replacements and a history table with them combine.

States are then compared key by key. Change types are the Events v1 names:

- ``deprecated``: a key appears, or an existing one turns, deprecated — status legacy or
  deprecated, or no status but a shutdown date. Its field changes are not reported
  separately. A key that appears already retired gives ``retired`` instead.
- ``shutdown_date_set`` / ``shutdown_date_moved`` / ``shutdown_date_withdrawn``: no date →
  date; date or qualifier changed; date → none ("No shutdown date announced").
- ``replacement_changed``: the recommended replacement changed, appeared or vanished.
- ``retired``: the status became ``retired``, or a deprecated, not yet retired key is no
  longer listed at all (``after`` is then null and the quote says so).
- ``parse_failed``: the new parse has no records, or fewer than ``min_ratio`` (default a
  third) of the old count. Then it is the ONLY change: a broken parse must never read as a
  flood of retirements.

Before/after values are JSON-safe: state objects for ``deprecated``/``retired``, shutdown
objects for the ``shutdown_*`` types, strings or null for ``replacement_changed``, record
counts for ``parse_failed``. Reordered rows change nothing. With no old records every
deprecated model is new: callers use the first parse of a page as a baseline instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal, TypeAlias

from seedvault.sources.parsers.records import (
    QUALIFIER_RANK,
    STATUS_RANK,
    Record,
    Shutdown,
    Status,
)

JSONValue: TypeAlias = "str | int | bool | list[JSONValue] | dict[str, JSONValue] | None"
ChangeType = Literal[
    "deprecated",
    "shutdown_date_set",
    "shutdown_date_moved",
    "shutdown_date_withdrawn",
    "replacement_changed",
    "retired",
    "parse_failed",
]
_ORDER: dict[str, int] = {
    "parse_failed": 0, "deprecated": 1, "shutdown_date_set": 2, "shutdown_date_moved": 3,
    "shutdown_date_withdrawn": 4, "replacement_changed": 5, "retired": 6,
}  # fmt: skip
Key: TypeAlias = tuple[str, str, str | None]


@dataclass(frozen=True)
class State:
    """The merged lifecycle state of one (provider, model, region)."""

    shutdown: Shutdown
    quote: str
    announced: str | None = None
    replacement: str | None = None
    status: Status | None = None

    def to_json(self) -> dict[str, JSONValue]:
        """State fields as JSON: optional ones absent rather than null."""
        out: dict[str, JSONValue] = {"shutdown": dict(self.shutdown.to_json())}
        for name in ("announced", "replacement", "status"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @property
    def is_deprecated(self) -> bool:
        """Legacy or deprecated, or without a status but with a shutdown date."""
        if self.status is None:
            return self.shutdown.date is not None
        return self.status in ("legacy", "deprecated")


@dataclass(frozen=True)
class Change:
    """One field-level lifecycle change, named as in Events v1, with its evidence."""

    type: ChangeType
    provider: str
    model: str
    region: str | None
    before: JSONValue
    after: JSONValue
    quote: str

    def to_json(self) -> dict[str, JSONValue]:
        """The change as JSON (``region`` absent when None; ``before``/``after`` may be null)."""
        out: dict[str, JSONValue] = {"type": self.type, "provider": self.provider}
        out["model"] = self.model
        if self.region is not None:
            out["region"] = self.region
        out.update(before=self.before, after=self.after, quote=self.quote)
        return out


def _rank(record: Record) -> tuple[str, int, str, int, str, str]:
    status = STATUS_RANK[record.status] if record.status is not None else -1
    return (
        record.announced or "",
        QUALIFIER_RANK[record.shutdown.qualifier],
        record.shutdown.date or "",
        status,
        record.replacement or "",
        record.quote,
    )


def merge_records(records: Iterable[Record]) -> dict[Key, State]:
    """One :class:`State` per (provider, model, region), by the rule in the module docstring."""
    groups: dict[Key, list[Record]] = {}
    for record in set(records):
        groups.setdefault((record.provider, record.model, record.region), []).append(record)
    states: dict[Key, State] = {}
    for key, group in groups.items():
        ranked = sorted(group, key=_rank, reverse=True)
        best = ranked[0]
        states[key] = State(
            shutdown=best.shutdown,
            quote=best.quote,
            announced=best.announced,
            replacement=next((r.replacement for r in ranked if r.replacement is not None), None),
            status=next((r.status for r in ranked if r.status is not None), None),
        )
    return states


def _field_changes(key: Key, old: State, new: State) -> list[Change]:
    provider, model, region = key
    out: list[Change] = []

    def add(kind: ChangeType, before: JSONValue, after: JSONValue) -> None:
        out.append(Change(kind, provider, model, region, before, after, new.quote))

    o, n = old.shutdown, new.shutdown
    if o != n:
        kind: ChangeType = "shutdown_date_moved"
        if o.date is None:
            kind = "shutdown_date_set"
        elif n.date is None:
            kind = "shutdown_date_withdrawn"
        add(kind, dict(o.to_json()), dict(n.to_json()))
    if old.replacement != new.replacement:
        add("replacement_changed", old.replacement, new.replacement)
    return out


def _key_changes(key: Key, old: State | None, new: State | None) -> list[Change]:
    provider, model, region = key
    if new is None:
        assert old is not None
        if old.status == "retired" or not old.is_deprecated:
            return []
        quote = f"no longer listed on the page; last seen: {old.quote}"
        return [Change("retired", provider, model, region, old.to_json(), None, quote)]
    after = new.to_json()
    before = old.to_json() if old is not None else None
    if new.status == "retired" and (old is None or old.status != "retired"):
        fields = _field_changes(key, old, new) if old is not None else []
        return [*fields, Change("retired", provider, model, region, before, after, new.quote)]
    if new.is_deprecated and (old is None or not old.is_deprecated):
        return [Change("deprecated", provider, model, region, before, after, new.quote)]
    if old is None:
        return []
    return _field_changes(key, old, new)


def diff_records(
    old: Iterable[Record], new: Iterable[Record], *, min_ratio: Fraction = Fraction(1, 3)
) -> list[Change]:
    """Field-level changes from ``old`` to ``new`` (two parses of one page), sorted.

    Args:
        old: the records of the last good parse.
        new: the records of the new parse.
        min_ratio: below this share of the old record count the new parse counts as failed.

    Returns:
        Changes sorted by provider, model, region and type; only ``parse_failed`` when the
        new parse is empty or too small (see the module docstring).
    """
    old_set, new_set = set(old), set(new)
    if not new_set or len(new_set) < min_ratio * len(old_set):
        providers = ",".join(sorted({r.provider for r in old_set | new_set}))
        quote = f"parsed {len(new_set)} records; the previous parse had {len(old_set)}"
        return [Change("parse_failed", providers, "", None, len(old_set), len(new_set), quote)]
    before, after = merge_records(old_set), merge_records(new_set)
    changes: list[Change] = []
    for key in before.keys() | after.keys():
        changes.extend(_key_changes(key, before.get(key), after.get(key)))
    return sorted(changes, key=_change_order)


def _change_order(change: Change) -> tuple[str, str, str, int]:
    return (change.provider, change.model, change.region or "", _ORDER[change.type])


def states_json(states: Mapping[Key, State]) -> list[dict[str, JSONValue]]:
    """Merged states as sorted JSON objects (for ``/v1/deprecations`` and debugging)."""
    out: list[dict[str, JSONValue]] = []
    for (provider, model, region), state in sorted(states.items(), key=lambda kv: _key_str(kv[0])):
        item: dict[str, JSONValue] = {"provider": provider, "model": model}
        if region is not None:
            item["region"] = region
        item.update(state.to_json())
        out.append(item)
    return out


def _key_str(key: Key) -> tuple[str, str, str]:
    return (key[0], key[1], key[2] or "")
