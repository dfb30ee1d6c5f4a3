"""The S3 backend passes the store contract against a real SeaweedFS, and fails clearly."""

from __future__ import annotations

import base64
import hashlib
import http.server
import secrets
import threading
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from seedvault.errors import ObjectNotFound, PreconditionFailed, StoreError
from seedvault.store.s3 import S3Store, _crc32
from tests.contracts import StoreContract
from tests.seaweed import SeaweedFS
from tests.weed import free_ports

pytestmark = pytest.mark.s3


class TestS3Store(StoreContract):
    @pytest.fixture(
        params=[("", True), ("vault/node-1", True), ("vault/node-1", False)],
        ids=["bucket-root", "prefixed", "botocore-reads"],
    )
    def store(self, request: pytest.FixtureRequest, seaweedfs: SeaweedFS) -> Iterator[S3Store]:
        """Reads go through the direct GET path (``s3_direct``), or with ``direct_get=False``
        all through botocore."""
        prefix, direct_get = request.param
        store = S3Store(
            endpoint_url=seaweedfs.endpoint_url,
            bucket=seaweedfs.new_bucket("contract"),
            prefix=prefix,
            access_key=seaweedfs.access_key,
            secret_key=seaweedfs.secret_key,
            direct_get=direct_get,
        )
        assert (store._direct is not None) == direct_get
        yield store
        store.close()


def test_missing_bucket_is_a_clear_store_error(seaweedfs: SeaweedFS) -> None:
    """Every operation on a bucket that does not exist says so, naming bucket and endpoint."""
    store = seaweedfs.store("no-such-bucket-" + secrets.token_hex(4))
    operations: dict[str, Callable[[], object]] = {
        "get": lambda: store.get("a/b"),
        "put": lambda: store.put("a/b", b"x"),
        "exists": lambda: store.exists("a/b"),
        "stat": lambda: store.stat("a/b"),
        "list": lambda: list(store.list("")),
        "put_if": lambda: store.put_if("a/b", b"x", None),
    }
    try:
        for name, operation in operations.items():
            with pytest.raises(StoreError) as caught:
                operation()
            assert not isinstance(caught.value, ObjectNotFound), name
            assert str(caught.value) == (
                f"bucket {store.bucket!r} does not exist at {seaweedfs.endpoint_url}"
            ), name
    finally:
        store.close()


class _Echoing(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that refuses everything and puts the secret key in its error message
    (no real server does; the store must not pass it on)."""

    protocol_version = "HTTP/1.1"
    secret = ""

    def _refuse(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = (
            "<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
            f"<Message>signature made with {self.secret} does not match</Message></Error>"
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if self.command != "HEAD" else b"")

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _refuse

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_secret_a_server_echoes_is_scrubbed_from_store_errors() -> None:
    secret = "echoed-" + secrets.token_urlsafe(24)
    handler = type("Handler", (_Echoing,), {"secret": secret})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    store = S3Store(endpoint_url=endpoint, bucket="b", access_key="k", secret_key=secret)
    try:
        for operation in (lambda: store.get("a/b"), lambda: store.put("a/b", b"x")):
            with pytest.raises(StoreError) as caught:
                operation()
            message = str(caught.value)
            assert "AccessDenied" in message
            assert secret not in message
            assert "signature made with *** does not match" in message
    finally:
        store.close()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_wrong_credentials_are_a_store_error_without_the_secret(seaweedfs: SeaweedFS) -> None:
    """A refused signature is a plain StoreError naming the S3 code; the secret is never shown."""
    bucket = seaweedfs.new_bucket("creds")
    secret = "wrong-" + secrets.token_urlsafe(24)
    store = S3Store(
        endpoint_url=seaweedfs.endpoint_url,
        bucket=bucket,
        access_key=seaweedfs.access_key,
        secret_key=secret,
    )
    try:
        for operation in (
            lambda: store.get("a/b"),
            lambda: store.put("a/b", b"x"),
            lambda: store.exists("a/b"),
            lambda: list(store.list("")),
        ):
            with pytest.raises(StoreError) as caught:
                operation()
            assert type(caught.value) is StoreError
            message = str(caught.value)
            assert bucket in message
            assert "SignatureDoesNotMatch" in message or "HTTP 403" in message
            assert secret not in message
        assert secret not in store.description
        assert secret not in repr(store)
    finally:
        store.close()


def test_unknown_access_key_is_a_store_error(seaweedfs: SeaweedFS) -> None:
    """An access key the server does not know gives StoreError with InvalidAccessKeyId."""
    store = S3Store(
        endpoint_url=seaweedfs.endpoint_url,
        bucket="any",
        access_key="nobody",
        secret_key="nothing-" + secrets.token_hex(8),
    )
    try:
        with pytest.raises(StoreError, match="InvalidAccessKeyId"):
            store.get("a/b")
    finally:
        store.close()


def test_unreachable_endpoint_is_a_store_error() -> None:
    """A server that does not answer gives StoreError naming the endpoint, after retries."""
    endpoint = f"http://127.0.0.1:{free_ports(1)[0]}"
    store = S3Store(endpoint_url=endpoint, bucket="b", access_key="k", secret_key="s3cr3t-value")
    try:
        with pytest.raises(StoreError, match=r"GetObject s3://b/a/b at http://127\.0\.0\.1:"):
            store.get("a/b")
    finally:
        store.close()


def test_prefixes_isolate_stores_in_one_bucket(seaweedfs: SeaweedFS) -> None:
    """Objects under one prefix are invisible to a store with another prefix."""
    bucket = seaweedfs.new_bucket("prefixes")
    one, two, root = (seaweedfs.store(bucket, p) for p in ("one", "two/", ""))
    try:
        one.put("k/1", b"from one")
        assert not two.exists("k/1")
        with pytest.raises(ObjectNotFound):
            two.get("k/1")
        assert list(two.list("")) == []
        assert [i.key for i in one.list("")] == ["k/1"]
        assert [i.key for i in root.list("")] == ["one/k/1"]
        assert root.get("one/k/1") == b"from one"
    finally:
        for store in (one, two, root):
            store.close()


def test_list_is_in_byte_order_across_segment_ends(s3_store: S3Store) -> None:
    """Keys with ``%``, ``-`` or ``.`` right after a segment sort before that segment's ``/``.

    SeaweedFS lists depth-first by directory (``a/b`` before ``a-b``); the store must not.
    """
    keys = ["o/a/b", "o/a-b", "o/a.c", "o/a%41", "o/a/c/d", "o/ab", "o/a-b/x", "o/a"]
    for key in keys:
        s3_store.put(key, b"1")
    assert [i.key for i in s3_store.list("o/")] == sorted(keys)
    assert [i.key for i in s3_store.list("o/a")] == sorted(keys)
    assert [i.key for i in s3_store.list("o/a-")] == ["o/a-b", "o/a-b/x"]


def test_description_names_bucket_prefix_and_endpoint() -> None:
    """description is ``s3://bucket/prefix at endpoint``, with no credentials in it."""
    store = S3Store(
        endpoint_url="http://user:pw@127.0.0.1:9/",
        bucket="b",
        prefix="vault/x/",
        access_key="k",
        secret_key="very-secret",
    )
    try:
        assert store.description == "s3://b/vault/x at http://127.0.0.1:9/"
    finally:
        store.close()


def test_malformed_prefix_refused() -> None:
    """A prefix that is not a well-formed key path is refused when the store is made."""
    with pytest.raises(StoreError, match="prefix"):
        S3Store(endpoint_url=None, bucket="b", prefix="../up", access_key="k", secret_key="s")


@pytest.mark.parametrize("operation", ["put", "put_if"])
def test_a_body_damaged_on_the_way_is_refused_not_stored(
    seaweedfs: SeaweedFS, operation: str
) -> None:
    """Every PUT carries the body's CRC32 and the server checks it: bytes changed after the
    request was built (and signed) are refused, and nothing is stored under the key."""
    store = seaweedfs.store(seaweedfs.new_bucket("crc"))
    sent: list[dict[str, str]] = []

    def damage(request: Any, **_: Any) -> None:
        headers = request.headers.items()
        sent.append({k: v.decode() if isinstance(v, bytes) else v for k, v in headers})
        original = request.body
        body = bytearray(original if isinstance(original, bytes) else original.read())
        body[len(body) // 2] ^= 0x01
        request.body = bytes(body)

    store._client.meta.events.register("before-send.s3.PutObject", damage)
    try:
        payload = b"exact bytes " * 1000
        put: Callable[[], object] = (
            (lambda: store.put("chunks/ab/damaged", payload))
            if operation == "put"
            else (lambda: store.put_if("chunks/ab/damaged", payload, None))
        )
        with pytest.raises(StoreError, match="BadDigest"):
            put()
        assert not store.exists("chunks/ab/damaged")
        assert len(sent) == 2, "a body refused as damaged is sent once more, then given up"
        assert all(h.get("x-amz-checksum-crc32") for h in sent)
        # The checksum stands in for payload signing: botocore does not hash the body for the
        # signature (which SeaweedFS would not check anyway).
        assert {h.get("X-Amz-Content-SHA256") for h in sent} == {"UNSIGNED-PAYLOAD"}
    finally:
        store._client.meta.events.unregister("before-send.s3.PutObject", damage)
        store.close()


def test_a_body_damaged_once_is_sent_again_and_stored_whole(seaweedfs: SeaweedFS) -> None:
    """One damaged transfer costs a second PUT, not the capture."""
    store = seaweedfs.store(seaweedfs.new_bucket("crc"))
    attempts: list[int] = []

    def damage_first(request: Any, **_: Any) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            original = request.body
            body = bytearray(original if isinstance(original, bytes) else original.read())
            body[0] ^= 0x01
            request.body = bytes(body)

    store._client.meta.events.register("before-send.s3.PutObject", damage_first)
    try:
        store.put_if("chunks/ab/retried", b"whole bytes " * 1000, None)
        assert len(attempts) == 2
        assert store.get("chunks/ab/retried") == b"whole bytes " * 1000
    finally:
        store._client.meta.events.unregister("before-send.s3.PutObject", damage_first)
        store.close()


ENDPOINTS = pytest.mark.parametrize(
    "endpoint", ["http://127.0.0.1:9", "https://s3.example.org", None], ids=["http", "https", "aws"]
)
PAYLOAD = bytes(range(256)) * 17


def _sent_put_headers(store: S3Store, put: Callable[[], object]) -> dict[str, str]:
    """The headers of the one PutObject ``put`` makes, caught before it is sent (no server)."""
    from botocore.awsrequest import AWSResponse

    seen: list[Any] = []

    class _Empty:
        def stream(self, **_: Any) -> Iterator[bytes]:
            return iter([b""])

    def answer(request: Any, **_: Any) -> AWSResponse:
        seen.append(request)
        return AWSResponse(request.url, 200, {"ETag": '"e"'}, _Empty())

    store._client.meta.events.register_first("before-send.s3.PutObject", answer)
    try:
        put()
    finally:
        store.close()
    (request,) = seen
    return {
        k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()
    }


@ENDPOINTS
def test_the_put_request_carries_the_crc32_and_no_payload_hash(endpoint: str | None) -> None:
    """Over plain HTTP, HTTPS and against AWS alike (no server: the request is caught before it
    is sent): the CRC32 header of the body, signed; an unsigned payload; a plain body with its
    length (no aws-chunked encoding or trailer that some servers refuse)."""
    store = S3Store(
        bucket="b", endpoint_url=endpoint, access_key="AKIDEXAMPLE", secret_key="x" * 40
    )
    headers = _sent_put_headers(store, lambda: store.put_if("chunks/ab/x", PAYLOAD, None))
    assert headers["x-amz-checksum-crc32"] == _crc32(PAYLOAD)
    assert base64.b64decode(headers["x-amz-checksum-crc32"]) == zlib.crc32(PAYLOAD).to_bytes(
        4, "big"
    )
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert "x-amz-checksum-crc32" in headers["authorization"]  # a signed header
    assert "aws-chunked" not in headers.get("content-encoding", "")
    assert "transfer-encoding" not in headers
    assert int(headers["content-length"]) == len(PAYLOAD)


@ENDPOINTS
def test_put_checksum_sha256_signs_the_payload_instead(endpoint: str | None) -> None:
    """``put_checksum="sha256"``, for servers that refuse the checksum header: no CRC32 header,
    and the payload's SHA-256 in the signature, over HTTP, HTTPS and against AWS alike."""
    store = S3Store(
        bucket="b",
        endpoint_url=endpoint,
        access_key="AKIDEXAMPLE",
        secret_key="x" * 40,
        put_checksum="sha256",
    )
    headers = _sent_put_headers(store, lambda: store.put("chunks/ab/x", PAYLOAD))
    assert not [k for k in headers if k.startswith("x-amz-checksum")]
    assert headers["x-amz-content-sha256"] == hashlib.sha256(PAYLOAD).hexdigest()
    assert "x-amz-content-sha256" in headers["authorization"]
    assert int(headers["content-length"]) == len(PAYLOAD)


def test_put_checksum_sha256_round_trips_on_seaweedfs(seaweedfs: SeaweedFS) -> None:
    """The real server takes signed payloads: plain and conditional PUTs store and read back."""
    store = seaweedfs.store(seaweedfs.new_bucket("sha"), put_checksum="sha256")
    try:
        store.put("chunks/ab/plain", b"plain " * 1000)
        version = store.put_if("refs/x", b"one", None)
        store.put_if("refs/x", b"two", version)
        assert store.get("chunks/ab/plain") == b"plain " * 1000
        assert store.get("refs/x") == b"two"
        with pytest.raises(PreconditionFailed):
            store.put_if("refs/x", b"three", version)
    finally:
        store.close()


def test_put_checksum_must_be_known() -> None:
    with pytest.raises(ValueError, match="put_checksum"):
        S3Store(bucket="b", endpoint_url=None, access_key="a", secret_key="s", put_checksum="md5")


def test_undamaged_puts_read_back(s3_store: S3Store) -> None:
    payload = bytes(range(256)) * 4096
    s3_store.put("chunks/cd/whole", payload)
    version = s3_store.put_if("refs/x", payload[:1000], None)
    assert s3_store.get("chunks/cd/whole") == payload
    assert s3_store.get_versioned("refs/x") == (payload[:1000], version)
