"""sd_notify: tell a service manager (systemd ``Type=notify``) that the daemon is ready or stopping.

The protocol is one datagram of ``KEY=VALUE`` lines to the ``AF_UNIX`` socket named by
``$NOTIFY_SOCKET``; a name starting with ``@`` is in the abstract namespace (``\\0`` + rest).
Without ``$NOTIFY_SOCKET`` (not started by systemd) every call is a no-op. A failure to send is
logged and never raised: a daemon must not die because its supervisor went away.
"""

from __future__ import annotations

import os
import socket

import structlog

log = structlog.get_logger(__name__)

READY = "READY=1"
STOPPING = "STOPPING=1"
RELOADING = "RELOADING=1"


def _address(name: str) -> str | bytes:
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


def notify(*states: str, env: dict[str, str] | None = None) -> bool:
    """Send ``states`` (``READY=1``, ``STATUS=…``) in one datagram; True if one was sent."""
    name = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
    if not name or not states:
        return False
    if not (name.startswith("/") or name.startswith("@")):
        log.warning("sd_notify_unsupported_socket", socket=name)
        return False
    message = "\n".join(states).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(_address(name))
            sock.sendall(message)
    except OSError as exc:
        log.warning("sd_notify_failed", socket=name, error=exc.strerror or str(exc))
        return False
    return True


def status(text: str) -> str:
    """A ``STATUS=`` line (one line: newlines would start another assignment)."""
    return "STATUS=" + " ".join(text.split())
