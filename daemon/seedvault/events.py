"""Events v1: what changed upstream, with a stable id, a severity, and the evidence behind it.

An :class:`Event` is a fact a watcher derived — from the diff of two snapshots (``revision_new``,
``history_rewritten``) or from a transition of persisted source state (``repo_gated``,
``repo_unavailable``, …). Its id (:func:`event_id`) is the BLAKE3 of the canonical JSON of
``(type, source key, subject, before → after, evidence)``, where the evidence is the snapshot
id or the state-transition id that shows the change. So the same change seen twice has the
same id and is stored once, while a repo that goes away, comes back and goes away again gives
two events: each going-away is a different transition (:func:`transition_id` chains each
transition to the previous one of the same field).

:func:`record_event` (and :func:`record_event_async`) journals the event
(``{"type": "event", "event": {…}}``, which is how ``seedvault reindex`` restores it) and
indexes it in the catalog; it returns False for an event already recorded, without journaling
it again. Severities (:data:`SEVERITY`) follow the v1
table of ``architecture.md``: ``urgent`` goes out at once, ``routine`` in digests;
``capture_failed`` and ``list_failed`` turn urgent after :data:`URGENT_AFTER_FAILURES`
consecutive failures.

Events hold v1 JSON values only (no floats, no nulls); :class:`Event` refuses anything else.

:class:`SourceState` is the persisted last observation of a source (catalog + journal) and the
place where state transitions and failure streaks turn into events, for any kind of source.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any, Literal

import blake3
import structlog

from seedvault.catalog import Catalog
from seedvault.manifest import canonical_json
from seedvault.vault import Vault, iso_seconds, utc_now

log = structlog.get_logger(__name__)

AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""When an event was recorded: UTC with microseconds, like journal records (orders events)."""

Severity = Literal["urgent", "routine"]

URGENT_AFTER_FAILURES = 3
"""``capture_failed`` / ``list_failed`` are urgent from this many consecutive failures on."""

SEVERITY: dict[str, Severity] = {
    # hub mirror
    "revision_new": "routine",
    "history_rewritten": "urgent",
    "repo_gated": "urgent",
    "repo_disabled": "urgent",
    "repo_unavailable": "urgent",
    "repo_moved": "urgent",
    "ref_deleted": "urgent",
    "over_quota": "routine",
    "verification_failed": "urgent",
    # any source (urgent after URGENT_AFTER_FAILURES consecutive failures)
    "capture_failed": "routine",
    # provider watch
    "model_added": "routine",
    "model_removed": "urgent",
    "lifecycle_changed": "urgent",
    "list_failed": "routine",
    "deprecated": "urgent",
    "shutdown_date_set": "urgent",
    "shutdown_date_moved": "urgent",
    "shutdown_date_withdrawn": "urgent",
    "replacement_changed": "routine",
    "retired": "urgent",
    "page_moved": "urgent",
    "parse_failed": "urgent",
    "not_announced_removal": "urgent",
    "announced_still_listed": "routine",
    "behaviour_changed": "urgent",
    # alerts and scrubber
    "shutdown_reminder": "urgent",
    "fixity_failed": "urgent",
    "fixity_repaired": "routine",
    "alert_dead_lettered": "urgent",
}
"""Every Events v1 type and its default severity."""


def severity_for(event_type: str, consecutive_failures: int = 0) -> Severity:
    """The severity of ``event_type``; failure events escalate after repeated failures.

    Raises:
        ValueError: not an Events v1 type.
    """
    if event_type not in SEVERITY:
        raise ValueError(f"{event_type!r} is not an Events v1 type")
    if (
        event_type in ("capture_failed", "list_failed")
        and consecutive_failures >= URGENT_AFTER_FAILURES
    ):
        return "urgent"
    return SEVERITY[event_type]


def _digest(value: Any) -> str:
    return blake3.blake3(canonical_json(value)).hexdigest()


def event_id(
    event_type: str,
    source: str,
    subject: dict[str, Any],
    before: Any,
    after: Any,
    evidence: str,
) -> str:
    """BLAKE3 (hex) of the canonical JSON of the event's identity.

    ``before``/``after`` may be None (absent: an event without a changed value); they are left
    out of the hashed object rather than encoded as null.
    """
    identity: dict[str, Any] = {
        "type": event_type,
        "source": source,
        "subject": subject,
        "evidence": evidence,
    }
    change = {k: v for k, v in (("before", before), ("after", after)) if v is not None}
    if change:
        identity["change"] = change
    return _digest(identity)


def transition_id(source: str, field_name: str, before: Any, after: Any, previous: str) -> str:
    """The id of a state transition of ``field_name`` of ``source``.

    Chained to ``previous`` (the id of the field's last transition, ``""`` for the first), so
    the same state reached again later is a new transition with a new id, while re-deriving the
    same transition (a poll repeated after a crash) gives the same id.
    """
    identity: dict[str, Any] = {"source": source, "field": field_name, "previous": previous}
    for key, value in (("before", before), ("after", after)):
        if value is not None:
            identity[key] = value
    return _digest(identity)


@dataclass(frozen=True)
class Event:
    """One event of the v1 table.

    Args:
        type: an Events v1 type (a key of :data:`SEVERITY`).
        source: the source key (``hf/huggingface.co/model/org/name``).
        subject: what the event is about (``{"repo": …, "revision": …}``).
        evidence: the snapshot id or state-transition id that evidences the change (for
            ``verification_failed``, which has neither, the upstream commit).
        before, after: the changed value (None: not applicable).
        payload: details that are not part of the identity (file lists, error text, …).
        severity: None takes the table's default.
    """

    type: str
    source: str
    subject: dict[str, Any]
    evidence: str
    before: Any = None
    after: Any = None
    payload: dict[str, Any] = field(default_factory=dict)
    severity: Severity | None = None

    def __post_init__(self) -> None:
        if self.severity is None:
            object.__setattr__(self, "severity", severity_for(self.type))
        elif self.severity not in ("urgent", "routine"):
            raise ValueError(f"severity must be urgent or routine, not {self.severity!r}")
        severity_for(self.type)  # refuse unknown types
        canonical_json(self.to_json(""))  # refuse floats, nulls and other non-v1 values

    @property
    def id(self) -> str:
        return event_id(
            self.type, self.source, self.subject, self.before, self.after, self.evidence
        )

    def to_json(self, at: str) -> dict[str, Any]:
        """The event as journaled and served (``at``: when it was recorded)."""
        out: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "severity": self.severity,
            "source": self.source,
            "subject": self.subject,
            "evidence": self.evidence,
            "payload": self.payload,
        }
        if at:
            out["at"] = at
        if self.before is not None:
            out["before"] = self.before
        if self.after is not None:
            out["after"] = self.after
        return out


def record_event(vault: Vault, catalog: Catalog, event: Event) -> bool:
    """Journal ``event`` and index it in the catalog; False when it was already recorded.

    The journal record is written first: a crash before the catalog insert loses nothing
    (``reindex`` and ``catch_up`` restore it from the journal), and a repeated derivation of
    the same event after such a crash is recognised by its id.
    """
    if catalog.has_event(event.id):
        return False
    doc = event.to_json(utc_now().strftime(AT_FORMAT))
    vault.journal("event", event=doc)
    new = catalog.add_event(doc)
    if new:
        log.info(
            "event_recorded",
            event_type=event.type,
            severity=event.severity,
            source=event.source,
            event_id=event.id,
        )
    return new


async def record_event_async(vault: Vault, catalog: Catalog, event: Event) -> bool:
    """:func:`record_event` off the event loop (the vault's store may block)."""
    return await asyncio.to_thread(record_event, vault, catalog, event)


class SourceState:
    """The persisted state of one source, and the events its transitions derive.

    ``doc`` is what the catalog keeps as source state and the journal records as
    ``{"type": "source_state", "source": key, "state": doc}`` (``reindex`` restores it). Named
    fields live under ``fields`` as ``{"value", "transition", "since"}``; ``failures`` holds
    the current streak of failed polls. Other top-level keys belong to the source.

    Record the events these methods return *before* :meth:`save`: after a crash in between,
    the next poll derives the same transition, hence the same event id, and nothing doubles.
    """

    def __init__(self, source: str, doc: dict[str, Any] | None = None) -> None:
        self.source = source
        self._saved: dict[str, Any] = copy.deepcopy(doc or {})
        self.doc: dict[str, Any] = copy.deepcopy(self._saved)

    @classmethod
    def load(cls, catalog: Catalog, source: str) -> SourceState:
        return cls(source, catalog.source_state(source))

    def value(self, name: str) -> Any:
        """The current value of field ``name`` (None: never observed)."""
        return self.doc.get("fields", {}).get(name, {}).get("value")

    def transition(
        self,
        name: str,
        after: Any,
        event_type: str | None = None,
        subject: dict[str, Any] | None = None,
        payload: dict[str, Any] | None = None,
    ) -> Event | None:
        """Set field ``name`` to ``after``; on a change, the ``event_type`` event (if any).

        The event's evidence is the transition id, its before → after the field's values.
        """
        fields: dict[str, Any] = self.doc.setdefault("fields", {})
        entry = fields.get(name, {})
        before = entry.get("value")
        if entry and before == after:
            return None
        tid = transition_id(self.source, name, before, after, entry.get("transition", ""))
        fields[name] = {"value": after, "transition": tid, "since": iso_seconds(utc_now())}
        log.info("source_state_changed", source=self.source, field=name, before=before, after=after)
        if event_type is None:
            return None
        return Event(event_type, self.source, subject or {}, tid, before, after, payload or {})

    def failed(
        self,
        subject: dict[str, Any],
        error: BaseException,
        event_type: str = "capture_failed",
        **payload: Any,
    ) -> Event | None:
        """Count one more failed poll; the event at the first and at the N-th in a row.

        The first failure of a streak is ``routine``; :data:`URGENT_AFTER_FAILURES` in a row
        is ``urgent``; the polls in between and after only count.
        """
        failures: dict[str, Any] = self.doc.setdefault("failures", {"count": 0})
        count = int(failures.get("count", 0)) + 1
        if count == 1:
            previous = failures.get("streak", "")
            failures["streak"] = transition_id(self.source, "failures", None, "failing", previous)
        failures["count"] = count
        if count not in (1, URGENT_AFTER_FAILURES):
            return None
        details = {"error": type(error).__name__, "message": str(error), "consecutive": count}
        return Event(
            event_type,
            self.source,
            subject,
            failures["streak"],
            after=count,
            payload={**details, **payload},
            severity=severity_for(event_type, count),
        )

    def succeeded(self) -> None:
        """A poll that worked ends the failure streak."""
        self.doc.setdefault("failures", {"count": 0})["count"] = 0

    @property
    def changed(self) -> bool:
        return self.doc != self._saved

    def save(self, vault: Vault, catalog: Catalog) -> bool:
        """Journal and index the state if it changed since loaded or saved; True if it did."""
        if not self.changed:
            return False
        vault.journal("source_state", source=self.source, state=self.doc)
        catalog.set_source_state(self.source, self.doc, iso_seconds(utc_now()))
        self._saved = copy.deepcopy(self.doc)
        return True
