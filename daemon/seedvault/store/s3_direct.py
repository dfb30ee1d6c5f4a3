"""A lean GetObject for the read path: SigV4-signed here, sent on one kept-alive
``http.client`` connection per thread, with botocore behind it for everything else.

Serving a file from an S3 vault is one GetObject per ~2 MiB chunk. Through botocore each costs
~1.1 ms of CPU beyond receiving the body (event hooks, request and response models, urllib3's
pool), a tenth of a core at 100 chunks/s, on a node whose two cores also run the client and the
store (measured: 1.57 ms CPU per 2 MiB GET through botocore, 0.65 ms here, most of it the
kernel's copy of the body). This path only ever answers the easy case: an HTTP ``200`` with the
whole body. Anything else — another status (a missing key, a refused signature, throttling), a
connection that fails or closes early, a short body — returns ``None``, and the caller asks
botocore, whose retries and error translation then decide. A server that refuses this path's
requests while botocore's succeed switches it off for the store (logged once), so a quirk costs
one extra request, not one per read.

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
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[http.client.HTTPConnection] = []
        # A store dropped without close() still closes its sockets when collected.
        weakref.finalize(self, _close_all, self._connections)
        self.enabled = True
        self.served = 0
        """GETs answered here (for tests and the curious)."""
        self.passed_on = 0
        """GETs this path left to botocore."""

    def get(self, name: str) -> bytes | None:
        """The object ``name`` (prefix included), or None to ask botocore instead."""
        if not self.enabled:
            return None
        self._local.refused = False
        path = self._base_path + quote(name, safe="/~")
        for attempt in range(2):
            conn = self._connection()
            try:
                data = self._request(conn, path)
            except (OSError, http.client.HTTPException):
                # Most often a kept-alive connection the server had closed: once more on a
                # fresh one (a GET is safe to repeat), then leave it to botocore.
                self._drop(conn)
                if attempt == 0:
                    continue
                data = None
            if data is None:
                self.passed_on += 1
            else:
                self.served += 1
            return data
        return None  # pragma: no cover - the loop always returns

    def refused(self) -> bool:
        """Whether this thread's last GET here was refused as a request (HTTP 400 or 403):
        if botocore then succeeds, the server does not accept this path's requests."""
        return bool(getattr(self._local, "refused", False))

    def disable(self) -> None:
        """Send every later GET through botocore (the server refused this path's requests)."""
        self.enabled = False

    def close(self) -> None:
        self.enabled = False
        with self._lock:
            _close_all(self._connections)

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

    def _request(self, conn: http.client.HTTPConnection, path: str) -> bytes | None:
        headers = self.authorization(path, datetime.datetime.now(datetime.UTC))
        conn.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", self._host)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        length = response.getheader("Content-Length")
        if response.status != 200 or length is None or response.getheader("Content-Encoding"):
            self._local.refused = response.status in (400, 403)
            response.read()  # the error document: small, and it frees the connection
            if response.will_close:
                self._drop(conn)
            return None
        data = response.read()  # exactly Content-Length bytes, or IncompleteRead
        if len(data) != int(length):
            raise http.client.IncompleteRead(data)
        if response.will_close:
            self._drop(conn)
        return data

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self._hostname, self._port, timeout=self._timeout)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        self._local.conn = None
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)


def _close_all(connections: list[http.client.HTTPConnection]) -> None:
    for conn in connections:
        conn.close()
    connections.clear()
