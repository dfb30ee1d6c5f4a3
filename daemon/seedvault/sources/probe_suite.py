"""Probe suites: the versioned file of chat requests a probe run sends.

**Suite format 1** (a TOML file; ``suite = "basic"`` names the bundled one, in
``seedvault/suites/``)::

    format = 1                      # this file format
    name = "basic"
    version = "2026.11.1"           # the suite's own version: change it when any probe changes
    [defaults]                      # parameters every probe sends unless it overrides them
    max_tokens = 200
    temperature = 0
    seed = 1234
    optional = ["temperature", "seed", "logprobs"]   # dropped if the API refuses them
    [[probes]]
    id = "arithmetic"
    messages = [{role = "user", content = "What is 17 times 23? Reply with the number only."}]
    scorer = {kind = "numeric", expect = 391}         # optional (probe_scoring.py)

Parameters: ``max_tokens``, ``temperature``, ``top_p``, ``seed``, ``stop`` and ``logprobs``.
Each flavor sends the ones it has (Anthropic has no ``seed`` and no ``logprobs``, and takes
``system`` messages as its top-level ``system``). A parameter listed in ``optional`` may be
omitted: when a 400 or 422 answer names optional parameters the request carried (in the
error's ``param`` or message, else anywhere in the body), it is sent once more without them,
and they stay omitted for the rest of that run (newer Anthropic and OpenAI models reject
non-default sampling parameters, Mistral unknown fields such as ``seed``); the record says
what was omitted. Any other refusal is recorded as it came.

The scorers are :mod:`seedvault.sources.probe_scoring`'s; running a suite is
:mod:`seedvault.sources.probes`'.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from seedvault.errors import ConfigError
from seedvault.sources.probe_scoring import Scorer

SUITE_FORMAT = 1
PARAMETERS = ("max_tokens", "temperature", "top_p", "seed", "stop", "logprobs")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_BUNDLED = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class Probe:
    id: str
    messages: tuple[tuple[str, str], ...]
    """(role, content) pairs."""
    params: Mapping[str, Any]
    scorer: Scorer | None = None


@dataclass(frozen=True)
class Suite:
    """A parsed probe suite and the exact bytes it came from."""

    name: str
    version: str
    probes: tuple[Probe, ...]
    optional: frozenset[str]
    raw: bytes = field(repr=False)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()


def bundled_suites() -> list[str]:
    """Names of the suites shipped inside the package."""
    folder = resources.files("seedvault").joinpath("suites")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_suite(spec: str, *, base: Path | None = None) -> Suite:
    """The suite ``spec`` names: a bundled suite name, else a path (relative to ``base``).

    Raises:
        ConfigError: no such suite, unreadable, not TOML, or not a valid format-1 suite (the
            message says which field).
    """
    if _BUNDLED.match(spec) and spec in bundled_suites():
        raw = resources.files("seedvault").joinpath("suites", f"{spec}.toml").read_bytes()
        where_ = f"bundled suite {spec!r}"
    else:
        path = Path(spec)
        if not path.is_absolute() and base is not None:
            path = base / path
        if not path.is_file():
            known = ", ".join(bundled_suites())
            raise ConfigError(f"probe suite {spec!r}: no such file, nor a bundled suite ({known})")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"probe suite {spec!r}: {exc.strerror}") from None
        where_ = str(path)
    return parse_suite(raw, where_)


def parse_suite(raw: bytes, where_: str = "suite") -> Suite:
    """Parse and validate suite bytes (see :func:`load_suite` for the errors)."""
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{where_}: not a TOML file ({exc})") from None
    try:
        return _suite(doc, raw)
    except ValueError as exc:
        raise ConfigError(f"{where_}: {exc}") from None


def _suite(doc: dict[str, Any], raw: bytes) -> Suite:
    if doc.get("format") != SUITE_FORMAT:
        raise ValueError(f"format: this release reads format {SUITE_FORMAT}")
    unknown = sorted(set(doc) - {"format", "name", "version", "description", "defaults", "probes"})
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(unknown)}")
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not _ID.match(name):
        raise ValueError("name: letters, digits, '.', '_' or '-' (at most 64)")
    if not isinstance(version, str) or not version.strip():
        raise ValueError("version: a non-empty string")
    defaults = dict(doc.get("defaults", {}))
    optional = defaults.pop("optional", [])
    if not isinstance(optional, list) or not set(optional) <= set(PARAMETERS):
        raise ValueError(f"defaults.optional: a list of {', '.join(PARAMETERS)}")
    base = _params(defaults, "defaults")
    probes_raw = doc.get("probes")
    if not isinstance(probes_raw, list) or not probes_raw:
        raise ValueError("probes: at least one [[probes]] table")
    probes: list[Probe] = []
    for i, item in enumerate(probes_raw):
        at = f"probes[{i}]"
        if not isinstance(item, dict):
            raise ValueError(f"{at}: a table")
        extra = sorted(set(item) - {"id", "messages", "params", "scorer", "description"})
        if extra:
            raise ValueError(f"{at}: unknown key(s): {', '.join(extra)}")
        pid = item.get("id")
        if not isinstance(pid, str) or not _ID.match(pid):
            raise ValueError(f"{at}.id: letters, digits, '.', '_' or '-' (at most 64)")
        if any(p.id == pid for p in probes):
            raise ValueError(f"{at}.id: {pid!r} appears twice")
        messages = _messages(item.get("messages"), f"{at}.messages")
        params = {**base, **_params(item.get("params", {}), f"{at}.params")}
        scorer = None
        if "scorer" in item:
            scorer = Scorer.from_toml(item["scorer"], f"{at}.scorer")
        probes.append(Probe(pid, messages, params, scorer))
    return Suite(name, version, tuple(probes), frozenset(optional), raw)


def _messages(raw: Any, at: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{at}: a non-empty list of {{role, content}} tables")
    out: list[tuple[str, str]] = []
    for j, msg in enumerate(raw):
        if not isinstance(msg, dict) or set(msg) != {"role", "content"}:
            raise ValueError(f"{at}[{j}]: a table with exactly role and content")
        role, content = msg["role"], msg["content"]
        if role not in ROLES or not isinstance(content, str) or not content:
            raise ValueError(f"{at}[{j}]: role one of {', '.join(ROLES)}, content a string")
        out.append((role, content))
    if out[-1][0] != "user":
        raise ValueError(f"{at}: the last message must be the user's")
    return tuple(out)


def _params(raw: Any, at: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"{at}: a table")
    unknown = sorted(set(raw) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"{at}: unknown parameter(s): {', '.join(unknown)}")
    for name, value in raw.items():
        ok = {
            "max_tokens": isinstance(value, int) and not isinstance(value, bool) and value > 0,
            "temperature": isinstance(value, int | float) and not isinstance(value, bool),
            "top_p": isinstance(value, int | float) and not isinstance(value, bool),
            "seed": isinstance(value, int) and not isinstance(value, bool),
            "stop": isinstance(value, list) and all(isinstance(s, str) for s in value),
            "logprobs": isinstance(value, bool),
        }[name]
        if not ok:
            raise ValueError(f"{at}.{name}: wrong type ({value!r})")
    return dict(raw)
