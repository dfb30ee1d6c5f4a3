"""Behaviour probes: a suite of chat requests run against an API and kept as evidence.

**A run** (:func:`run_suite`) of a suite (:mod:`seedvault.sources.probe_suite`) sends every
probe ``repeat`` times, one request at a time, and records per exchange (``providers.md`` §3):
the request as sent (URL without credentials, the JSON body; headers never), the HTTP status and
error class, an allow-list of response headers, the full response body (the API key, should a
provider echo it, replaced by ``[redacted]``), the parsed fields (``model``,
``system_fingerprint``, ``finish_reason``, ``usage``, ``content``, ``logprobs``), the time
taken, and derived values (normalised-text hash, score). The run is one ``run.json`` beside the
exact suite file (``suite.toml``) in a snapshot of kind ``api-probes`` under ``probes/<watch
id>/<model>`` (:class:`ProbeRunSource`): the snapshot id names the whole run. Error classes:
``not_found`` (404 or a not-found code), ``bad_request`` (other 4xx), ``auth`` (401/402/403, and
a 400 about credit, billing or quota), ``rate_limited`` (429 after the retries), ``server``
(5xx/529/408/409 after the retries), ``redirect`` (3xx), ``network``, and ``bad_response`` (a
200 that holds no answer: not JSON, no choice or message, no content blocks). A run holding any
of the last six is *inconclusive*: it is kept, but never compared (``probe_compare.py``). A
refusal (OpenAI ``message.refusal``) is an answer like any other.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from seedvault.errors import ConfigError
from seedvault.manifest import key_segment
from seedvault.sources.base import Observation
from seedvault.sources.models_api import FLAVORS, NOT_FOUND_CODES
from seedvault.sources.pages import (
    DEFAULT_RETRY,
    FetchError,
    RetryPolicy,
    bytes_artifact,
    http_request,
    where,
)
from seedvault.sources.probe_scoring import normalise, score, text_hash
from seedvault.sources.probe_suite import Probe, Suite
from seedvault.vault import iso_seconds, utc_now

log = structlog.get_logger(__name__)

RUN_FORMAT = 1
CHAT_FLAVORS = ("openai", "mistral", "anthropic")
"""Models-list flavors whose chat API the runner speaks (mistral is OpenAI-compatible)."""
INCONCLUSIVE = frozenset({"auth", "rate_limited", "server", "network", "redirect", "bad_response"})
"""Error classes that say nothing about the model: a run holding one is never compared."""
HEADER_ALLOW = (
    "x-request-id",
    "request-id",
    "openai-model",
    "openai-version",
    "openai-processing-ms",
    "anthropic-model",
    "x-model",
    "deprecation",
    "sunset",
    "warning",
)
"""Response headers a run records (the rest, cookies and account details among them, are not)."""
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
DEFAULT_MAX_TOKENS = 256


# -- running ------------------------------------------------------------------------------------


def probes_source_key(watch_id: str, model: str) -> str:
    """``probes/<watch id>/<model>`` (each percent-encoded as one key segment)."""
    return f"probes/{key_segment(watch_id)}/{key_segment(model)}"


_ACCOUNT = re.compile(r"credit|billing|balance|quota|payment|insufficient_funds", re.IGNORECASE)
"""Words of a 400 that is about the account (Anthropic's "credit balance is too low"), not
about the model or the request."""


def error_class(status: int, code: str = "", message: str = "") -> str:
    """The class of a non-200 answer (module docstring)."""
    if status == 404 or code in NOT_FOUND_CODES:
        return "not_found"
    if status in (401, 402, 403):  # 402: billing, an account matter like a bad key
        return "auth"
    if status == 400 and _ACCOUNT.search(f"{code} {message}"):
        return "auth"
    if status == 429:
        return "rate_limited"
    if status >= 500 or status in (408, 409):
        return "server"
    if status < 200 or 300 <= status < 400:
        return "redirect"
    return "bad_request"


def _refused_parameters(doc: Any, sent: Sequence[str]) -> list[str]:
    """The parameters among ``sent`` that a 400/422 answer names: OpenAI-style
    ``error.param`` or ``error.message``, else anywhere in the body (Mistral's 422 lists
    ``"loc": ["body", "seed"]``)."""
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        param, message = err.get("param"), err.get("message")
        text = " ".join(v for v in (param, message) if isinstance(v, str))
    elif doc is not None:
        text = json.dumps(doc)[:20_000]
    else:
        return []
    named = []
    for name in sent:
        aliases = {name, "stop_sequences"} if name == "stop" else {name}
        if any(re.search(rf"\b{a}\b", text) for a in aliases):
            named.append(name)
    return named


def _json(content: bytes) -> Any:
    try:
        return json.loads(content) if content else None
    except (ValueError, RecursionError):
        return None


class ChatApi:
    """One provider's chat endpoint (OpenAI-compatible ``/chat/completions`` or Anthropic's
    ``/messages``) under ``base_url``, with the key sent only in the flavor's header."""

    def __init__(
        self,
        flavor: str,
        base_url: str,
        api_key: str,
        session: aiohttp.ClientSession,
        *,
        policy: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        if flavor not in CHAT_FLAVORS:
            raise ConfigError(f"probes speak {', '.join(CHAT_FLAVORS)} chat APIs, not {flavor}")
        self.flavor, self.base_url, self.session, self.policy = flavor, base_url, session, policy
        self._key = api_key
        path = "/messages" if flavor == "anthropic" else "/chat/completions"
        self.url = base_url.rstrip("/") + path

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        return {**headers, **FLAVORS[self.flavor].auth_headers(self._key)}

    def redact(self, text: str) -> str:
        """``text`` without the API key."""
        return text.replace(self._key, "[redacted]") if self._key else text

    def body(self, model: str, probe: Probe, omit: frozenset[str]) -> dict[str, Any]:
        """The JSON request body for ``probe`` in this flavor, without ``omit``."""
        params = {k: v for k, v in probe.params.items() if k not in omit}
        if self.flavor == "anthropic":
            system = "\n\n".join(c for r, c in probe.messages if r == "system")
            body: dict[str, Any] = {
                "model": model,
                "max_tokens": params.get("max_tokens", DEFAULT_MAX_TOKENS),
                "messages": [{"role": r, "content": c} for r, c in probe.messages if r != "system"],
            }
            if system:
                body["system"] = system
            for name in ("temperature", "top_p"):
                if name in params:
                    body[name] = params[name]
            if "stop" in params:
                body["stop_sequences"] = params["stop"]
            return body
        body = {"model": model, "messages": [{"role": r, "content": c} for r, c in probe.messages]}
        for name in ("max_tokens", "temperature", "top_p", "seed", "stop", "logprobs"):
            if name in params:
                body[name] = params[name]
        return body

    async def send(self, body: Mapping[str, Any]) -> tuple[int, dict[str, str], bytes, str]:
        """POST ``body``; (status, allow-listed headers, body with the key redacted, error).

        ``status`` is 0 and ``error`` says why when no answer came (network, too large).
        """
        data = json.dumps(body, ensure_ascii=False, sort_keys=True).encode("utf-8")
        try:
            answer = await http_request(
                self.session,
                "POST",
                self.url,
                headers=self._headers(),
                body=data,
                policy=self.policy,
                max_bytes=MAX_RESPONSE_BYTES,
            )
        except FetchError as exc:
            return 0, {}, b"", exc.reason
        content = answer.body
        if self._key:
            content = content.replace(self._key.encode("utf-8"), b"[redacted]")
        kept = {h: answer.header(h) for h in HEADER_ALLOW if answer.header(h)}
        return answer.status, kept, content, ""


def _parse_answer(flavor: str, doc: Any) -> dict[str, Any] | None:
    """The parsed fields of a 200 answer (missing ones left out); None when it is no answer
    at all (not a JSON object, no choice or message, no content blocks)."""
    out: dict[str, Any] = {}
    if not isinstance(doc, dict):
        return None
    for name in ("model", "system_fingerprint", "usage"):
        if doc.get(name) is not None:
            out[name] = doc[name]
    if flavor == "anthropic":
        found = doc.get("content")
        if not isinstance(found, list):
            return None
        blocks: list[Any] = found
        texts = [
            b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text"
        ]
        out["content"] = "".join(t for t in texts if isinstance(t, str))
        if doc.get("stop_reason") is not None:
            out["finish_reason"] = doc["stop_reason"]
        return out
    choices = doc.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    first: dict[str, Any] = choices[0]
    message = first.get("message")
    if not isinstance(message, dict):
        return None
    content, refusal = message.get("content"), message.get("refusal")
    if isinstance(refusal, str) and refusal:
        out["refusal"] = refusal
    # a refusal is what the model said: it is compared like any answer
    out["content"] = content if isinstance(content, str) else out.get("refusal", "")
    if first.get("finish_reason") is not None:
        out["finish_reason"] = first["finish_reason"]
    logprobs = first.get("logprobs")
    if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
        out["logprobs"] = [
            [t.get("token"), t.get("logprob")]
            for t in logprobs["content"]
            if isinstance(t, dict) and isinstance(t.get("logprob"), int | float)
        ]
    return out


def _error_message(doc: Any) -> str:
    """The provider's error message, if the body has one (classification only, not kept)."""
    err = doc.get("error") if isinstance(doc, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    return message[:2000] if isinstance(message, str) else ""


def _error_code(doc: Any) -> str:
    """The provider's short error code/type, if the body has one."""
    if isinstance(doc, dict):
        err = doc.get("error")
        if isinstance(err, dict):
            for name in ("code", "type", "status"):
                value = err.get(name)
                if isinstance(value, str) and len(value) <= 64:
                    return value
    return ""


async def exchange(
    api: ChatApi,
    model: str,
    probe: Probe,
    repeat: int,
    *,
    optional: frozenset[str],
    omit: set[str],
) -> dict[str, Any]:
    """Send one probe once and return its record; ``omit`` gains the ``optional`` parameters
    the API refused (with a 400 or 422 naming them)."""
    started = time.monotonic()
    body = api.body(model, probe, frozenset(omit))
    status, headers, content, failure = await api.send(body)
    omitted: list[str] = []
    sent_optional = sorted(
        name
        for name in probe.params
        if name in optional and name not in omit and name in _sent_names(body)
    )
    refused = _refused_parameters(_json(content), sent_optional) if status in (400, 422) else []
    if refused:
        omit.update(refused)
        omitted = refused
        body = api.body(model, probe, frozenset(omit))
        status, headers, content, failure = await api.send(body)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    record: dict[str, Any] = {
        "probe": probe.id,
        "repeat": repeat,
        "request": {"url": where(api.url), "body": body},
        "status": status,
        "headers": headers,
        "time_ms": elapsed_ms,
    }
    if omitted:
        record["omitted_after_refusal"] = omitted
    elif omit & set(probe.params):
        record["omitted"] = sorted(omit & set(probe.params))
    doc = _json(content)
    record["body"] = doc if doc is not None else content.decode("utf-8", "replace")
    if status == 0:
        record["error"] = {"class": "network", "reason": failure}
        return record
    if status != 200:
        code = _error_code(doc)
        cls = error_class(status, code, _error_message(doc))
        record["error"] = {"class": cls, **({"code": code} if code else {})}
        return record
    parsed = _parse_answer(api.flavor, doc)
    if parsed is None:
        record["error"] = {"class": "bad_response"}
        return record
    record["parsed"] = parsed
    text = str(parsed.get("content", ""))
    derived: dict[str, Any] = {"text_b3": text_hash(text), "chars": len(normalise(text))}
    if probe.scorer is not None:
        result = await score(probe.scorer, text)
        if result.value is not None:
            derived["score"] = result.value
        derived["score_detail"] = api.redact(result.detail)
    record["derived"] = derived
    return record


def _sent_names(body: Mapping[str, Any]) -> set[str]:
    names = set(body)
    if "stop_sequences" in names:
        names.add("stop")
    return names


@dataclass
class ProbeRun:
    """One run's record (``run.json``) and what it needs to be stored."""

    doc: dict[str, Any]
    suite: Suite

    @property
    def inconclusive(self) -> list[str]:
        """Probe ids whose exchanges hold an :data:`INCONCLUSIVE` error class."""
        return sorted(
            {
                e["probe"]
                for e in self.doc["exchanges"]
                if e.get("error", {}).get("class") in INCONCLUSIVE
            }
        )

    @property
    def inconclusive_classes(self) -> list[str]:
        """The :data:`INCONCLUSIVE` error classes the run holds."""
        found = {e.get("error", {}).get("class") for e in self.doc["exchanges"]}
        return sorted(c for c in found if c in INCONCLUSIVE)

    def to_bytes(self) -> bytes:
        return (json.dumps(self.doc, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode()


async def run_suite(
    api: ChatApi, model: str, suite: Suite, repeat: int, *, labels: Sequence[str] = ()
) -> ProbeRun:
    """Send every probe of ``suite`` ``repeat`` times (probe by probe, repeats in a row)."""
    omit: set[str] = set()
    started = iso_seconds(utc_now())
    exchanges: list[dict[str, Any]] = []
    for probe in suite.probes:
        for i in range(max(1, repeat)):
            exchanges.append(
                await exchange(api, model, probe, i, optional=suite.optional, omit=omit)
            )
    doc: dict[str, Any] = {
        "format": RUN_FORMAT,
        "suite": {"name": suite.name, "version": suite.version, "sha256": suite.digest},
        "api": {"flavor": api.flavor, "endpoint": where(api.base_url)},
        "model": model,
        "repeat": max(1, repeat),
        "started_at": started,
        "finished_at": iso_seconds(utc_now()),
        "exchanges": exchanges,
    }
    if labels:
        doc["labels"] = list(labels)
    log.info(
        "probe_run_done",
        model=model,
        exchanges=len(exchanges),
        errors=sum(1 for e in exchanges if "error" in e),
    )
    return ProbeRun(doc, suite)


class ProbeRunSource:
    """A finished probe run as a :class:`~seedvault.sources.base.Source` (kind
    ``api-probes``): ``run.json`` and ``suite.toml``."""

    kind = "api-probes"
    revision = "_"

    def __init__(self, watch_id: str, api_id: str, run: ProbeRun) -> None:
        self.key = probes_source_key(watch_id, run.doc["model"])
        self.api_id = api_id
        self.run = run

    async def observe(self) -> Observation:
        doc = self.run.doc
        exchanges = doc["exchanges"]
        upstream = {
            "api": self.api_id,
            "flavor": doc["api"]["flavor"],
            "model": doc["model"],
            "suite": doc["suite"]["name"],
            "suite_version": doc["suite"]["version"],
            "repeat": doc["repeat"],
            "exchanges": len(exchanges),
            "errors": sum(1 for e in exchanges if "error" in e),
        }
        return Observation(
            artifacts=[
                bytes_artifact("run.json", self.run.to_bytes()),
                bytes_artifact("suite.toml", self.run.suite.raw),
            ],
            upstream=upstream,
            source_extra={"endpoint": doc["api"]["endpoint"], "model": doc["model"]},
        )
