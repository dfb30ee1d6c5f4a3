"""Probe scorers and text normalisation: what a probe answer is worth, and what it "says".

:func:`normalise` is the text two answers are compared by (Unicode NFC, whitespace runs
collapsed to one space, ends stripped; case and punctuation kept). :func:`text_hash` names it.

Scorers (a probe's optional ``scorer`` table, ``providers.md`` §3): ``exact`` (normalised answer
equals ``expect``), ``regex`` (``pattern`` found anywhere, Python syntax), ``json`` (the answer,
or its single fenced block, parses as JSON; with ``keys``, an object holding every key),
``numeric`` (the first number in the answer equals ``expect`` within ``tolerance``) and
``python`` (the answer's code, with the suite's ``check`` appended, runs to exit status 0).
A score is ``1`` or ``0`` with a short detail saying why.

The ``python`` scorer executes text a model wrote, so it runs it only isolated: a separate
``python -I -S -B`` process with an empty environment and stdin closed puts itself into new
user, mount, network and pid namespaces, makes the whole file system read-only, sets limits
(CPU time, memory, file size, open files) and only then runs the answer, as pid 1 of its own
pid namespace (whatever it starts dies with it); a wall-time limit kills the process group. It
cannot reach the network, write a file, or read the daemon's environment. Where namespaces are
not available (a kernel or a container that refuses them), nothing runs and the probe gets no
score (``not run: isolation: …``) rather than an unsafe one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import signal
import sys
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import structlog

log = structlog.get_logger(__name__)

SCORER_KINDS = ("exact", "regex", "json", "numeric", "python")
CODE_TIMEOUT_S = 10.0
"""Wall-time limit of one ``python`` scorer run."""
CODE_CPU_S = 5
CODE_MEMORY_BYTES = 512 * 1024 * 1024
CODE_OUTPUT_MAX = 2000
"""Characters of the program's stderr read back (only an exception name is kept)."""
_ISOLATION = re.compile(
    r"isolation: (unshare\(user, mount, net, pid\)|mount\(/, private\)"
    r"|mount_setattr\(/, read-only, recursive\)) failed \(errno \d{1,4}\)"
)
"""The bootstrap's own refusal line (anything else is the answer's output, never kept)."""
_EXCEPTION = re.compile(r"([A-Za-z_][\w.]{0,80}(?:Error|Exception|Exit|Interrupt))\b")
ISOLATION_FAILED = 97
"""Exit status of the code runner when it could not isolate itself (the answer never ran)."""

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
    value: int | None
    """1 (passed), 0, or None: not scored (code that could not be run isolated)."""
    detail: str


async def score(scorer: Scorer, answer: str) -> Score:
    """Score ``answer`` (a model's text) with ``scorer``; a scorer that fails is a 0 saying so."""
    try:
        return await _score(scorer, answer)
    except (Exception, RecursionError) as exc:  # hostile text must not stop a run
        log.warning("probe_scorer_error", kind=scorer.kind, error=type(exc).__name__)
        return Score(0, f"scorer error: {type(exc).__name__}")


async def _score(scorer: Scorer, answer: str) -> Score:
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
import ctypes, os, resource, runpy, sys
def refuse(step):
    sys.stderr.write("isolation: " + step + " failed (errno " + str(ctypes.get_errno()) + ")\\n")
    os._exit({ISOLATION_FAILED})
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.getuid(), os.getgid()
if libc.unshare(0x10000000 | 0x00020000 | 0x40000000 | 0x20000000) != 0:
    refuse("unshare(user, mount, net, pid)")
for name, text in (("setgroups", "deny"), ("uid_map", f"0 {{uid}} 1"), ("gid_map", f"0 {{gid}} 1")):
    with open("/proc/self/" + name, "w") as f:
        f.write(text)
if libc.mount(None, b"/", None, 0x4000 | (1 << 18), None) != 0:
    refuse("mount(/, private)")
class MountAttr(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("set", "clr", "propagation", "userns_fd")]
attr = MountAttr(1, 0, 0, 0)
if libc.syscall(442, -100, b"/", 0x8000, ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
    refuse("mount_setattr(/, read-only, recursive)")
for limit, value in (
    (resource.RLIMIT_CPU, {CODE_CPU_S}),
    (resource.RLIMIT_AS, {CODE_MEMORY_BYTES}),
    (resource.RLIMIT_FSIZE, 1024 * 1024),
    (resource.RLIMIT_NOFILE, 32),
    (resource.RLIMIT_CORE, 0),
):
    resource.setrlimit(limit, (value, value))
pid = os.fork()
if pid == 0:  # pid 1 of the new pid namespace: everything it starts dies with it
    sys.argv = ["answer.py"]
    runpy.run_path("answer.py", run_name="__main__")
    sys.exit(0)
_, status = os.waitpid(pid, 0)
os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""
"""Runs in the child: isolate (new user, mount, network and pid namespaces; the whole file
system read-only), set the limits, then run the answer as pid 1 of its namespace. Any
isolation step that fails ends it with :data:`ISOLATION_FAILED` before a line of the answer
runs. No ``preexec_fn``: the threaded daemon is never forked."""


async def _score_python(scorer: Scorer, answer: str) -> Score:
    program = fenced(answer, ("python", "py", "python3")) + "\n\n" + scorer.check + "\n"
    with tempfile.TemporaryDirectory(prefix="seedvault-probe-") as tmp:
        path = Path(tmp) / "answer.py"
        path.write_text(program, encoding="utf-8")
        with open(Path(tmp) / "stderr", "w+b") as err:  # noqa: ASYNC230 - local, capped
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-I", "-S", "-B", "-c", _BOOTSTRAP,
                cwd=tmp, env={}, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=err, start_new_session=True,
            )  # fmt: skip
            try:
                await asyncio.wait_for(proc.wait(), CODE_TIMEOUT_S)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
                return Score(0, "timed out")
            err.seek(0, os.SEEK_END)
            err.seek(max(0, err.tell() - 4 * CODE_OUTPUT_MAX))
            text = err.read().decode("utf-8", "replace")
    lines = text.strip().splitlines()
    if proc.returncode == ISOLATION_FAILED and lines and _ISOLATION.fullmatch(lines[-1]):
        return Score(None, f"not run: {lines[-1]}")
    if proc.returncode == 0:
        return Score(1, "ran, check passed")
    # only the exception's name is kept: the answer could print any file it can read
    found = _EXCEPTION.match(lines[-1]) if lines else None
    return Score(0, f"failed: {found.group(1) if found else f'exit status {proc.returncode}'}")
