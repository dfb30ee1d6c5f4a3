"""`seedvault run` schedules deprecation-page watches: the page is archived and served."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.providers.fakeprovider import FakeProvider, PageAnswer, fake_provider
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
        await daemon.wait_log("daemon_ready")
        await daemon.wait_metric(
            "seedvault_captures_total", 1, outcome="captured", watch="page:openai-deprecations"
        )
        status, body = await daemon.get("/v1/deprecations?provider=openai")
        assert status == 200
        assert "ex-chat-0101" in body
        assert await daemon.stop() == 0
    listed = await ls_json(tmp_path)
    assert [row["source"] for row in listed] == ["page/openai-deprecations"]
