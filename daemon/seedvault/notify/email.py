"""Email alerts: one message per alert to a mailing list over SMTP, in the form lists accept.

Per ``providers.md`` §4: ``text/plain; charset=utf-8`` first with every fact in it (an HTML
alternative after it, escaped); a deterministic ``Message-ID`` (``<event id@node host>``, a
digest's id for digests) that every resend repeats; one thread per repo or model
(``In-Reply-To``/``References`` to the first alert of that thread to this list, kept in the
outbox so it survives restarts and ``reindex``); ``Auto-Submitted: auto-generated``; and no
``List-*`` headers: the list manager adds those.

Headers are built with :class:`email.message.EmailMessage` and the default policy, which
refuses CR/LF in values and folds long ones; every value that comes from an event has gone
through :func:`~seedvault.notify.render.clean` first, so a model name with CR/LF cannot create
a header. TLS: ``implicit`` (SMTPS), ``starttls`` (required), ``auto`` (STARTTLS when the
server offers it), ``none``. The password is read from the env var the config names, is given
to aiosmtplib only, and is never logged or kept in an error message.
"""

from __future__ import annotations

import asyncio
import html
import re
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import urlsplit

import aiosmtplib
import structlog

from seedvault.catalog_outbox import OutboxRow
from seedvault.config import EmailAlert
from seedvault.errors import AlertDeliveryError
from seedvault.events import AT_FORMAT
from seedvault.notify.base import Destination
from seedvault.notify.render import AlertContent, Section, clean

log = structlog.get_logger(__name__)

SUBJECT_PREFIX = "[seedvault] "
_HOST_RE = re.compile(r"^[A-Za-z0-9.-]+$")
_URL_RE = re.compile(r"^https?://[^\s<>\"']+$")
_START_TLS: dict[str, bool | None] = {
    "auto": None,
    "starttls": True,
    "implicit": False,
    "none": False,
}


def node_host(public_url: str) -> str:
    """The right-hand side of this node's Message-IDs, from ``[server] public_url``."""
    host = urlsplit(public_url).hostname or ""
    if host and _HOST_RE.match(host):
        return host.lower()
    literal = "".join(c for c in host if c in "0123456789abcdefABCDEF:.")
    return f"[{literal}]" if literal else "seedvault.invalid"


def message_id(ident: str, host: str) -> str:
    """``<ident@host>``: the Message-ID of the alert about event (or digest) ``ident``."""
    return f"<{ident}@{host}>"


def _cte(text: str) -> str:
    """7bit when every line is short ASCII; quoted-printable otherwise (8-bit-clean and short)."""
    if text.isascii() and all(len(line) <= 78 for line in text.splitlines()):
        return "7bit"
    return "quoted-printable"


def build_message(
    alert: OutboxRow,
    content: AlertContent,
    *,
    sender: str,
    recipients: Sequence[str],
    html_part: bool = True,
) -> EmailMessage:
    """The message for one alert (pure: the same alert and content give the same message)."""
    msg = EmailMessage()
    subject = " ".join(f"{SUBJECT_PREFIX}{content.title}".split())
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    enqueued = datetime.strptime(alert.enqueued_at, AT_FORMAT).replace(tzinfo=UTC)
    msg["Date"] = format_datetime(enqueued.replace(microsecond=0))
    msg["Message-ID"] = alert.message_id
    if alert.thread_root and alert.thread_root != alert.message_id:
        msg["In-Reply-To"] = alert.thread_root
        msg["References"] = alert.thread_root
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    if alert.kind == "event" and content.items:
        event = content.items[0].event
        msg["X-Seedvault-Event"] = clean(
            f"{event.get('type')}; severity={event.get('severity')}", 100
        )
    text = content.text
    msg.set_content(text, charset="utf-8", cte=_cte(text))
    if html_part:
        body = render_html(content.title, content.sections)
        msg.add_alternative(body, subtype="html", charset="utf-8", cte=_cte(body))
    return msg


def _cell(value: str) -> str:
    escaped = html.escape(value, quote=True)
    if _URL_RE.match(value):
        return f'<a href="{escaped}">{escaped}</a>'
    return escaped


def render_html(title: str, sections: Sequence[Section]) -> str:
    """The HTML alternative: the same facts as the text part, every value escaped."""
    out = [
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>',
        f"<h2>{html.escape(title)}</h2>",
    ]
    for section in sections:
        if section.title:
            out.append(f"<h3>{html.escape(section.title)}</h3>")
        if section.rows:
            out.append("<table>")
            out += [
                f'<tr><th align="left" valign="top">{html.escape(label)}</th>'
                f"<td>{_cell(value)}</td></tr>"
                for label, value in section.rows
            ]
            out.append("</table>")
        if section.lines:
            lines = "\n".join(html.escape(line) for line in section.lines)
            out.append(f"<pre>{lines}</pre>")
    out.append("<p><small>Sent by a seedvault archival node; replies are not read.</small></p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


MAX_GOODBYES = 4
"""Connections of one list kept open for their ``QUIT`` at once; past that, closed at once."""
GOODBYE_WAIT_S = 5.0
"""How long :meth:`EmailNotifier.aclose` (a stop) waits for those goodbyes."""


class EmailNotifier:
    """Sends alerts to one ``[[alerts.email]]`` destination with aiosmtplib.

    ``timeout_s`` (default: the destination's ``timeout`` key) bounds each wait for the
    server: the TCP connection, its greeting, and every reply. A server that stops answering
    (accepts the connection and never greets, or never answers the message data) fails the
    try with a retryable :class:`~seedvault.errors.AlertDeliveryError` after that long; the
    alert stays pending, and its resend carries the same ``Message-ID``. The bound is per
    step, not per message: a server that answers every step just in time can hold one try for
    several times ``timeout_s``.
    """

    def __init__(
        self,
        destination: Destination,
        cfg: EmailAlert,
        *,
        password: str | None = None,
        timeout_s: float | None = None,
        tls_context: ssl.SSLContext | None = None,
        html_part: bool = True,
    ) -> None:
        self._destination = destination
        self._cfg = cfg
        self._password = password
        self._timeout_s = float(cfg.timeout.seconds) if timeout_s is None else timeout_s
        self._tls_context = tls_context
        self._html_part = html_part
        self._quitting: set[asyncio.Task[None]] = set()

    @property
    def destination(self) -> Destination:
        return self._destination

    def _scrub(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "***")
        return text

    async def send(self, alert: OutboxRow, content: AlertContent) -> None:
        cfg = self._cfg
        msg = build_message(
            alert, content, sender=cfg.from_, recipients=cfg.to, html_part=self._html_part
        )
        client = aiosmtplib.SMTP(
            hostname=cfg.smtp_host,
            port=cfg.smtp_port,
            use_tls=cfg.tls == "implicit",
            start_tls=_START_TLS[cfg.tls],
            timeout=self._timeout_s,
            tls_context=self._tls_context,
            username=cfg.username or None,
            password=(self._password or "") if cfg.username else None,
        )
        try:
            await client.connect()
            refused, _reply = await client.send_message(
                msg, sender=cfg.from_, recipients=list(cfg.to)
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            client.close()
            codes = [r.code for r in exc.recipients]
            permanent = bool(codes) and all(500 <= c < 600 for c in codes)
            raise AlertDeliveryError(
                f"{self._destination.label}: every recipient refused ({codes})",
                permanent=permanent,
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            detail = self._scrub(f"{type(exc).__name__} {exc.code} {exc.message}")[:300]
            raise AlertDeliveryError(
                f"{self._destination.label}: {detail}", permanent=500 <= exc.code < 600
            ) from None
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            detail = self._scrub(f"{type(exc).__name__}: {exc}")[:300]
            raise AlertDeliveryError(f"{self._destination.label}: {detail}") from None
        # Accepted: the server answered DATA with 2xx. A failing QUIT changes nothing.
        if refused:
            log.warning(
                "alert_recipients_refused",
                destination=self._destination.label,
                refused={k: v.code for k, v in refused.items()},
            )
        # The alert is delivered: return now, so the dispatcher marks it sent at once. Saying
        # goodbye waits on the server again; a server that never answers QUIT would otherwise
        # hold every following alert of this list for a timeout each, and a stop during that
        # wait would leave a delivered alert pending, to be sent twice.
        if len(self._quitting) >= MAX_GOODBYES:  # the server is slow to say goodbye: don't
            client.close()  # pile up its connections (the message is delivered either way)
            return
        quitting = asyncio.get_running_loop().create_task(_quit(client))
        self._quitting.add(quitting)
        quitting.add_done_callback(self._quitting.discard)

    async def aclose(self) -> None:
        """Wait (up to :data:`GOODBYE_WAIT_S`, or ``timeout_s`` if shorter) for the goodbyes
        still in flight, then drop their connections: a stop stays within its budget."""
        if self._quitting:
            wait = min(self._timeout_s, GOODBYE_WAIT_S)
            _done, late = await asyncio.wait(set(self._quitting), timeout=wait)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


async def _quit(client: aiosmtplib.SMTP) -> None:
    """``QUIT`` on a connection whose message was accepted; whatever happens, it is closed."""
    try:
        await client.quit()
    except (TimeoutError, aiosmtplib.SMTPException, OSError):
        pass
    finally:
        if client.is_connected:
            client.close()
