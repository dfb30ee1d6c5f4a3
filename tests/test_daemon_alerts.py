"""End to end: `seedvault run` watching the fake Hub mails the list when a repo is gated."""

from __future__ import annotations

from pathlib import Path

from tests.fakehub import FakeHub
from tests.test_alerts_support import SmtpSink, email_toml
from tests.test_daemon_support import Daemons, free_port, hf_watch, poll_until, write_config


async def test_gated_repo_reaches_the_mailing_list(
    fake_hub: FakeHub, smtp: SmtpSink, tmp_path: Path
) -> None:
    """The daemon archives a repo, the Hub gates it, and exactly one urgent `repo_gated` mail
    reaches the list through the daemon's own dispatcher; /metrics shows the outbox drained
    and the alert counted as sent."""
    repo = fake_hub.create_repo("org/m")
    repo.commit({"config.json": b'{"v": 1}'})
    config = write_config(
        tmp_path,
        fake_hub,
        free_port(),
        hf_watch("org/m"),
        extra=email_toml(smtp.port, severity="urgent"),
    )
    with Daemons() as daemons:
        daemon = daemons.start(tmp_path, config)
        await daemon.wait_log("daemon_ready")
        await daemon.wait_metric(
            "seedvault_captures_total", 1, outcome="captured", watch="hf:org/m"
        )
        repo.gate("manual")
        await poll_until("the repo_gated mail", lambda: smtp.messages, within_s=90)
        await daemon.wait_metric("seedvault_alerts_sent_total", 1)
        scraped = await daemon.metrics()  # a KeyError if a series is missing
        assert scraped[("seedvault_outbox_size", frozenset())] == 0
        assert scraped[("seedvault_alerts_sent_total", frozenset())] == 1
        assert scraped[("seedvault_alerts_dead_lettered_total", frozenset())] == 0
        assert await daemon.stop() == 0
    assert len(smtp.messages) == 1
    message = smtp.messages[0].message
    assert "org/m" in message["Subject"]
    assert "gated" in message["Subject"].lower()
    assert message["Auto-Submitted"] == "auto-generated"
    assert "seedvault export" in smtp.messages[0].text()
