"""The ingest pipeline's concurrency edges."""

from __future__ import annotations

import threading

from seedvault.ingest import Ingestor
from seedvault.vault import FileRecord, Vault
from tests.helpers import random_bytes


def test_abort_while_another_thread_writes(fs_vault: Vault) -> None:
    """A producer still writing when the file is aborted (a cancelled download whose worker
    thread runs on) finishes promptly instead of blocking on the stopped hasher."""
    ingestor = Ingestor(fs_vault, concurrency=2)
    writer = ingestor.writer("big.bin")
    block = random_bytes(1 << 20, 1)
    started = threading.Event()

    def produce() -> None:
        started.set()
        for _ in range(200):
            writer.write(block)

    producer = threading.Thread(target=produce)
    producer.start()
    started.wait()
    writer.abort()
    producer.join(timeout=30)
    assert not producer.is_alive(), "the producer hung after abort"
    ingestor.close()


def test_files_share_one_in_flight_limit(fs_vault: Vault) -> None:
    """Several files written at once still round-trip (they share the Ingestor's limit)."""
    ingestor = Ingestor(fs_vault, concurrency=2)
    datas = [random_bytes(3_000_000, i) for i in range(4)]
    records: list[FileRecord | None] = [None] * 4

    def one(i: int) -> None:
        records[i] = ingestor.put_bytes(datas[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ingestor.close()
    for data, record in zip(datas, records, strict=True):
        assert record is not None
        assert b"".join(fs_vault.iter_file(record.blake3)) == data


def test_a_batch_of_small_pieces_is_one_hand_off_to_the_hasher(fs_vault: Vault) -> None:
    """Downloads arrive in small pieces (16–256 KiB): a batch of them reaches the hashing
    thread as one item, not one per piece, and the file is the same as written piece by piece."""
    data = random_bytes(3_000_000, 7)
    pieces = [data[i : i + 16_384] for i in range(0, len(data), 16_384)]
    ingestor = Ingestor(fs_vault, concurrency=2)
    one_by_one = ingestor.writer("a.bin")
    for piece in pieces:
        one_by_one.write(piece)
    expected = one_by_one.finish(size=len(data))

    batched = ingestor.writer("b.bin")
    handed: list[int] = []
    put = batched._hasher.queue.put

    def counting_put(item: list[bytes] | None, *args: object, **kwargs: object) -> None:
        handed.append(0 if item is None else len(item))
        put(item, *args, **kwargs)  # type: ignore[arg-type]

    batched._hasher.queue.put = counting_put  # type: ignore[method-assign]
    for at in range(0, len(pieces), 64):
        batched.write_many(pieces[at : at + 64])
    record = batched.finish(size=len(data))
    ingestor.close()
    assert handed == [64, 64, 56, 0]  # 184 pieces in three hand-offs, then the end
    assert record == expected
    assert b"".join(fs_vault.iter_file(record.blake3)) == data
