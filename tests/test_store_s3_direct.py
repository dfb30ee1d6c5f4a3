"""The S3 store's direct GET path: signed exactly as botocore signs, used only where it may be,
and every answer it cannot take whole left to botocore (real SeaweedFS, and a loopback server
that misbehaves on purpose)."""

from __future__ import annotations

import contextlib
import datetime
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import botocore.auth
import pytest
import structlog
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from seedvault.errors import ObjectNotFound
from seedvault.store import s3_direct
from seedvault.store.s3 import S3Store
from tests.seaweed import SeaweedFS

WHEN = datetime.datetime(2026, 11, 27, 21, 5, 9, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("endpoint", "region", "name"),
    [
        ("http://127.0.0.1:8333", "us-east-1", "chunks/ab/ab12"),
        ("http://s3.internal", "eu-central-2", "vault/node-1/files/0f/0f%41-x_y.z"),
        ("http://[::1]:9000/base/", "us-east-1", "a%2Fb/%25/c"),
    ],
)
def test_the_signature_is_the_one_botocore_makes(
    endpoint: str, region: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same Authorization, date and payload hash as botocore's S3SigV4Auth, for ports, a
    default port, an IPv6 host, a base path and keys with ``%``."""
    getter = s3_direct.DirectGetter(
        endpoint_url=endpoint,
        bucket="the-bucket",
        region=region,
        access_key="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        timeout=5,
    )
    path = getter._base_path + s3_direct.quote(name, safe="/~")
    ours = getter.authorization(path, WHEN)

    monkeypatch.setattr(
        botocore.auth, "get_current_datetime", lambda **_: WHEN.replace(tzinfo=None)
    )
    request = AWSRequest(method="GET", url=_origin(endpoint) + path)
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    botocore.auth.S3SigV4Auth(credentials, "s3", region).add_auth(request)
    assert ours == {
        "x-amz-date": request.headers["X-Amz-Date"],
        "x-amz-content-sha256": request.headers["X-Amz-Content-SHA256"],
        "Authorization": request.headers["Authorization"],
    }


def _origin(endpoint: str) -> str:
    scheme, _, rest = endpoint.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def test_it_is_used_only_for_plain_http_endpoints_without_a_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert s3_direct.usable("http://127.0.0.1:8333")
    assert s3_direct.usable("http://seaweed.internal/")
    assert not s3_direct.usable(None)  # AWS itself
    assert not s3_direct.usable("https://minio.example.org")
    assert not s3_direct.usable("http://user:pw@127.0.0.1:8333")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    assert not s3_direct.usable("http://seaweed.internal:8333")
    monkeypatch.setenv("NO_PROXY", "seaweed.internal")
    assert s3_direct.usable("http://seaweed.internal:8333")


@pytest.mark.s3
def test_reads_go_direct_and_return_what_botocore_returns(seaweedfs: SeaweedFS) -> None:
    bucket = seaweedfs.new_bucket("direct")
    store = seaweedfs.store(bucket, prefix="p%41x/node-1")
    plain = S3Store(
        endpoint_url=seaweedfs.endpoint_url,
        bucket=bucket,
        prefix="p%41x/node-1",
        access_key=seaweedfs.access_key,
        secret_key=seaweedfs.secret_key,
        direct_get=False,
    )
    try:
        direct = store._direct
        assert direct is not None
        assert plain._direct is None
        objects = {
            "chunks/ab/ab%2F12": os.urandom(2 * 1024 * 1024 + 17),
            "files/0f/0f-x_y.z": b"",
            "refs/a": b"{}",
        }
        for key, data in objects.items():
            store.put(key, data)
        for key, data in objects.items():
            assert store.get(key) == data
            assert plain.get(key) == data
        assert (direct.served, direct.passed_on) == (3, 0)
    finally:
        store.close()
        plain.close()


@pytest.mark.s3
def test_a_missing_key_is_left_to_botocore_and_raises_object_not_found(
    s3_store: S3Store,
) -> None:
    direct = s3_store._direct
    assert direct is not None
    with pytest.raises(ObjectNotFound):
        s3_store.get("chunks/no/such")
    assert (direct.served, direct.passed_on, direct.enabled) == (0, 1, True)


@pytest.mark.s3
def test_a_server_refusing_direct_requests_turns_the_path_off_once(s3_store: S3Store) -> None:
    """A 403 to the direct request that botocore's request then passes: one warning, and later
    reads go straight to botocore; the secret is never in the log."""
    direct = s3_store._direct
    assert direct is not None
    s3_store.put("k/1", b"one")
    real_secret = direct._secret
    direct._secret = "not-" + real_secret  # the server now refuses this path's signatures
    with structlog.testing.capture_logs() as logs:
        assert s3_store.get("k/1") == b"one"
        assert s3_store.get("k/1") == b"one"
    assert direct.enabled is False
    assert (direct.served, direct.passed_on) == (0, 1)
    assert [entry["event"] for entry in logs] == ["s3_direct_get_disabled"]
    assert real_secret not in repr(logs)


@pytest.mark.s3
def test_a_connection_closed_under_it_is_replaced(s3_store: S3Store) -> None:
    direct = s3_store._direct
    assert direct is not None
    s3_store.put("k/1", b"one")
    assert s3_store.get("k/1") == b"one"
    conn = direct._local.conn
    conn.sock.shutdown(socket.SHUT_RDWR)
    assert s3_store.get("k/1") == b"one"
    assert (direct.served, direct.passed_on) == (2, 0)


# --------------------------------------------------------------------------- a faulty server

BODY = os.urandom(100_000)


class _Faulty(http.server.BaseHTTPRequestHandler):
    """GetObject answers: the first ``short`` ones stop halfway through their body; every
    answer closes the connection without saying so (as a server timing out idle clients)."""

    protocol_version = "HTTP/1.1"
    state: dict[str, int]

    def do_GET(self) -> None:
        self.state["requests"] += 1
        short = self.state["requests"] <= self.state["short"]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("ETag", '"abc"')
        self.end_headers()
        self.wfile.write(BODY[: len(BODY) // 2] if short else BODY)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def faulty_server(short: int) -> Iterator[tuple[str, dict[str, int]]]:
    state = {"requests": 0, "short": short}
    handler = type("Handler", (_Faulty,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _store(endpoint: str) -> S3Store:
    return S3Store(endpoint_url=endpoint, bucket="b", access_key="k", secret_key="s3cr3t-value")


def test_a_short_body_is_never_returned() -> None:
    """Two short answers to the direct path (first try and its retry), then botocore's whole
    one: the read returns the whole body, never the half."""
    with faulty_server(short=2) as (endpoint, state):
        store = _store(endpoint)
        try:
            direct = store._direct
            assert direct is not None
            assert store.get("chunks/ab/ab12") == BODY
            assert (direct.served, direct.passed_on, direct.enabled) == (0, 1, True)
            assert state["requests"] == 3
        finally:
            store.close()


def test_a_connection_the_server_closed_is_reopened() -> None:
    """The server closes each kept-alive connection after its answer: the next read notices
    on its first try and succeeds on a new connection, without botocore."""
    with faulty_server(short=0) as (endpoint, _state):
        store = _store(endpoint)
        try:
            direct = store._direct
            assert direct is not None
            for _ in range(3):
                assert store.get("chunks/ab/ab12") == BODY
            assert (direct.served, direct.passed_on) == (3, 0)
        finally:
            store.close()
