"""``s3`` backend: one object per key in an existing bucket of any S3-compatible server.

Keys live under an optional ``prefix`` in ``bucket`` (``prefix + key``). ``put`` is one
PutObject, which S3 makes visible only once complete and atomically replaces. Compare-and-swap
uses the object's ETag as the version tag: PutObject with ``If-None-Match: *`` (create) or
``If-Match: <etag>`` (swap), which AWS S3 supports since November 2024 (boto3/botocore 1.35.69)
and SeaweedFS and MinIO support too.

By default every PutObject carries the body's CRC32 (``x-amz-checksum-crc32``), which the
server checks before it stores anything: a body damaged on the way is refused (``BadDigest``),
never stored, and the PUT is sent once more. (A server that ignores the header stores the
body unchecked; reads re-hash every object anyway.)
The payload is not SHA-256 signed (``UNSIGNED-PAYLOAD``): over plain HTTP botocore would
otherwise hash every body for the signature, which costs twice the CPU of the CRC32 and which
SeaweedFS does not even check against the body (measured: a body swapped after signing is
stored as sent). The headers, including the checksum, stay signed. For a server that refuses
the checksum header, ``put_checksum="sha256"`` (``[vault] put_checksum``) sends no CRC32 and
signs each payload's SHA-256 instead, which AWS, MinIO and Ceph check against the body.

Listing walks one ``/`` level at a time (``Delimiter="/"``) and sorts each level itself, because
not every server lists in byte order: SeaweedFS lists depth-first by directory, so a flat
listing returns ``a/b`` before ``a-b``. The walk costs one LIST request per "directory" and holds
one level in memory, where sorting a flat listing would have to hold all of it.

Plain ``get`` (every chunk a download serves) takes a lean path on a plain-``http://``
endpoint without a proxy: signed here and sent as a minimal HTTP/1.1 exchange on kept-alive
sockets, with botocore asked whenever that path cannot take the answer whole
(:mod:`seedvault.store.s3_direct`).

The bucket must already exist; its absence is a :class:`~seedvault.errors.StoreError` saying
so. Every boto3/botocore exception is translated here into :mod:`seedvault.errors`; messages name
the bucket, key and S3 error code, never a credential.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import structlog
import urllib3.exceptions
from boto3.exceptions import Boto3Error
from boto3.session import Session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from seedvault.errors import ObjectNotFound, PreconditionFailed, StoreError
from seedvault.store import s3_direct
from seedvault.store.base import ObjectInfo, check_key

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
MAX_ATTEMPTS = 5
"""Attempts per request (botocore "standard" retries: throttling, 5xx, connection errors)."""
PUT_CHECKSUMS = ("crc32", "sha256")
"""How an upload's body is checked by the server: the CRC32 header, or a signed SHA-256."""
_DAMAGED_ON_THE_WAY = ("BadDigest", "XAmzContentSHA256Mismatch")

# Everything boto3 can raise from a call or a body read; OSError in case a socket error slips
# past urllib3's wrapping.
_FAILURES = (ClientError, BotoCoreError, Boto3Error, urllib3.exceptions.HTTPError, OSError)
# Answers to a conditional PutObject whose condition did not hold. AWS answers 409
# ConditionalRequestConflict when a concurrent write to the key won the race.
_CAS_LOST_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


class S3Store:
    """Objects in an existing S3 bucket, under an optional key prefix."""

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        bucket: str,
        prefix: str = "",
        region: str = "us-east-1",
        access_key: str,
        secret_key: str,
        max_pool_connections: int = 32,
        put_checksum: str = "crc32",
        direct_get: bool = True,
    ) -> None:
        if put_checksum not in PUT_CHECKSUMS:
            raise ValueError(f"put_checksum must be one of {PUT_CHECKSUMS}, not {put_checksum!r}")
        self.bucket = bucket
        self.put_checksum = put_checksum
        self.endpoint_url = endpoint_url
        self.prefix = _normalise_prefix(prefix)
        self._endpoint_name = _endpoint_name(endpoint_url, region)
        self._secret = secret_key  # kept only to scrub it from error messages, see _scrub
        self._bucket_seen = False
        config = Config(
            region_name=region,
            retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS},
            # Objects are verified by their BLAKE3 address one layer up; botocore's default
            # CRC32 of every body (1.36+) only costs CPU here.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=max_pool_connections,
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            # Self-hosted servers are addressed by IP or a bare host name, where bucket
            # subdomains do not resolve.
            # The body's integrity is the CRC32 checksum header of every PUT (see above), or,
            # with put_checksum "sha256", the payload's SHA-256 in the signature.
            s3={
                "addressing_style": "path" if endpoint_url else "auto",
                "payload_signing_enabled": put_checksum == "sha256",
            },
            # The vault builds every request's parameters itself; botocore's check of each
            # one against the API model is pure CPU (~0.1 ms per request).
            parameter_validation=False,
        )
        try:
            session = Session(
                aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region
            )
            self._client: Any = session.client("s3", endpoint_url=endpoint_url, config=config)
            if endpoint_url:  # AWS itself may refuse mid-body; keep its early answer there
                self._client.meta.events.register("before-send.s3.PutObject", _no_expect)
        except (*_FAILURES, ValueError) as exc:  # botocore raises ValueError for a bad URL
            raise StoreError(
                self._scrub(f"cannot set up S3 for {self.description}: {exc}")
            ) from exc
        self._direct: s3_direct.DirectGetter | None = None
        if direct_get and endpoint_url and s3_direct.usable(endpoint_url):
            self._direct = s3_direct.DirectGetter(
                endpoint_url=endpoint_url,
                bucket=bucket,
                region=region,
                access_key=access_key,
                secret_key=secret_key,
                timeout=READ_TIMEOUT_S,
            )

    @property
    def remote(self) -> bool:
        """Every call is an HTTP request."""
        return True

    @property
    def description(self) -> str:
        location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{location} at {self._endpoint_name}"

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def get(self, key: str) -> bytes | bytearray:
        direct = self._direct
        if direct is None:
            return self.get_versioned(key)[0]
        body, refused = direct.get(self._name(key))
        if body is not None:
            return body
        data = self.get_versioned(key)[0]  # botocore decides: its retries, its errors
        if refused and direct.refused_but_botocore_passed():
            log.warning(
                "s3_direct_get_disabled",
                endpoint=self._endpoint_name,
                reason="the server refused direct GETs that botocore then passed, three in a row",
            )
        return data

    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        try:
            self._put_object(name, data, {})
        except _FAILURES as exc:
            raise self._error(exc, "PutObject", name, key) from exc

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def stat(self, key: str) -> ObjectInfo:
        head = self._head(key)
        if head is None:
            raise ObjectNotFound(key)
        return ObjectInfo(key, int(head["ContentLength"]), head["LastModified"].timestamp())

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            self._client.delete_object(Bucket=self.bucket, Key=name)
        except _FAILURES as exc:
            error = self._error(exc, "DeleteObject", name, key)
            if not isinstance(error, ObjectNotFound):  # S3 answers 204; some servers 404
                raise error from exc

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        yield from self._walk(self.prefix + prefix)

    def _walk(self, level: str) -> Iterator[ObjectInfo]:
        """Objects under ``level`` in byte order: this level sorted, sub-levels expanded."""
        entries: list[tuple[str, ObjectInfo | None]] = []
        try:
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=level, Delimiter="/"):
                for obj in page.get("Contents", ()):
                    key = obj["Key"][len(self.prefix) :]
                    # Objects the store could not address (directory markers ending in "/",
                    # foreign names) are not part of it.
                    if _is_key(key):
                        mtime = obj["LastModified"].timestamp()
                        entries.append((obj["Key"], ObjectInfo(key, int(obj["Size"]), mtime)))
                for common in page.get("CommonPrefixes", ()):
                    entries.append((common["Prefix"], None))
        except _FAILURES as exc:
            raise self._error(exc, "ListObjectsV2", level) from exc
        # A sub-level "a/" sorts as "a/" (not "a"), so expanding it in place keeps the order.
        entries.sort(key=lambda entry: entry[0])
        for name, info in entries:
            if info is None:
                yield from self._walk(name)
            else:
                yield info

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        name = self._name(key)
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=name)
            body = response["Body"]
            try:
                data: bytes = body.read()
            finally:
                body.close()
        except _FAILURES as exc:
            raise self._error(exc, "GetObject", name, key) from exc
        return data, self._etag(response, name)

    def put_if(self, key: str, data: bytes, version: str | None) -> str:
        name = self._name(key)
        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        try:
            response = self._put_object(name, data, condition)
        except ClientError as exc:
            code, status, _ = _details(exc)
            # AWS answers If-Match on a missing key with 404 NoSuchKey: not at ``version`` either.
            lost = status == 412 or code in _CAS_LOST_CODES
            if lost or (version is not None and code == "NoSuchKey"):
                # A retried request whose first attempt landed also ends here; the caller
                # re-reads the key and finds its own write.
                expected = "no object" if version is None else f"version {version}"
                raise PreconditionFailed(f"{key}: expected {expected} ({code})") from exc
            raise self._error(exc, "PutObject", name, key) from exc
        except _FAILURES as exc:
            raise self._error(exc, "PutObject", name, key) from exc
        return self._etag(response, name)

    def _put_object(self, name: str, data: bytes, extra: dict[str, str]) -> dict[str, Any]:
        """PutObject with the body's CRC32 (or signed SHA-256), sent once more if the server found
        the body damaged on the way (``BadDigest``, ``XAmzContentSHA256Mismatch``: nothing was
        stored; botocore does not retry them)."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": name, "Body": data}
        if self.put_checksum == "crc32":
            request["ChecksumCRC32"] = _crc32(data)
        try:
            response: dict[str, Any] = self._client.put_object(**request, **extra)
        except ClientError as exc:
            if _details(exc)[0] not in _DAMAGED_ON_THE_WAY:
                raise
            response = self._client.put_object(**request, **extra)
        return response

    def sync(self) -> None:
        """Nothing to do: a completed PUT is durable on the server."""

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()
        self._client.close()

    def _head(self, key: str) -> dict[str, Any] | None:
        """HeadObject's answer for ``key``, or None when no object is there."""
        name = self._name(key)
        try:
            head: dict[str, Any] = self._client.head_object(Bucket=self.bucket, Key=name)
        except ClientError as exc:
            if _details(exc)[1] != 404:
                raise self._error(exc, "HeadObject", name, key) from exc
        except _FAILURES as exc:
            raise self._error(exc, "HeadObject", name, key) from exc
        else:
            return head
        # A HEAD answer has no body, so a missing bucket also looks like a plain 404: check the
        # bucket once, rather than report every key of a missing bucket as absent.
        self._check_bucket()
        return None

    def _check_bucket(self) -> None:
        if self._bucket_seen:
            return
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _details(exc)[1] == 404:
                raise self._no_bucket() from exc
            raise self._error(exc, "HeadBucket", "") from exc
        except _FAILURES as exc:
            raise self._error(exc, "HeadBucket", "") from exc
        self._bucket_seen = True

    def _etag(self, response: dict[str, Any], name: str) -> str:
        etag = response.get("ETag")
        if not etag:
            raise StoreError(f"S3 at {self._endpoint_name} gave no ETag for {self._url(name)}")
        return str(etag)

    def _no_bucket(self) -> StoreError:
        self._bucket_seen = False
        return StoreError(f"bucket {self.bucket!r} does not exist at {self._endpoint_name}")

    def _error(
        self, exc: BaseException, operation: str, name: str, key: str | None = None
    ) -> StoreError:
        """The seedvault error for ``exc``, raised by ``operation`` on object ``name``."""
        where = f"S3 {operation} {self._url(name)} at {self._endpoint_name}"
        if isinstance(exc, ClientError):
            code, status, message = _details(exc)
            if code == "NoSuchBucket":
                return self._no_bucket()
            if key is not None and code == "NoSuchKey":
                return ObjectNotFound(key)
            return StoreError(self._scrub(f"{where} failed: {code} (HTTP {status}): {message}"))
        return StoreError(self._scrub(f"{where} failed: {type(exc).__name__}: {exc}"))

    def _url(self, name: str) -> str:
        return f"s3://{self.bucket}/{name}"

    def _scrub(self, text: str) -> str:
        # Servers never echo the secret; this guards against one that does. A toy secret of a
        # few characters is left alone rather than starring out random letters.
        if len(self._secret) < 8:
            return text
        return text.replace(self._secret, "***")


def _crc32(data: bytes) -> str:
    """The ``x-amz-checksum-crc32`` value of ``data``: base64 of the big-endian CRC32."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode("ascii")


def _no_expect(request: Any, **_: Any) -> None:
    """Send a PutObject body at once instead of after a ``100 Continue``.

    botocore asks for ``Expect: 100-continue`` on every upload, which costs each PUT an extra
    round trip and interim response; the vault's objects are small (chunks ≤ 4 MiB), so
    sending a body the server then refuses wastes little. Only for an explicit
    ``endpoint_url`` (SeaweedFS, Ceph, MinIO): AWS may close the connection on a refused
    upload mid-body, and its error code then only reaches a client that waited for ``100``.
    Returns None: a before-send handler that returned something would replace the HTTP
    response.
    """
    request.headers.pop("Expect", None)


def _details(exc: ClientError) -> tuple[str, int | None, str]:
    """The S3 error code, HTTP status and message of a failed request."""
    response: dict[str, Any] = exc.response
    error = response.get("Error", {})
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(error.get("Code") or status or "unknown")
    return code, status, str(error.get("Message") or "")


def _is_key(key: str) -> bool:
    try:
        check_key(key)
    except StoreError:
        return False
    return True


def _normalise_prefix(prefix: str) -> str:
    """``prefix`` ending with one ``/``, or ``""``; it must be a well-formed key path itself."""
    stripped = prefix.rstrip("/")
    if not stripped:
        return ""
    if not _is_key(stripped):
        raise StoreError(f"malformed S3 key prefix {prefix!r}")
    return stripped + "/"


def _endpoint_name(endpoint_url: str | None, region: str) -> str:
    """The endpoint as shown in messages: without any ``user:password@`` part."""
    if endpoint_url is None:
        return f"AWS S3 ({region})"
    parts = urlsplit(endpoint_url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
