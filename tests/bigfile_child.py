"""Child process of test_bigfile: stream a generated file into a vault, read it back, report.

Run as ``python -m tests.bigfile_child SIZE_BYTES fs PATH`` or ``… s3 ENDPOINT BUCKET``
(S3 keys from SEEDVAULT_S3_ACCESS_KEY / SEEDVAULT_S3_SECRET_KEY). Prints one JSON line with
the BLAKE3 written, the BLAKE3 read back, and the peak RSS of this program (VmHWM).
"""

from __future__ import annotations

import json
import os
import sys

import blake3
import numpy as np

from seedvault.ingest import Ingestor
from seedvault.store.base import Store
from seedvault.vault import Vault

BLOCK = 8 * 1024 * 1024


def peak_rss_kib() -> int:
    """This program's peak RSS: ``VmHWM``, not ``ru_maxrss`` — Linux carries the parent's peak
    RSS into a child across fork/vfork + exec, so after a test that grew pytest to 500 MB the
    child reported 500 MB whatever it used itself."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> int:
    size = int(sys.argv[1])
    if sys.argv[2] == "fs":
        from seedvault.store.fs import FsStore

        store: Store = FsStore(sys.argv[3])
    else:
        from seedvault.store.s3 import S3Store

        store = S3Store(
            endpoint_url=sys.argv[3],
            bucket=sys.argv[4],
            access_key=os.environ["SEEDVAULT_S3_ACCESS_KEY"],
            secret_key=os.environ["SEEDVAULT_S3_SECRET_KEY"],
        )
    vault = Vault.open(store)
    ingestor = Ingestor(vault)
    rng = np.random.default_rng(2026)  # non-repeating: nothing dedups, nothing compresses
    written = blake3.blake3()
    writer = ingestor.writer("big.bin")
    left = size
    while left:
        block = rng.bytes(min(BLOCK, left))
        written.update(block)
        writer.write(block)
        left -= len(block)
    record = writer.finish()
    ingestor.close()
    read = blake3.blake3()
    for piece in vault.iter_file(record.blake3):
        read.update(piece)
    peak_mb = peak_rss_kib() / 1024
    print(
        json.dumps(
            {
                "written": written.hexdigest(),
                "stored_as": record.blake3,
                "read": read.hexdigest(),
                "size": record.size,
                "peak_rss_mb": round(peak_mb, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
