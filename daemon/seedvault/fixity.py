"""Fixity: re-read stored objects, re-hash them, and say exactly what is damaged and where.

``verify`` walks every live snapshot (reachable from a ref), reads each file it lists (or a
sample of them) through every chunk, checks each chunk against its address and the whole file
against its BLAKE3, and reports each damaged object with the files and snapshots it affects.
One journal summary per run and one ``fixity_failed`` record per damaged object.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

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
    bytes_checked: int = 0
    damage: dict[str, Damage] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.damage

    def add(self, key: str, problem: str, file_h: str | None, uses: list[tuple[str, str]]) -> None:
        d = self.damage.setdefault(key, Damage(key, problem))
        if file_h:
            d.files.add(file_h)
        d.snapshots.update(uses)


def verify(
    vault: Vault,
    *,
    sample_pct: float = 100.0,
    rng: random.Random | None = None,
    on_file: Callable[[int, int, int], None] | None = None,
) -> FixityReport:
    """Verify the live part of the vault (or ``sample_pct`` percent of its files)."""
    report = FixityReport()
    manifests: dict[str, Manifest] = {}
    for source_key, revision, ref in vault.refs():
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
    if sample_pct < 100.0:
        k = max(1, round(len(files) * sample_pct / 100.0)) if files else 0
        files = sorted((rng or random.Random()).sample(files, k))
    done_bytes = 0
    for i, file_h in enumerate(files, 1):
        _verify_file(vault, file_h, uses[file_h], report)
        done_bytes += sizes[file_h]
        if on_file is not None:
            on_file(i, len(files), done_bytes)
    report.files_checked = len(files)
    report.bytes_checked = done_bytes
    for d in report.damage.values():
        vault.journal("fixity_failed", **d.to_json())
    vault.journal(
        "fixity_check",
        snapshots=report.snapshots,
        files=report.files_checked,
        bytes=report.bytes_checked,
        sample_pct=str(sample_pct),
        damaged=len(report.damage),
    )
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
