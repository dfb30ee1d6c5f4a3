"""Start and stop a SeaweedFS ``weed mini`` S3 server on loopback, without pytest.

One start line for the test fixture (``tests/seaweed.py``) and the benchmarks (``bench/``), as
``shared/reference/seaweedfs.md`` gives it: telemetry off, admin UI off, every service on a free
loopback port, ``-s3.autoCreateBucket=false`` (SeaweedFS would otherwise create a missing bucket
on the first PutObject from an admin identity, which real S3 never does) and
``-volume.max=1000``: each bucket takes a volume of its own, and ``weed mini`` otherwise caps
the volumes at free disk / volume size (36 with 37 GB free, measured), so a test suite's
buckets would fail with HTTP 500 on a machine with less free disk. Volumes are sparse (150
buckets of one object each: 2.4 MB on disk). The server runs in its own process group with
its output in ``weed.log``; on exit it is stopped (SIGTERM, then SIGKILL), its sockets in
``/tmp`` and its data are removed, and ``weed.log`` is kept.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
SERVICES = ("s3", "master", "volume", "filer", "webdav", "admin")
GRPC_PORT_OFFSET = 10000
# HTTP ports below 22768 keep both a port and its gRPC twin under Linux's ephemeral range
# (32768+), where outgoing connections could take them between the check and weed's bind.
PORT_RANGE = (12000, 22768)
READY_TIMEOUT_S = 60.0
POLL_INTERVAL_S = 0.05
STOP_GRACE_S = 10.0
LOG_TAIL_BYTES = 4000
# weed puts these sockets in /tmp whatever TMPDIR says, and leaves them behind on exit.
SOCKETS = {"filer": "filer-{port}", "s3": "s3-{port}"}
GRPC_SOCKETS = ("master", "volume", "filer", "s3", "admin")


class WeedNotReady(RuntimeError):
    """``weed`` exited or did not answer in time (the message holds its log's tail)."""


@dataclass(frozen=True)
class Weed:
    """A running ``weed mini``: its S3 endpoint and its process id."""

    endpoint_url: str
    pid: int


def weed_binary() -> Path | None:
    """``weed`` next to this interpreter (the venv's ``bin/``), else on ``PATH``."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """``count`` distinct free HTTP ports, each with its gRPC port (+10000) free as well."""
    chosen: list[int] = []
    taken: set[int] = set()
    for _ in range(1000):
        port = random.randrange(*PORT_RANGE)
        grpc = port + GRPC_PORT_OFFSET
        if port in taken or grpc in taken or grpc > 65535:
            continue
        if _port_is_free(port) and _port_is_free(grpc):
            chosen.append(port)
            taken.update((port, grpc))
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"found only {len(chosen)} of {count} free port pairs on {HOST}")


def _answers(port: int) -> bool:
    """Whether an HTTP server answers ``GET /`` on ``port`` (any status: 403 is fine)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=1)
    try:
        conn.request("GET", "/")
        conn.getresponse().read()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
    return True


def _log_tail(log: Path) -> str:
    try:
        data = log.read_bytes()
    except OSError as exc:
        return f"(no log: {exc})"
    return data[-LOG_TAIL_BYTES:].decode(errors="replace")


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group of ``proc`` (started with ``start_new_session``), SIGKILL
    if it has not exited after the grace period. The benchmarks stop their children with it."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _remove_sockets(ports: dict[str, int]) -> None:
    """Remove the sockets our weed left in /tmp (named after our ports, so only ours)."""
    names = [pattern.format(port=ports[svc]) for svc, pattern in SOCKETS.items()]
    names += [f"{svc}-grpc-{ports[svc] + GRPC_PORT_OFFSET}" for svc in GRPC_SOCKETS]
    for name in names:
        path = Path("/tmp") / f"seaweedfs-{name}.sock"
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(path.lstat().st_mode):
                path.unlink()


@contextlib.contextmanager
def weed_mini(
    workdir: Path, binary: Path, *, bucket: str, access_key: str, secret_key: str
) -> Iterator[Weed]:
    """``weed mini`` with data in ``workdir/data`` and admin keys ``access_key``/``secret_key``
    (``bucket`` is created at start), stopped and cleaned up at the end.

    Raises:
        WeedNotReady: it exited or did not answer within :data:`READY_TIMEOUT_S`.
    """
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True)
    log = workdir / "weed.log"
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    command = [
        str(binary),
        "mini",
        f"-dir={data_dir}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        "-master.telemetry=false",
        "-admin.ui=false",
        *(f"-{svc}.port={port}" for svc, port in ports.items()),
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",
        f"-bucket={bucket}",
        "-volume.max=1000",
    ]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "TMPDIR": str(workdir),  # weed's own logs and WebDAV cache go here, not to /tmp
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _answers(ports["s3"]):
            if proc.poll() is not None:
                raise WeedNotReady(f"weed exited with {proc.returncode}; {log}:\n{_log_tail(log)}")
            if time.monotonic() > deadline:
                raise WeedNotReady(
                    f"weed not ready after {READY_TIMEOUT_S:.0f} s; {log}:\n{_log_tail(log)}"
                )
            time.sleep(POLL_INTERVAL_S)
        yield Weed(f"http://{HOST}:{ports['s3']}", proc.pid)
    finally:
        stop_group(proc)
        _remove_sockets(ports)
        shutil.rmtree(data_dir, ignore_errors=True)  # keep weed.log, drop the volumes
