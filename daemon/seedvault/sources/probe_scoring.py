"""Probe scorers and text normalisation: what a probe answer is worth, and what it "says".

:func:`normalise` is the text two answers are compared by (Unicode NFC, whitespace runs
collapsed to one space, ends stripped; case and punctuation kept). :func:`text_hash` names it.

Scorers (a probe's optional ``scorer`` table, ``providers.md`` §3): ``exact`` (normalised answer
equals ``expect``), ``regex`` (``pattern`` found anywhere, Python syntax), ``json`` (the answer,
or its single fenced block, parses as JSON; with ``keys``, an object holding every key),
``numeric`` (the first number in the answer equals ``expect`` within ``tolerance``) and
``python`` (the answer's code, with the suite's ``check`` appended, runs to exit status 0).
A score is ``1`` or ``0`` with a short detail saying why.

The ``python`` scorer executes text a model wrote. It runs it the way a careful grader does,
not as a sandbox: a separate ``python -I -S`` process in an empty temporary folder, with an
empty environment (no API key or other secret can reach it), stdin closed, and limits on CPU
time, memory, file size, open files and wall time. Operators who probe endpoints they do not
trust should leave ``python`` probes out of their suite (``docs/providers.md``).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

SCORER_KINDS = ("exact", "regex", "json", "numeric", "python")
CODE_TIMEOUT_S = 10.0
"""Wall-time limit of one ``python`` scorer run."""
CODE_CPU_S = 5
CODE_MEMORY_BYTES = 512 * 1024 * 1024
CODE_OUTPUT_MAX = 2000
"""Characters of the program's stderr kept in the detail."""

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)
_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def normalise(text: str) -> str:
    """The text answers are compared by: NFC, whitespace runs → one space, stripped."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def text_hash(text: str) -> str:
    """BLAKE3 (hex) of :func:`normalise`'s UTF-8 bytes."""
    return blake3.blake3(normalise(text).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Scorer:
    """A probe's scorer, validated (see the module docstring for each kind)."""

    kind: str
    expect: str = ""
    pattern: str = ""
    keys: tuple[str, ...] = ()
    tolerance: float = 0.0
    check: str = ""

    @classmethod
    def from_toml(cls, raw: Any, where: str) -> Scorer:
        """A scorer from a suite's ``scorer`` table.

        Raises:
            ValueError: an unknown kind, a missing or wrong-typed field (message names ``where``).
        """
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: scorer must be a table")
        kind = raw.get("kind")
        if kind not in SCORER_KINDS:
            raise ValueError(f"{where}.kind: one of {', '.join(SCORER_KINDS)}, not {kind!r}")
        allowed = {
            "exact": {"expect"},
            "regex": {"pattern"},
            "json": {"keys"},
            "numeric": {"expect", "tolerance"},
            "python": {"check"},
        }[kind]
        unknown = sorted(set(raw) - allowed - {"kind"})
        if unknown:
            raise ValueError(f"{where}: unknown field(s) for {kind}: {', '.join(unknown)}")
        fields: dict[str, Any] = {"kind": kind}
        for name in allowed:
            value = raw.get(name)
            if value is None:
                if name in ("expect", "pattern", "check"):
                    raise ValueError(f"{where}.{name}: required for a {kind} scorer")
                continue
            if name == "keys":
                if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
                    raise ValueError(f"{where}.keys: a list of strings")
                fields["keys"] = tuple(value)
            elif name == "tolerance":
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise ValueError(f"{where}.tolerance: a number ≥ 0")
                fields["tolerance"] = float(value)
            elif name == "expect" and kind == "numeric":
                if isinstance(value, bool) or not isinstance(value, int | float | str):
                    raise ValueError(f"{where}.expect: a number")
                try:
                    float(str(value))
                except ValueError:
                    raise ValueError(f"{where}.expect: a number, not {value!r}") from None
                fields["expect"] = str(value)
            else:
                if not isinstance(value, str):
                    raise ValueError(f"{where}.{name}: a string")
                fields[name] = value
        if kind == "regex":
            try:
                re.compile(fields["pattern"])
            except re.error as exc:
                raise ValueError(f"{where}.pattern: not a regular expression ({exc})") from None
        return cls(**fields)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for name in ("expect", "pattern", "check"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        if self.keys:
            out["keys"] = list(self.keys)
        if self.kind == "numeric":
            out["tolerance"] = self.tolerance
        return out


@dataclass(frozen=True)
class Score:
    value: int
    """1 (passed) or 0."""
    detail: str


async def score(scorer: Scorer, answer: str) -> Score:
    """Score ``answer`` (a model's text) with ``scorer``."""
    if scorer.kind == "exact":
        ok = normalise(answer) == normalise(scorer.expect)
        return Score(int(ok), "equal" if ok else "different text")
    if scorer.kind == "regex":
        ok = re.search(scorer.pattern, answer) is not None
        return Score(int(ok), "matched" if ok else "no match")
    if scorer.kind == "json":
        return _score_json(scorer, answer)
    if scorer.kind == "numeric":
        return _score_numeric(scorer, answer)
    return await _score_python(scorer, answer)


def fenced(answer: str, languages: tuple[str, ...] = ()) -> str:
    """The first fenced block's body (of one of ``languages`` when given, else any), or the
    whole answer when it has none."""
    for lang, body in _FENCE.findall(answer):
        if not languages or lang.lower() in languages or not lang:
            return str(body)
    return answer


def _score_json(scorer: Scorer, answer: str) -> Score:
    try:
        value = json.loads(fenced(answer, ("json",)).strip())
    except ValueError:
        return Score(0, "not JSON")
    if scorer.keys:
        if not isinstance(value, dict):
            return Score(0, "JSON, not an object")
        missing = [k for k in scorer.keys if k not in value]
        if missing:
            return Score(0, f"JSON object without {', '.join(missing)}")
    return Score(1, "valid JSON")


def _score_numeric(scorer: Scorer, answer: str) -> Score:
    found = _NUMBER.search(answer)
    if found is None:
        return Score(0, "no number")
    try:
        value = float(found.group().replace(",", ""))
    except ValueError:
        return Score(0, "no number")
    expect = float(scorer.expect)
    ok = math.isfinite(value) and abs(value - expect) <= scorer.tolerance
    return Score(int(ok), f"found {found.group()}")


_BOOTSTRAP = f"""
import resource, runpy, sys
for limit, value in (
    (resource.RLIMIT_CPU, {CODE_CPU_S}),
    (resource.RLIMIT_AS, {CODE_MEMORY_BYTES}),
    (resource.RLIMIT_FSIZE, 1024 * 1024),
    (resource.RLIMIT_NOFILE, 32),
    (resource.RLIMIT_CORE, 0),
):
    try:
        resource.setrlimit(limit, (value, value))
    except (ValueError, OSError):
        pass
sys.argv = ["answer.py"]
runpy.run_path("answer.py", run_name="__main__")
"""
"""Runs in the child: set the limits, then run the answer (no ``preexec_fn``: no fork of a
threaded daemon)."""


async def _score_python(scorer: Scorer, answer: str) -> Score:
    program = fenced(answer, ("python", "py", "python3")) + "\n\n" + scorer.check + "\n"
    with tempfile.TemporaryDirectory(prefix="seedvault-probe-") as tmp:
        path = Path(tmp) / "answer.py"
        path.write_text(program, encoding="utf-8")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            "-c",
            _BOOTSTRAP,
            cwd=tmp,
            env={},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, err = await asyncio.wait_for(proc.communicate(), CODE_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return Score(0, "timed out")
    if proc.returncode == 0:
        return Score(1, "ran, check passed")
    lines = err.decode("utf-8", "replace").strip().splitlines()
    last = lines[-1] if lines else f"exit status {proc.returncode}"
    return Score(0, f"failed: {last[:CODE_OUTPUT_MAX]}")
