"""The probe-suite format, the scorers, and the comparison ladder on hand-made runs."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from seedvault.config import load_config
from seedvault.errors import ConfigError
from seedvault.sources import probe_scoring
from seedvault.sources.probe_compare import compare_runs
from seedvault.sources.probe_scoring import Scorer, normalise, score, text_hash
from seedvault.sources.probe_suite import bundled_suites, load_suite, parse_suite
from seedvault.sources.probes import ProbeRun

SUITE = b"""
format = 1
name = "mini"
version = "1"
[defaults]
max_tokens = 20
temperature = 0
optional = ["temperature"]
[[probes]]
id = "a"
messages = [{role = "user", content = "hi"}]
"""


def test_bundled_basic_suite_is_small_honest_and_valid() -> None:
    assert "basic" in bundled_suites()
    suite = load_suite("basic")
    kinds = {p.id: p.scorer.kind if p.scorer else None for p in suite.probes}
    assert kinds == {
        "arithmetic": "numeric",
        "fact": "regex",
        "json": "json",
        "code": "python",
        "instruction": None,
    }
    assert suite.optional == {"temperature", "seed", "logprobs"}
    assert all(p.params["temperature"] == 0 and p.params["seed"] == 1234 for p in suite.probes)
    assert len(suite.digest) == 64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (b"format = 1\n", "format"),
        (b'name = "mini"\n', "unknown key"),
        (b'id = "a"\n', "id"),
        (b'messages = [{role = "user", content = "hi"}]\n', "messages"),
        (b"max_tokens = 20\n", "max_tokens"),
        (b'optional = ["temperature"]\n', "defaults.optional"),
        (b"[[probes]]\n", "probes"),
    ],
)
def test_a_broken_suite_is_refused_naming_the_field(change: bytes, message: str) -> None:
    broken = {
        b"format = 1\n": b"format = 2\n",
        b'name = "mini"\n': b'name = "mini"\ncolour = "red"\n',
        b'id = "a"\n': b'id = "../a"\n',
        b'messages = [{role = "user", content = "hi"}]\n': (
            b'messages = [{role = "assistant", content = "hi"}]\n'
        ),
        b"max_tokens = 20\n": b'max_tokens = "many"\n',
        b'optional = ["temperature"]\n': b'optional = ["colour"]\n',
        b"[[probes]]\n": b'[[probes]]\nscorer = {kind = "vibes"}\n',
    }[change]
    assert change in SUITE
    with pytest.raises(ConfigError, match=message):
        parse_suite(SUITE.replace(change, broken, 1), "mini.toml")
    parse_suite(SUITE, "mini.toml")  # the unbroken suite is fine


def test_duplicate_probe_ids_and_unknown_suites_are_refused(tmp_path: Path) -> None:
    twice = SUITE + b'[[probes]]\nid = "a"\nmessages = [{role = "user", content = "x"}]\n'
    with pytest.raises(ConfigError, match="appears twice"):
        parse_suite(twice)
    with pytest.raises(ConfigError, match="no such file, nor a bundled suite"):
        load_suite("nonesuch")
    (tmp_path / "mine.toml").write_bytes(SUITE)
    assert load_suite("mine.toml", base=tmp_path).name == "mini"


async def test_scorers() -> None:
    def s(kind: str, **kw: Any) -> Scorer:
        return Scorer.from_toml({"kind": kind, **kw}, "scorer")

    assert (await score(s("exact", expect="Au"), "  Au ")).value == 1
    assert (await score(s("exact", expect="Au"), "au")).value == 0
    assert (await score(s("regex", pattern=r"\bAu\b"), "It is Au.")).value == 1
    assert (await score(s("regex", pattern=r"\bAu\b"), "Gold")).value == 0
    assert (await score(s("json", keys=["a"]), '```json\n{"a": 1}\n```')).value == 1
    assert (await score(s("json", keys=["a"]), '{"b": 1}')).detail == "JSON object without a"
    assert (await score(s("json"), "not json")).value == 0
    assert (await score(s("numeric", expect=391), "It is 391.")).value == 1
    assert (await score(s("numeric", expect=391), "1,391")).value == 0
    assert (await score(s("numeric", expect=3.14, tolerance=0.01), "~3.141")).value == 1
    assert (await score(s("numeric", expect=1), "none")).detail == "no number"
    with pytest.raises(ValueError, match="kind"):
        s("vibes")
    with pytest.raises(ValueError, match="pattern"):
        s("regex", pattern="(")
    with pytest.raises(ValueError, match="unknown field"):
        s("exact", expect="x", pattern="y")
    assert normalise(" a \n\tb  ") == "a b"
    assert text_hash("a  b") == text_hash("a b") != text_hash("a c")


async def test_python_scorer_runs_the_code_isolated_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = Scorer.from_toml({"kind": "python", "check": "assert double(2) == 4"}, "s")
    assert (await score(check, "```python\ndef double(x):\n    return 2 * x\n```")).value == 1
    wrong = await score(check, "```python\ndef double(x):\n    return x\n```")
    assert wrong.value == 0
    assert "AssertionError" in wrong.detail
    assert (await score(check, "this is prose, not code")).value == 0
    # no secret of the daemon's environment reaches model-written code
    monkeypatch.setenv("SV_TEST_SECRET_KEY", "sk-do-not-leak")
    assert "SV_TEST_SECRET_KEY" in os.environ
    env_check = Scorer.from_toml(
        {
            "kind": "python",
            "check": "import os\nassert set(os.environ) <= {'LC_CTYPE'}, dict(os.environ)",
        },
        "s",
    )
    assert (await score(env_check, "x = 1")).value == 1
    monkeypatch.setattr(probe_scoring, "CODE_TIMEOUT_S", 1.0)
    forever = await score(check, "while True:\n    pass")
    assert (forever.value, forever.detail) == (0, "timed out")


async def test_python_scorer_cannot_write_reach_the_network_or_read_the_daemon(
    tmp_path: Path,
) -> None:
    """The answer runs in its own namespaces: a read-only file system, no network, and no
    access to the daemon's environment (where API keys live)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        attempts = {
            "write": f"open({str(tmp_path / 'x')!r}, 'w').write('x')",
            "network": f"import socket; socket.create_connection(('127.0.0.1', {port}), 2)",
            "environ": f"open('/proc/{os.getpid()}/environ', 'rb').read()",
        }
        for what, code in attempts.items():
            check = Scorer.from_toml({"kind": "python", "check": code}, "s")
            result = await score(check, "x = 1")
            assert result.value == 0, (what, result)
            assert "Error" in result.detail, (what, result)
    assert not (tmp_path / "x").exists()
    control = Scorer.from_toml(
        {"kind": "python", "check": "import os; assert os.getpid() == 1"}, "s"
    )
    assert (await score(control, "")).value == 1  # pid 1 of its own pid namespace


async def test_python_scorer_keeps_no_output_of_the_answer() -> None:
    """Only an exception name is kept from what the answer printed: it could print any file
    it can read. A line that imitates the runner's own isolation refusal is not kept either."""
    check = Scorer.from_toml({"kind": "python", "check": "assert False"}, "s")
    leaky = (
        "import sys\nsys.stderr.write('sk-from-a-file-1234\\n')\nraise ValueError('sk-in-message')"
    )
    result = await score(check, leaky)
    assert result.detail == "failed: ValueError"
    fake = (
        "import os, sys\n"
        "sys.stderr.write('isolation: sk-secret-5678 failed (errno 1)\\n')\n"
        "os._exit(97)"
    )
    imitated = await score(check, fake)
    assert imitated.value == 0
    assert "sk-secret" not in imitated.detail


async def test_a_scorer_that_fails_scores_zero_instead_of_stopping_the_run() -> None:
    deep = "[" * 100_000
    result = await score(Scorer.from_toml({"kind": "json"}, "s"), deep)
    assert result.value == 0


def ex(
    probe: str, text: str = "", *, error: str = "", model: str = "m", **extra: Any
) -> dict[str, Any]:
    if error:
        return {"probe": probe, "status": 404, "error": {"class": error}}
    parsed = {"content": text, "model": model, **extra}
    return {"probe": probe, "status": 200, "parsed": parsed, "headers": {}, "derived": {}}


def run(*exchanges: dict[str, Any]) -> dict[str, Any]:
    return {"exchanges": list(exchanges)}


def test_ladder_stable_answers() -> None:
    base = run(ex("a", "x y z"), ex("a", "x y z"), ex("b", "one"), ex("b", "one"))
    assert not compare_runs(base, base).changed
    moved = run(ex("a", "x y w"), ex("a", "x y w"), ex("b", "one"), ex("b", "one"))
    verdict = compare_runs(base, moved)
    assert [m.measure for m in verdict.measures] == ["text", "tokens"]
    assert verdict.measures[0].to_json() == {
        "measure": "text", "probes": ["a"], "magnitude": "0.500", "noise": "0.000"
    }  # fmt: skip


def test_ladder_noise_hides_small_differences_but_not_big_ones() -> None:
    noisy = run(ex("a", "the cat sat"), ex("a", "the cat sat down"), ex("a", "a cat sat"))
    similar = run(ex("a", "the cat sat"), ex("a", "a cat sat down"), ex("a", "the cat sat"))
    assert not compare_runs(noisy, similar).changed
    other = run(ex("a", "dogs bark at night"), ex("a", "dogs bark loudly"), ex("a", "dogs bark"))
    verdict = compare_runs(noisy, other)
    assert [m.measure for m in verdict.measures] == ["tokens"]
    assert verdict.measures[0].magnitude > verdict.measures[0].noise > 0


def test_ladder_availability_identity_and_logprobs() -> None:
    ok = run(ex("a", "x"), ex("a", "x"))
    gone = run(ex("a", error="not_found"), ex("a", error="not_found"))
    assert compare_runs(ok, gone).measures[0].measure == "availability"
    flaky = run(ex("a", "x"), ex("a", error="not_found"))
    assert not any(m.measure == "availability" for m in compare_runs(ok, flaky).measures)
    renamed = run(ex("a", "x", model="m2"), ex("a", "x", model="m2"))
    assert [m.measure for m in compare_runs(ok, renamed).measures] == ["identity"]
    fp1 = run(ex("a", "x", system_fingerprint="fp1"), ex("a", "x", system_fingerprint="fp1"))
    fp2 = run(ex("a", "x", system_fingerprint="fp2"), ex("a", "x", system_fingerprint="fp2"))
    verdict = compare_runs(fp1, fp2)
    assert not verdict.changed
    assert verdict.fingerprints == (("fp1",), ("fp2",))
    lp1 = run(*[ex("a", "x y", logprobs=[["x", -0.1], ["y", -0.2]]) for _ in range(2)])
    lp2 = run(*[ex("a", "x y", logprobs=[["x", -0.9], ["y", -0.7]]) for _ in range(2)])
    lp3 = run(*[ex("a", "x y", logprobs=[["x", -0.11], ["y", -0.2]]) for _ in range(2)])
    assert [m.measure for m in compare_runs(lp1, lp2).measures] == ["logprobs"]
    assert not compare_runs(lp1, lp3).changed


def test_ladder_score_and_inconclusive_runs() -> None:
    def scored(text: str, value: int) -> dict[str, Any]:
        e = ex("a", text)
        e["derived"]["score"] = value
        return e

    right = run(scored("391", 1), scored("391", 1), scored("391.", 1))
    wrong = run(scored("401", 0), scored("401", 0), scored("401", 0))
    measures = {m.measure: m for m in compare_runs(right, wrong).measures}
    assert measures["score"].magnitude == -1.0
    limited = run(ex("a", "x"), {"probe": "a", "status": 429, "error": {"class": "rate_limited"}})
    suite = parse_suite(SUITE)
    assert not ProbeRun(right, suite).inconclusive  # comparable
    assert ProbeRun(limited, suite).inconclusive == ["a"]  # never compared


def test_config_checks_probe_watches(tmp_path: Path) -> None:
    env = {"K": "x"}

    def write(probes: str, flavor: str = "openai") -> Path:
        path = tmp_path / "c.toml"
        path.write_text(
            f'[[watch.models_api]]\nid = "api"\nflavor = "{flavor}"\n'
            f'base_url = "http://127.0.0.1:9/v1"\napi_key_env = "K"\n\n'
            f"[[watch.probes]]\n{probes}\n"
        )
        return path

    good = 'id = "p"\napi = "api"\nmodels = ["m"]\n'
    cfg = load_config(write(good), env)
    assert cfg.watch.probes[0].suite == "basic"
    (tmp_path / "mine.toml").write_bytes(SUITE)
    cfg = load_config(write(good + 'suite = "mine.toml"\n'), env)
    assert cfg.watch.probes[0].suite == str(tmp_path / "mine.toml")
    for probes, flavor, message in [
        ('id = "p"\napi = "nope"\nmodels = ["m"]\n', "openai", r"watch.probes\[0\].api: no"),
        (good, "gemini", r"watch.probes\[0\].api: probes speak"),
        (good + "repeat = 1\n", "openai", r"watch.probes\[0\].repeat: at least 2"),
        (good + 'rescue_before = ["soon"]\n', "openai", r"rescue_before\[0\]"),
        (good + 'suite = "missing.toml"\n', "openai", r"watch.probes\[0\].suite"),
        ('id = "p"\napi = "api"\nmodels = []\n', "openai", r"watch.probes\[0\].models"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(write(probes, flavor), env)
