"""The vault on every backend: round trips, format marker, commits, refs, journal."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from seedvault import cas
from seedvault.errors import IntegrityError, VaultFormatError
from seedvault.ingest import Ingestor
from seedvault.manifest import FileEntry, Manifest, canonical_json
from seedvault.store.base import Store
from seedvault.store.fs import FsStore
from seedvault.store.memory import MemoryStore
from seedvault.vault import Vault
from tests.helpers import float_weights, random_bytes, safetensors_bytes
from tests.testdata import minilm_dir

P = cas.ChunkingParams()


def _round_trip(vault: Vault, data: bytes, name: str = "f.bin") -> None:
    ingestor = Ingestor(vault, concurrency=4)
    try:
        writer = ingestor.writer(name)
        for i in range(0, len(data), 1_000_003):
            writer.write(data[i : i + 1_000_003])
        record = writer.finish()
    finally:
        ingestor.close()
    assert record.size == len(data)
    assert record.blake3 == cas.address(data)
    assert b"".join(vault.iter_file(record.blake3)) == data
    if len(data) > 10:
        assert b"".join(vault.iter_file(record.blake3, 3, len(data) - 5)) == data[3:-5]


@pytest.mark.parametrize("size", [0, 1, P.min, P.max, P.max + 1, 2 * P.max], ids=lambda s: f"{s}B")
def test_round_trip_sizes(any_vault: Vault, size: int) -> None:
    """Empty, 1-byte and chunk-boundary-sized files come back byte-identical on every backend."""
    _round_trip(any_vault, random_bytes(size, size))


def test_round_trip_safetensors(any_vault: Vault) -> None:
    """A generated bf16/fp32 safetensors file round-trips on every backend."""
    data = safetensors_bytes(
        {"a": ("BF16", float_weights(700_000, 1)), "b": ("F32", float_weights(300_001, 2, "F32"))}
    )
    _round_trip(any_vault, data, "model.safetensors")


@pytest.mark.testdata
def test_round_trip_real_model(any_vault: Vault) -> None:
    """The real all-MiniLM-L6-v2 weights round-trip on every backend."""
    data = (minilm_dir() / "model.safetensors").read_bytes()
    _round_trip(any_vault, data, "model.safetensors")


def test_empty_directory_is_initialised(tmp_path: Path) -> None:
    """A missing directory becomes a vault with a v1 marker recording the chunking."""
    vault = Vault.open(FsStore(tmp_path / "new"))
    marker = json.loads((tmp_path / "new" / "seedvault.json").read_bytes())
    assert marker["format"] == "seedvault-vault"
    assert marker["version"] == 1
    assert marker["hash"] == "blake3"
    assert marker["chunking"] == vault.chunking.to_json()
    assert Vault.open(FsStore(tmp_path / "new")).marker == marker


def test_foreign_directory_refused(tmp_path: Path) -> None:
    """A non-empty directory without a marker is refused and left untouched."""
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(VaultFormatError, match="not empty"):
        Vault.open(FsStore(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_unknown_version_refused() -> None:
    """A vault of a later format version is refused with a message saying so."""
    store = MemoryStore()
    store.put(
        "seedvault.json",
        canonical_json({"format": "seedvault-vault", "version": 2, "hash": "blake3"}),
    )
    with pytest.raises(VaultFormatError, match="version 2"):
        Vault.open(store)
    store.put("seedvault.json", b"{not json")
    with pytest.raises(VaultFormatError):
        Vault.open(store)


def _manifest(n: int, key: str = "dir/h/x", commit: str | None = None) -> Manifest:
    source = {"key": key, "revision": "_"}
    if commit:
        source["commit"] = commit
    return Manifest.build(
        files=[FileEntry(f"f{n}", n, cas.address(str(n).encode()), "0" * 64)],
        kind="dir",
        source=source,
        captured_at="2026-11-27T10:00:00Z",
    )


def test_commit_chain_and_unchanged(any_vault: Vault) -> None:
    """Commits chain through parents; an equal capture writes no snapshot, only a journal record."""
    first = any_vault.commit(_manifest(1))
    second = any_vault.commit(_manifest(2))
    assert first.created
    assert second.created
    assert any_vault.snapshot(second.snapshot).parent == first.snapshot
    before = sorted(any_vault.snapshot_ids())
    again = any_vault.commit(_manifest(2))
    assert not again.created
    assert again.snapshot == second.snapshot
    assert sorted(any_vault.snapshot_ids()) == before
    types = [r["type"] for _, r in any_vault.journal_records()]
    assert types == ["capture", "capture", "unchanged"]
    stored = any_vault.snapshot_bytes(second.snapshot)
    assert cas.address(stored) == second.snapshot
    assert stored == any_vault.snapshot(second.snapshot).encode()


def test_concurrent_commits_rebase(any_store: Store) -> None:
    """Threads committing to one ref: every update lands, each rebased on the one before."""
    vault = Vault.open(any_store)
    results = []
    barrier = threading.Barrier(4)

    def worker(i: int) -> None:
        for round_ in range(5):
            barrier.wait()
            results.append(vault.commit(_manifest(100 * i + round_)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ref = vault.read_ref("dir/h/x", "_")
    assert ref is not None
    chain = []
    h: str | None = ref[0].snapshot
    while h:
        manifest = vault.snapshot(h)
        chain.append(manifest.files[0].size)
        h = manifest.parent
    assert sorted(chain) == sorted(100 * i + r for i in range(4) for r in range(5))
    assert len(results) == 20


def test_damaged_snapshot_detected(any_store: Store) -> None:
    """A snapshot whose bytes changed no longer verifies."""
    vault = Vault.open(any_store)
    sid = vault.commit(_manifest(1)).snapshot
    key = f"snapshots/{sid[:2]}/{sid}"
    any_store.put(key, any_store.get(key).replace(b'"f1"', b'"f9"'))
    with pytest.raises(IntegrityError):
        vault.snapshot(sid)


@pytest.mark.parametrize(
    "chunks",
    [
        [["a" * 64, 3], ["b" * 64, 0]],  # an entry that would never be read, nor checked
        [["a" * 64, 3], ["not an address", 0]],
        [["A" * 64, 3]],
    ],
    ids=["zero-length", "not-an-address", "upper-case"],
)
def test_a_record_with_a_malformed_chunk_entry_is_refused(chunks: list[list[object]]) -> None:
    from seedvault.vault import FileRecord

    doc = {"size": 3, "blake3": "c" * 64, "sha256": "d" * 64, "chunks": chunks}
    with pytest.raises(IntegrityError, match="malformed"):
        FileRecord.from_json(doc)
    assert FileRecord.from_json({**doc, "chunks": [["a" * 64, 3]]}).size == 3
