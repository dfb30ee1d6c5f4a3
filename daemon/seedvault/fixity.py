"""Fixity: re-read stored objects, re-hash them, and say exactly what is damaged and where.

``verify`` walks every live snapshot (reachable from a ref), reads each file it lists (or a
sample of them, or a slice) through every chunk, checks each chunk against its address and the
whole file against its BLAKE3, and reports each damaged object with the files and snapshots it
affects. One journal summary per run and one ``fixity_failed`` record per damaged object. A
ref that does not parse is damage too, named by its key (``refs/<source key>/<revision>``);
the snapshots only it reaches cannot be found, so they are not checked.

The daemon's scrub (:mod:`seedvault.scrub`) verifies a deterministic rotating *slice* per day,
like restic's ``check --read-data-subset n/t``: with ``n`` = ``[daemon] scrub_period`` in days,
file ``h`` belongs to bucket :func:`bucket` ``(h, n)`` (its BLAKE3 modulo ``n``) and day ``d``
checks bucket ``d mod n`` (:func:`buckets_due` adds the buckets of days missed while the node
was down), so every live file — and through it every chunk — is read at least once per period.
Snapshots are re-hashed on every run (listing the live files reads them all).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import blake3

from seedvault.errors import IntegrityError, NotInVault
from seedvault.manifest import Manifest
from seedvault.vault import FileRecord, Vault, sharded


@dataclass
class Damage:
    """One damaged or missing object and what it breaks."""

    key: str
    problem: str
    files: set[str] = field(default_factory=set)
    snapshots: set[tuple[str, str]] = field(default_factory=set)  # (snapshot id, path)

    def to_json(self) -> dict[str, object]:
        return {
            "object": self.key,
            "problem": self.problem,
            "files": sorted(self.files),
            "snapshots": [{"snapshot": s, "path": p} for s, p in sorted(self.snapshots)],
        }


@dataclass
class FixityReport:
    """The outcome of one verification run."""

    snapshots: int = 0
    files_checked: int = 0
    chunks_checked: int = 0
    bytes_checked: int = 0
    damage: dict[str, Damage] = field(default_factory=dict)
    stopped: bool = False
    """The run was asked to stop before it had read every selected file."""

    @property
    def ok(self) -> bool:
        return not self.damage

    def add(self, key: str, problem: str, file_h: str | None, uses: list[tuple[str, str]]) -> None:
        d = self.damage.setdefault(key, Damage(key, problem))
        if file_h:
            d.files.add(file_h)
        d.snapshots.update(uses)


def bucket(file_h: str, period_days: int) -> int:
    """The scrub bucket of file ``file_h`` (hex BLAKE3) among ``period_days`` buckets."""
    return int(file_h[:16], 16) % max(1, period_days)


def buckets_due(day: int, last_day: int | None, period_days: int) -> list[int]:
    """Buckets to scrub on ``day`` (days since the Unix epoch), after last scrubbing on
    ``last_day``: today's, plus those of the days missed in between (all when ``period_days``
    or more were missed; none when today's was already done)."""
    n = max(1, period_days)
    if last_day is not None and last_day >= day:
        return []
    first = day if last_day is None else max(last_day + 1, day - n + 1)
    return sorted({d % n for d in range(first, day + 1)})


def verify(
    vault: Vault,
    *,
    sample_pct: float = 100.0,
    rng: random.Random | None = None,
    on_file: Callable[[int, int, int], None] | None = None,
    buckets: Collection[int] | None = None,
    period_days: int = 1,
    should_stop: Callable[[], bool] | None = None,
    journal_extra: dict[str, Any] | None = None,
) -> FixityReport:
    """Verify the live part of the vault (or ``sample_pct`` percent of its files).

    ``buckets`` limits the run to the files of those :func:`bucket` s out of ``period_days``
    (the scrub's slice, journaled as ``slice``). ``should_stop`` is polled between files: when
    it returns True the run ends early (``report.stopped``), still journaling what it checked.
    """
    report = FixityReport()
    manifests: dict[str, Manifest] = {}

    def damaged_ref(key: str, exc: IntegrityError) -> None:
        report.add(key, str(exc), None, [])

    for source_key, revision, ref in vault.refs(on_damaged=damaged_ref):
        h: str | None = ref.snapshot
        child = f"ref {source_key}@{revision}"
        while h is not None and h not in manifests:
            try:
                manifests[h] = vault.snapshot(h)
            except (NotInVault, IntegrityError) as exc:
                report.add(sharded("snapshots", h), str(exc), None, [(h, child)])
                break
            child = f"parent of {h}"
            h = manifests[h].parent
    report.snapshots = len(manifests)
    uses: dict[str, list[tuple[str, str]]] = {}
    sizes: dict[str, int] = {}
    for sid, manifest in manifests.items():
        for f in manifest.files:
            uses.setdefault(f.blake3, []).append((sid, f.path))
            sizes[f.blake3] = f.size
    files = sorted(uses)
    if buckets is not None:
        wanted = set(buckets)
        files = [h for h in files if bucket(h, period_days) in wanted]
    if sample_pct < 100.0:
        k = max(1, round(len(files) * sample_pct / 100.0)) if files else 0
        files = sorted((rng or random.Random()).sample(files, k))
    done_bytes = 0
    for i, file_h in enumerate(files, 1):
        if should_stop is not None and should_stop():
            report.stopped = True
            break
        _verify_file(vault, file_h, uses[file_h], report)
        done_bytes += sizes[file_h]
        report.files_checked += 1
        if on_file is not None:
            on_file(i, len(files), done_bytes)
    report.bytes_checked = done_bytes
    for d in report.damage.values():
        vault.journal("fixity_failed", **d.to_json())
    extra = dict(journal_extra or {})
    if buckets is not None:
        extra["slice"] = {"buckets": sorted(set(buckets)), "of": max(1, period_days)}
    if report.stopped:
        extra["stopped"] = True
    vault.journal(
        "fixity_check",
        snapshots=report.snapshots,
        files=report.files_checked,
        chunks=report.chunks_checked,
        bytes=report.bytes_checked,
        sample_pct=str(sample_pct),
        damaged=len(report.damage),
        **extra,
    )
    return report


def verify_files(vault: Vault, uses: dict[str, list[tuple[str, str]]]) -> FixityReport:
    """Re-check only the files ``uses`` names ({blake3: [(snapshot, path)]}); no journal."""
    report = FixityReport()
    for file_h, file_uses in sorted(uses.items()):
        _verify_file(vault, file_h, file_uses, report)
        report.files_checked += 1
    return report


def _verify_file(
    vault: Vault, file_h: str, uses: list[tuple[str, str]], report: FixityReport
) -> None:
    record_key = sharded("files", file_h)
    try:
        record: FileRecord = vault.file_record(file_h)
    except (NotInVault, IntegrityError) as exc:
        report.add(record_key, str(exc), file_h, uses)
        return
    hasher = blake3.blake3()
    sha = hashlib.sha256()
    intact = True
    for chunk_h, length in record.chunks:
        report.chunks_checked += 1
        try:
            data = vault.read_chunk(chunk_h)
            if len(data) != length:
                raise IntegrityError(f"chunk {chunk_h} has {len(data)} bytes, record says {length}")
        except IntegrityError as exc:
            report.add(sharded("chunks", chunk_h), str(exc), file_h, uses)
            intact = False
            continue
        if intact:
            hasher.update(data)
            sha.update(data)
    if not intact:
        return
    if hasher.hexdigest() != file_h:
        report.add(record_key, f"file {file_h} does not hash to its address", file_h, uses)
    elif sha.hexdigest() != record.sha256:
        report.add(record_key, f"file record {file_h} holds a wrong SHA-256", file_h, uses)
