"""Cursor paging of the /v1 listings when many rows share a sort key value.

Snapshots are listed newest first (``captured_at``, then insertion order); events oldest first
(``at``, then id). Several rows captured in the same second must neither be lost nor repeated
at a page boundary, whatever the page size; ``source=`` values that cannot be a source key
(a key pasted into a URL without encoding its ``%`` again) get a 400 that says so.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from seedvault.app import Node
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.archive import ArchivedRepo, archive_repo, open_node, running

SAME_SECOND = "2026-11-27T10:00:00Z"
TIED_EVENTS = 7


@pytest.fixture(scope="module")
def tied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, list[ArchivedRepo]]]:
    """Eleven snapshots: seven captured in the same second (three of one repo, a chain), two
    a second later and two a day earlier; and seven events recorded at the same instant."""
    work = tmp_path_factory.mktemp("paging")
    node = open_node(Vault.open(FsStore(work / "vault", fsync=False)), work / "catalog.sqlite")
    times = [SAME_SECOND] * 7 + ["2026-11-27T10:00:01Z"] * 2 + ["2026-11-26T10:00:00Z"] * 2
    repos = [
        archive_repo(
            node,
            "org/chain" if i < 3 else f"org/m{i}",
            {"config.json": f'{{"i": {i}}}'.encode()},
            captured_at=at,
        )
        for i, at in enumerate(times)
    ]
    for i in range(TIED_EVENTS):
        node.catalog.add_event(
            {
                "id": f"{(i * 7919) % 1000:03d}" + "e" * 61,  # ids not in insertion order
                "type": "repo_gated",
                "severity": "urgent",
                "source": repos[i].source_key,
                "at": "2026-11-27T10:00:00.000000Z",
                "subject": {"repo": repos[i].repo_id},
                "evidence": str(i),
                "payload": {},
            }
        )
    yield node, repos
    node.close()


async def _follow(
    session: aiohttp.ClientSession, first: str, field: str, params: dict[str, str]
) -> list[str]:
    """Every row id of a listing, following ``Link: rel="next"`` from the first page."""
    seen: list[str] = []
    next_url: str | None = first
    query: dict[str, str] | None = params
    while next_url is not None:
        async with session.get(next_url, params=query) as response:
            assert response.status == 200, await response.text()
            page = json.loads(await response.read())
            link = re.match(r'<([^>]+)>; rel="next"', response.headers.get("Link", ""))
        key = "snapshot" if field == "snapshots" else "id"
        seen += [row[key] for row in page[field]]
        assert (link is None) == ("next_cursor" not in page)
        next_url, query = (link.group(1), None) if link else (None, None)
    return seen


async def test_snapshots_with_identical_capture_times_page_exactly(
    tied: tuple[Node, list[ArchivedRepo]],
) -> None:
    """For every page size from 1 to N+1, the pages concatenated are the unpaged listing."""
    node, repos = tied
    expected = [row.id for row in node.catalog.snapshots()]
    chain = [row.id for row in node.catalog.snapshots(repos[0].source_key)]
    assert len(expected) == 11
    assert len(chain) == 3
    async with running(node) as url, aiohttp.ClientSession() as session:
        whole = await _follow(session, f"{url}/v1/snapshots", "snapshots", {"limit": "1000"})
        paged = {
            limit: await _follow(session, f"{url}/v1/snapshots", "snapshots", {"limit": str(limit)})
            for limit in range(1, len(expected) + 2)
        }
        one_source = {
            limit: await _follow(
                session,
                f"{url}/v1/snapshots",
                "snapshots",
                {"limit": str(limit), "source": repos[0].source_key},
            )
            for limit in range(1, len(chain) + 2)
        }
    assert whole == expected
    for limit, seen in paged.items():
        assert seen == expected, f"limit={limit}"
        assert len(set(seen)) == len(seen)
    for limit, seen in one_source.items():
        assert seen == chain, f"limit={limit}"


async def test_events_with_identical_times_page_exactly(
    tied: tuple[Node, list[ArchivedRepo]],
) -> None:
    """Events recorded at the same instant page exactly too, for every page size."""
    node, _ = tied
    expected = [e["id"] for e in node.catalog.events(limit=1000).events]
    assert len(expected) == TIED_EVENTS
    async with running(node) as url, aiohttp.ClientSession() as session:
        paged = {
            limit: await _follow(session, f"{url}/v1/events", "events", {"limit": str(limit)})
            for limit in range(1, TIED_EVENTS + 2)
        }
    for limit, seen in paged.items():
        assert seen == expected, f"limit={limit}"


async def test_a_source_key_pasted_unencoded_is_refused_with_a_hint(
    tied: tuple[Node, list[ArchivedRepo]],
) -> None:
    """``%`` in a source key must be sent as ``%25``: a value that cannot be a source key (what
    the key becomes when its ``%XX`` are decoded once) is a 400 naming the fix, while an
    encoded key, and a well-formed key that is simply not archived, list normally."""
    node, _ = tied
    key = "hf/127.0.0.1%3A8470/model/org/m"  # a hub on a port: the key holds %3A
    dir_key = "dir/host/%2Fsrv%2Fckpt"
    async with running(node) as url, aiohttp.ClientSession() as session:
        answers: dict[str, tuple[int, Any]] = {}
        for name, query in {
            "pasted": f"source={key}",  # %3A decoded: "127.0.0.1:8470"
            "pasted_dir": f"source={dir_key}",  # %2F decoded: "dir/host//srv/ckpt"
            "encoded": f"source={key.replace('%', '%25')}",
            "unknown": "source=hf/huggingface.co/model/org/never",
            "events_pasted": f"source={dir_key}",
        }.items():
            path = "/v1/events" if name.startswith("events") else "/v1/snapshots"
            async with session.get(f"{url}{path}?{query}") as response:
                answers[name] = response.status, json.loads(await response.read())
    for name in ("pasted", "pasted_dir", "events_pasted"):
        status, body = answers[name]
        assert status == 400, name
        assert "%25" in body["error"]["message"]
    assert answers["encoded"] == (200, {"snapshots": []})
    assert answers["unknown"] == (200, {"snapshots": []})
