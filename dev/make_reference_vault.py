"""Write tests/data/vault-v1/: the small reference vault of format v1 (run once, keep forever).

Every later seedvault must open this vault, verify it and export byte-identical files
(tests/test_reference_vault.py). Do not regenerate it: a new format version gets a new
reference vault beside this one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import float_weights, random_bytes, safetensors_bytes  # noqa: E402

from seedvault.ingest import Ingestor  # noqa: E402
from seedvault.manifest import FileEntry, Manifest  # noqa: E402
from seedvault.store.fs import FsStore  # noqa: E402
from seedvault.vault import Vault  # noqa: E402


def files() -> dict[str, bytes]:
    weights = safetensors_bytes(
        {
            "encoder.weight": ("BF16", float_weights(300_000, 1)),
            "encoder.bias": ("F32", float_weights(1_000, 2, "F32")),
            "head.weight": ("F16", float_weights(200_001, 3, "F16")),
            "positions": ("I64", bytes(range(256)) * 32),
        },
        metadata={"format": "pt"},
    )
    return {
        "config.json": json.dumps({"hidden_size": 64, "note": "reference"}).encode(),
        "empty.txt": b"",
        "one.bin": b"\x01",
        "model.safetensors": weights,
        "tokenizer/vocab.txt": "\n".join(f"tok{i}" for i in range(5000)).encode(),
        "noise.bin": random_bytes(600_000, 4),
    }


def main() -> int:
    target = ROOT / "tests" / "data" / "vault-v1"
    if target.exists():
        print(f"{target} exists: the reference vault is never regenerated", file=sys.stderr)
        return 1
    vault = Vault.open(FsStore(target))
    ingestor = Ingestor(vault)
    entries = []
    for path, data in sorted(files().items()):
        record = ingestor.put_bytes(data, path)
        entries.append(FileEntry(path, record.size, record.blake3, record.sha256))
    ingestor.close()
    first = vault.commit(
        Manifest.build(
            files=entries[:4],
            kind="dir",
            source={"key": "dir/reference/%2Fdata%2Fmodel", "revision": "_"},
            captured_at="2026-11-27T10:00:00Z",
            agent={"software": "seedvault", "version": "0.1.0"},
            trigger="manual",
        )
    )
    second = vault.commit(
        Manifest.build(
            files=entries,
            kind="dir",
            source={"key": "dir/reference/%2Fdata%2Fmodel", "revision": "_"},
            captured_at="2026-11-27T11:00:00Z",
            agent={"software": "seedvault", "version": "0.1.0"},
            trigger="manual",
            labels=("reference",),
        )
    )
    for hidden in (".tmp", ".locks"):
        shutil.rmtree(target / hidden, ignore_errors=True)
    expected = {
        "snapshots": [first.snapshot, second.snapshot],
        "files": {p: hashlib.sha256(d).hexdigest() for p, d in sorted(files().items())},
    }
    (ROOT / "tests" / "data" / "vault-v1.expected.json").write_text(
        json.dumps(expected, indent=2, sort_keys=True) + "\n"
    )
    print(second.snapshot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
