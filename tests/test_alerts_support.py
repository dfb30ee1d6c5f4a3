"""Shared pieces of the alerts tests (no tests here): a real SMTP sink, a node, a fake clock.

``SmtpSink`` is a real aiosmtpd server on 127.0.0.1 (a free port, stopped at teardown) that
keeps every message it accepted; it can be started late (to simulate an SMTP outage), refuse
with a chosen reply, cut the connection after taking a message, and require AUTH.
``AlertNode`` is a vault + catalog + config on disk with helpers to record events at chosen
times and to build a dispatcher on an injected clock.
"""

from __future__ import annotations

import contextlib
import email
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from seedvault.catalog import Catalog
from seedvault.config import Config, load_config
from seedvault.events import AT_FORMAT, Event
from seedvault.manifest import FileEntry, Manifest
from seedvault.notify import Dispatcher
from seedvault.store.fs import FsStore
from seedvault.vault import Vault

T0 = datetime(2031, 3, 3, 6, 0, tzinfo=UTC)
"""The tests' "now" at start: 06:00 UTC, two hours before the default digest time."""
HUB_KEY = "hf/huggingface.co/model/org/m"
PAGE_KEY = "page/openai-deprecations"
COMMIT = "a" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    """One message the sink accepted."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage

    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]

    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]


def received(envelope: Envelope) -> Received:
    """What an SMTP server got in ``envelope``, parsed."""
    raw = bytes(envelope.original_content or b"")
    message = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(message, EmailMessage)
    return Received(str(envelope.mail_from), list(envelope.rcpt_tos), raw, message)


@dataclass
class SmtpSink:
    """A real SMTP server on loopback keeping what it accepted."""

    port: int = field(default_factory=free_port)
    messages: list[Received] = field(default_factory=list)
    reply: str = "250 OK"
    password: str | None = None
    logins: list[str] = field(default_factory=list)
    cut: int = 0
    """The next ``cut`` messages are kept, then the connection is cut before the reply: the
    server accepted them, the sender never hears it."""
    _controller: Controller | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if not self.reply.startswith("250"):
            return self.reply
        got = received(envelope)
        with self._lock:
            self.messages.append(got)
            cut, self.cut = self.cut > 0, max(self.cut - 1, 0)
        if cut and server.transport is not None:
            server.transport.abort()
        return "250 OK"

    def _auth(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and data.password.decode() == self.password
        if isinstance(data, LoginPassword):
            self.logins.append(data.login.decode())
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.password is not None:
            kwargs.update(authenticator=self._auth, auth_require_tls=False)
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def message_ids(self) -> list[str]:
        return [str(m.message["Message-ID"]) for m in self.messages]


@contextlib.contextmanager
def running_sink(start: bool = True, **kwargs: Any) -> Iterator[SmtpSink]:
    """An SMTP sink (started unless ``start`` is False: then connections are refused)."""
    sink = SmtpSink(**kwargs)
    if start:
        sink.start()
    try:
        yield sink
    finally:
        sink.stop()


def email_toml(port: int, **keys: Any) -> str:
    """One ``[[alerts.email]]`` table pointing at ``port`` on loopback."""
    values = {
        "to": ["ai-archive@lists.example.edu"],
        "from": "seedvault@node.example.edu",
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "tls": "none",
        **keys,
    }
    lines = ["[[alerts.email]]"]
    for key, value in values.items():
        if isinstance(value, str):
            lines.append(f"{key} = {value!r}".replace("'", '"'))
        elif isinstance(value, list):
            items = ", ".join(f'"{v}"' for v in value)
            lines.append(f"{key} = [{items}]")
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


@dataclass
class AlertNode:
    """A vault and catalog on disk with a config; events recorded at chosen times."""

    root: Path
    config: Config
    vault: Vault
    catalog: Catalog

    @classmethod
    def create(
        cls, root: Path, alerts_toml: str, env: dict[str, str] | None = None, retry_for: str = "1h"
    ) -> AlertNode:
        root.mkdir(parents=True, exist_ok=True)
        path = root / "seedvault.toml"
        path.write_text(
            '[vault]\npath = "vault"\n[catalog]\npath = "catalog.sqlite"\n'
            '[server]\npublic_url = "https://node.example.edu:8470"\n'
            f'[alerts]\nretry_for = "{retry_for}"\n' + alerts_toml,
            encoding="utf-8",
        )
        config = load_config(path, env=env or {})
        vault = Vault.open(FsStore(Path(config.vault.path)))
        catalog = Catalog(config.catalog.path)
        catalog.catch_up(vault)
        return cls(root, config, vault, catalog)

    def dispatcher(self, env: dict[str, str] | None = None, **options: Any) -> Dispatcher:
        options.setdefault("retry_base_s", 60.0)
        options.setdefault("retry_max_s", 600.0)
        options.setdefault("rng", lambda: 0.0)
        return Dispatcher.from_config(self.config, self.vault, self.catalog, env=env, **options)

    def record(self, event: Event, at: datetime) -> dict[str, Any]:
        """``events.record_event`` with a chosen ``at`` (journal first, then the catalog)."""
        doc = event.to_json(at.strftime(AT_FORMAT))
        self.vault.journal("event", event=doc)
        self.catalog.add_event(doc)
        return doc

    def archive(self, source_key: str = HUB_KEY, commit: str = COMMIT) -> str:
        """Commit a small hub snapshot for ``source_key`` and index it; returns its id."""
        repo = source_key.split("/", 3)[3]
        manifest = Manifest.build(
            kind="hf-model",
            source={
                "key": source_key,
                "endpoint": "https://huggingface.co",
                "repo": repo,
                "revision": "main",
                "commit": commit,
            },
            captured_at="2031-03-01T10:00:00Z",
            files=[FileEntry("config.json", 2, "b" * 64, "c" * 64)],
        )
        snapshot = self.vault.commit(manifest).snapshot
        self.catalog.catch_up(self.vault)
        return snapshot

    def journal(self, record_type: str) -> list[dict[str, Any]]:
        return [r for _, r in self.vault.journal_records() if r.get("type") == record_type]

    def close(self) -> None:
        self.catalog.close()


@contextlib.contextmanager
def alert_nodes(tmp_path: Path) -> Iterator[Any]:
    """A factory of AlertNodes under ``tmp_path`` (closed on exit)."""
    made: list[AlertNode] = []

    def make(alerts_toml: str, **kwargs: Any) -> AlertNode:
        node = AlertNode.create(tmp_path / f"node{len(made)}", alerts_toml, **kwargs)
        made.append(node)
        return node

    try:
        yield make
    finally:
        for node in made:
            node.close()


def gone(repo: str = "org/m", evidence: str = "t1", source: str = HUB_KEY) -> Event:
    """An urgent hub event: the repo became unavailable."""
    return Event(
        "repo_unavailable", source, {"repo": repo, "type": "model"}, evidence, "ok", "unavailable"
    )


def lifecycle(
    event_type: str,
    model: str,
    after: Any,
    before: Any = None,
    evidence: str = "p1",
    quote: str = "gpt-x will be shut down",
) -> Event:
    """A provider lifecycle event about ``openai/<model>`` from the deprecations page."""
    payload = {"quote": quote, "source_url": "https://platform.openai.com/docs/deprecations"}
    subject = {"provider": "openai", "model": model}
    return Event(event_type, PAGE_KEY, subject, evidence, before, after, payload)


def shutdown(date: str) -> dict[str, str]:
    return {"date": date, "qualifier": "exact"}


def at(delta: timedelta) -> datetime:
    return T0 + delta
