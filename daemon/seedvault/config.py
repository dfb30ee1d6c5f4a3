"""Configuration: one TOML file loaded into frozen dataclasses, validated with key paths.

Every key of ``config/seedvault.example.toml`` is a field below with its default and help text
(``metadata["help"]``). Unknown keys, wrong types and bad durations are :class:`ConfigError`
naming the key path (``watch.hf[2].every: expected a duration like "6h", got "often"``), and so
is everything ``run`` would refuse at start (``server.listen``, alert event types, digest times
and lead times, webhook secrets, duplicate watch ids), so every command agrees with ``run``
about a file, and every value nothing could use (a poll interval under 1 s, a scrub period
under a day, an email without recipients, a watch of no revision, page limits that reject
every fetch, a ``max_shrink`` outside 0–1). Secrets are never in the file: only the *name* of
the environment variable that holds them. Relative paths resolve against the config file's
directory; an empty ``[server] public_url`` is derived from ``listen``.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import tomllib
import types
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import structlog

from seedvault.errors import ConfigError

log = structlog.get_logger(__name__)

_DURATION_RE = re.compile(r"^(\d+)(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Duration(str):
    """A duration written ``<int>(s|m|h|d)``; ``.seconds`` gives its length."""

    @property
    def seconds(self) -> int:
        match = _DURATION_RE.match(self)
        assert match is not None  # checked at load
        return int(match.group(1)) * _UNIT_S[match.group(2)]


def parse_duration(value: str) -> int:
    """Seconds in a duration string; raises ValueError when it is not ``<int>(s|m|h|d)``."""
    match = _DURATION_RE.match(value.strip())
    if not match:
        raise ValueError(f'expected a duration like "6h", got {value!r}')
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def _f(default: Any, help: str, *, at_least: str = "", seconds_ok: bool = False) -> Any:
    """A field with its default and help; ``at_least``: the shortest duration accepted;
    ``seconds_ok``: a duration of seconds is usual here (no ``short_duration`` warning)."""
    meta: dict[str, Any] = {"help": help}
    if at_least:
        meta["at_least"] = at_least
    if seconds_ok:
        meta["seconds_ok"] = True
    if isinstance(default, list):
        return field(default_factory=functools.partial(list, default), metadata=meta)
    return field(default=default, metadata=meta)


def _req(help: str) -> Any:
    return field(metadata={"help": help, "required": True})


@dataclass(frozen=True)
class VaultConfig:
    backend: str = _f("fs", '"fs" (a local directory) or "s3" (any S3-compatible store)')
    path: str = _f("./vault", "fs only: the vault directory")
    endpoint_url: str = _f("", "s3 only: the S3 endpoint URL (empty: AWS default)")
    bucket: str = _f("", "s3 only: the bucket (must exist)")
    prefix: str = _f("", "key prefix inside the bucket")
    region: str = _f("us-east-1", "s3 region")
    access_key_env: str = _f("SEEDVAULT_S3_ACCESS_KEY", "s3 only: env var with the access key")
    secret_key_env: str = _f("SEEDVAULT_S3_SECRET_KEY", "s3 only: env var with the secret key")
    max_chunk_bytes: int = _f(16 * 1024 * 1024, "largest chunk plaintext accepted on read")
    put_checksum: str = _f(
        "crc32",
        's3 only: how each upload\'s body is checked on arrival: "crc32" (x-amz-checksum-crc32)'
        ' or "sha256" (a SHA-256-signed payload, for servers that refuse the checksum header)',
    )


@dataclass(frozen=True)
class CatalogConfig:
    path: str = _f("./seedvault-catalog.sqlite", "the SQLite catalog file")


@dataclass(frozen=True)
class IngestConfig:
    concurrency: int = _f(8, "chunks in flight (hash, compress, upload)")
    file_concurrency: int = _f(4, "files downloaded at once per capture")
    zstd_level: int = _f(3, "zstd level for non-float data")


@dataclass(frozen=True)
class ServerConfig:
    listen: str = _f("127.0.0.1:8470", "host:port the HTTP server binds")
    public_url: str = _f(
        "",
        "base URL used in absolute links and feeds (empty: http://<listen host>:<port>, with"
        " the loopback address for a wildcard host 0.0.0.0 or ::)",
    )
    tokens_env: list[str] = _f([], "env vars holding node tokens (read access to token snapshots)")


@dataclass(frozen=True)
class HubConfig:
    endpoint: str = _f("https://huggingface.co", "the Hub to mirror")
    token_env: str = _f("HF_TOKEN", "optional env var with a Hub token (unset: anonymous)")
    requests_per_5min: int = _f(400, "API-call budget per 5 minutes")


@dataclass(frozen=True)
class DaemonConfig:
    max_captures: int = _f(2, "captures running at once")
    shutdown_timeout: Duration = _f(
        Duration("60s"), "SIGTERM: drain this long, then cancel", seconds_ok=True
    )
    scrub_period: Duration = _f(
        Duration("30d"),
        "every object verified once per period (whole days, rounded down; at least 1d)",
        at_least="1d",
    )
    gc_grace: Duration = _f(Duration("24h"), "gc never deletes objects younger than this")


@dataclass(frozen=True)
class HfWatch:
    repo: str = _req("org/name on the Hub")
    id: str = _f("", 'watch id (default "hf:<repo>")')
    type: str = _f("model", '"model" or "dataset"')
    revisions: list[str] = _f(["main"], "branches, tags or commits to follow (at least one)")
    every: Duration = _f(Duration("6h"), "poll interval (at least 1s)", at_least="1s")
    include: list[str] = _f(["*"], "glob patterns of files to capture")
    exclude: list[str] = _f([], "glob patterns of files to skip")
    max_bytes: int = _f(0, "skip a revision larger than this (0: no limit)")
    access: str = _f("auto", '"auto" (follow upstream), "public" or "token"')
    endpoint: str = _f("", "override [hub] endpoint")
    token_env: str = _f("", "override [hub] token_env")


@dataclass(frozen=True)
class ModelsApiWatch:
    id: str = _req("watch id")
    flavor: str = _req("openai | anthropic | gemini | mistral | cohere")
    base_url: str = _req("API base URL")
    api_key_env: str = _req("env var with the API key (required)")
    every: Duration = _f(Duration("1h"), "poll interval (at least 1s)", at_least="1s")


@dataclass(frozen=True)
class PageWatch:
    id: str = _req("watch id")
    provider: str = _req("openai | anthropic | gemini | bedrock | generic")
    url: str = _req("page URL (prefer the markdown twin)")
    every: Duration = _f(Duration("6h"), "poll interval (at least 1s)", at_least="1s")
    min_bytes: int = _f(2000, "reject a fetch smaller than this (at most max_bytes)")
    max_bytes: int = _f(5_000_000, "reject a fetch larger than this (at least 1)")
    required_markers: list[str] = _f([], "strings a good fetch must contain")
    max_shrink: float = _f(
        0.4,
        "reject a fetch shorter than the last good copy by more than this fraction of it"
        " (0 to 1: 0 rejects any shrink, 1 never rejects)",
    )


@dataclass(frozen=True)
class ProbesWatch:
    id: str = _req("watch id")
    api: str = _req("a [[watch.models_api]] id")
    models: list[str] = _req("models to probe")
    suite: str = _f("basic", "a bundled suite name or a path to a suite file")
    every: Duration = _f(Duration("24h"), "probe interval (at least 1s)", at_least="1s")
    repeat: int = _f(3, "runs per probe (measures noise)")
    rescue_before: list[str] = _f(["30d", "7d"], "extra runs before a known shutdown")


@dataclass(frozen=True)
class WatchConfig:
    hf: list[HfWatch] = _f([], "Hugging Face repos")
    models_api: list[ModelsApiWatch] = _f([], "provider models lists")
    page: list[PageWatch] = _f([], "deprecation pages")
    probes: list[ProbesWatch] = _f([], "behaviour probe suites")


@dataclass(frozen=True)
class EmailAlert:
    to: list[str] = _req("recipient addresses (the list address; at least one)")
    from_: str = _req("sender address")
    smtp_host: str = _f("localhost", "SMTP server")
    smtp_port: int = _f(25, "SMTP port")
    tls: str = _f("auto", '"auto" | "starttls" | "implicit" | "none"')
    timeout: Duration = _f(
        Duration("30s"),
        "longest wait for the SMTP server at each step (connecting, its greeting, each reply);"
        " then the try fails and is retried later (at least 1s)",
        at_least="1s",
        seconds_ok=True,
    )
    username: str = _f("", "SMTP user (empty: no auth)")
    password_env: str = _f("", "env var with the SMTP password (required with username)")
    events: list[str] = _f(["*"], "event types sent here")
    severity: str = _f("routine", "lowest severity sent here")
    digest_at: str = _f("08:00", "UTC time of the daily digest of routine events")
    reminders: list[str] = _f(["30d", "7d", "1d"], "shutdown_reminder lead times")


@dataclass(frozen=True)
class WebhookAlert:
    url: str = _req("receiver URL")
    secret_env: str = _f(
        "", "env var with the Standard Webhooks signing secret (whsec_<base64>; empty: unsigned)"
    )
    format: str = _f("json", '"json" or "slack"')
    events: list[str] = _f(["*"], "event types sent here")


@dataclass(frozen=True)
class FeedConfig:
    enabled: bool = _f(True, "serve /feeds/alerts.atom and /feeds/alerts.json")


@dataclass(frozen=True)
class AlertsConfig:
    retry_for: Duration = _f(Duration("3d"), "retry a delivery this long, then dead-letter")
    email: list[EmailAlert] = _f([], "mailing lists")
    webhook: list[WebhookAlert] = _f([], "webhooks")
    feed: FeedConfig = field(default_factory=FeedConfig, metadata={"help": "feeds"})


@dataclass(frozen=True)
class Config:
    vault: VaultConfig = field(default_factory=VaultConfig, metadata={"help": "the vault"})
    catalog: CatalogConfig = field(default_factory=CatalogConfig, metadata={"help": "catalog"})
    ingest: IngestConfig = field(default_factory=IngestConfig, metadata={"help": "ingest"})
    server: ServerConfig = field(default_factory=ServerConfig, metadata={"help": "HTTP server"})
    hub: HubConfig = field(default_factory=HubConfig, metadata={"help": "Hub defaults"})
    daemon: DaemonConfig = field(default_factory=DaemonConfig, metadata={"help": "daemon"})
    watch: WatchConfig = field(default_factory=WatchConfig, metadata={"help": "watches"})
    alerts: AlertsConfig = field(default_factory=AlertsConfig, metadata={"help": "alerts"})
    source_path: str = field(default="", metadata={"internal": True})
    """The file this config was loaded from ('' for built-in defaults)."""


_ENUMS = {
    "vault.backend": ("fs", "s3"),
    "vault.put_checksum": ("crc32", "sha256"),
    "watch.hf.type": ("model", "dataset"),
    "watch.hf.access": ("auto", "public", "token"),
    "watch.models_api.flavor": ("openai", "anthropic", "gemini", "mistral", "cohere"),
    "watch.page.provider": ("openai", "anthropic", "gemini", "bedrock", "generic"),
    "alerts.email.tls": ("auto", "starttls", "implicit", "none"),
    "alerts.email.severity": ("routine", "urgent"),
    "alerts.webhook.format": ("json", "slack"),
}


def _toml_name(name: str) -> str:
    return name.rstrip("_")


def _build(cls: type[Any], data: Any, path: str, schema_path: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a table, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {_toml_name(f.name): f for f in fields(cls) if not f.metadata.get("internal")}
    for key in data:
        if key not in known:
            where = f"{path}.{key}" if path else key
            raise ConfigError(f"{where}: unknown key (known: {', '.join(sorted(known))})")
    kwargs: dict[str, Any] = {}
    for toml_key, f in known.items():
        where = f"{path}.{toml_key}" if path else toml_key
        schema_where = f"{schema_path}.{toml_key}" if schema_path else toml_key
        if toml_key not in data:
            if f.metadata.get("required"):
                raise ConfigError(f"{where}: required key is missing")
            continue
        kwargs[f.name] = _value(hints[f.name], data[toml_key], where, schema_where)
        if isinstance(kwargs[f.name], Duration):
            _check_duration(
                kwargs[f.name],
                f.metadata.get("at_least", ""),
                where,
                warn_short=not f.metadata.get("seconds_ok"),
            )
    return cls(**kwargs)


def _check_duration(value: Duration, at_least: str, where: str, *, warn_short: bool) -> None:
    """Refuse a duration below the field's minimum; warn about one under a minute (an
    interval that short is likely a slip) unless seconds are usual for the key."""
    if at_least and value.seconds < parse_duration(at_least):
        raise ConfigError(f'{where}: expected at least "{at_least}", got {str(value)!r}')
    if warn_short and value.seconds < 60:
        log.warning("short_duration", key=where, value=str(value))


def _value(tp: Any, raw: Any, where: str, schema_where: str) -> Any:
    origin = get_origin(tp)
    if origin is list:
        (item_tp,) = get_args(tp)
        if not isinstance(raw, list):
            raise ConfigError(f"{where}: expected a list, got {type(raw).__name__}")
        return [_value(item_tp, item, f"{where}[{i}]", schema_where) for i, item in enumerate(raw)]
    if origin in (Union, types.UnionType):
        raise ConfigError(f"{where}: unsupported type")  # pragma: no cover - no such fields
    if is_dataclass(tp):
        return _build(tp, raw, where, schema_where)  # type: ignore[arg-type]
    if tp is Duration:
        if not isinstance(raw, str):
            raise ConfigError(f'{where}: expected a duration like "6h", got {raw!r}')
        try:
            parse_duration(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return Duration(raw.strip())
    if tp is bool:
        if not isinstance(raw, bool):
            raise ConfigError(f"{where}: expected true or false, got {raw!r}")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ConfigError(f"{where}: expected an integer, got {raw!r}")
        if raw < 0:
            raise ConfigError(f"{where}: expected a non-negative integer, got {raw}")
        return raw
    if tp is float:
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise ConfigError(f"{where}: expected a number, got {raw!r}")
        return float(raw)
    if tp is str:
        if not isinstance(raw, str):
            raise ConfigError(f"{where}: expected a string, got {raw!r}")
        allowed = _ENUMS.get(schema_where)
        if allowed and raw not in allowed:
            raise ConfigError(f"{where}: expected one of {', '.join(allowed)}, got {raw!r}")
        return raw
    raise ConfigError(f"{where}: unsupported type {tp!r}")  # pragma: no cover


def _resolve(base: Path, value: str) -> str:
    return value if Path(value).is_absolute() else str((base / value).resolve())


def _check(cfg: Config, env: dict[str, str], secrets: bool = True) -> Config:
    if cfg.vault.backend == "s3":
        if not cfg.vault.bucket:
            raise ConfigError('vault.bucket: required when vault.backend is "s3"')
        for key in ("access_key_env", "secret_key_env"):
            name = getattr(cfg.vault, key)
            if not env.get(name):
                raise ConfigError(f"vault.{key}: environment variable {name} is not set")
    if cfg.vault.max_chunk_bytes < 4 * 1024 * 1024:
        raise ConfigError("vault.max_chunk_bytes: must be at least 4194304 (the chunker's max)")
    if not 1 <= cfg.ingest.zstd_level <= 22:
        raise ConfigError(f"ingest.zstd_level: expected 1 to 22, got {cfg.ingest.zstd_level}")
    for i, name in enumerate(cfg.server.tokens_env if secrets else []):
        if not env.get(name):
            raise ConfigError(f"server.tokens_env[{i}]: environment variable {name} is not set")
    for i, w in enumerate(cfg.watch.models_api if secrets else []):
        if not env.get(w.api_key_env):
            raise ConfigError(
                f"watch.models_api[{i}].api_key_env: environment variable {w.api_key_env} "
                "is not set"
            )
    for i, e in enumerate(cfg.alerts.email if secrets else []):
        if e.username and not (e.password_env and env.get(e.password_env)):
            raise ConfigError(
                f"alerts.email[{i}].password_env: required (and must be set) with a username"
            )
    if secrets:
        _check_webhook_secrets(cfg, env)
    host, port = parse_listen(cfg.server.listen)
    if not cfg.server.public_url:
        cfg = replace(cfg, server=replace(cfg.server, public_url=default_public_url(host, port)))
    seen: set[str] = set()
    for i, h in enumerate(cfg.watch.hf):
        if "/" not in h.repo or h.repo.startswith("/") or h.repo.endswith("/"):
            raise ConfigError(f'watch.hf[{i}].repo: expected "org/name", got {h.repo!r}')
        wid = h.id or f"hf:{h.repo}"
        if wid in seen:
            raise ConfigError(f"watch.hf[{i}].id: duplicate watch id {wid!r}")
        seen.add(wid)
        if not h.revisions or not all(r.strip() for r in h.revisions):
            raise ConfigError(
                f"watch.hf[{i}].revisions: at least one branch, tag or commit, none empty"
            )
    _check_urls(cfg)
    _unique_ids("watch.models_api", [w.id for w in cfg.watch.models_api])
    _unique_ids("watch.page", [w.id for w in cfg.watch.page])
    _check_pages(cfg)
    _check_probes(cfg)
    _check_alerts(cfg)
    return cfg


def _check_urls(cfg: Config) -> None:
    """Every URL key holds an http(s) URL with a host (the empty ones that may be empty
    aside): caught at load, naming the key, rather than at the first poll. (Webhook URLs are
    checked with the other alert destinations.)"""
    urls: list[tuple[str, str, bool]] = [
        ("vault.endpoint_url", cfg.vault.endpoint_url, True),
        ("server.public_url", cfg.server.public_url, False),
        ("hub.endpoint", cfg.hub.endpoint, False),
    ]
    urls += [(f"watch.hf[{i}].endpoint", w.endpoint, True) for i, w in enumerate(cfg.watch.hf)]
    urls += [
        (f"watch.models_api[{i}].base_url", w.base_url, False)
        for i, w in enumerate(cfg.watch.models_api)
    ]
    urls += [(f"watch.page[{i}].url", w.url, False) for i, w in enumerate(cfg.watch.page)]
    for where, url, may_be_empty in urls:
        if may_be_empty and not url:
            continue
        try:
            parts = urlsplit(url)
            host = parts.hostname
        except ValueError:
            host = None
        else:
            if parts.scheme not in ("http", "https"):
                host = None
        if not host:
            raise ConfigError(
                f'{where}: expected an http(s) URL such as "https://host/…", got {url!r}'
            )


def _check_webhook_secrets(cfg: Config, env: dict[str, str]) -> None:
    """Each webhook's ``secret_env`` is set and holds what the dispatcher can decode
    (``whsec_<base64>``): refused here, naming the key and never the value."""
    hooks = [(i, hook) for i, hook in enumerate(cfg.alerts.webhook) if hook.secret_env]
    if not hooks:
        return  # and spares every command the import of the webhook module
    from seedvault.notify.webhook import decode_secret

    for i, hook in hooks:
        where, name = f"alerts.webhook[{i}].secret_env", hook.secret_env
        raw = env.get(name)
        if not raw:
            raise ConfigError(f"{where}: environment variable {name} is not set")
        try:
            decode_secret(raw)
        except ValueError as exc:
            raise ConfigError(f"{where}: environment variable {name}: {exc}") from None


def default_public_url(host: str, port: int) -> str:
    """``[server] public_url`` when the file sets none: ``http://host:port`` of ``listen``
    (IPv6 in brackets); a wildcard host (``0.0.0.0``, ``::``) is not an address a client can
    use, so its loopback address of the same family stands in for it."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{port}"  # a host name
    if address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    shown = f"[{address.compressed}]" if address.version == 6 else address.compressed
    return f"http://{shown}:{port}"


def _check_pages(cfg: Config) -> None:
    """What would make a page watch reject every fetch, or its shrink check meaningless."""
    for i, w in enumerate(cfg.watch.page):
        at = f"watch.page[{i}]"
        if w.max_bytes < 1:
            raise ConfigError(f"{at}.max_bytes: at least 1 (0 would reject every fetch)")
        if w.min_bytes > w.max_bytes:
            raise ConfigError(
                f"{at}.min_bytes: {w.min_bytes} is more than max_bytes ({w.max_bytes}): "
                "every fetch would be rejected"
            )
        if not 0.0 <= w.max_shrink <= 1.0:
            raise ConfigError(
                f"{at}.max_shrink: expected a fraction from 0 to 1 (0.4: reject a copy over 40% "
                f"shorter than the last good one), got {w.max_shrink}"
            )


def _unique_ids(where: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, wid in enumerate(ids):
        if wid in seen:
            raise ConfigError(f"{where}[{i}].id: duplicate watch id {wid!r}")
        seen.add(wid)


def parse_listen(listen: str) -> tuple[str, int]:
    """``[server] listen`` (``host:port``, ``[::1]:8470`` for IPv6) → (host, port).

    Raises:
        ConfigError: not a host and a port in 1–65535, naming ``server.listen``.
    """
    host, sep, port = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"server.listen: expected host:port, got {listen!r}")
    return host, int(port)


def _check_alerts(cfg: Config) -> None:
    """What the alert dispatcher would refuse at start: event types, ``digest_at``, lead
    times, URLs, two destinations with the same recipients or URL — checked here (by the
    dispatcher's own functions) so that ``check-config`` and every command agree with ``run``
    — and an email destination without recipients. (Webhook secrets, which only commands
    that need secrets check: :func:`_check_webhook_secrets`.)"""
    if not (cfg.alerts.email or cfg.alerts.webhook):
        return  # and spares every command the import of the alert modules
    from seedvault.notify.base import email_destination, webhook_destination

    seen: dict[str, str] = {}
    entries: list[tuple[str, EmailAlert | WebhookAlert]] = [
        *((f"alerts.email[{i}]", e) for i, e in enumerate(cfg.alerts.email)),
        *((f"alerts.webhook[{i}]", w) for i, w in enumerate(cfg.alerts.webhook)),
    ]
    for where, dest in entries:
        if isinstance(dest, EmailAlert):
            if not dest.to or not all(a.strip() for a in dest.to):
                raise ConfigError(f"{where}.to: at least one recipient address, none empty")
            ident, key = email_destination(dest, where).id, "to"
        else:
            ident, key = webhook_destination(dest, where).id, "url"
        if ident in seen:
            raise ConfigError(f"{where}.{key}: the same destination as {seen[ident]}")
        seen[ident] = where


def _check_probes(cfg: Config) -> None:
    if not cfg.watch.probes:
        return  # and spares every command the import of the probe modules (~0.15 s)
    from seedvault.sources.probe_suite import load_suite
    from seedvault.sources.probes import CHAT_FLAVORS  # imports this module

    apis = {w.id: w for w in cfg.watch.models_api}
    seen: set[str] = set()
    for i, w in enumerate(cfg.watch.probes):
        at = f"watch.probes[{i}]"
        if w.id in seen:
            raise ConfigError(f"{at}.id: duplicate watch id {w.id!r}")
        seen.add(w.id)
        api = apis.get(w.api)
        if api is None:
            raise ConfigError(f"{at}.api: no [[watch.models_api]] has the id {w.api!r}")
        if api.flavor not in CHAT_FLAVORS:
            raise ConfigError(
                f"{at}.api: probes speak the {', '.join(CHAT_FLAVORS)} chat APIs; "
                f"{w.api!r} is {api.flavor}"
            )
        if not w.models or len(set(w.models)) != len(w.models):
            raise ConfigError(f"{at}.models: at least one model, each once")
        if w.repeat < 2:
            raise ConfigError(f"{at}.repeat: at least 2 (the noise is measured from the repeats)")
        for j, lead in enumerate(w.rescue_before):
            try:
                parse_duration(lead)
            except ValueError as exc:
                raise ConfigError(f"{at}.rescue_before[{j}]: {exc}") from None
        try:
            load_suite(w.suite)
        except ConfigError as exc:
            raise ConfigError(f"{at}.suite: {exc}") from None


def _suite_path(base: Path, suite: str) -> str:
    """A suite file path made absolute against the config's folder; bundled names stay."""
    from seedvault.sources.probe_suite import bundled_suites

    return suite if suite in bundled_suites() else _resolve(base, suite)


def load_config(
    path: str | os.PathLike[str] | None,
    env: dict[str, str] | None = None,
    *,
    secrets: bool = True,
) -> Config:
    """Load and validate a config file (None: built-in defaults relative to the cwd).

    ``secrets=False`` skips the checks that the secrets of watches, alerts and server tokens
    are set (commands that only read or write the vault need none of them); the vault's own
    credentials are always checked.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown key, wrong type or value, missing
            required secret — the message names the key path.
    """
    environ = dict(os.environ) if env is None else env
    if path is None:
        cfg = Config()
        base = Path.cwd()
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read the config file ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: the config file is not UTF-8 text") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc})") from None
        cfg = _build(Config, data, "", "")
        cfg = replace(cfg, source_path=str(p.absolute()))
        base = p.absolute().parent
    cfg = replace(
        cfg,
        vault=replace(cfg.vault, path=_resolve(base, cfg.vault.path)),
        catalog=replace(cfg.catalog, path=_resolve(base, cfg.catalog.path)),
    )
    cfg = replace(
        cfg,
        watch=replace(
            cfg.watch,
            probes=[replace(w, suite=_suite_path(base, w.suite)) for w in cfg.watch.probes],
        ),
    )
    return _check(cfg, environ, secrets)


def describe(cfg: Any, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(key path, value, help) for every setting, for ``check-config`` and the docs test."""
    out: list[tuple[str, Any, str]] = []
    for f in fields(cfg):
        if f.metadata.get("internal"):
            continue
        key = f"{prefix}{_toml_name(f.name)}"
        value = getattr(cfg, f.name)
        if is_dataclass(value):
            out += describe(value, key + ".")
        elif isinstance(value, list) and value and is_dataclass(value[0]):
            for i, item in enumerate(value):
                out += describe(item, f"{key}[{i}].")
        else:
            out.append((key, value, str(f.metadata.get("help", ""))))
    return out


def schema_keys(cls: type[Any] = Config, prefix: str = "") -> list[str]:
    """Every key path the schema knows (``watch.hf.every`` style), for the docs test."""
    out: list[str] = []
    hints = get_type_hints(cls)
    for f in fields(cls):
        if f.metadata.get("internal"):
            continue
        key = f"{prefix}{_toml_name(f.name)}"
        tp = hints[f.name]
        inner = get_args(tp)[0] if get_origin(tp) is list else tp
        if is_dataclass(inner):
            out += schema_keys(inner, key + ".")  # type: ignore[arg-type]
        else:
            out.append(key)
    return out
