"""A lean GetObject for the read path: SigV4-signed here, sent on kept-alive sockets with a
minimal HTTP/1.1 exchange, with botocore behind it for everything else.

Serving a file from an S3 vault is one GetObject per ~2 MiB chunk. Through botocore each costs
~1.1 ms of CPU beyond receiving the body (event hooks, request and response models, urllib3's
pool), a tenth of a core at 100 chunks/s, on a node whose two cores also run the client and the
store (measured: 1.57 ms CPU per 2 MiB GET through botocore, 0.65 ms through ``http.client``).
Here the request is one ``sendall``, the head one or two ``recv`` calls, and the body one
``recv_into`` with ``MSG_WAITALL`` straight into the buffer that is returned: ``http.client``
parsed the head with the ``email`` package and read the body in socket-buffer-sized pieces,
each a poll, a system call and a hand-over of the GIL (measured with a light client on the
serving node: 1.36 CPU s per GB served through ``http.client``, 1.21 here).

This path only ever answers the easy case: an HTTP ``200`` with a single plain
``Content-Length`` and the whole body. Anything else — another status (a missing key, a
refused signature, throttling), ``Transfer-Encoding`` or ``Content-Encoding``, a head it does
not parse, a connection that fails or closes early, a short body, bytes beyond the body, a
body announced above :data:`MAX_BODY_BYTES` — returns ``None``, and the caller asks botocore,
whose retries and error translation then decide. A connection is kept only after a whole
``200`` (any other answer closes it) and reused only while nothing is waiting to be read on it,
so bytes a server sent past an answer are never taken for the next one. A kept-alive
connection that fails is retried once on a new one (the server may have closed it while idle);
a new one that fails is not. A server that refuses this path's requests (400, 403), or answers
them without a plain ``Content-Length`` body, three times in a row while botocore's succeed
switches it off for the store (logged once), so a quirk costs three extra requests, not one per
read, and one refusal in passing (a clock skewed for a moment) does not. Timeouts are the
kernel's (``SO_RCVTIMEO``, ``SO_SNDTIMEO``) on a blocking socket.

It is used only where its assumptions hold (:func:`usable`): an explicit ``http://`` endpoint
(self-hosted SeaweedFS, Ceph or MinIO on a trusted network, path-style addressing) with no proxy
configured for it. TLS endpoints, AWS itself and proxied endpoints always go through botocore,
and so does every read when the key id or region is not printable ASCII (they are sent as they
are).
The signature is AWS Signature Version 4 for S3 with the empty payload's hash, computed exactly
as botocore's ``S3SigV4Auth`` does (a test compares the two); the secret appears only inside
the HMAC and never in an exception or log line from here.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
import socket
import struct
import threading
import urllib.request
import weakref
from urllib.parse import quote, urlsplit

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SIGNED_HEADERS = "host;x-amz-content-sha256;x-amz-date"
_ALGORITHM = "AWS4-HMAC-SHA256"
MAX_IDLE_CONNECTIONS = 32
"""Kept-alive connections kept between GETs (at most one per thread reading at once)."""
REFUSALS_BEFORE_OFF = 3
"""Refused direct requests in a row (each then passed by botocore) that switch the path off."""
MAX_HEAD_BYTES = 64 * 1024
"""Longest response head (status line and headers) read before the answer is given up."""
MAX_BODY_BYTES = 64 * 1024 * 1024
"""Largest body read here (chunks are at most 16 MiB of plaintext): the buffer is allocated
from the announced length before the body arrives, so a larger claim goes to botocore, which
reads as the bytes come."""
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) (\d{3})(?: [^\r\n]*)?")
_DIGITS = re.compile(rb"\d{1,15}")


class _Unusable(Exception):
    """An answer this path does not take: the connection is closed, botocore asks again."""


def usable(endpoint_url: str | None) -> bool:
    """Whether the direct path may serve GETs for ``endpoint_url`` (see the module's doc)."""
    if not endpoint_url:
        return False
    parts = urlsplit(endpoint_url)
    if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc:
        return False
    if not parts.netloc.isascii() or not parts.path.isascii():
        return False  # sent as they are in the request, which is ASCII
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
        self._host = parts.netloc  # the Host header sent, and signed
        self._base_path = parts.path.rstrip("/") + "/" + quote(bucket, safe="") + "/"
        self._region = region
        self._access_key = access_key
        self._secret = secret_key
        self._timeout = timeout
        self._scope_key: tuple[str, bytes] | None = None
        self._lock = threading.Lock()
        self._idle: list[socket.socket] = []
        # A store dropped without close() still closes its sockets when collected.
        weakref.finalize(self, _close_all, self._idle)
        # Sent as they are in each request: only plain ASCII without line breaks.
        self.enabled = all(
            value.isascii() and value.isprintable() for value in (access_key, region)
        )
        self._refusals = 0
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

    def get(self, name: str) -> tuple[bytearray | None, bool]:
        """The object ``name`` (prefix included), or None to ask botocore instead; and whether
        the answer was one this path cannot use while botocore's may (HTTP 400 or 403, or a
        200 without a plain ``Content-Length`` body): if botocore then succeeds, the server
        does not take this path's requests."""
        if not self.enabled:
            return None, False
        path = self.path(name)
        data: bytearray | None = None
        refused = False
        for attempt in range(2):
            conn: socket.socket | None = None
            try:
                conn, reused = self._checkout(fresh=attempt > 0)
                data, refused = self._request(conn, path)
            except (OSError, _Unusable):
                if conn is None:
                    break  # no connection to the server: botocore's retries decide
                conn.close()
                if reused:
                    # Most often a kept-alive connection the server had closed meanwhile: once
                    # more on a new one (a GET is safe to repeat).
                    continue
                break  # a new connection failed too: botocore's retries decide
            if data is None:
                conn.close()  # the rest of an answer not taken is never read
            else:
                self._checkin(conn)
            break
        if data is None:
            with self._lock:
                self.passed_on += 1
        else:
            with self._lock:
                self.served += 1
                self._refusals = 0
        return data, refused

    def refused_but_botocore_passed(self) -> bool:
        """Count a direct request the server refused while botocore's then passed; after
        :data:`REFUSALS_BEFORE_OFF` in a row (a direct answer taken resets the count), send
        every later GET through botocore. True if this call switched the path off."""
        with self._lock:
            self._refusals += 1
            if self._refusals < REFUSALS_BEFORE_OFF or not self.enabled:
                return False
            self.enabled = False
        return True

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

    def _request(self, conn: socket.socket, path: str) -> tuple[bytearray | None, bool]:
        """One GET on ``conn``: the body of a whole ``200``, or None and whether the answer was
        a refusal (see :meth:`get`); the connection stays usable only after a body.

        Raises:
            OSError: the connection failed, timed out or closed early.
            _Unusable: the answer is not HTTP/1.x this path parses, or runs past its length.
        """
        headers = self.authorization(path, datetime.datetime.now(datetime.UTC))
        request = f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in headers.items()
        )
        conn.sendall(request.encode("ascii") + b"\r\n")
        head, rest = _read_head(conn)
        length = head.plain_length
        if head.status != 200 or length is None or b"content-encoding" in head.fields:
            return None, head.status in (200, 400, 403)
        if length > MAX_BODY_BYTES:
            return None, False
        if len(rest) > length:
            raise _Unusable("bytes beyond the announced length")
        body = bytearray(length)
        view = memoryview(body)
        got = len(rest)
        view[:got] = rest
        while got < length:
            # One call for the whole rest: the kernel copies as it arrives, no GIL hand-over
            # per socket buffer. It returns early only at a timeout, a signal or the end.
            n = conn.recv_into(view[got:], length - got, socket.MSG_WAITALL)
            if n == 0:
                raise ConnectionError(f"the answer ended {length - got} bytes short")
            got += n
        if not head.keeps_alive:
            conn.close()  # not kept: the next checkout opens a new one
        return body, False

    def _checkout(self, fresh: bool = False) -> tuple[socket.socket, bool]:
        """An idle kept-alive connection with nothing waiting to be read (reused: True), or a
        new one (always when ``fresh``)."""
        while not fresh:
            with self._lock:
                if not self._idle:
                    break
                conn = self._idle.pop()
            if _quiet(conn):
                return conn, True
            conn.close()  # closed by the server, or bytes no request asked for: not reused
        with self._lock:
            self.opened += 1
        conn = socket.create_connection((self._hostname, self._port), timeout=self._timeout)
        try:
            # Blocking, with the kernel's timeouts: a socket in Python's timeout mode polls
            # before every call, and MSG_WAITALL needs a blocking one.
            conn.settimeout(None)
            wait = struct.pack("ll", int(self._timeout), int(self._timeout % 1 * 1e6))
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, wait)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, wait)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            conn.close()
            raise
        return conn, False

    def _checkin(self, conn: socket.socket) -> None:
        """Keep ``conn`` for the next GET, unless it was closed, the path is closed or enough
        are kept."""
        if conn.fileno() >= 0:
            with self._lock:
                if self.enabled and len(self._idle) < MAX_IDLE_CONNECTIONS:
                    self._idle.append(conn)
                    return
        conn.close()


class _Head:
    """A response's status line and header fields (names lower-cased, every value kept)."""

    def __init__(self, version: bytes, status: int, fields: dict[bytes, list[bytes]]) -> None:
        self.version = version
        self.status = status
        self.fields = fields

    @property
    def plain_length(self) -> int | None:
        """The body's length from a single all-digit ``Content-Length`` and no
        ``Transfer-Encoding``; None otherwise (chunked, junk, repeated, missing)."""
        values = self.fields.get(b"content-length", [])
        if len(values) != 1 or b"transfer-encoding" in self.fields:
            return None
        if _DIGITS.fullmatch(values[0]) is None:
            return None
        return int(values[0])

    @property
    def keeps_alive(self) -> bool:
        """HTTP/1.1 without ``Connection: close``."""
        tokens = (
            t.strip().lower() for v in self.fields.get(b"connection", []) for t in v.split(b",")
        )
        closing = b"close" in tokens
        return self.version == b"1.1" and not closing


def _quiet(conn: socket.socket) -> bool:
    """Whether an idle connection is open with nothing to read: a kept-alive connection that
    the server closed meanwhile, or that holds bytes past the last answer, is not reused."""
    try:
        conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)  # a byte, or b"" when closed
    except BlockingIOError:
        return True  # nothing waiting: the expected case
    except OSError:
        pass
    return False


def _read_head(conn: socket.socket) -> tuple[_Head, bytes]:
    """The response head on ``conn``, and the bytes read past it.

    Raises:
        OSError: the connection failed or closed before the head was whole.
        _Unusable: not an HTTP/1.x head this path parses (or longer than
            :data:`MAX_HEAD_BYTES`).
    """
    buffer = bytearray()
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise _Unusable("the response head is too long")
        part = conn.recv(65536)
        if not part:
            raise ConnectionError("the connection closed before the response head")
        buffer += part
    lines = bytes(buffer[:end]).split(b"\r\n")
    match = _STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise _Unusable("not an HTTP/1.x status line")
    fields: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise _Unusable("a header line this path does not parse")  # folded lines too
        fields.setdefault(name.lower(), []).append(value.strip())
    head = _Head(b"1." + match.group(1), int(match.group(2)), fields)
    return head, bytes(buffer[end + 4 :])


def _close_all(connections: list[socket.socket]) -> None:
    for conn in connections:
        conn.close()
    connections.clear()
