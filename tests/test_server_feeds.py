"""The alert feeds served over HTTP parse with feedparser and keep stable entry ids."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import aiohttp
import feedparser

from seedvault.config import AlertsConfig, FeedConfig
from seedvault.events import Event, record_event
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.archive import open_node, running

SOURCE = "hf/huggingface.co/model/org/gone"


def _events(node) -> list[Event]:  # type: ignore[no-untyped-def]
    made = [
        Event("repo_gated", SOURCE, {"repo": "org/gone"}, evidence="t1", after="manual"),
        Event("repo_unavailable", SOURCE, {"repo": "org/gone"}, evidence="t2"),
        Event(
            "repo_gated",
            "hf/huggingface.co/model/org/other",
            {"repo": "org/other"},
            evidence="t3",
            after="auto",
        ),
    ]
    for event in made:
        assert record_event(node.vault, node.catalog, event)
    return made


async def test_atom_and_json_feeds_over_http(tmp_path: Path) -> None:
    """/feeds/alerts.atom parses with feedparser; ids are urn:seedvault:event:<id>; filters
    select by repo; the JSON Feed carries the same ids."""
    node = open_node(Vault.open(FsStore(tmp_path / "vault")), tmp_path / "catalog.sqlite")
    made = _events(node)
    try:
        async with running(node) as base, aiohttp.ClientSession() as http:
            async with http.get(f"{base}/feeds/alerts.atom") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("application/atom+xml")
                atom = feedparser.parse(await resp.read())
            assert not atom.bozo
            assert {e.id for e in atom.entries} == {f"urn:seedvault:event:{e.id}" for e in made}
            async with http.get(f"{base}/feeds/alerts.atom", params={"model": "org/gone"}) as r:
                only = feedparser.parse(await r.read())
            assert {e.id for e in only.entries} == {f"urn:seedvault:event:{e.id}" for e in made[:2]}
            async with http.get(f"{base}/feeds/alerts.json") as resp:
                assert resp.status == 200
                doc = json.loads(await resp.read())
            assert doc["version"] == "https://jsonfeed.org/version/1.1"
            assert {i["id"] for i in doc["items"]} == {e.id for e in atom.entries}
    finally:
        node.close()


async def test_feeds_can_be_disabled(tmp_path: Path) -> None:
    """[alerts.feed] enabled = false: both feeds answer 404."""
    node = open_node(Vault.open(FsStore(tmp_path / "vault")), tmp_path / "catalog.sqlite")
    node.config = replace(node.config, alerts=AlertsConfig(feed=FeedConfig(enabled=False)))
    try:
        async with running(node) as base, aiohttp.ClientSession() as http:
            for name in ("alerts.atom", "alerts.json"):
                async with http.get(f"{base}/feeds/{name}") as resp:
                    assert resp.status == 404
    finally:
        node.close()


async def test_the_feeds_home_page_answers(tmp_path: Path) -> None:
    """The feeds' home page link (``<public_url>/``) is a small JSON index of the node: the
    Hub endpoint, the /v1 API, the feeds; every URL in it answers 200."""
    node = open_node(Vault.open(FsStore(tmp_path / "vault")), tmp_path / "catalog.sqlite")
    _events(node)
    try:
        async with running(node) as base, aiohttp.ClientSession() as http:
            async with http.get(f"{base}/feeds/alerts.json") as resp:
                home = json.loads(await resp.read())["home_page_url"]
            async with http.get(f"{base}/feeds/alerts.atom") as resp:
                atom = feedparser.parse(await resp.read())
            async with http.get(home) as resp:
                assert resp.status == 200
                index = json.loads(await resp.read())
            links = [
                *index["api"].values(),
                *index["feeds"].values(),
                *index["health"].values(),
            ]
            statuses = []
            for link in links:
                async with http.get(link) as resp:
                    statuses.append(resp.status)
    finally:
        node.close()
    assert home == f"{base}/"
    assert atom.feed.link == home
    assert index["hub"]["endpoint"] == base
    assert index["api"]["openapi"] == f"{base}/v1/openapi.json"
    assert index["feeds"] == {
        "atom": f"{base}/feeds/alerts.atom",
        "json": f"{base}/feeds/alerts.json",
    }
    assert statuses == [200] * len(links)


async def test_a_feed_source_pasted_unencoded_is_refused(tmp_path: Path) -> None:
    """A ``source=`` key whose ``%`` was not encoded again matches nothing: 400 with the hint;
    the same key encoded gives the (empty) feed."""
    node = open_node(Vault.open(FsStore(tmp_path / "vault")), tmp_path / "catalog.sqlite")
    _events(node)
    key = "dir/host/%2Fsrv%2Fckpt"
    try:
        async with running(node) as base, aiohttp.ClientSession() as http:
            async with http.get(f"{base}/feeds/alerts.json?source={key}") as resp:
                pasted = resp.status, await resp.text()
            encoded = key.replace("%", "%25")
            async with http.get(f"{base}/feeds/alerts.json?source={encoded}") as resp:
                fine = resp.status, json.loads(await resp.read())["items"]
    finally:
        node.close()
    assert pasted[0] == 400
    assert "%25" in pasted[1]
    assert fine == (200, [])
