"""SOURCE arguments beyond ``dir:`` and ``hf:``: watch ids, and Hub repos named by their key.

A ``[[watch.models_api]]``, ``[[watch.page]]`` or ``[[watch.probes]]`` id names that watch's
source (``api/<id>``, ``page/<id>``, ``probes/<id>/<model>``) for ``ls``, ``show``, ``export``
and ``snapshot``; an id several kinds of watch share is a usage error naming their keys.
``snapshot <id>`` polls the watch once now (trigger ``manual``). A Hub repo's raw key without
``@`` means ``@main``, as ``hf:org/name`` does. Providers are the loopback fake provider; the
CLI runs in a thread (``asyncio.to_thread``) so the test's loop keeps serving it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from seedvault.catalog import Catalog
from seedvault.config import ModelsApiWatch, PageWatch
from seedvault.provider import poll_models_api, poll_page
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.archive import archive_repo
from tests.archive import open_node as open_archive_node
from tests.fixtures.providers.fakechat import Model
from tests.fixtures.providers.fakeprovider import (
    KEY,
    FakeProvider,
    PageAnswer,
    card,
    fake_provider,
)
from tests.helpers import run_cli
from tests.test_lifecycle_diff import read_sample
from tests.test_mirror import Node, open_node
from tests.test_provider_models import FAST as MODELS_FAST
from tests.test_provider_pages import FAST as PAGES_FAST

__all__ = ["fake_provider"]

ENV = {"SV_TEST_PROVIDER_KEY": KEY}
SAMPLE = "openai-deprecations-2026-08-20.md"
PAGE_ID = "openai-deprecations"
API_ID = "openai-api"


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from open_node(tmp_path)


def write_config(root: Path, fake: FakeProvider, extra: str = "") -> Path:
    """A config (vault and catalog where :func:`open_node` puts them) watching the fake
    provider's OpenAI models list as ``openai-api`` and its page ``openai`` as
    ``openai-deprecations``."""
    path = root / "seedvault.toml"
    path.write_text(
        '[vault]\npath = "vault"\n[catalog]\npath = "catalog.sqlite"\n'
        f'[[watch.models_api]]\nid = "{API_ID}"\nflavor = "openai"\n'
        f'base_url = "{fake.base_url("openai")}"\napi_key_env = "SV_TEST_PROVIDER_KEY"\n'
        f'[[watch.page]]\nid = "{PAGE_ID}"\nprovider = "openai"\n'
        f'url = "{fake.url}/pages/openai"\nrequired_markers = ["Deprecation"]\n'
        f"{extra}"
    )
    return path


async def cli(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [*args, "--config", str(root / "seedvault.toml")]
    return await asyncio.to_thread(run_cli, argv, root, ENV if env is None else env)


def manifest_of(root: Path, snapshot: str) -> dict[str, object]:
    shown = run_cli(["show", "--json", snapshot, "--config", str(root / "seedvault.toml")], root)
    assert shown.returncode == 0, shown.stderr
    data: dict[str, object] = json.loads(shown.stdout)
    return data


async def test_ls_by_models_api_id_lists_its_snapshots(
    fake_provider: FakeProvider, node: Node, tmp_path: Path
) -> None:
    """`ls openai-api` lists the snapshots of api/openai-api, as `ls api/openai-api` does."""
    write_config(tmp_path, fake_provider)
    fake_provider.set_models("openai", card("openai", "ex-a"), card("openai", "ex-b"))
    watch = ModelsApiWatch(
        id=API_ID, flavor="openai", base_url=fake_provider.base_url("openai"),
        api_key_env="SV_TEST_PROVIDER_KEY",
    )  # fmt: skip
    polled = await poll_models_api(
        watch, vault=node.vault, catalog=node.catalog, ingestor=node.ingestor, env=ENV,
        policy=MODELS_FAST,
    )  # fmt: skip
    assert polled.status == "captured"

    listed = await cli(tmp_path, "ls", API_ID)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split()[:2] == [polled.snapshot, f"api/{API_ID}"]
    assert (await cli(tmp_path, "ls", f"api/{API_ID}")).stdout == listed.stdout


async def test_show_by_page_id_finds_the_page(
    fake_provider: FakeProvider, node: Node, tmp_path: Path
) -> None:
    """`show openai-deprecations` shows the newest copy of page/openai-deprecations."""
    write_config(tmp_path, fake_provider)
    body = read_sample(SAMPLE).encode()
    url = fake_provider.serve_page("openai", PageAnswer(body=body))
    watch = PageWatch(id=PAGE_ID, provider="openai", url=url, required_markers=["Deprecation"])
    polled = await poll_page(
        watch, vault=node.vault, catalog=node.catalog, ingestor=node.ingestor, policy=PAGES_FAST
    )
    assert polled.status == "captured"

    shown = await cli(tmp_path, "show", PAGE_ID)
    assert shown.returncode == 0, shown.stderr
    assert f"snapshot     {polled.snapshot}" in shown.stdout
    assert f"source       page/{PAGE_ID}" in shown.stdout
    assert "page.md" in shown.stdout
    out = tmp_path / "out"
    exported = await cli(tmp_path, "export", PAGE_ID, "--to", str(out))
    assert exported.returncode == 0, exported.stderr
    assert (out / "page.md").read_bytes() == body


async def test_an_id_of_two_kinds_of_watch_is_refused_naming_their_keys(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    """An id used by a models list, a page and a probes watch: exit 2 naming the three keys
    (ls, show, snapshot), nothing fetched; each key alone is accepted."""
    write_config(
        tmp_path,
        fake_provider,
        '[[watch.models_api]]\nid = "openai"\nflavor = "openai"\n'
        f'base_url = "{fake_provider.base_url("openai")}"\napi_key_env = "SV_TEST_PROVIDER_KEY"\n'
        '[[watch.page]]\nid = "openai"\nprovider = "openai"\n'
        f'url = "{fake_provider.url}/pages/other"\n'
        '[[watch.probes]]\nid = "openai"\napi = "openai"\nmodels = ["chat-small"]\n',
    )
    for command in (["ls", "openai"], ["show", "openai"], ["snapshot", "openai"]):
        done = await cli(tmp_path, *command)
        assert done.returncode == 2, (command, done.stderr)
        assert "more than one watch" in done.stderr
        for key in ("api/openai", "page/openai", "probes/openai/chat-small"):
            assert key in done.stderr, (command, done.stderr)
    assert not fake_provider.requests
    for key in ("api/openai", "page/openai"):  # a key names one watch (nothing archived yet)
        by_key = await cli(tmp_path, "ls", key)
        assert "more than one watch" not in by_key.stderr


async def test_snapshot_by_models_api_id_polls_the_list_once(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    """`snapshot openai-api`: one poll now (trigger manual), as the daemon's; a rerun is
    unchanged; a new model is reported; without the key variable exit 2, nothing recorded."""
    write_config(tmp_path, fake_provider)
    fake_provider.set_models("openai", card("openai", "ex-a"), card("openai", "ex-b"))

    first = await cli(tmp_path, "snapshot", API_ID)
    assert first.returncode == 0, first.stderr
    snapshot = first.stdout.strip()
    assert len(snapshot) == 64
    assert f"new snapshot of api/{API_ID}: 1 file(s)" in first.stderr
    assert "no event" in first.stderr  # the first list is the baseline
    manifest = manifest_of(tmp_path, snapshot)
    assert (manifest["kind"], manifest["trigger"]) == ("api-models", "manual")
    assert fake_provider.list_requests("openai")

    again = await cli(tmp_path, "snapshot", f"api/{API_ID}")  # the key names it too
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == snapshot
    assert "unchanged (no new snapshot)" in again.stderr

    fake_provider.set_models("openai", *(card("openai", m) for m in ("ex-a", "ex-b", "ex-c")))
    added = await cli(tmp_path, "snapshot", API_ID)
    assert added.returncode == 0, added.stderr
    assert "model_added" in added.stderr
    assert manifest_of(tmp_path, added.stdout.strip())["parent"] == snapshot

    asked = len(fake_provider.requests)
    keyless = await cli(tmp_path, "snapshot", API_ID, env={"SV_TEST_PROVIDER_KEY": ""})
    assert keyless.returncode == 2
    assert "SV_TEST_PROVIDER_KEY is not set" in keyless.stderr
    assert len(fake_provider.requests) == asked
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        assert catalog.events(type="list_failed", limit=10).events == []
    finally:
        catalog.close()
    assert KEY not in first.stderr + again.stderr + added.stderr + keyless.stderr


async def test_snapshot_by_page_id_captures_the_page(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    """`snapshot openai-deprecations` fetches the real sample page once (trigger manual) and
    stores it byte for byte; `ls` and `export` find it by the id; a rerun is unchanged; a
    rejected fetch exits 1 and keeps the copy."""
    write_config(tmp_path, fake_provider)
    body = read_sample(SAMPLE).encode()
    fake_provider.serve_page("openai", PageAnswer(body=body))

    first = await cli(tmp_path, "snapshot", PAGE_ID)
    assert first.returncode == 0, first.stderr
    snapshot = first.stdout.strip()
    assert f"new snapshot of page/{PAGE_ID}: 1 file(s)" in first.stderr
    manifest = manifest_of(tmp_path, snapshot)
    assert (manifest["kind"], manifest["trigger"]) == ("page", "manual")
    out = tmp_path / "out"
    assert (await cli(tmp_path, "export", PAGE_ID, "--to", str(out))).returncode == 0
    assert (out / "page.md").read_bytes() == body
    assert [r.path for r in fake_provider.requests] == ["/pages/openai"]

    again = await cli(tmp_path, "snapshot", PAGE_ID)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == snapshot
    assert "unchanged (no new snapshot)" in again.stderr
    listed = await cli(tmp_path, "ls", PAGE_ID)
    assert listed.stdout.split()[:2] == [snapshot, f"page/{PAGE_ID}"]
    with_rev = await cli(tmp_path, "snapshot", f"page/{PAGE_ID}@_")
    assert with_rev.returncode == 2  # a watch's source takes no @revision
    assert len(fake_provider.requests) == 2

    fake_provider.serve_page("openai", PageAnswer(body=b"Deprecation: too short"))
    rejected = await cli(tmp_path, "snapshot", PAGE_ID)  # a failed poll: exit 1, as hf: does
    assert rejected.returncode == 1
    assert f"seedvault: error: {PAGE_ID}: rejected:" in rejected.stderr
    assert "(capture_failed)" in rejected.stderr
    assert (await cli(tmp_path, "ls", PAGE_ID)).stdout.split()[0] == snapshot


async def test_snapshot_by_probes_id_runs_the_suite_as_probe_does(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    """`snapshot PROBES-ID` runs the suite once on each model (trigger manual), as
    `seedvault probe` does; `ls`/`show` find the run by the id (one model)."""
    fake_provider.chat.models["chat-small"] = Model()
    write_config(
        tmp_path,
        fake_provider,
        '[[watch.probes]]\nid = "behaviour"\napi = "openai-api"\nmodels = ["chat-small"]\n'
        "repeat = 2\n",
    )
    done = await cli(tmp_path, "snapshot", "behaviour")
    assert done.returncode == 0, done.stderr
    assert "chat-small: captured: no event" in done.stderr
    snapshot = done.stdout.strip()
    manifest = manifest_of(tmp_path, snapshot)
    assert (manifest["kind"], manifest["trigger"]) == ("api-probes", "manual")
    listed = await cli(tmp_path, "ls", "behaviour")
    assert listed.stdout.split()[:2] == [snapshot, "probes/behaviour/chat-small"]
    shown = await cli(tmp_path, "show", "behaviour")
    assert f"snapshot     {snapshot}" in shown.stdout
    # the API key unset in this shell: exit 2 before any request, for snapshot and probe alike,
    # and no capture_failed event for the node's alerts
    asked = len(fake_provider.chat_requests())
    for argv in (("snapshot", "behaviour"), ("probe", "behaviour")):
        keyless = await cli(tmp_path, *argv, env={"SV_TEST_PROVIDER_KEY": ""})
        assert keyless.returncode == 2, (argv, keyless.stderr)
        assert "SV_TEST_PROVIDER_KEY is not set" in keyless.stderr
    assert len(fake_provider.chat_requests()) == asked
    catalog = Catalog(tmp_path / "catalog.sqlite")
    try:
        assert catalog.events(type="capture_failed", limit=10).events == []
    finally:
        catalog.close()


def test_a_key_the_store_cannot_name_is_a_usage_error(tmp_path: Path) -> None:
    """`show 'x/a b'` (no such source, and no key the store could even hold) is bad input:
    exit 2, "nothing archived", not a store error."""
    (tmp_path / "seedvault.toml").write_text(
        '[vault]\npath = "vault"\n[catalog]\npath = "catalog.sqlite"\n'
    )
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "f.txt").write_text("x")
    assert run_cli(["snapshot", f"dir:{tmp_path / 'm'}"], tmp_path).returncode == 0  # a vault
    for target in ("x/a b", "x/a/", "hf/huggingface.co/model/org/na me"):
        done = run_cli(["show", target], tmp_path)
        assert done.returncode == 2, (target, done.stderr)
        assert "nothing archived" in done.stderr, done.stderr


def test_show_a_hub_key_without_rev_means_main(tmp_path: Path) -> None:
    """`show hf/huggingface.co/model/org/name` is main's snapshot, not a newer tag's (as
    `show hf:org/name`); `@v1` still picks the tag."""
    vault = Vault.open(FsStore(tmp_path / "vault", fsync=False))
    node = open_archive_node(vault, tmp_path / "catalog.sqlite")
    try:
        main = archive_repo(node, "org/name", {"config.json": b'{"a": 1}'})
        tag = archive_repo(
            node, "org/name", {"config.json": b'{"a": 2}'}, revision="v1",
            captured_at="2026-11-28T10:00:00Z",
        )  # fmt: skip
    finally:
        node.ingestor.close()
        node.catalog.close()
    (tmp_path / "seedvault.toml").write_text(
        '[vault]\npath = "vault"\n[catalog]\npath = "catalog.sqlite"\n'
    )
    key = main.source_key
    assert key == "hf/huggingface.co/model/org/name"

    def shown(target: str) -> str:
        done = run_cli(["show", target], tmp_path)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()[0].split()[1]

    assert shown(key) == main.snapshot
    assert shown("hf:org/name") == main.snapshot
    assert shown(f"{key}@v1") == tag.snapshot
    out = tmp_path / "out"
    assert run_cli(["export", key, "--to", str(out)], tmp_path).returncode == 0
    assert (out / "config.json").read_bytes() == b'{"a": 1}'
