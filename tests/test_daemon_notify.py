"""sd_notify: the daemon tells the NOTIFY_SOCKET it created READY=1 once serving, then
STOPPING=1 on SIGTERM (systemd ``Type=notify``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

from seedvault import sdnotify
from tests.test_daemon_support import Daemons, free_port, write_config


async def receive(sock: socket.socket) -> str:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), 30.0)
    return data.decode()


async def test_ready_then_stopping_over_notify_socket(tmp_path: Path) -> None:
    """READY=1 arrives when /healthz already answers; STOPPING=1 follows SIGTERM; exit 0."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.setblocking(False)
        config = write_config(tmp_path, None, free_port())
        with Daemons() as daemons:
            daemon = daemons.start(tmp_path, config, {"NOTIFY_SOCKET": str(path)})
            ready = await receive(sock)
            assert "READY=1" in ready.splitlines()
            assert any(line.startswith("STATUS=serving on ") for line in ready.splitlines())
            assert (await daemon.get("/healthz"))[0] == 200

            daemon.signal(signal.SIGTERM)
            stopping = await receive(sock)
            assert "STOPPING=1" in stopping.splitlines()
            assert await daemon.wait_exit() == 0


def test_abstract_namespace_socket() -> None:
    """A NOTIFY_SOCKET starting with @ is an abstract-namespace address."""
    name = f"@seedvault-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(b"\0" + name[1:].encode())
        sock.settimeout(5)
        assert sdnotify.notify(sdnotify.READY, sdnotify.status("a\nb"), env={"NOTIFY_SOCKET": name})
        assert sock.recv(4096) == b"READY=1\nSTATUS=a b"


def test_no_socket_is_a_no_op(tmp_path: Path) -> None:
    """Without NOTIFY_SOCKET nothing is sent; a socket nobody listens on is logged, not raised."""
    assert not sdnotify.notify(sdnotify.READY, env={})
    assert not sdnotify.notify(sdnotify.READY, env={"NOTIFY_SOCKET": str(tmp_path / "gone")})
