"""Access: who may read a snapshot, and an access log that never records a credential.

The rule of the contract: ``access = "public"`` snapshots are open to anyone who reaches the
node; any other value (``"token"``) needs ``Authorization: Bearer <node token>``, a token held
in one of the env vars named by ``[server] tokens_env``. Any other bearer — typically the
user's own Hugging Face token, which ``huggingface_hub`` sends to whatever ``HF_ENDPOINT`` is —
makes the request anonymous: it is never rejected for itself, never compared other than in
constant time, and never logged. :class:`AccessLogger` replaces aiohttp's access log with one
structlog event per request that holds no header at all.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping

import structlog
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

log = structlog.get_logger(__name__)

PUBLIC = "public"


class NodeTokens:
    """The node tokens a request may present (empty: no token snapshot can be read)."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = tuple(t.encode("utf-8") for t in tokens if t)

    @classmethod
    def from_env(cls, names: Iterable[str], environ: Mapping[str, str] | None = None) -> NodeTokens:
        """Tokens from the env vars ``names`` (``[server] tokens_env``); unset ones are skipped."""
        env = os.environ if environ is None else environ
        return cls(env.get(name, "") for name in names)

    def __len__(self) -> int:
        return len(self._tokens)

    def authorized(self, request: web.BaseRequest) -> bool:
        """Whether the request carries a node token as its bearer (constant-time compare)."""
        header = request.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        if scheme.lower() != "bearer" or not credential:
            return False
        presented = credential.strip().encode("utf-8", "replace")
        # compare with every token, always, so timing says nothing about which one matched
        matched = False
        for token in self._tokens:
            matched |= hmac.compare_digest(presented, token)
        return matched


def may_read(access: str, authorized: bool) -> bool:
    """The access rule: public snapshots for anyone, everything else for node tokens only."""
    return access == PUBLIC or authorized


class AccessLogger(AbstractAccessLogger):
    """One ``http_request`` event per request: method, path, status, size, time; no headers."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        log.info(
            "http_request",
            method=request.method,
            path=request.rel_url.raw_path,
            status=response.status,
            bytes=response.body_length,
            duration_ms=round(time * 1000, 1),
            remote=request.remote,
        )
