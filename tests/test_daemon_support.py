"""Shared pieces of the daemon tests (no tests here): `seedvault run` as a real subprocess.

:class:`Daemon` starts ``seedvault run`` (the real entry point), collects its JSON log lines
from stdout in a reader thread, and offers async waits that poll for a condition with a
deadline — a log event, a metric value — never a fixed sleep. ``with Daemons() as daemons:``
kills every process a test started that is still alive when the block ends. The fake Hub runs
in the test's event loop, so everything here is async or runs blocking work in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakehub import FakeHub
from tests.helpers import SEEDVAULT, run_cli

DEADLINE_S = 30.0
_SERIES = re.compile(r"^(seedvault_[a-z0-9_]+)(?:\{(.*)\})? (\S+)$")
_LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(
    root: Path, hub: FakeHub | None, port: int, watches: str = "", extra: str = ""
) -> Path:
    """A daemon config in ``root``: fs vault, the fake Hub (anonymous), the server on ``port``."""
    endpoint = hub.endpoint if hub is not None else "http://127.0.0.1:9"
    path = root / "seedvault.toml"
    path.write_text(
        '[vault]\npath = "vault"\n[catalog]\npath = "catalog.sqlite"\n'
        f'[server]\nlisten = "127.0.0.1:{port}"\npublic_url = "http://127.0.0.1:{port}"\n'
        f'[hub]\nendpoint = "{endpoint}"\ntoken_env = "SEEDVAULT_TEST_TOKEN_NOT_SET"\n'
        f"{extra}\n{watches}"
    )
    return path


def hf_watch(repo: str, every: str = "2s", **keys: str) -> str:
    lines = [f'[[watch.hf]]\nrepo = "{repo}"\nevery = "{every}"']
    lines += [f'{k} = "{v}"' for k, v in keys.items()]
    return "\n".join(lines) + "\n"


def parse_metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text → {(name, labels): value}."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        match = _SERIES.match(line)
        if match:
            labels = frozenset(_LABEL.findall(match.group(2) or ""))
            out[(match.group(1), labels)] = float(match.group(3))
    return out


async def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``seedvault ARGS --config root/seedvault.toml`` in a thread (the loop keeps serving)."""
    return await asyncio.to_thread(run_cli, [*args, "--config", str(root / "seedvault.toml")], root)


async def ls_json(root: Path) -> list[dict[str, Any]]:
    done = await cli(root, "ls", "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


async def poll_until(what: str, check: Callable[[], Any], within_s: float = DEADLINE_S) -> Any:
    """Call ``check`` (sync) until it returns something truthy; fail after ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Daemon:
    """One ``seedvault run`` subprocess."""

    def __init__(
        self,
        root: Path,
        config: Path,
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
    ) -> None:
        self.root, self.config = root, config
        listen = re.search(r'listen = "127\.0\.0\.1:(\d+)"', config.read_text())
        assert listen is not None, "the config must listen on 127.0.0.1"
        self.port = int(listen.group(1))
        full_env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
        full_env.update(env or {})
        self.records: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self.proc = subprocess.Popen(
            argv or [*SEEDVAULT, "run", "--config", str(config)],
            cwd=root,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.records.append(json.loads(line))
            except ValueError:
                self.records.append({"event": "non_json_line", "line": line.rstrip()})

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logged(self, event: str, **fields: Any) -> list[dict[str, Any]]:
        return [
            r
            for r in list(self.records)
            if r.get("event") == event and all(r.get(k) == v for k, v in fields.items())
        ]

    def tail(self) -> str:
        lines = [json.dumps(r) for r in self.records[-30:]] + self.stderr[-30:]
        return "\n".join(lines)

    async def wait_log(
        self, event: str, within_s: float = DEADLINE_S, **fields: Any
    ) -> dict[str, Any]:
        """The first log record ``event`` with ``fields``; fails when the process exits first."""

        def check() -> dict[str, Any] | None:
            found = self.logged(event, **fields)
            if found:
                return found[0]
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited ({self.proc.returncode}):\n{self.tail()}")
            return None

        try:
            result: dict[str, Any] = await poll_until(f"log {event} {fields}", check, within_s)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.tail()}") from None
        return result

    async def get(self, path: str) -> tuple[int, str]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.url + path, timeout=aiohttp.ClientTimeout(total=10)) as resp,
        ):
            return resp.status, await resp.text()

    async def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        status, text = await self.get("/metrics")
        assert status == 200
        return parse_metrics(text)

    async def metric(self, name: str, **labels: str) -> float:
        return (await self.metrics()).get((name, frozenset(labels.items())), 0.0)

    async def wait_metric(
        self, name: str, at_least: float, within_s: float = DEADLINE_S, **labels: str
    ) -> float:
        deadline = time.monotonic() + within_s
        while True:
            try:
                value = await self.metric(name, **labels)
            except aiohttp.ClientConnectionError:  # not listening yet
                value = 0.0
            if value >= at_least:
                return value
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{name}{labels} = {value}, wanted {at_least}\n{self.tail()}")
            await asyncio.sleep(0.1)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait_exit(self, within_s: float = DEADLINE_S) -> int:
        await poll_until("the daemon to exit", lambda: self.proc.poll() is not None, within_s)
        await asyncio.to_thread(self._close)
        return self.proc.returncode

    def _close(self) -> None:
        for reader in self._readers:
            reader.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()

    async def stop(self, within_s: float = DEADLINE_S) -> int:
        """SIGTERM, then the exit status."""
        self.signal(signal.SIGTERM)
        return await self.wait_exit(within_s)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self._close()


class Daemons:
    """``with Daemons() as daemons:`` — every daemon started is killed on the way out."""

    def __init__(self) -> None:
        self.started: list[Daemon] = []

    def start(
        self,
        root: Path,
        config: Path,
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
    ) -> Daemon:
        daemon = Daemon(root, config, env, argv)
        self.started.append(daemon)
        return daemon

    def __enter__(self) -> Daemons:
        return self

    def __exit__(self, *exc_info: object) -> None:
        for daemon in self.started:
            daemon.kill()
