"""Deprecation-page watch: fetch safety, page_moved, field events, parse failures.

Pages are served by the fake provider (loopback aiohttp) and polled with
:func:`seedvault.provider.poll_page` into a real fs vault and catalog. The layout-change test
serves the two real OpenAI sample copies from the shared reference directory in sequence and
pins exactly the field events ``tests/test_lifecycle_diff.py`` pins for their parses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from seedvault.config import PageWatch
from seedvault.provider import WatchResult, poll_page
from seedvault.sources.pages import RetryPolicy, retry_after_s
from tests.fixtures.providers.fakeprovider import FakeProvider, PageAnswer, fake_provider
from tests.test_lifecycle_diff import OPENAI_LAYOUT_CHANGES, _brief, read_sample
from tests.test_mirror import Node, open_node

__all__ = ["fake_provider"]

FAST = RetryPolicy(attempts=3, backoff_base_s=0.01, max_wait_s=2.0, timeout_s=10.0)
PAGE = (Path(__file__).parent / "fixtures" / "providers" / "openai-page.md").read_bytes()
KEEP = ("ex-chat-0101", "ex-embed-1", "ex-base")  # 3 of the page's 10 models


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from open_node(tmp_path)


def page_watch(url: str, **overrides: Any) -> PageWatch:
    settings: dict[str, Any] = {
        "id": "openai-deprecations",
        "provider": "openai",
        "url": url,
        "min_bytes": 500,
        "max_bytes": 200_000,
        "required_markers": ["Deprecation history"],
        "max_shrink": 0.4,
    }
    settings.update(overrides)
    return PageWatch(**settings)


async def poll(node: Node, watch: PageWatch) -> WatchResult:
    return await poll_page(
        watch, vault=node.vault, catalog=node.catalog, ingestor=node.ingestor, policy=FAST
    )


def types(result: WatchResult) -> list[str]:
    return [e.type for e in result.events]


def current(node: Node, key: str) -> str:
    ref = node.vault.read_ref(key, "_")
    assert ref is not None
    return ref[0].snapshot


def baseline(node: Node, key: str) -> str:
    return str((node.catalog.source_state(key) or {})["baseline"])


def third_of_the_page() -> bytes:
    """The fixture with only :data:`KEEP`'s rows left, padded back to the same size."""
    lines = PAGE.decode().split("\n")
    kept = [ln for ln in lines if not ln.startswith("20") or any(f"`{m}`" in ln for m in KEEP)]
    text = "\n".join(kept)
    return (text + "\n" + "Neutral padding. " * ((len(PAGE) - len(text)) // 17 + 1)).encode()


async def test_first_copy_is_a_silent_baseline_and_an_unchanged_page_gives_nothing(
    fake_provider: FakeProvider, node: Node
) -> None:
    """The first good copy gives no events; polling the same page makes no snapshot."""
    watch = page_watch(fake_provider.serve_page("p", PageAnswer(body=PAGE)))
    first = await poll(node, watch)
    second = await poll(node, watch)

    assert (first.status, types(first)) == ("captured", [])
    assert (second.status, types(second), second.snapshot) == ("unchanged", [], first.snapshot)
    assert len(node.catalog.snapshots(first.source_key)) == 1
    manifest = node.vault.snapshot(first.snapshot or "")
    assert (manifest.kind, [f.path for f in manifest.files]) == ("page", ["page.md"])
    assert b"".join(node.vault.iter_file(manifest.files[0].blake3)) == PAGE
    assert manifest.source["url"] == watch.url
    assert manifest.source["provider"] == "openai"
    assert baseline(node, first.source_key) == first.snapshot


async def test_redirect_is_page_moved_once_and_never_followed(
    fake_provider: FakeProvider, node: Node
) -> None:
    """Three polls of a redirecting page: one urgent page_moved, the new place never fetched,
    the baseline kept; back and moved again is a second transition."""
    moved = PageAnswer(status=301, headers={"Location": "/pages/new-home?ref=x"})
    url = fake_provider.serve_page("p", PageAnswer(body=PAGE), moved, moved, moved)
    fake_provider.serve_page("new-home", PageAnswer(body=PAGE))
    watch = page_watch(url)
    first = await poll(node, watch)

    runs = [await poll(node, watch) for _ in range(3)]

    assert [r.status for r in runs] == ["moved"] * 3
    assert [types(r) for r in runs] == [["page_moved"], [], []]
    event = runs[0].events[0]
    assert (event.severity, event.after) == ("urgent", f"{fake_provider.url}/pages/new-home")
    assert not [r for r in fake_provider.requests if r.path == "/pages/new-home"]
    assert current(node, first.source_key) == first.snapshot

    fake_provider.serve_page("p", PageAnswer(body=PAGE), moved)
    back, again = await poll(node, watch), await poll(node, watch)
    assert (back.status, types(back), types(again)) == ("unchanged", [], ["page_moved"])


@pytest.mark.parametrize(
    ("case", "answer", "reason"),
    [
        ("too_small", PageAnswer(body=b"Deprecation history: please log in"), "too_small"),
        ("marker", PageAnswer(body=PAGE.replace(b"Deprecation history", b"Checking browser")),
         "marker_missing"),
        ("shrunk", PageAnswer(body=PAGE[: len(PAGE) // 2]), "shrunk"),
        ("too_large", PageAnswer(body=PAGE * 200), "too_large"),
        ("error", PageAnswer(status=503, body=b"unavailable"), "http_status"),
    ],
)  # fmt: skip
async def test_rejected_fetch_keeps_the_baseline(
    fake_provider: FakeProvider, node: Node, case: str, answer: PageAnswer, reason: str
) -> None:
    """Login/challenge/truncated/oversized/error answers are refused: capture_failed (routine),
    no snapshot, the last good copy stays current and the good page is unchanged after."""
    bad = [answer] * (FAST.attempts if case == "error" else 1)  # a 503 is retried
    url = fake_provider.serve_page("p", PageAnswer(body=PAGE), *bad, PageAnswer(body=PAGE))
    watch = page_watch(url)
    first = await poll(node, watch)
    rejected = await poll(node, watch)
    good = await poll(node, watch)

    assert rejected.status == ("failed" if case == "error" else "rejected")
    assert types(rejected) == ["capture_failed"]
    assert (rejected.events[0].severity, rejected.events[0].payload["reason"]) == (
        "routine", reason,
    )  # fmt: skip
    assert current(node, first.source_key) == first.snapshot
    assert (good.status, types(good), good.snapshot) == ("unchanged", [], first.snapshot)
    assert len(node.catalog.snapshots(first.source_key)) == 1


async def test_retry_after_is_honoured_then_the_page_is_taken(
    fake_provider: FakeProvider, node: Node
) -> None:
    """A 429 with Retry-After, then a 503: retried, and the page captured."""
    url = fake_provider.serve_page("p", PageAnswer(body=PAGE))
    fake_provider.fail_next("/pages/p", 429, retry_after="1")
    fake_provider.fail_next("/pages/p", 503)
    started = time.monotonic()
    result = await poll(node, page_watch(url))
    assert result.status == "captured"
    assert time.monotonic() - started >= 0.9
    assert len([r for r in fake_provider.requests if r.path == "/pages/p"]) == 3
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_s("120") == 120.0
    assert retry_after_s("soon") is None


async def test_real_openai_layout_change_gives_exactly_the_field_events(
    fake_provider: FakeProvider, node: Node
) -> None:
    """2025-11 copy, then the 2026-08 copy (new layout): exactly the pinned field events, each
    with the new snapshot as evidence and the source URL + quoted row; then nothing."""
    old, new = (
        read_sample(name).encode()
        for name in ("openai-deprecations-2025-11-13.md", "openai-deprecations-2026-08-20.md")
    )
    url = fake_provider.serve_page("openai", PageAnswer(body=old), PageAnswer(body=new))
    watch = page_watch(url, min_bytes=2000, required_markers=["Deprecation"])
    first = await poll(node, watch)
    second = await poll(node, watch)
    third = await poll(node, watch)

    assert (types(first), types(third)) == ([], [])
    got = sorted((e.type, e.subject["model"], _brief(e.before), _brief(e.after))
                 for e in second.events)  # fmt: skip
    assert got == sorted(OPENAI_LAYOUT_CHANGES)
    for event in second.events:
        assert event.evidence == second.snapshot
        assert event.payload["source_url"] == url
        assert event.payload["quote"]
        assert event.payload["baseline"] == first.snapshot
        assert event.subject["page"] == "openai-deprecations"
    assert baseline(node, second.source_key) == second.snapshot
    assert len(node.events()) == len(second.events)


async def test_page_parsing_to_a_third_is_parse_failed_only(
    fake_provider: FakeProvider, node: Node
) -> None:
    """A copy that parses to 3 of 10 records: one urgent parse_failed, no retired flood, the
    baseline kept; the repaired page is diffed against the baseline, not the broken copy."""
    moved_date = PAGE.replace(b"2026-10-01| `ex-audio-1`", b"2026-12-01| `ex-audio-1`")
    url = fake_provider.serve_page(
        "p",
        PageAnswer(body=PAGE),
        PageAnswer(body=third_of_the_page()),
        PageAnswer(body=third_of_the_page()),
        PageAnswer(body=moved_date),
    )
    watch = page_watch(url)
    first = await poll(node, watch)
    broken, same, repaired = [await poll(node, watch) for _ in range(3)]

    assert (broken.status, types(broken)) == ("captured", ["parse_failed"])
    event = broken.events[0]
    assert (event.severity, event.before, event.after) == ("urgent", 10, 3)
    assert event.payload["snapshot"] == broken.snapshot
    assert (same.status, types(same)) == ("unchanged", [])
    assert types(repaired) == ["shutdown_date_moved"]
    assert repaired.events[0].subject["model"] == "ex-audio-1"
    assert repaired.events[0].payload["baseline"] == first.snapshot
    assert not node.events("retired")


async def test_first_copy_without_records_is_parse_failed(
    fake_provider: FakeProvider, node: Node
) -> None:
    """A page that passes the fetch checks but yields no record: parse_failed, no baseline."""
    body = b"# Deprecations\n\n## Deprecation history\n\n" + b"Nothing parseable here. " * 40
    result = await poll(node, page_watch(fake_provider.serve_page("p", PageAnswer(body=body))))
    assert (result.status, types(result)) == ("captured", ["parse_failed"])
    assert "baseline" not in (node.catalog.source_state(result.source_key) or {})


async def test_a_poll_waits_while_another_process_polls_the_same_page(
    fake_provider: FakeProvider, node: Node
) -> None:
    """:func:`poll_watch` (the daemon's job and ``seedvault snapshot <id>``) holds the page's
    lock: while another process holds it (an ``flock`` on another open file), nothing is
    fetched; once it is released the poll runs."""
    import asyncio
    import fcntl
    import os

    from seedvault.provider import poll_watch, source_lock_path
    from seedvault.sources.pages import page_source_key

    watch = page_watch(fake_provider.serve_page("p", PageAnswer(body=PAGE)))
    path = source_lock_path(node.catalog, page_source_key(watch.id))
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    held = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        polling = asyncio.create_task(
            poll_watch(
                watch, [], [watch], vault=node.vault, catalog=node.catalog,
                ingestor=node.ingestor, trigger="manual",
            )
        )  # fmt: skip
        await asyncio.sleep(1.5)  # three of the lock's retries
        assert not polling.done()
        assert fake_provider.requests == []
    finally:
        os.close(held)  # releases the flock
    result, _crossed = await asyncio.wait_for(polling, 30)
    assert result.status == "captured"
    assert len(fake_provider.requests) == 1
