"""A lean GetObject for the read path: SigV4-signed here, sent on kept-alive
``http.client`` connections (one per thread reading at once), with botocore behind it for
everything else.

Serving a file from an S3 vault is one GetObject per ~2 MiB chunk. Through botocore each costs
~1.1 ms of CPU beyond receiving the body (event hooks, request and response models, urllib3's
pool), a tenth of a core at 100 chunks/s, on a node whose two cores also run the client and the
store (measured: 1.57 ms CPU per 2 MiB GET through botocore, 0.65 ms here, most of it the
kernel's copy of the body). This path only ever answers the easy case: an HTTP ``200`` with the
whole body. Anything else — another status (a missing key, a refused signature, throttling), a
connection that fails or closes early, a short body — returns ``None``, and the caller asks
botocore, whose retries and error translation then decide. A kept-alive connection that fails
is retried once on a new one (the server may have closed it while idle); a new one that fails
is not. A server that refuses this path's requests (400, 403), or answers them without a plain
``Content-Length`` body, while botocore's succeed switches it off for the store (logged once),
so a quirk costs one extra request, not one per read.

It is used only where its assumptions hold (:func:`usable`): an explicit ``http://`` endpoint
(self-hosted SeaweedFS, Ceph or MinIO on a trusted network, path-style addressing) with no proxy
configured for it. TLS endpoints, AWS itself and proxied endpoints always go through botocore.
The signature is AWS Signature Version 4 for S3 with the empty payload's hash, computed exactly
as botocore's ``S3SigV4Auth`` does (a test compares the two); the secret appears only inside
the HMAC and never in an exception or log line from here.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import http.client
import threading
import urllib.request
import weakref
from urllib.parse import quote, urlsplit

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"
_ALGORITHM = "AWS4-HMAC-SHA256"
MAX_IDLE_CONNECTIONS = 32
"""Kept-alive connections kept between GETs (at most one per thread reading at once)."""


def usable(endpoint_url: str | None) -> bool:
    """Whether the direct path may serve GETs for ``endpoint_url`` (see the module's doc)."""
    if not endpoint_url:
        return False
    parts = urlsplit(endpoint_url)
    if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc:
        return False
    if parts.query or parts.fragment:
        return False
    proxied = "http" in urllib.request.getproxies()
    return not proxied or bool(urllib.request.proxy_bypass(parts.netloc))


class DirectGetter:
    """GetObject on ``endpoint_url`` (``http://``, path style) for one bucket and key pair."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        region: str,
        access_key: str,
        secret_key: str,
        timeout: float,
    ) -> None:
        parts = urlsplit(endpoint_url)
        assert parts.hostname is not None  # checked by usable()
        self._hostname = parts.hostname
        self._port = parts.port or 80
        self._host = parts.netloc  # what http.client would send, and what is signed
        self._base_path = parts.path.rstrip("/") + "/" + quote(bucket, safe="") + "/"
        self._region = region
        self._access_key = access_key
        self._secret = secret_key
        self._timeout = timeout
        self._scope_key: tuple[str, bytes] | None = None
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []
        # A store dropped without close() still closes its sockets when collected.
        weakref.finalize(self, _close_all, self._idle)
        self.enabled = True
        self.served = 0
        """GETs answered here (for tests and the curious)."""
        self.passed_on = 0
        """GETs this path left to botocore."""
        self.opened = 0
        """Connections opened so far."""

    def path(self, name: str) -> str:
        """The request path of object ``name`` (prefix included): each key segment encoded
        once, as S3 signs it (``/`` kept, ``%`` as ``%25``)."""
        return self._base_path + quote(name, safe="/~")

    def get(self, name: str) -> tuple[bytes | None, bool]:
        """The object ``name`` (prefix included), or None to ask botocore instead; and whether
        the answer was one this path cannot use while botocore's may (HTTP 400 or 403, or a
        200 without a plain ``Content-Length`` body): if botocore then succeeds, the server
        does not take this path's requests."""
        if not self.enabled:
            return None, False
        path = self.path(name)
        data: bytes | None = None
        refused = False
        for _ in range(2):
            conn, reused = self._checkout()
            try:
                data, refused = self._request(conn, path)
            except (OSError, http.client.HTTPException):
                conn.close()
                if reused:
                    # Most often a kept-alive connection the server had closed meanwhile: once
                    # more on a new one (a GET is safe to repeat).
                    continue
                break  # a new connection failed too: botocore's retries decide
            self._checkin(conn)
            break
        if data is None:
            self.passed_on += 1
        else:
            self.served += 1
        return data, refused

    def disable(self) -> bool:
        """Send every later GET through botocore; True if this call switched the path off."""
        with self._lock:
            was, self.enabled = self.enabled, False
        return was

    def close(self) -> None:
        with self._lock:
            self.enabled = False
            _close_all(self._idle)

    def authorization(self, path: str, when: datetime.datetime) -> dict[str, str]:
        """The SigV4 headers for ``GET path`` at ``when`` (UTC), as botocore signs them."""
        stamp = when.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        canonical = (
            f"GET\n{path}\n\nhost:{self._host}\nx-amz-content-sha256:{_EMPTY_SHA256}\n"
            f"x-amz-date:{stamp}\n\n{_SIGNED_HEADERS}\n{_EMPTY_SHA256}"
        )
        scope = f"{day}/{self._region}/s3/aws4_request"
        to_sign = (
            f"{_ALGORITHM}\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.new(self._signing_key(day), to_sign.encode(), "sha256").hexdigest()
        return {
            "x-amz-date": stamp,
            "x-amz-content-sha256": _EMPTY_SHA256,
            "Authorization": (
                f"{_ALGORITHM} Credential={self._access_key}/{scope}, "
                f"SignedHeaders={_SIGNED_HEADERS}, Signature={signature}"
            ),
        }

    def _signing_key(self, day: str) -> bytes:
        cached = self._scope_key
        if cached is not None and cached[0] == day:
            return cached[1]
        key = hmac.digest(("AWS4" + self._secret).encode(), day.encode(), "sha256")
        for part in (self._region, "s3", "aws4_request"):
            key = hmac.digest(key, part.encode(), "sha256")
        self._scope_key = (day, key)
        return key

    def _request(self, conn: http.client.HTTPConnection, path: str) -> tuple[bytes | None, bool]:
        headers = self.authorization(path, datetime.datetime.now(datetime.UTC))
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", self._host)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        length = response.length  # a valid Content-Length, else None (chunked, junk, several)
        if response.status != 200 or length is None or response.getheader("Content-Encoding"):
            response.read()  # the error document, usually small; it frees the connection
            if response.will_close:
                conn.close()  # not kept: the next checkout opens a new one
            return None, response.status in (200, 400, 403)
        data = response.read()  # exactly Content-Length bytes, or IncompleteRead
        if len(data) != length:
            raise http.client.IncompleteRead(data)
        if response.will_close:
            conn.close()  # not kept: the next checkout opens a new one
        return data, False

    def _checkout(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle kept-alive connection (reused: True), or a new one."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
            self.opened += 1
        return http.client.HTTPConnection(self._hostname, self._port, timeout=self._timeout), False

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        """Keep ``conn`` for the next GET, unless the path is closed or enough are kept."""
        if conn.sock is not None:
            with self._lock:
                if self.enabled and len(self._idle) < MAX_IDLE_CONNECTIONS:
                    self._idle.append(conn)
                    return
        conn.close()


def _close_all(connections: list[http.client.HTTPConnection]) -> None:
    for conn in connections:
        conn.close()
    connections.clear()
