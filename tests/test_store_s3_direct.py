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
import time
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


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy in the environment would (rightly) turn the direct path off."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


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
    path = getter.path(name)
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
    assert not s3_direct.usable("http://bücher.internal:8333")  # not sent as it is: botocore
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
def test_a_server_refusing_direct_requests_turns_the_path_off_after_three(
    s3_store: S3Store,
) -> None:
    """403s to the direct request that botocore's request then passes, three in a row: one
    warning, and later reads go straight to botocore; the secret is never in the log."""
    direct = s3_store._direct
    assert direct is not None
    s3_store.put("k/1", b"one")
    real_secret = direct._secret
    direct._secret = "not-" + real_secret  # the server now refuses this path's signatures
    direct._scope_key = None  # and the signing key derived from the real one is forgotten
    with structlog.testing.capture_logs() as logs:
        for _ in range(s3_direct.REFUSALS_BEFORE_OFF - 1):
            assert s3_store.get("k/1") == b"one"
        assert direct.enabled is True
        assert logs == []
        for _ in range(2):
            assert s3_store.get("k/1") == b"one"
    assert direct.enabled is False
    assert (direct.served, direct.passed_on) == (0, s3_direct.REFUSALS_BEFORE_OFF)
    assert [entry["event"] for entry in logs] == ["s3_direct_get_disabled"]
    assert real_secret not in repr(logs)


@pytest.mark.s3
def test_a_connection_closed_under_it_is_replaced(s3_store: S3Store) -> None:
    direct = s3_store._direct
    assert direct is not None
    s3_store.put("k/1", b"one")
    assert s3_store.get("k/1") == b"one"
    (conn,) = direct._idle
    conn.shutdown(socket.SHUT_RDWR)
    assert s3_store.get("k/1") == b"one"
    assert (direct.served, direct.passed_on) == (2, 0)


# --------------------------------------------------------------------------- a faulty server

BODY = os.urandom(100_000)


class _Faulty(http.server.BaseHTTPRequestHandler):
    """GetObject answers: the first ``bad`` to the direct path (botocore's requests carry a
    User-Agent, its do not) are faulty in the way ``fault`` says (``short``: stop halfway
    through the body; ``length``: a Content-Length that is no number; ``chunked``: no
    Content-Length, chunked encoding; ``twice``: two Content-Length headers; ``encoded``: a
    Content-Encoding; ``long``: bytes beyond the body, sent with it; ``folded``: a header line
    folded onto the next; ``huge``: a Content-Length of a terabyte; ``trailing``: the whole
    answer, then a second one nobody asked for; ``stall``: half the body, then silence for a
    second); every answer
    closes the connection without saying so (as a server timing out idle clients)."""

    protocol_version = "HTTP/1.1"
    state: dict[str, Any]

    def do_GET(self) -> None:
        self.state["requests"] += 1
        fault = None
        if "User-Agent" not in self.headers and self.state["faulted"] < self.state["bad"]:
            fault = self.state["fault"]  # the direct path's request (botocore's has an agent)
            self.state["faulted"] += 1
        raw = {
            "twice": b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n%s"
            % (len(BODY), len(BODY), BODY),
            "encoded": b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s"
            % (len(BODY), BODY),
            "long": b"Content-Length: 10\r\n\r\n%sHTTP/1.1 200 OK\r\n" % BODY[:10],
            "folded": b"X-Amz-Meta-A: one\r\n two\r\nContent-Length: %d\r\n\r\n%s"
            % (len(BODY), BODY),
            "huge": b"Content-Length: %d\r\n\r\n%s" % (10**12, BODY),
        }
        if fault in raw:  # one write: the head and what follows it arrive together
            self.wfile.write(b'HTTP/1.1 200 OK\r\nETag: "abc"\r\n' + raw[fault])
            self.wfile.flush()
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("ETag", '"abc"')
        if fault == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY))
        else:
            self.send_header("Content-Length", "12ab" if fault == "length" else str(len(BODY)))
            self.end_headers()
            if fault == "trailing":  # a whole answer, then bytes nobody asked for
                self.wfile.write(BODY)
                self.wfile.flush()
                time.sleep(0.05)
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad")
                self.wfile.flush()
                self.close_connection = True
                return
            if fault == "stall":
                self.wfile.write(BODY[: len(BODY) // 2])
                self.wfile.flush()
                time.sleep(1.0)
            self.wfile.write(BODY[: len(BODY) // 2] if fault == "short" else BODY)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def faulty_store(
    fault: str | None = None, bad: int = 0
) -> Iterator[tuple[S3Store, s3_direct.DirectGetter, dict[str, Any]]]:
    """An S3 store on a loopback :class:`_Faulty` server: the store, its direct path, and the
    server's state (``requests`` counts the GETs it answered; ``endpoint`` is its URL)."""
    state: dict[str, Any] = {"requests": 0, "fault": fault, "bad": bad, "faulted": 0}
    handler = type("Handler", (_Faulty,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = state["endpoint"] = f"http://127.0.0.1:{server.server_address[1]}"
    store = S3Store(endpoint_url=endpoint, bucket="b", access_key="k", secret_key="s3cr3t-value")
    try:
        assert store._direct is not None
        yield store, store._direct, state
    finally:
        store.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_short_body_is_never_returned() -> None:
    """A short answer to the direct path on a new connection (not retried there), then
    botocore's whole one: the read returns the whole body, never the half."""
    with faulty_store("short", bad=1) as (store, direct, state):
        assert store.get("chunks/ab/ab12") == BODY
        assert (direct.served, direct.passed_on, direct.enabled) == (0, 1, True)
        assert state["requests"] == 2


def test_a_connection_the_server_closed_is_reopened() -> None:
    """The server closes each kept-alive connection after its answer: the next read notices
    on its first try and succeeds on a new connection, without botocore."""
    with faulty_store() as (store, direct, _state):
        for _ in range(3):
            assert store.get("chunks/ab/ab12") == BODY
        assert (direct.served, direct.passed_on) == (3, 0)


def test_a_malformed_content_length_is_left_to_botocore() -> None:
    """A length that is no number is never parsed into an error of its own: the answer is
    left to botocore, which here gets a good one."""
    with faulty_store("length", bad=1) as (store, direct, state):
        assert store.get("chunks/ab/ab12") == BODY
        assert (direct.served, direct.passed_on) == (0, 1)
        assert state["requests"] == 2


def test_a_server_answering_without_a_length_turns_the_path_off() -> None:
    """A chunked answer (no Content-Length) is left to botocore; when that happens three
    times in a row and botocore's succeed, the direct path is off for this store (it would
    cost every read twice)."""
    times = s3_direct.REFUSALS_BEFORE_OFF
    with faulty_store("chunked", bad=times) as (store, direct, state):
        for _ in range(times):
            assert store.get("chunks/ab/ab12") == BODY
        assert direct.enabled is False
        assert store.get("chunks/ab/ab12") == BODY
        assert (direct.served, direct.passed_on, state["requests"]) == (0, times, 2 * times + 1)


def test_a_refusal_in_passing_does_not_turn_the_path_off() -> None:
    """Refusals that a direct answer interrupts are not in a row: the count starts again."""
    times = s3_direct.REFUSALS_BEFORE_OFF
    with faulty_store("chunked", bad=times - 1) as (store, direct, state):
        for _ in range(times - 1):
            assert store.get("chunks/ab/ab12") == BODY
        assert store.get("chunks/ab/ab12") == BODY  # answered directly
        state["bad"] += times - 1  # as many refusals again
        for _ in range(times - 1):
            assert store.get("chunks/ab/ab12") == BODY
        assert direct.enabled is True
        assert (direct.served, direct.passed_on) == (1, 2 * (times - 1))


def test_connections_are_shared_not_left_behind_by_ended_threads() -> None:
    """Reads from one short-lived thread after another reuse one kept-alive connection: a
    pool that made one per thread left a socket behind for every thread that ended."""
    with faulty_store() as (store, direct, _state):
        for _ in range(5):
            thread = threading.Thread(target=store.get, args=("chunks/ab/ab12",))
            thread.start()
            thread.join()
        # the server closes each connection after its answer, so each read after the
        # first finds its kept connection dead and opens one more: 1 + 4, never 2 per read
        assert direct.served == 5
        assert direct.opened == 5
        assert len(direct._idle) <= 1
        store.close()
        assert direct._idle == []


@pytest.mark.parametrize(
    ("fault", "refused"),
    [("twice", True), ("encoded", True), ("long", False), ("folded", False)],
)
def test_an_answer_this_path_does_not_parse_is_left_to_botocore(fault: str, refused: bool) -> None:
    """Two lengths or a Content-Encoding (a server whose bodies this path cannot take: three
    in a row turn it off), or bytes past the announced length or a folded header (that answer
    only): each read returns botocore's whole, good body."""
    times = s3_direct.REFUSALS_BEFORE_OFF
    with faulty_store(fault, bad=times) as (store, direct, state):
        for _ in range(times):
            assert store.get("chunks/ab/ab12") == BODY
        assert (direct.served, direct.passed_on, state["requests"]) == (0, times, 2 * times)
        assert direct.enabled is not refused
        assert store.get("chunks/ab/ab12") == BODY  # a good answer, direct if still on
        assert direct.served == (0 if refused else 1)


def test_a_server_that_stalls_mid_body_times_out_on_the_kernels_clock() -> None:
    """The socket is blocking with SO_RCVTIMEO: a body that stops coming is given up after the
    timeout, with nothing returned, instead of being waited for without end."""
    with faulty_store("stall", bad=1) as (_store, _direct, state):
        impatient = s3_direct.DirectGetter(
            endpoint_url=state["endpoint"],
            bucket="b",
            region="us-east-1",
            access_key="k",
            secret_key="s3cr3t-value",
            timeout=0.2,
        )
        started = time.monotonic()
        assert impatient.get("chunks/ab/ab12") == (None, False)
        assert time.monotonic() - started < 0.9  # the server stalls for 1 s
        assert impatient.passed_on == 1
        assert impatient.get("chunks/ab/ab12")[0] == BODY  # the next answer is whole
        impatient.close()


def test_a_huge_announced_length_is_left_to_botocore_before_any_allocation() -> None:
    """The body's buffer is allocated from the announced length: a claim above
    MAX_BODY_BYTES is not read here (a terabyte would raise MemoryError, a few GB would
    take the memory) but left to botocore, which reads as bytes arrive."""
    with faulty_store("huge", bad=1) as (store, direct, state):
        assert store.get("chunks/ab/ab12") == BODY
        assert (direct.served, direct.passed_on, state["requests"]) == (0, 1, 2)
        assert direct.enabled is True


def test_a_connection_holding_bytes_nobody_asked_for_is_not_reused() -> None:
    """A server that sends a second answer after the first: the kept connection is checked
    before reuse, so that answer is never taken for the next object's."""
    with faulty_store("trailing", bad=1) as (store, direct, _state):
        assert store.get("chunks/ab/ab12") == BODY
        time.sleep(0.3)  # the unasked-for answer has arrived
        assert store.get("chunks/ab/ab12") == BODY
        assert (direct.served, direct.passed_on, direct.opened) == (2, 0, 2)


def test_keys_that_are_not_plain_ascii_keep_the_path_off() -> None:
    """The key id and region go into each request as they are: anything but printable ASCII
    (a line break would add a header) leaves every read to botocore."""
    for key, region in (("k\r\nX-Evil: 1", "us-east-1"), ("kéy", "us-east-1"), ("k", "ü")):
        direct = s3_direct.DirectGetter(
            endpoint_url="http://127.0.0.1:9",
            bucket="b",
            region=region,
            access_key=key,
            secret_key="s",
            timeout=1,
        )
        assert direct.enabled is False
        assert direct.get("chunks/ab/ab12") == (None, False)


def test_connection_close_among_other_tokens_is_honoured() -> None:
    head = s3_direct._Head(b"1.1", 200, {b"connection": [b"keep-alive, Close"]})
    assert head.keeps_alive is False
    assert s3_direct._Head(b"1.1", 200, {b"connection": [b"keep-alive"]}).keeps_alive
    assert not s3_direct._Head(b"1.0", 200, {}).keeps_alive
