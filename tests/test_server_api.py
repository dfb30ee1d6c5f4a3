"""The /v1 JSON API: listings with cursor paging, manifests, file content, events, errors.

Also the operations endpoints, the OpenAPI document (``docs/api.md`` equals what the server
serves), and a short schemathesis run of that document against the live server.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import blake3
import hypothesis
import pytest
import schemathesis
import structlog
from multidict import CIMultiDict
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from seedvault.app import Node
from seedvault.errors import ConfigError
from seedvault.events import Event, record_event
from seedvault.server import parse_listen, serve
from seedvault.server.access import NodeTokens
from seedvault.server.openapi import SPEC
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.archive import ArchivedRepo, archive_repo, open_node, running, served_node
from tests.helpers import random_bytes

REPO_ROOT = Path(__file__).resolve().parent.parent
NODE_TOKEN = "api-node-token-42"
TOKENS = NodeTokens([NODE_TOKEN])
AUTH = {"Authorization": f"Bearer {NODE_TOKEN}"}
SECRET_FILE = random_bytes(70_000, 11)


@pytest.fixture(scope="module")
def archived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, list[ArchivedRepo]]]:
    """Seven public snapshots of three repos, one token snapshot, and three events."""
    work = tmp_path_factory.mktemp("api")
    node = open_node(Vault.open(FsStore(work / "vault", fsync=False)), work / "catalog.sqlite")
    repos = [
        archive_repo(
            node,
            f"org/m{i % 3}",
            {"config.json": f'{{"i": {i}}}'.encode(), "shared.txt": b"shared\n"},
            captured_at=f"2026-11-2{i}T10:00:00Z",
        )
        for i in range(7)
    ]
    repos.append(archive_repo(node, "org/secret", {"w.bin": SECRET_FILE}, access="token"))
    for i, kind in enumerate(("repo_gated", "revision_new", "repo_gated")):
        record_event(
            node.vault,
            node.catalog,
            Event(
                type=kind,
                source=repos[i].source_key,
                subject={"repo": f"org/m{i}"},
                evidence=str(i),
            ),
        )
    yield node, repos
    node.close()


async def get(
    session: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, CIMultiDict[str], bytes]:
    async with session.get(url, **kwargs) as response:
        return response.status, CIMultiDict(response.headers), await response.read()


async def test_snapshot_listing_pages_with_absolute_links(
    archived: tuple[Node, list[ArchivedRepo]],
) -> None:
    """Pages of ``limit`` rows, newest first, chained by next_cursor and an absolute Link."""
    node, _ = archived
    expected = [row.id for row in node.catalog.snapshots()]
    async with running(node, TOKENS) as url, aiohttp.ClientSession() as session:
        seen: list[str] = []
        next_url: str | None = f"{url}/v1/snapshots?limit=3"
        while next_url:
            status, headers, body = await get(session, next_url)
            assert status == 200
            page = json.loads(body)
            seen += [row["snapshot"] for row in page["snapshots"]]
            link = re.match(r'<([^>]+)>; rel="next"', headers.get("Link", ""))
            assert (link is None) == ("next_cursor" not in page)
            next_url = link.group(1) if link else None
            if next_url:
                assert next_url.startswith(f"{url}/v1/snapshots?")
        status, _, body = await get(
            session,
            f"{url}/v1/snapshots",
            params={"source": node.catalog.snapshots()[0].source_key},
        )
        one_source = json.loads(body)["snapshots"]
        status_sources, _, sources = await get(session, f"{url}/v1/sources")
    assert seen == expected
    assert len(seen) == 8
    assert status == 200
    assert {r["source"] for r in one_source} == {one_source[0]["source"]}
    listed = json.loads(sources)["sources"]
    assert status_sources == 200
    assert len(listed) == 4
    assert sum(s["snapshots"] for s in listed) == 8
    assert all(s["refs"][0]["revision"] == "main" for s in listed)


async def test_manifest_is_served_as_stored(archived: tuple[Node, list[ArchivedRepo]]) -> None:
    """The manifest bytes hash to the snapshot id; token snapshots need a node token."""
    node, repos = archived
    public, secret = repos[0].snapshot, repos[-1].snapshot
    async with running(node, TOKENS) as url, aiohttp.ClientSession() as session:
        status, headers, body = await get(session, f"{url}/v1/snapshots/{public}")
        by_prefix = await get(session, f"{url}/v1/snapshots/{public[:10]}")
        denied = await get(
            session, f"{url}/v1/snapshots/{secret}", headers={"Authorization": "Bearer hf_x"}
        )
        allowed = await get(session, f"{url}/v1/snapshots/{secret}", headers=AUTH)
        malformed = await get(session, f"{url}/v1/snapshots/not-hex")
        unknown = await get(session, f"{url}/v1/snapshots/{'0' * 64}")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert blake3.blake3(body).hexdigest() == public
    assert body == node.vault.snapshot_bytes(public) == by_prefix[2]
    assert denied[0] == 401
    assert json.loads(denied[2])["error"]["code"] == "token_required"
    assert allowed[0] == 200
    assert blake3.blake3(allowed[2]).hexdigest() == secret
    assert (malformed[0], unknown[0]) == (400, 404)
    for _, _, error_body in (denied, malformed, unknown):
        assert set(json.loads(error_body)["error"]) == {"code", "message"}


async def test_file_content_ranges_and_access(archived: tuple[Node, list[ArchivedRepo]]) -> None:
    """Files stream whole or by range; one only token snapshots list needs a node token."""
    node, _ = archived
    shared = blake3.blake3(b"shared\n").hexdigest()
    secret = blake3.blake3(SECRET_FILE).hexdigest()
    async with running(node, TOKENS) as url, aiohttp.ClientSession() as session:
        whole = await get(session, f"{url}/v1/files/{shared}")
        part = await get(
            session, f"{url}/v1/files/{secret}", headers={**AUTH, "Range": "bytes=100-199"}
        )
        tail = await get(
            session, f"{url}/v1/files/{secret}", headers={**AUTH, "Range": "bytes=-10"}
        )
        denied = await get(session, f"{url}/v1/files/{secret}")
        unknown = await get(session, f"{url}/v1/files/{'a' * 64}")
        bad_range = await get(session, f"{url}/v1/files/{shared}", headers={"Range": "bytes=9-2"})
        past_end = await get(session, f"{url}/v1/files/{shared}", headers={"Range": "bytes=999-"})
    assert whole[0] == 200
    assert whole[2] == b"shared\n"
    assert whole[1]["ETag"] == f'"{shared}"'
    assert part[0] == 206
    assert part[2] == SECRET_FILE[100:200]
    assert part[1]["Content-Range"] == f"bytes 100-199/{len(SECRET_FILE)}"
    assert tail[0] == 206
    assert tail[2] == SECRET_FILE[-10:]
    assert (denied[0], unknown[0], bad_range[0], past_end[0]) == (401, 404, 400, 416)
    assert past_end[1]["Content-Range"] == "bytes */7"


async def test_events_are_paged_and_filtered(archived: tuple[Node, list[ArchivedRepo]]) -> None:
    """Events come oldest first, by type, one page at a time; cursors cannot be tampered with."""
    node, _ = archived
    async with running(node, TOKENS) as url, aiohttp.ClientSession() as session:
        status, _, body = await get(session, f"{url}/v1/events")
        all_events = json.loads(body)["events"]
        _, _, body = await get(
            session, f"{url}/v1/events", params={"type": "repo_gated", "limit": "1"}
        )
        first = json.loads(body)
        _, _, body = await get(
            session,
            f"{url}/v1/events",
            params={"type": "repo_gated", "limit": "1", "cursor": first["next_cursor"]},
        )
        second = json.loads(body)
        body_part, sig = first["next_cursor"].split(".")
        forged = f"{body_part[:-2]}AA.{sig}"
        cursors = [forged, "x" * 5000, "garbage", first["next_cursor"] + "A", ""]
        refused = [
            (await get(session, f"{url}/v1/events", params={"type": "repo_gated", "cursor": c}))[0]
            for c in cursors
        ]
        other_listing = await get(
            session, f"{url}/v1/snapshots", params={"cursor": first["next_cursor"]}
        )
        other_filter = await get(
            session,
            f"{url}/v1/events",
            params={"type": "revision_new", "cursor": first["next_cursor"]},
        )
        bad = [
            (await get(session, f"{url}/v1/events", params=p))[0]
            for p in (
                {"type": "Not A Type"},
                {"since": "yesterday"},
                {"limit": "0"},
                {"limit": "99999"},
            )
        ]
        deprecations = await get(session, f"{url}/v1/deprecations", params={"provider": "openai"})
    assert status == 200
    assert len(all_events) == 3
    assert [e["type"] for e in all_events] == ["repo_gated", "revision_new", "repo_gated"]
    assert len(first["events"]) == 1
    assert len(second["events"]) == 1
    assert first["events"][0]["id"] != second["events"][0]["id"]
    assert "next_cursor" not in second
    assert refused == [400] * len(cursors)
    assert (other_listing[0], other_filter[0]) == (400, 400)
    assert bad == [400, 400, 400, 400]
    assert deprecations[0] == 200
    assert json.loads(deprecations[2]) == {"deprecations": []}


async def test_errors_and_operations_endpoints(
    archived: tuple[Node, list[ArchivedRepo]], tmp_path: Path
) -> None:
    """Unknown paths and methods answer the JSON error shape; /readyz checks vault and catalog."""
    node, _ = archived
    async with running(node, TOKENS) as url, aiohttp.ClientSession() as session:
        missing = await get(session, f"{url}/v1/nothing/here")
        async with session.post(f"{url}/v1/sources") as response:
            post = response.status, await response.read()
        health = await get(session, f"{url}/healthz")
        ready = await get(session, f"{url}/readyz")
        served = await get(session, f"{url}/v1/openapi.json")
    assert missing[0] == 404
    assert json.loads(missing[2])["error"]["code"] == "not_found"
    assert post[0] == 405
    assert json.loads(post[1])["error"]["code"] == "method_not_allowed"
    assert health[0] == 200
    assert ready[0] == 200
    assert json.loads(served[2]) == SPEC
    gone = open_node(Vault.open(FsStore(tmp_path / "v")), tmp_path / "c.sqlite")
    (tmp_path / "v" / "seedvault.json").unlink()  # the vault's storage went away
    try:
        async with running(gone) as url, aiohttp.ClientSession() as session:
            not_ready = await get(session, f"{url}/readyz")
    finally:
        gone.close()
    assert not_ready[0] == 503
    assert json.loads(not_ready[2])["checks"] == {"vault": "missing", "catalog": "ok"}


async def test_serve_listens_until_stopped(
    archived: tuple[Node, list[ArchivedRepo]], tmp_path: Path
) -> None:
    """``serve`` binds ``[server] listen``, answers, and returns once ``stop`` is set."""
    node, _ = archived
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    listening = served_node(node, url)
    listening = replace(
        listening,
        config=replace(
            listening.config, server=replace(listening.config.server, listen=f"127.0.0.1:{port}")
        ),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(listening, stop=stop))
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                health = await get(session, f"{url}/healthz")
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
    assert health[0] == 200
    assert parse_listen("[::1]:8470") == ("::1", 8470)
    with pytest.raises(ConfigError):
        parse_listen("localhost")


def test_docs_hold_the_served_spec() -> None:
    """``docs/api.md`` holds exactly the OpenAPI document the server serves."""
    text = (REPO_ROOT / "docs" / "api.md").read_text()
    block = re.search(r"```json\n(.*?)\n```", text, re.DOTALL)
    assert block is not None
    assert json.loads(block.group(1)) == SPEC


def _schemathesis_checks(
    schema: Any, mode: schemathesis.GenerationMode, checks: list[Any], base_url: str
) -> Any:
    @hypothesis.settings(
        max_examples=100,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=schema.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        case.validate_response(case.call(base_url=base_url), checks=checks)

    return run


def _schemathesis_run(base_url: str) -> None:
    text = (REPO_ROOT / "docs" / "api.md").read_text()
    block = re.search(r"```json\n(.*?)\n```", text, re.DOTALL)
    assert block is not None
    schema = schemathesis.openapi.from_dict(json.loads(block.group(1)))
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    _schemathesis_checks(schema, schemathesis.GenerationMode.POSITIVE, checks, base_url)()
    negative = [*checks, negative_data_rejection]
    _schemathesis_checks(schema, schemathesis.GenerationMode.NEGATIVE, negative, base_url)()


async def test_schemathesis_against_the_live_server(
    archived: tuple[Node, list[ArchivedRepo]],
) -> None:
    """Generated requests (valid and invalid) get documented statuses, types and bodies."""
    node, _ = archived
    with structlog.testing.capture_logs() as events:
        async with running(node, TOKENS) as url:
            await asyncio.to_thread(_schemathesis_run, url)
    statuses = Counter(e["status"] for e in events if e["event"] == "http_request")
    assert statuses[200] > 20
    assert statuses[400] > 20
