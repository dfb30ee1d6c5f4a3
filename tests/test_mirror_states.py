"""Upstream states as source state: one event per transition, nothing archived touched.

Each state (gated, disabled, deleted, made private, moved by redirect or by answered id, a
branch deleted) is polled three times and must give exactly one event, keep the archived
snapshot resolvable and exportable, and leave ``verify`` clean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from seedvault.catalog import Catalog
from seedvault.fixity import verify
from seedvault.store.memory import MemoryStore
from seedvault.vault import Vault
from tests.fakehub import FakeHub, FakeRepo
from tests.test_mirror import WEIGHTS, Node, export_bytes, open_node, poll

STATES: dict[str, tuple[Callable[[FakeRepo], None], str, str]] = {
    # name: (how, event type, PollResult.blocked)
    "gated": (lambda r: r.gate("manual"), "repo_gated", "gated"),
    "disabled": (lambda r: r.disable(), "repo_disabled", "disabled"),
    "deleted": (lambda r: r.delete(), "repo_unavailable", "unavailable"),
    "private": (lambda r: r.make_private(), "repo_unavailable", "unavailable"),
    "moved": (lambda r: r.rename("neworg/new"), "repo_moved", "moved"),
    "moved_id": (lambda r: r.rename("Org/M", redirect=False), "repo_moved", "moved"),
}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from open_node(tmp_path)


@pytest.mark.parametrize("state", sorted(STATES))
async def test_state_polled_three_times_gives_one_event(
    fake_hub: FakeHub, node: Node, state: str
) -> None:
    """Three polls of a repo in a bad state: one urgent event, no snapshot, archive intact."""
    how, event_type, blocked = STATES[state]
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"1", "model.safetensors": WEIGHTS})
    first = await poll(node, fake_hub, "org/m")
    archived = first.outcomes[0].snapshot or ""
    repo.commit({"config.json": b"2"})  # something new to (fail to) download
    how(repo)
    before = node.snapshot_ids()

    results = [await poll(node, fake_hub, "org/m") for _ in range(3)]

    assert [r.blocked for r in results] == [blocked] * 3
    assert not any(r.ok for r in results)
    assert [len(r.events) for r in results] == [1, 0, 0]
    (event,) = node.events(event_type)
    assert event["severity"] == "urgent"
    assert event["subject"]["repo"] == "org/m"
    assert node.events() == [e for e in node.events() if e["type"] in ("revision_new", event_type)]
    if event_type == "repo_moved":
        assert event["after"] == "moved"
        assert event["payload"]["new_id"] in ("neworg/new", "Org/M")
    if event_type == "repo_gated":
        assert event["after"] == "manual"
    assert node.snapshot_ids() == before
    assert node.catalog.resolve(first.source_key, "main") == archived
    assert export_bytes(node, archived, node.root / "out")["config.json"] == b"1"
    assert verify(node.vault).ok
    state_doc = node.catalog.source_state(first.source_key)
    assert state_doc is not None
    field = "gated" if state == "gated" else "availability"
    assert state_doc["fields"][field]["transition"] == event["evidence"]


async def test_branch_deleted_polled_three_times_gives_one_event(
    fake_hub: FakeHub, node: Node
) -> None:
    """A watched branch that disappears: one ref_deleted; its snapshot stays resolvable."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"1"})
    repo.set_branch("dev", "main")
    first = await poll(node, fake_hub, "org/m", revisions=("main", "dev"))
    dev_snapshot = first.outcomes[1].snapshot
    repo.delete_branch("dev")

    results = [await poll(node, fake_hub, "org/m", revisions=("main", "dev")) for _ in range(3)]

    assert [[o.status for o in r.outcomes] for r in results] == [["unchanged", "ref_missing"]] * 3
    (event,) = node.events("ref_deleted")
    assert event["subject"]["revision"] == "dev"
    assert event["payload"]["last_commit"] == repo.head()
    assert event["severity"] == "urgent"
    assert node.catalog.resolve(first.source_key, "dev") == dev_snapshot
    assert verify(node.vault).ok


async def test_never_seen_revision_is_not_a_deletion(fake_hub: FakeHub, node: Node) -> None:
    """A watched tag that does not exist yet is reported missing but raises no ref_deleted."""
    fake_hub.create_repo("org/m")
    result = await poll(node, fake_hub, "org/m", revisions=("v2",))
    assert result.outcomes[0].status == "ref_missing"
    assert node.events("ref_deleted") == []


async def test_repo_that_goes_comes_back_and_goes_again_gives_two_events(
    fake_hub: FakeHub, node: Node
) -> None:
    """Each going-away is a new transition, hence a new event id; coming back is silent."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"1"})
    await poll(node, fake_hub, "org/m")
    ids = []
    for _ in range(2):
        repo.delete()
        gone = [await poll(node, fake_hub, "org/m") for _ in range(2)]
        ids += [e.id for r in gone for e in r.events]
        repo.restore()
        back = await poll(node, fake_hub, "org/m")
        assert back.ok
        assert back.events == ()
    assert len(ids) == 2
    assert ids[0] != ids[1]
    assert {e["id"] for e in node.events("repo_unavailable")} == set(ids)


async def test_capture_failed_routine_then_urgent_then_reset(fake_hub: FakeHub, node: Node) -> None:
    """Failed polls: routine capture_failed at the first, urgent at the third, reset on success."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"1"})
    fake_hub.fail_next(1000, 503, scope="api")

    results = [
        await poll(node, fake_hub, "org/m", client_options={"max_attempts": 2}) for _ in range(4)
    ]

    assert [[e.severity for e in r.events] for r in results] == [["routine"], [], ["urgent"], []]
    events = node.events("capture_failed")
    assert [e["payload"]["consecutive"] for e in events] == [1, 3]
    assert {e["payload"]["error"] for e in events} == {"UpstreamError"}
    key = results[0].source_key
    assert (node.catalog.source_state(key) or {})["failures"]["count"] == 4
    fake_hub.clear_faults()
    assert (await poll(node, fake_hub, "org/m")).ok
    assert (node.catalog.source_state(key) or {})["failures"]["count"] == 0


async def test_state_and_events_survive_reindex(fake_hub: FakeHub, node: Node) -> None:
    """rebuild() and a fresh catalog restore events and source state from the journal."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b"1"})
    result = await poll(node, fake_hub, "org/m")
    repo.gate("auto")
    repo.commit({"config.json": b"2"})
    await poll(node, fake_hub, "org/m")
    events = node.events()
    state = node.catalog.source_state(result.source_key)
    assert sorted(e["type"] for e in events) == ["repo_gated", "revision_new"]

    node.catalog.rebuild(node.vault)
    assert node.events() == events
    assert node.catalog.source_state(result.source_key) == state
    fresh = Catalog(node.root / "fresh.sqlite")
    fresh.catch_up(node.vault)
    assert fresh.events(limit=100).events == events
    assert fresh.source_state(result.source_key) == state
    fresh.close()


class CountingStore(MemoryStore):
    """A memory store that counts reads per key prefix (a test double, not a patch)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get(self, key: str) -> bytes:
        self.reads.append(key)
        return super().get(key)


def test_catch_up_reads_only_the_recent_journal(tmp_path: Path) -> None:
    """After the first catch-up, old journal days are neither listed nor read again."""
    store = CountingStore()
    vault = Vault.open(store)
    for i in range(20):
        store.put(f"journal/2020-01-01/20200101T0000{i:02d}000000Z-{i:016x}", b'{"type":"x"}')
    vault.journal("unchanged", source="dir/x", revision="_", snapshot="0" * 64)
    catalog = Catalog(tmp_path / "c.sqlite")
    catalog.catch_up(vault)
    assert any(k.startswith("journal/2020-01-01/") for k in store.reads)
    store.reads.clear()
    vault.journal("unchanged", source="dir/x", revision="_", snapshot="0" * 64)

    catalog.catch_up(vault)

    assert not any(k.startswith("journal/2020-") for k in store.reads)
    assert any(k.startswith("journal/") for k in store.reads)
    catalog.close()
