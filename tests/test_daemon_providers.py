"""`seedvault run` schedules deprecation-page watches: the page is archived and served."""

from __future__ import annotations

from pathlib import Path

from seedvault.catalog import Catalog
from seedvault.events import record_event
from seedvault.store.fs import FsStore
from seedvault.vault import Vault
from tests.fixtures.providers.fakechat import Model
from tests.fixtures.providers.fakeprovider import (
    KEY,
    FakeProvider,
    PageAnswer,
    card,
    fake_provider,
)
from tests.test_alerts_support import lifecycle, shutdown
from tests.test_daemon_support import Daemons, free_port, ls_json, write_config

__all__ = ["fake_provider"]

PAGE = (Path(__file__).parent / "fixtures" / "providers" / "openai-page.md").read_bytes()


async def test_run_archives_a_watched_deprecation_page(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    """A [[watch.page]] runs on schedule: the page becomes a snapshot of source page/<id>, the
    poll is counted in /metrics, and /v1/deprecations serves its records."""
    url = fake_provider.serve_page("deprecations", *[PageAnswer(body=PAGE)] * 50)
    watch = (
        '[[watch.page]]\nid = "openai-deprecations"\nprovider = "openai"\n'
        f'url = "{url}"\nevery = "2s"\nmin_bytes = 500\n'
        'required_markers = ["Deprecation history"]\n'
    )
    config = write_config(tmp_path, None, free_port(), watch)
    with Daemons() as daemons:
        daemon = daemons.start(tmp_path, config)
        ready = await daemon.wait_log("daemon_ready")
        assert ready["watches"] == 1  # a page watch counts as a watch
        await daemon.wait_metric(
            "seedvault_captures_total", 1, outcome="captured", watch="page:openai-deprecations"
        )
        assert (await daemon.metrics())[("seedvault_watches", frozenset())] == 1
        status, body = await daemon.get("/v1/deprecations?provider=openai")
        assert status == 200
        assert "ex-chat-0101" in body
        assert await daemon.stop() == 0
    listed = await ls_json(tmp_path)
    assert [row["source"] for row in listed] == ["page/openai-deprecations"]


async def test_run_probes_models_on_schedule_and_rescues_a_deprecated_one(
    fake_provider: FakeProvider, tmp_path: Path
) -> None:
    """A [[watch.probes]] runs its suite on schedule (a snapshot of probes/<id>/<model>), and a
    deprecation recorded for the model makes the rescue check run the suite again, labelled
    last-known-behaviour with trigger "rescue"."""
    fake_provider.chat.models["chat-small"] = Model()
    fake_provider.set_models("openai", card("openai", "chat-small"))
    # the deprecation is known before the daemon starts (journal + catalog, as a page poll
    # would have recorded it)
    vault = Vault.open(FsStore(tmp_path / "vault"))
    catalog = Catalog(tmp_path / "catalog.sqlite")
    record_event(
        vault, catalog, lifecycle("deprecated", "chat-small", {"shutdown": shutdown("2031-01-01")})
    )
    catalog.close()
    watch = (
        f'[[watch.models_api]]\nid = "api"\nflavor = "openai"\n'
        f'base_url = "{fake_provider.base_url("openai")}"\napi_key_env = "SV_TEST_PROVIDER_KEY"\n'
        'every = "1h"\n'
        '[[watch.probes]]\nid = "probes"\napi = "api"\nmodels = ["chat-small"]\nevery = "1h"\n'
        "repeat = 2\n"
    )
    config = write_config(tmp_path, None, free_port(), watch)
    with Daemons() as daemons:
        daemon = daemons.start(tmp_path, config, env={"SV_TEST_PROVIDER_KEY": KEY})
        await daemon.wait_log("daemon_ready")
        await daemon.wait_metric(
            "seedvault_captures_total", 2, outcome="captured", watch="probes:probes"
        )
        assert await daemon.stop() == 0
    catalog = Catalog(tmp_path / "catalog.sqlite")
    rows = catalog.snapshots("probes/probes/chat-small")
    catalog.close()
    assert len(rows) == 2
    vault = Vault.open(FsStore(tmp_path / "vault"))
    manifests = [vault.snapshot(r.id) for r in rows]
    assert sorted(m.trigger or "" for m in manifests) == ["rescue", "scheduled"]
    rescue = next(m for m in manifests if m.trigger == "rescue")
    assert rescue.labels == ("last-known-behaviour",)
    assert rescue.upstream["exchanges"] == 5 * 5  # five probes, five repeats
