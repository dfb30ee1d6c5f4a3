"""What an ingest asks of an S3 vault: requests counted on the wire against a real SeaweedFS.

New content is uploaded without a HEAD before every chunk (the answer would always be "no"),
and content the vault holds is still found and not uploaded again.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from seedvault import ingest
from seedvault.ingest import PROBE_EVERY, PROBE_MISSES, Ingestor
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.helpers import float_weights, random_bytes, safetensors_bytes
from tests.seaweed import SeaweedFS

TENSOR_ELEMS = 1_100_000  # 2.2 MB of bf16 each, above tensor_group: every tensor is its own group


@pytest.fixture(scope="module")
def bucket(seaweedfs: SeaweedFS) -> str:
    """One bucket for this module (each test its own prefix): every bucket costs SeaweedFS a
    volume of its few dozen, and the suite makes many."""
    return seaweedfs.new_bucket("ingest-requests")


@pytest.fixture
def counted(seaweedfs: SeaweedFS, bucket: str) -> Iterator[tuple[Vault, Counter[str]]]:
    """A vault of its own, and a count of the requests per S3 operation on chunk keys."""
    store = seaweedfs.store(bucket, prefix=secrets.token_hex(6))
    requests: Counter[str] = Counter()

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        if "/chunks/" in str(params.get("Key", "")):
            requests[model.name] += 1

    store._client.meta.events.register("before-parameter-build.s3", count)
    yield Vault.open(store), requests
    store.close()


def _ingest(vault: Vault, data: bytes, name: str = "model.safetensors") -> Ingestor:
    ingestor = Ingestor(vault)
    try:
        ingestor.put_bytes(data, name)
    finally:
        ingestor.close()
    return ingestor


def _model(changed: int | None = None) -> bytes:
    tensors = {f"layer.{i:02d}": ("BF16", float_weights(TENSOR_ELEMS, i)) for i in range(24)}
    if changed is not None:
        tensors[f"layer.{changed:02d}"] = ("BF16", float_weights(TENSOR_ELEMS, 1000 + changed))
    return safetensors_bytes(tensors)


@pytest.mark.s3
def test_new_content_is_uploaded_without_asking_first(
    counted: tuple[Vault, Counter[str]],
) -> None:
    """A file of new chunks costs about one PUT per chunk: HEADs stop after a few misses."""
    vault, requests = counted
    ingestor = _ingest(vault, random_bytes(64_000_000, 7), "weights.bin")
    chunks = ingestor.stats.chunks
    assert chunks >= 20
    assert requests["PutObject"] == chunks == ingestor.stats.chunks_new
    assert requests["HeadObject"] <= PROBE_MISSES + chunks // PROBE_EVERY + 8 < chunks


@pytest.mark.s3
def test_unchanged_content_stores_nothing_again(counted: tuple[Vault, Counter[str]]) -> None:
    """The same bytes ingested a second time upload no chunk: every HEAD finds it."""
    vault, requests = counted
    first = _ingest(vault, _model())
    requests.clear()
    second = _ingest(vault, _model())
    assert second.stats.chunks == first.stats.chunks
    assert second.stats.chunks_new == 0
    assert second.stats.bytes_new_stored == 0
    assert requests["PutObject"] == 0
    assert requests["HeadObject"] == second.stats.chunks


@pytest.mark.s3
def test_changed_tensor_on_s3_uploads_about_that_tensor(
    counted: tuple[Vault, Counter[str]],
) -> None:
    """A revision with one tensor changed uploads that tensor (plus at most a chunk each side)."""
    vault, requests = counted
    _ingest(vault, _model())
    requests.clear()
    changed = _ingest(vault, _model(changed=11))
    tensor_bytes = 2 * TENSOR_ELEMS
    assert tensor_bytes <= changed.stats.bytes_new_plain <= tensor_bytes + 2 * vault.chunking.max
    assert requests["PutObject"] == changed.stats.chunks_new <= 3


@pytest.mark.s3
def test_a_chunk_met_twice_in_a_file_is_uploaded_once(
    counted: tuple[Vault, Counter[str]],
) -> None:
    """Repeated content in one file is uploaded once, although new chunks are not asked about."""
    vault, requests = counted
    block = random_bytes(24_000_000, 3)
    ingestor = Ingestor(vault)
    try:
        record = ingestor.put_bytes(block * 3, "three.bin")
    finally:
        ingestor.close()
    distinct = len({h for h, _ in record.chunks})
    in_flight = ingestor.concurrency
    assert len(record.chunks) > distinct + in_flight  # repeats the writer must recognise
    assert requests["PutObject"] == ingestor.stats.chunks_new == distinct
    assert b"".join(vault.iter_file(record.blake3)) == block * 3


def test_local_stores_ask_for_every_chunk(tmp_path: Any) -> None:
    """On a local store a stat is far cheaper than an fsynced write: no chunk is put blind."""
    vault = Vault.open(FsStore(tmp_path / "vault", fsync=False))
    assert not vault.store.remote
    asked: list[str] = []
    real_has_chunk = vault.has_chunk

    def has_chunk(h: str) -> bool:
        asked.append(h)
        return real_has_chunk(h)

    vault.has_chunk = has_chunk  # type: ignore[method-assign]
    first = _ingest(vault, random_bytes(12_000_000, 5), "a.bin")
    assert first.stats.chunks_new == first.stats.chunks  # all new: a remote store stops asking
    assert len(asked) == first.stats.chunks
    again = _ingest(vault, b"x" + random_bytes(12_000_000, 5), "b.bin")  # shifted first chunk
    assert again.stats.chunks_new <= 2


@pytest.mark.s3
def test_uploads_send_the_body_without_waiting_for_100_continue(
    seaweedfs: SeaweedFS, bucket: str
) -> None:
    """PutObject goes out without ``Expect: 100-continue`` (one round trip less per chunk)."""
    store = seaweedfs.store(bucket, prefix=secrets.token_hex(6))
    sent: list[bool] = []

    def record(request: Any, **_: Any) -> None:
        sent.append("Expect" in request.headers)

    store._client.meta.events.register("before-send.s3.PutObject", record)
    try:
        store.put("chunks/ab/c", b"x" * 2_000_000)
        assert store.get("chunks/ab/c") == b"x" * 2_000_000
    finally:
        store.close()
    assert sent == [False]


@pytest.mark.s3
def test_a_blind_upload_never_rewrites_a_chunk_the_vault_holds(
    counted: tuple[Vault, Counter[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """New content switches the writer to uploading without asking; when known content
    follows, the store refuses those uploads (a conditional create): the stored objects stay
    untouched and the chunks count as deduplicated, not as newly stored."""
    vault, requests = counted
    known = random_bytes(30_000_000, 11)
    ingestor = Ingestor(vault)
    try:
        known_chunks = {h for h, _ in ingestor.put_bytes(known, "known.bin").chunks}
    finally:
        ingestor.close()
    store: Any = vault.store

    def stamp(h: str) -> Any:
        head = store._client.head_object(
            Bucket=store.bucket, Key=store._name(f"chunks/{h[:2]}/{h}")
        )
        return head["LastModified"], head["ETag"]

    before = {h: stamp(h) for h in known_chunks}
    time.sleep(1.1)  # LastModified has one-second resolution
    # no sampled question in between: which chunk gets it depends on the worker threads' order,
    # and a "yes" to the first known chunk would leave nothing uploaded blind to test
    monkeypatch.setattr(ingest, "PROBE_EVERY", 10**9)
    requests.clear()
    ingestor = Ingestor(vault)
    try:
        record = ingestor.put_bytes(random_bytes(30_000_000, 12) + known, "mixed.bin")
    finally:
        ingestor.close()
    stats = ingestor.stats
    assert requests["HeadObject"] < stats.chunks  # it did upload without asking
    reused = {h for h, _ in record.chunks} & known_chunks
    assert len(reused) >= len(known_chunks) - 2  # the known part dedups
    assert requests["PutObject"] > stats.chunks_new  # some uploads were refused ...
    assert {h: stamp(h) for h in known_chunks} == before  # ... and rewrote nothing
    assert stats.chunks_new == len({h for h, _ in record.chunks} - known_chunks)
    assert b"".join(vault.iter_file(record.blake3)) == random_bytes(30_000_000, 12) + known
