"""Pages × lists cross-checks, ``/v1/deprecations``, and the API key never being recorded.

A fake OpenAI models list and the project's OpenAI-layout fixture page are polled into one
vault; :func:`seedvault.provider.cross_check` must give ``announced_still_listed`` once per
transition and ``not_announced_removal`` only for a removal no page announced. The node's
HTTP server then serves the page's merged records. The last test runs every provider-watch path
with a real-looking key and greps the vault, the catalog and the captured log for it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import aiohttp
import pytest
import structlog

from seedvault.config import ModelsApiWatch, PageWatch
from seedvault.provider import cross_check, poll_models_api, poll_page
from tests.archive import open_node as open_served_node
from tests.archive import running
from tests.fixtures.providers.fakeprovider import (
    FLAVORS,
    KEY,
    FakeProvider,
    PageAnswer,
    card,
    fake_provider,
)
from tests.test_mirror import Node, open_node
from tests.test_provider_models import ENV, FAST
from tests.test_provider_pages import PAGE, page_watch, third_of_the_page

__all__ = ["fake_provider"]

LISTED = ["ex-base", "ex-chat-0101", "ex-chat-2", "ex-edit", "ex-gone"]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from open_node(tmp_path)


def api_watch(fake: FakeProvider, flavor: str = "openai") -> ModelsApiWatch:
    return ModelsApiWatch(
        id=f"{flavor}-api",
        flavor=flavor,
        base_url=fake.base_url(flavor),
        api_key_env="SV_TEST_PROVIDER_KEY",
    )


async def poll_list(node: Node, watch: ModelsApiWatch, env: dict[str, str] = ENV) -> None:
    await poll_models_api(
        watch, vault=node.vault, catalog=node.catalog, ingestor=node.ingestor, env=env, policy=FAST
    )


async def poll_one_page(node: Node, watch: PageWatch) -> None:
    await poll_page(
        watch, vault=node.vault, catalog=node.catalog, ingestor=node.ingestor, policy=FAST
    )


async def check(
    node: Node, apis: list[ModelsApiWatch], pages: list[PageWatch], day: date
) -> list[tuple[str, str]]:
    events = await cross_check(apis, pages, vault=node.vault, catalog=node.catalog, today=day)
    return sorted((e.type, e.subject["model"]) for e in events)


async def test_cross_checks_fire_once_per_transition(
    fake_provider: FakeProvider, node: Node
) -> None:
    """Announced-but-listed models once (again when the date has passed); a removal no page
    announced is urgent, one the page announced is not; a list without a page is skipped."""
    page = page_watch(fake_provider.serve_page("p", PageAnswer(body=PAGE)))
    openai, cohere = api_watch(fake_provider), api_watch(fake_provider, "cohere")
    fake_provider.set_models("openai", *(card("openai", m) for m in LISTED))
    fake_provider.set_models("cohere", card("cohere", "ex-c1"), card("cohere", "ex-c2"))
    await poll_one_page(node, page)
    for watch in (openai, cohere):
        await poll_list(node, watch)
    apis, pages = [openai, cohere], [page]

    first = await check(node, apis, pages, date(2025, 11, 1))
    assert first == [("announced_still_listed", m) for m in ("ex-base", "ex-chat-0101", "ex-edit")]
    assert await check(node, apis, pages, date(2025, 11, 2)) == []
    passed = await check(node, apis, pages, date(2026, 1, 1))  # ex-base/ex-edit: 2025-12-01
    assert passed == [("announced_still_listed", "ex-base"), ("announced_still_listed", "ex-edit")]
    still = node.events("announced_still_listed")
    assert {e["severity"] for e in still} == {"routine"}
    assert {e["source"] for e in still} == {"api/openai-api"}

    fake_provider.set_models("openai", *(card("openai", m) for m in LISTED[:3]))
    fake_provider.set_models("cohere", card("cohere", "ex-c1"))
    for _ in range(2):
        for watch in (openai, cohere):
            await poll_list(node, watch)
    assert sorted(e["subject"]["model"] for e in node.events("model_removed")) == [
        "ex-c2", "ex-edit", "ex-gone",
    ]  # fmt: skip

    after = await check(node, apis, pages, date(2026, 1, 2))
    assert after == [("not_announced_removal", "ex-gone")]
    (unannounced,) = node.events("not_announced_removal")
    assert unannounced["severity"] == "urgent"
    assert unannounced["payload"]["pages_checked"] == ["openai-deprecations"]
    assert await check(node, apis, pages, date(2026, 1, 3)) == []


async def test_deprecations_endpoint_serves_the_baseline_records(
    fake_provider: FakeProvider, node: Node
) -> None:
    """/v1/deprecations: the page's merged records, filtered by provider and by model or alias;
    a copy that failed to parse is archived but does not replace what is served."""
    url = fake_provider.serve_page("p", PageAnswer(body=PAGE), PageAnswer(body=third_of_the_page()))
    watch = page_watch(url)
    await poll_one_page(node, watch)
    baseline = node.catalog.snapshots()[0].id
    await poll_one_page(node, watch)  # parse_failed: a newer snapshot, not served
    assert len(node.catalog.snapshots()) == 2
    served = open_served_node(node.vault, node.root / "catalog.sqlite")
    try:
        async with running(served) as base, aiohttp.ClientSession() as session:
            bodies = []
            for query in ("", "?model=ex-chat-latest", "?provider=anthropic", "?model="):
                async with session.get(f"{base}/v1/deprecations{query}") as resp:
                    bodies.append((resp.status, await resp.json()))
    finally:
        served.ingestor.close()
        served.catalog.close()

    (status, everything), (_, alias), (_, other), (bad, error) = bodies
    assert status == 200
    assert len(everything["deprecations"]) == 10
    assert {d["snapshot"] for d in everything["deprecations"]} == {baseline}
    (item,) = alias["deprecations"]
    assert item == {
        "provider": "openai",
        "model": "ex-chat-0201",
        "aliases": ["ex-chat-latest"],
        "shutdown": {"date": "2026-09-01", "qualifier": "exact"},
        "announced": "2026-02-01",
        "replacement": "ex-chat-2",
        "status": "deprecated",
        "source_url": url,
        "quote": item["quote"],
        "source": "page/openai-deprecations",
        "page": "openai-deprecations",
        "snapshot": baseline,
        "captured_at": item["captured_at"],
    }
    assert "`ex-chat-0201`" in item["quote"]
    assert other == {"deprecations": []}
    assert bad == 400
    assert error["error"]["code"] == "bad_request"


async def test_api_key_is_never_stored_or_logged(fake_provider: FakeProvider, node: Node) -> None:
    """Every flavor (good key, rejected key, removal lookups), a page and the cross-check: the
    key appears in no vault object, journal record, catalog file or log event."""
    wrong = "sk-wrong-secret-0123456789abcdef"
    with structlog.testing.capture_logs() as logs:
        for flavor in FLAVORS:
            watch = api_watch(fake_provider, flavor)
            fake_provider.set_models(flavor, *(card(flavor, m) for m in LISTED))
            await poll_list(node, watch)
            await poll_list(node, watch, env={"SV_TEST_PROVIDER_KEY": wrong})  # echoed in 401
            fake_provider.set_models(flavor, card(flavor, "ex-base"))
            fake_provider.fail_next(fake_provider.models_path(flavor), 429, retry_after="0")
            for _ in range(2):
                await poll_list(node, watch)
        page = page_watch(fake_provider.serve_page("p", PageAnswer(body=PAGE)))
        await poll_one_page(node, page)
        apis = [api_watch(fake_provider, f) for f in FLAVORS]
        await cross_check(apis, [page], vault=node.vault, catalog=node.catalog)

    assert len(node.events("model_removed")) == 4 * len(FLAVORS)
    assert any(e.get("event") == "http_retry" for e in logs)
    assert len(node.events("list_failed")) == len(FLAVORS)
    stored = [p for p in node.root.rglob("*") if p.is_file()]
    assert any("journal" in p.parts for p in stored)
    for secret in (KEY, wrong):
        needle = secret.encode()
        assert not [p for p in stored if needle in p.read_bytes()]
        assert secret not in json.dumps(logs, default=str)
