"""Events v1 (ids, severities, recording, catalog queries) and the mirror's config helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

from seedvault.catalog import Catalog
from seedvault.config import load_config
from seedvault.errors import UsageError
from seedvault.events import (
    SEVERITY,
    URGENT_AFTER_FAILURES,
    Event,
    event_id,
    record_event,
    severity_for,
    transition_id,
)
from seedvault.mirror import HfTarget, find_watch, hub_client
from seedvault.store.memory import MemoryStore
from seedvault.vault import Vault
from tests.fakehub import FakeHub

KEY = "hf/huggingface.co/model/org/m"


def gone(evidence: str) -> Event:
    return Event("repo_unavailable", KEY, {"repo": "org/m"}, evidence, before="ok", after="gone")


def test_same_change_seen_twice_has_the_same_id() -> None:
    """The id depends on type, source, subject, before → after and evidence only."""
    a = gone("t1")
    b = Event("repo_unavailable", KEY, {"repo": "org/m"}, "t1", "ok", "gone", payload={"seen": 2})
    assert a.id == b.id == event_id("repo_unavailable", KEY, {"repo": "org/m"}, "ok", "gone", "t1")
    assert gone("t2").id != a.id
    assert Event("repo_unavailable", "other", {"repo": "org/m"}, "t1", "ok", "gone").id != a.id
    assert len(a.id) == 64


def test_transitions_chain_so_a_repeated_state_is_a_new_transition() -> None:
    """Going away, coming back and going away again gives a different transition id."""
    t1 = transition_id(KEY, "availability", "ok", "unavailable", "")
    t2 = transition_id(KEY, "availability", "unavailable", "ok", t1)
    t3 = transition_id(KEY, "availability", "ok", "unavailable", t2)
    assert len({t1, t2, t3}) == 3
    assert t1 == transition_id(KEY, "availability", "ok", "unavailable", "")
    assert gone(t1).id != gone(t3).id


def test_events_refuse_floats_nulls_and_unknown_types() -> None:
    """Events hold v1 JSON only, and only the types of the v1 table."""
    with pytest.raises(TypeError):
        Event("over_quota", KEY, {"repo": "org/m"}, "t", payload={"ratio": 1.5})
    with pytest.raises(TypeError):
        Event("over_quota", KEY, {"repo": None}, "t")
    with pytest.raises(ValueError, match="not an Events v1 type"):
        Event("repo_exploded", KEY, {}, "t")


def test_severity_table() -> None:
    """Hub-mirror rows of the v1 table; failures escalate after N consecutive ones."""
    assert {k: SEVERITY[k] for k in ("revision_new", "over_quota", "capture_failed")} == {
        "revision_new": "routine",
        "over_quota": "routine",
        "capture_failed": "routine",
    }
    for urgent in (
        "history_rewritten",
        "repo_gated",
        "repo_disabled",
        "repo_unavailable",
        "repo_moved",
        "ref_deleted",
        "verification_failed",
    ):
        assert SEVERITY[urgent] == "urgent"
    assert URGENT_AFTER_FAILURES == 3
    assert severity_for("capture_failed", 2) == "routine"
    assert severity_for("capture_failed", 3) == "urgent"
    assert severity_for("list_failed", 3) == "urgent"
    assert severity_for("revision_new", 9) == "routine"


def test_record_event_journals_once_and_pages(tmp_path: Path) -> None:
    """record_event returns False for a known id and writes no second journal record."""
    vault = Vault.open(MemoryStore())
    catalog = Catalog(tmp_path / "c.sqlite")
    events = [gone(f"t{i}") for i in range(5)]
    assert [record_event(vault, catalog, e) for e in events] == [True] * 5
    assert record_event(vault, catalog, events[0]) is False
    journaled = [r for _, r in vault.journal_records() if r["type"] == "event"]
    assert len(journaled) == 5
    assert journaled[0]["event"]["id"] == events[0].id

    first = catalog.events(limit=2)
    second = catalog.events(limit=2, cursor=first.next_cursor)
    third = catalog.events(limit=2, cursor=second.next_cursor)
    ids = [e["id"] for page in (first, second, third) for e in page.events]
    assert sorted(ids) == sorted(e.id for e in events)
    assert third.next_cursor is None
    assert catalog.events(type="revision_new").events == []
    assert len(catalog.events(source=KEY).events) == 5
    assert catalog.events(since="2999-01-01T00:00:00Z").events == []
    assert len(catalog.events(since="2000-01-01T00:00:00Z").events) == 5
    with pytest.raises(UsageError):
        catalog.events(cursor="garbage")
    catalog.close()


async def test_hub_client_from_config(tmp_path: Path, fake_hub: FakeHub) -> None:
    """[hub] endpoint/token_env, per-watch overrides; an unset token variable is anonymous."""
    fake_hub.create_repo("org/m")
    path = tmp_path / "seedvault.toml"
    path.write_text(
        f'[hub]\nendpoint = "http://127.0.0.1:9"\ntoken_env = "SV_TEST_HUB_TOKEN"\n'
        f'[[watch.hf]]\nrepo = "org/m"\nendpoint = "{fake_hub.endpoint}"\n'
        'token_env = "SV_TEST_WATCH_TOKEN"\nrevisions = ["main", "v1"]\nmax_bytes = 5\n'
        'exclude = ["*.bin"]\naccess = "token"\n'
    )
    cfg = load_config(path, env={})
    assert hub_client(cfg, env={}).endpoint == "http://127.0.0.1:9"
    watch = find_watch(cfg, "model", "org/m")
    assert watch is not None
    assert find_watch(cfg, "dataset", "org/m") is None

    sent = []
    for env in ({}, {"SV_TEST_HUB_TOKEN": "hf_hub"}, {"SV_TEST_WATCH_TOKEN": "hf_watch"}):
        async with hub_client(cfg, watch, env=env) as client:
            assert client.endpoint == fake_hub.endpoint
            await client.refs("model", "org/m")
        sent.append("Authorization" in fake_hub.requests[-1].headers)
    assert sent == [False, False, True]  # the watch names its own variable

    target = HfTarget.from_watch(watch)
    assert (target.revisions, target.max_bytes, target.exclude, target.access) == (
        ("main", "v1"),
        5,
        ("*.bin",),
        "token",
    )
    assert HfTarget.for_snapshot("model", "org/m", "dev", watch).revisions == ("dev",)
    assert HfTarget.for_snapshot("dataset", "org/d", "main", None).repo_type == "dataset"
