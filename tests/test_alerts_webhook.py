"""Webhook alerts against a real aiohttp receiver on loopback that verifies every request with
the ``standardwebhooks`` package: signed JSON, Slack-style text, retries and refusals."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from seedvault.errors import ConfigError
from seedvault.notify import Dispatcher
from seedvault.notify.base import webhook_destination
from seedvault.notify.render import archived_for, build_content
from seedvault.notify.webhook import WebhookNotifier, decode_secret
from tests.test_alerts_support import COMMIT, at, gone, lifecycle, shutdown

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
ENV = {"SEEDVAULT_WEBHOOK_SECRET": SECRET}


@dataclass
class Receiver:
    """Answers with ``statuses`` in turn (then 204); 401 when the signature does not verify."""

    secret: str = SECRET
    statuses: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    verified: list[bool] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        self.requests.append((headers, body))
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            self.verified.append(False)
            return web.Response(status=401)
        self.verified.append(True)
        status = self.statuses.pop(0) if self.statuses else 204
        extra = {"Retry-After": "120"} if status == 429 else {}
        return web.Response(status=status, headers=extra)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.requests]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/{token}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    rec.url = f"http://127.0.0.1:{port}/hooks/secret-path-token"
    yield rec
    await runner.cleanup()


def webhook_toml(url: str, **keys: Any) -> str:
    lines = ["[[alerts.webhook]]", f'url = "{url}"']
    for key, value in keys.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


async def test_signed_json_webhook_verifies_with_standardwebhooks(
    receiver: Receiver, nodes: Any
) -> None:
    """webhook-id = event id, a fresh webhook-timestamp, a v1 signature that the reference
    implementation accepts; the payload carries the event, the archive and the commands."""
    toml = webhook_toml(
        receiver.url,
        secret_env="SEEDVAULT_WEBHOOK_SECRET",
        events=["repo_unavailable", "deprecated"],
    )
    node = nodes(toml, env=ENV)
    snapshot = node.archive()
    d = node.dispatcher(env=ENV)
    await d.run_once(at(timedelta(0)))
    event = gone()
    node.record(event, at(timedelta(minutes=1)))
    node.record(lifecycle("model_added", "gpt-new", None), at(timedelta(minutes=1)))
    result = await d.run_once(at(timedelta(minutes=2)))
    await d.aclose()
    assert result.sent == 1
    assert receiver.verified == [True]
    headers, _body = receiver.requests[0]
    assert headers["webhook-id"] == event.id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert headers["webhook-signature"].startswith("v1,")
    [doc] = receiver.bodies()
    assert doc["type"] == "repo_unavailable"
    assert doc["data"]["event"]["id"] == event.id
    assert doc["data"]["archived"][0]["snapshot"] == snapshot
    assert (
        f"HF_ENDPOINT=https://node.example.edu:8470 hf download org/m --revision {COMMIT}"
        in doc["data"]["retrieve"]
    )


async def test_tampered_body_or_stale_timestamp_fails_verification(
    receiver: Receiver, nodes: Any
) -> None:
    """The reference verifier refuses a changed body and a timestamp 10 minutes old; a node
    whose clock is that far off gets 401, a permanent refusal: dead-lettered at once."""
    node = nodes(webhook_toml(receiver.url, secret_env="SEEDVAULT_WEBHOOK_SECRET"), env=ENV)
    cfg = node.config.alerts.webhook[0]
    dest = webhook_destination(cfg, "alerts.webhook[0]")
    good = WebhookNotifier(dest, cfg, secret=decode_secret(SECRET))
    stale = WebhookNotifier(
        dest, cfg, secret=decode_secret(SECRET), wall_clock=lambda: time.time() - 600
    )
    d = Dispatcher(
        node.vault, node.catalog, [stale], public_url="http://n", retry_for_s=3600, rng=lambda: 0
    )
    await d.run_once(at(timedelta(0)))
    node.record(gone(), at(timedelta(minutes=1)))
    result = await d.run_once(at(timedelta(minutes=2)))
    await d.aclose()
    assert receiver.verified == [False]
    assert result.dead_lettered == 1
    assert "HTTP 401" in (node.catalog.outbox.rows(state="dead")[0].last_error or "")

    [row] = node.catalog.outbox.rows()
    content = build_content(row, [archived_for(node.catalog, gone().to_json("x"))], "http://n")
    body, headers = good.request(row, content)
    hook = Webhook(SECRET)
    assert hook.verify(body, headers)["data"]["event"]["id"] == gone().id
    with pytest.raises(WebhookVerificationError):
        hook.verify(body.replace(b"repo_unavailable", b"repo_available!!"), headers)
    body, headers = stale.request(row, content)
    with pytest.raises(WebhookVerificationError, match="too old"):
        hook.verify(body, headers)


async def test_server_errors_are_retried_and_4xx_dead_lettered(
    receiver: Receiver, nodes: Any
) -> None:
    """503 and 429 (honouring Retry-After) are retried with the same webhook-id until a 2xx;
    a 400 is permanent: dead-lettered on the first try."""
    receiver.statuses = [503, 429]
    node = nodes(webhook_toml(receiver.url, secret_env="SEEDVAULT_WEBHOOK_SECRET"), env=ENV)
    d = node.dispatcher(env=ENV)
    await d.run_once(at(timedelta(0)))
    node.record(gone(), at(timedelta(minutes=1)))
    await d.run_once(at(timedelta(minutes=2)))  # 503
    await d.run_once(at(timedelta(minutes=5)))  # 429, Retry-After: 120
    [row] = node.catalog.outbox.rows()
    assert row.next_attempt_at >= "2031-03-03T06:07:00"
    await d.run_once(at(timedelta(minutes=6)))  # not due yet
    assert len(receiver.requests) == 2
    await d.run_once(at(timedelta(minutes=8)))  # 204
    assert [h["webhook-id"] for h, _ in receiver.requests] == [gone().id] * 3
    assert node.catalog.outbox.rows()[0].state == "sent"

    receiver.statuses = [400]
    node.record(gone(evidence="t2"), at(timedelta(minutes=9)))
    result = await d.run_once(at(timedelta(minutes=10)))
    await d.aclose()
    assert result.dead_lettered == 1
    assert node.catalog.outbox.counts() == {"pending": 0, "sent": 1, "dead": 1}


async def test_slack_format_sends_escaped_text_only(receiver: Receiver, nodes: Any) -> None:
    """``format = "slack"`` posts ``{"text": …}`` with Slack's three characters escaped."""
    toml = webhook_toml(receiver.url, secret_env="SEEDVAULT_WEBHOOK_SECRET", format="slack")
    node = nodes(toml, env=ENV)
    d = node.dispatcher(env=ENV)
    await d.run_once(at(timedelta(0)))
    event = lifecycle(
        "deprecated", "<b>gpt-x</b>", {"shutdown": shutdown("2031-09-01")}, quote="a & b <!here>"
    )
    node.record(event, at(timedelta(minutes=1)))
    await d.run_once(at(timedelta(minutes=2)))
    await d.aclose()
    [doc] = receiver.bodies()
    assert set(doc) == {"text"}
    text = doc["text"]
    assert "&lt;b&gt;gpt-x&lt;/b&gt;" in text
    assert "a &amp; b &lt;!here&gt;" in text
    assert "<" not in text
    assert event.id in text


async def test_unsigned_without_secret_env(receiver: Receiver, nodes: Any) -> None:
    """Without ``secret_env`` the POST still carries webhook-id and webhook-timestamp."""
    receiver.secret = base64.b64encode(b"unused").decode()
    node = nodes(webhook_toml(receiver.url))
    d = node.dispatcher()
    await d.run_once(at(timedelta(0)))
    node.record(gone(), at(timedelta(minutes=1)))
    await d.run_once(at(timedelta(minutes=2)))
    await d.aclose()
    headers, _ = receiver.requests[0]
    assert headers["webhook-id"] == gone().id
    assert "webhook-timestamp" in headers
    assert "webhook-signature" not in headers


def test_secret_config_errors_name_the_key(nodes: Any) -> None:
    """An unset or non-base64 secret is a config error naming the key path, refused when the
    config loads (not first when the dispatcher starts); the message never holds the value."""
    toml = webhook_toml("https://hooks.example.edu/x", secret_env="HOOK_SECRET")
    with pytest.raises(ConfigError, match=r"alerts\.webhook\[0\]\.secret_env"):
        nodes(toml, env={})  # refused when the config loads
    for bad, why in (("whsec_***", "not base64"), ("whsec_", "empty"), ("s3cr3t-v@lue", "base64")):
        with pytest.raises(ConfigError) as err:
            nodes(toml, env={"HOOK_SECRET": bad})  # refused when the config loads, too
        message = str(err.value)
        assert message.startswith("alerts.webhook[0].secret_env: "), message
        assert why in message
        assert "***" not in message
        assert "s3cr3t" not in message
    assert decode_secret(SECRET) == decode_secret(SECRET.removeprefix("whsec_"))
