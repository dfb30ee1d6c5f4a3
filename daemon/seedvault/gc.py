"""Garbage collection: remove objects no ref reaches, never younger than a grace period.

Live objects are those reachable from a ref: its snapshot and every parent, the files those
manifests list and the chunks of those files. ``gc`` holds ``locks/gc`` (one collector at a
time) and waits while captures hold capture locks (a capture may be reusing an old
unreferenced chunk it just found present); it refuses to delete anything when a live
snapshot or file record cannot be read, because then it cannot know what is live. It is a dry
run unless ``delete`` is set. The journal is never collected.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from seedvault.errors import IntegrityError, NotInVault, VaultError
from seedvault.vault import Vault, sharded


@dataclass
class GcReport:
    """What a collection found (and, with ``delete``, removed)."""

    live_snapshots: int = 0
    live_files: int = 0
    live_chunks: int = 0
    garbage: list[tuple[str, int]] = field(default_factory=list)  # (key, size)
    too_young: int = 0
    deleted: bool = False

    @property
    def garbage_bytes(self) -> int:
        return sum(size for _, size in self.garbage)


def collect(
    vault: Vault,
    *,
    grace_s: float,
    delete: bool = False,
    wait_s: float = 600.0,
    on_wait: Callable[[int], None] | None = None,
) -> GcReport:
    """Find (and with ``delete``, remove) unreferenced objects older than ``grace_s``.

    Raises:
        LockHeld: another gc runs, or captures kept running for ``wait_s``.
        VaultError: a live snapshot or file record is damaged (run ``verify`` first).
    """
    report = GcReport(deleted=delete)
    with vault.gc_lock(wait_s=wait_s, on_wait=on_wait):
        started = time.time()
        snapshots: set[str] = set()
        files: set[str] = set()
        chunks: set[str] = set()
        for _, _, ref in vault.refs():
            h: str | None = ref.snapshot
            while h is not None and h not in snapshots:
                try:
                    manifest = vault.snapshot(h)
                except (NotInVault, IntegrityError) as exc:
                    raise VaultError(
                        f"gc stopped: live snapshot {h} is unreadable ({exc})"
                    ) from exc
                snapshots.add(h)
                files.update(f.blake3 for f in manifest.files)
                h = manifest.parent
        for file_h in files:
            try:
                record = vault.file_record(file_h)
            except (NotInVault, IntegrityError) as exc:
                raise VaultError(f"gc stopped: live file {file_h} is unreadable ({exc})") from exc
            chunks.update(c for c, _ in record.chunks)
        report.live_snapshots, report.live_files, report.live_chunks = (
            len(snapshots),
            len(files),
            len(chunks),
        )
        cutoff = started - grace_s
        for prefix, live in (("snapshots", snapshots), ("files", files), ("chunks", chunks)):
            for info in vault.store.list(prefix + "/"):
                h = info.key.rsplit("/", 1)[1]
                if h in live and info.key == sharded(prefix, h):
                    continue
                if info.mtime > cutoff:
                    report.too_young += 1
                    continue
                report.garbage.append((info.key, info.size))
        if delete:
            for key, _ in report.garbage:  # snapshots, then files, then chunks
                vault.store.delete(key)
        vault.journal(
            "gc",
            deleted=delete,
            objects=len(report.garbage),
            bytes=report.garbage_bytes,
            too_young=report.too_young,
            live_snapshots=report.live_snapshots,
        )
    return report
