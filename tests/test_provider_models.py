"""Models-list watch against fake OpenAI, Mistral, Anthropic, Gemini and Cohere servers.

Each test polls a :class:`~tests.fixtures.providers.fakeprovider.FakeProvider` with
:func:`seedvault.provider.poll_models_api` into a real fs vault and catalog, and pins exactly
which events each run records: every page of paginated lists, volatile fields that never make a
snapshot, ``model_added``, ``lifecycle_changed``, the two-run-plus-direct-404 rule of
``model_removed``, ``list_failed`` for failed and incomplete lists, and 429 handling.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seedvault.config import ModelsApiWatch
from seedvault.provider import WatchResult, poll_models_api
from seedvault.sources.models_api import models_source_key
from seedvault.sources.pages import RetryPolicy
from tests.fixtures.providers.fakeprovider import (
    FLAVORS,
    KEY,
    FakeProvider,
    card,
    fake_provider,
)
from tests.test_mirror import Node, open_node

__all__ = ["fake_provider"]

ENV = {"SV_TEST_PROVIDER_KEY": KEY}
FAST = RetryPolicy(attempts=3, backoff_base_s=0.01, max_wait_s=2.0, timeout_s=10.0)
MODELS = ["ex-a", "ex-b", "ex-c", "ex-d", "ex-e"]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from open_node(tmp_path)


def watch(fake: FakeProvider, flavor: str) -> ModelsApiWatch:
    return ModelsApiWatch(
        id=f"{flavor}-api",
        flavor=flavor,
        base_url=fake.base_url(flavor),
        api_key_env="SV_TEST_PROVIDER_KEY",
    )


async def poll(
    node: Node,
    fake: FakeProvider,
    flavor: str,
    env: dict[str, str] | None = None,
    policy: RetryPolicy = FAST,
) -> WatchResult:
    return await poll_models_api(
        watch(fake, flavor),
        vault=node.vault,
        catalog=node.catalog,
        ingestor=node.ingestor,
        env=ENV if env is None else env,
        policy=policy,
    )


def stored_list(node: Node, snapshot: str) -> list[dict[str, Any]]:
    manifest = node.vault.snapshot(snapshot)
    assert [f.path for f in manifest.files] == ["models.json"]
    data: list[dict[str, Any]] = json.loads(
        b"".join(node.vault.iter_file(manifest.files[0].blake3))
    )
    return data


def types(result: WatchResult) -> list[str]:
    return [e.type for e in result.events]


def state(node: Node, flavor: str) -> dict[str, Any]:
    return node.catalog.source_state(models_source_key(f"{flavor}-api")) or {}


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_every_page_read_unchanged_list_no_snapshot_then_model_added(
    fake_provider: FakeProvider, node: Node, flavor: str
) -> None:
    """All pages are read with the flavor's auth; volatile fields make no snapshot; a new model
    is one routine model_added, and the first list is a silent baseline."""
    fake_provider.set_models(flavor, *(card(flavor, m) for m in MODELS))
    fake_provider.volatile_created = fake_provider.vllm_permissions = True

    first = await poll(node, fake_provider, flavor)
    second = await poll(node, fake_provider, flavor)

    assert (first.status, types(first)) == ("captured", [])
    assert (second.status, types(second), second.snapshot) == ("unchanged", [], first.snapshot)
    assert len(node.catalog.snapshots(first.source_key)) == 1
    assert first.source_key == f"api/{flavor}-api"
    cards = stored_list(node, first.snapshot or "")
    id_key = "id" if flavor in ("openai", "mistral", "anthropic") else "name"
    assert [str(c[id_key]).removeprefix("models/") for c in cards] == MODELS
    assert not any("created" in c or ("permission" in c and c["permission"][0].get("id"))
                   for c in cards)  # fmt: skip
    pages = 1 if flavor in ("openai", "mistral") else 3  # 5 models, 2 per page
    assert len(fake_provider.list_requests(flavor)) == 2 * pages
    assert fake_provider.key_seen
    assert all(fake_provider.key_seen)

    fake_provider.set_models(flavor, *(card(flavor, m) for m in [*MODELS, "ex-f"]))
    third = await poll(node, fake_provider, flavor)
    assert (third.status, types(third)) == ("captured", ["model_added"])
    added = third.events[0]
    assert (added.subject, added.severity, added.evidence) == (
        {"api": f"{flavor}-api", "model": "ex-f"}, "routine", third.snapshot,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("flavor", "field", "before", "after"),
    [
        ("openai", "shutdown_date", None, "2026-10-23"),
        ("mistral", "deprecation", None, "2026-11-30T12:00:00Z"),
        ("mistral", "deprecation_replacement_model", "ex-old", "ex-new"),
        ("cohere", "is_deprecated", False, True),
    ],
)
async def test_lifecycle_field_change_is_one_event(
    fake_provider: FakeProvider, node: Node, flavor: str, field: str, before: Any, after: Any
) -> None:
    """Changing one lifecycle field of one model gives exactly one urgent lifecycle_changed."""
    fields = {field: before} if before is not None else {}
    fake_provider.set_models(flavor, card(flavor, "ex-a"), card(flavor, "ex-b", **fields))
    await poll(node, fake_provider, flavor)
    fake_provider.set_models(flavor, card(flavor, "ex-a"), card(flavor, "ex-b", **{field: after}))

    changed = await poll(node, fake_provider, flavor)
    again = await poll(node, fake_provider, flavor)

    assert types(changed) == ["lifecycle_changed"]
    event = changed.events[0]
    assert event.subject == {"api": f"{flavor}-api", "model": "ex-b", "field": field}
    assert (event.before, event.after, event.severity) == (before, after, "urgent")
    assert (again.status, types(again)) == ("unchanged", [])


@pytest.mark.parametrize("flavor", FLAVORS)
async def test_model_gone_two_runs_with_direct_not_found_is_one_removal(
    fake_provider: FakeProvider, node: Node, flavor: str
) -> None:
    """A model missing from two complete lists whose direct request is the flavor's 404 gives
    exactly one urgent model_removed, at the second run; later runs say nothing."""
    fake_provider.set_models(flavor, *(card(flavor, m) for m in MODELS))
    await poll(node, fake_provider, flavor)
    fake_provider.set_models(flavor, *(card(flavor, m) for m in MODELS if m != "ex-c"))

    runs = [await poll(node, fake_provider, flavor) for _ in range(3)]

    assert [types(r) for r in runs] == [[], ["model_removed"], []]
    removed = runs[1].events[0]
    assert (removed.subject["model"], removed.severity) == ("ex-c", "urgent")
    assert removed.payload["confirmations"] == 2
    lookups = [r for r in fake_provider.requests if r.path.endswith("/models/ex-c")]
    assert len(lookups) == 2
    assert "ex-c" not in state(node, flavor)["models"]
    assert state(node, flavor)["pending_removal"] == {}


async def test_model_missing_for_one_run_only_gives_no_event(
    fake_provider: FakeProvider, node: Node
) -> None:
    """A model that vanishes from one list (and 404s directly) and is back next run: nothing."""
    fake_provider.set_models("openai", *(card("openai", m) for m in MODELS))
    await poll(node, fake_provider, "openai")
    fake_provider.set_models("openai", *(card("openai", m) for m in MODELS[1:]))
    gone = await poll(node, fake_provider, "openai")
    assert state(node, "openai")["pending_removal"] == {"ex-a": 1}
    fake_provider.set_models("openai", *(card("openai", m) for m in MODELS))
    back = await poll(node, fake_provider, "openai")

    assert (types(gone), types(back)) == ([], [])
    assert gone.status == back.status == "captured"  # both observations are archived
    assert state(node, "openai")["pending_removal"] == {}
    assert node.events() == []


async def test_unlisted_model_that_still_answers_is_not_removed(
    fake_provider: FakeProvider, node: Node
) -> None:
    """A list that hides a model the API still serves (permissions, paging) removes nothing."""
    fake_provider.set_models("anthropic", *(card("anthropic", m) for m in MODELS))
    await poll(node, fake_provider, "anthropic")
    fake_provider.set_models("anthropic", *(card("anthropic", m) for m in MODELS[:-1]))
    fake_provider.unlisted_present["anthropic"].add("ex-e")

    runs = [await poll(node, fake_provider, "anthropic") for _ in range(3)]

    assert [types(r) for r in runs] == [[], [], []]
    assert state(node, "anthropic")["pending_removal"] == {}


@pytest.mark.parametrize(
    ("flavor", "breakage"),
    [("anthropic", "no_cursor"), ("gemini", "loop"), ("cohere", "page_error")],
)
async def test_incomplete_list_is_list_failed_and_never_a_removal(
    fake_provider: FakeProvider, node: Node, flavor: str, breakage: str
) -> None:
    """has_more without last_id, a looping cursor, or a later page failing: list_failed
    (incomplete), no snapshot, no removal, and the pending counters untouched."""
    fake_provider.set_models(flavor, *(card(flavor, m) for m in MODELS))
    first = await poll(node, fake_provider, flavor)
    fake_provider.set_models(flavor, *(card(flavor, m) for m in MODELS if m != "ex-a"))
    if breakage == "page_error":
        fake_provider.fail_next("/cohere/v1/models", 500, times=FAST.attempts,
                                when_query="page_token")  # fmt: skip
    else:
        fake_provider.break_paging(flavor, breakage)

    broken = await poll(node, fake_provider, flavor)

    assert (broken.status, types(broken)) == ("incomplete", ["list_failed"])
    failed = broken.events[0]
    assert (failed.severity, failed.payload["reason"]) == ("routine", "incomplete")
    assert node.catalog.snapshots(broken.source_key)[0].id == first.snapshot
    assert state(node, flavor).get("pending_removal", {}) == {}
    fake_provider.broken_paging.clear()
    repaired = await poll(node, fake_provider, flavor)
    assert types(repaired) == []  # the first complete run without ex-a only starts counting
    assert state(node, flavor)["pending_removal"] == {"ex-a": 1}


async def test_failed_list_streak_escalates_and_resets(
    fake_provider: FakeProvider, node: Node
) -> None:
    """A rejected key: list_failed routine at the first failure, urgent at the third, silent in
    between; a success ends the streak and the next failure is routine again."""
    fake_provider.set_models("mistral", card("mistral", "ex-a"))
    bad = {"SV_TEST_PROVIDER_KEY": "sk-wrong-key"}
    runs = [await poll(node, fake_provider, "mistral", env=bad) for _ in range(4)]
    ok = await poll(node, fake_provider, "mistral")
    again = await poll(node, fake_provider, "mistral", env=bad)

    assert [r.status for r in runs] == ["failed"] * 4
    assert [[e.severity for e in r.events] for r in runs] == [["routine"], [], ["urgent"], []]
    assert "HTTP 401 invalid_api_key" in runs[0].events[0].payload["message"]
    assert ok.ok
    assert types(ok) == []
    assert [e.severity for e in again.events] == ["routine"]


async def test_missing_key_variable_is_list_failed_without_a_request(
    fake_provider: FakeProvider, node: Node
) -> None:
    """An unset api_key_env fails the list (naming the variable) and sends nothing."""
    result = await poll(node, fake_provider, "openai", env={})
    assert (result.status, types(result)) == ("failed", ["list_failed"])
    assert "SV_TEST_PROVIDER_KEY is not set" in result.events[0].payload["message"]
    assert fake_provider.requests == []


async def test_rate_limit_honours_retry_after_capped(
    fake_provider: FakeProvider, node: Node
) -> None:
    """429 then 200: the poll succeeds after the advised wait; a huge Retry-After is capped."""
    fake_provider.set_models("gemini", *(card("gemini", m) for m in MODELS))
    fake_provider.fail_next("/gemini/v1beta/models", 429, retry_after="1")
    started = time.monotonic()
    first = await poll(node, fake_provider, "gemini")
    waited = time.monotonic() - started
    assert first.status == "captured"
    assert 0.9 <= waited < 5
    assert len(fake_provider.list_requests("gemini")) == 4  # the 429, then three pages

    fake_provider.fail_next(
        "/gemini/v1beta/models", 429, retry_after="3600", when_query="pageToken"
    )
    capped = RetryPolicy(attempts=3, backoff_base_s=0.01, max_wait_s=0.2, timeout_s=10.0)
    started = time.monotonic()
    second = await poll(node, fake_provider, "gemini", policy=capped)
    assert second.status == "unchanged"
    assert time.monotonic() - started < 3
