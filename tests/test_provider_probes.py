"""Behaviour probes against the fake OpenAI and Anthropic chat endpoints.

Each test runs the bundled ``basic`` suite with :func:`seedvault.provider.poll_probes` (or the
rescue check) into a real fs vault and catalog, and pins exactly which events each run records:
the first run is the baseline, an unchanged model gives nothing, a model that answers
differently the next day gives one ``behaviour_changed`` (and only once), noise inside the
repeats gives nothing, a vanished model is an availability change, rejected parameters are
omitted and recorded, 429s are retried and a run that stays rate limited is never compared,
and a ``deprecated`` event or a lead time before a known shutdown triggers one rescue run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from seedvault.config import ModelsApiWatch, ProbesWatch
from seedvault.events import SourceState, record_event
from seedvault.notify.render import headline
from seedvault.probing import poll_probes, read_run, rescue_probes
from seedvault.provider import WatchResult
from seedvault.sources.pages import RetryPolicy
from seedvault.sources.probes import probes_source_key
from tests.fixtures.providers.fakechat import Model, good_answer, other_answer
from tests.fixtures.providers.fakeprovider import KEY, FakeProvider, fake_provider
from tests.helpers import run_cli
from tests.test_alerts_support import lifecycle, shutdown
from tests.test_mirror import Node, open_node

__all__ = ["fake_provider"]

ENV = {"SV_TEST_PROVIDER_KEY": KEY}
FAST = RetryPolicy(attempts=3, backoff_base_s=0.01, max_wait_s=2.0, timeout_s=20.0)
CHAT = ("openai", "anthropic")
MODEL = "chat-small"
PROBES = ["arithmetic", "fact", "json", "code", "instruction"]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from open_node(tmp_path)


def api_watch(fake: FakeProvider, flavor: str) -> ModelsApiWatch:
    return ModelsApiWatch(
        id=f"{flavor}-api",
        flavor=flavor,
        base_url=fake.base_url(flavor),
        api_key_env="SV_TEST_PROVIDER_KEY",
    )


def probes_watch(flavor: str, repeat: int = 3, **kw: Any) -> ProbesWatch:
    return ProbesWatch(
        id=f"{flavor}-probes", api=f"{flavor}-api", models=[MODEL], repeat=repeat, **kw
    )


async def run(
    node: Node, fake: FakeProvider, flavor: str, repeat: int = 3, env: dict[str, str] | None = None
) -> WatchResult:
    return await poll_probes(
        probes_watch(flavor, repeat),
        api_watch(fake, flavor),
        MODEL,
        vault=node.vault,
        catalog=node.catalog,
        ingestor=node.ingestor,
        env=ENV if env is None else env,
        policy=FAST,
    )


def types(result: WatchResult) -> list[str]:
    return [e.type for e in result.events]


def exchanges(node: Node, result: WatchResult) -> list[dict[str, Any]]:
    assert result.snapshot is not None
    out: list[dict[str, Any]] = read_run(node.vault, result.snapshot)["exchanges"]
    return out


@pytest.mark.parametrize("flavor", CHAT)
async def test_run_records_every_exchange_and_an_unchanged_model_gives_no_event(
    node: Node, fake_provider: FakeProvider, flavor: str
) -> None:
    fake_provider.chat.models[MODEL] = Model()
    first = await run(node, fake_provider, flavor)
    assert first.status == "captured"
    assert types(first) == []
    manifest = node.vault.snapshot(first.snapshot or "")
    assert manifest.kind == "api-probes"
    assert (
        manifest.source["key"]
        == probes_source_key(f"{flavor}-probes", MODEL)
        == (f"probes/{flavor}-probes/{MODEL}")
    )
    assert sorted(f.path for f in manifest.files) == ["run.json", "suite.toml"]
    assert manifest.upstream["exchanges"] == 15
    assert manifest.upstream["errors"] == 0
    records = exchanges(node, first)
    assert [r["probe"] for r in records] == [p for p in PROBES for _ in range(3)]
    for r in records:
        assert r["status"] == 200
        assert "error" not in r
        assert r["parsed"]["content"]
        assert r["derived"]["text_b3"]
        assert r["request"]["url"].startswith("http://127.0.0.1:")
        assert "set-cookie" not in r["headers"]
        if r["probe"] != "instruction":  # every scorer kind passes on right answers,
            assert r["derived"]["score"] == 1, r  # the code one by running the code
    body = records[0]["request"]["body"]
    if flavor == "openai":
        assert records[0]["headers"]["x-request-id"]
        assert body["temperature"] == 0
        assert body["seed"] == 1234
        assert body["logprobs"] is True
        assert records[0]["parsed"]["system_fingerprint"] == "fp_0001"
        assert records[0]["parsed"]["logprobs"]
    else:
        assert records[0]["headers"]["request-id"]
        assert body["temperature"] == 0
        assert "seed" not in body
        assert "logprobs" not in body
        json_probe = next(r for r in records if r["probe"] == "json")["request"]["body"]
        assert json_probe["system"] == "You reply with JSON only, no prose."
        assert [m["role"] for m in json_probe["messages"]] == ["user"]
    second = await run(node, fake_provider, flavor)
    assert second.status == "captured"
    assert types(second) == []
    assert second.snapshot != first.snapshot
    state = node.catalog.source_state(probes_source_key(f"{flavor}-probes", MODEL)) or {}
    assert state["baseline"] == first.snapshot  # unchanged runs leave the baseline alone


@pytest.mark.parametrize("flavor", CHAT)
async def test_a_model_that_answers_differently_the_next_day_gives_one_event(
    node: Node, fake_provider: FakeProvider, flavor: str
) -> None:
    fake_provider.chat.models[MODEL] = Model()
    day1 = await run(node, fake_provider, flavor)
    fake_provider.chat.models[MODEL] = Model(answer=other_answer)  # same name, new behaviour
    day2 = await run(node, fake_provider, flavor)
    assert types(day2) == ["behaviour_changed"]
    event = day2.events[0]
    assert event.severity == "urgent"
    assert event.subject == {"watch": f"{flavor}-probes", "api": f"{flavor}-api", "model": MODEL}
    assert (event.before, event.after, event.evidence) == (
        day1.snapshot,
        day2.snapshot,
        day2.snapshot,
    )
    payload = event.payload
    assert payload["measure"] == "text"
    assert payload["magnitude"] == "1.000"
    assert payload["noise"] == "0.000"
    assert payload["probes"] == sorted(PROBES)
    measures = {m["measure"]: m for m in payload["measures"]}
    assert set(measures) == {"text", "tokens", "score"}
    # three of the four scored probes went wrong: numeric, JSON and code; the fact still holds
    assert measures["score"]["magnitude"] == "-0.750"
    assert measures["score"]["probes"] == ["arithmetic", "code", "json"]
    title = headline(event.to_json(""))  # what the mailing list reads first
    assert title == f"Behaviour changed: {flavor}-api/{MODEL}, text 1.000 (noise 0.000)"
    day3 = await run(node, fake_provider, flavor)
    assert types(day3) == []  # the new behaviour is the baseline now


async def test_noise_inside_the_repeats_is_not_a_change_but_a_real_change_is(
    node: Node, fake_provider: FakeProvider
) -> None:
    def wrap(base: Any, prefix: str) -> Any:
        return lambda prompt: prefix + base(prompt)

    variants = [good_answer, wrap(good_answer, "Sure: "), wrap(good_answer, "Here you go: ")]
    fake_provider.chat.models[MODEL] = Model(noisy=variants)
    first = await run(node, fake_provider, "openai", repeat=5)
    texts = {r["parsed"]["content"] for r in exchanges(node, first) if r["probe"] == "fact"}
    assert len(texts) > 1  # the repeats really differ
    for _ in range(2):
        again = await run(node, fake_provider, "openai", repeat=5)
        assert types(again) == []
    changed = [other_answer, wrap(other_answer, "Well, "), wrap(other_answer, "Hmm. ")]
    fake_provider.chat.models[MODEL] = Model(noisy=changed)
    after = await run(node, fake_provider, "openai", repeat=5)
    assert types(after) == ["behaviour_changed"]
    payload = after.events[0].payload
    tokens = next(m for m in payload["measures"] if m["measure"] == "tokens")
    assert float(tokens["magnitude"]) > float(tokens["noise"]) > 0


async def test_identity_and_logprobs_rungs(node: Node, fake_provider: FakeProvider) -> None:
    fake_provider.chat.models[MODEL] = Model(echo="chat-small-2026-01")
    await run(node, fake_provider, "openai")
    fake_provider.chat.models[MODEL] = Model(echo="chat-small-2026-06", fingerprint="fp_0002")
    moved = await run(node, fake_provider, "openai")
    assert types(moved) == ["behaviour_changed"]
    payload = moved.events[0].payload
    assert payload["measure"] == "identity"
    assert "chat-small-2026-01" in payload["measures"][0]["detail"]
    assert payload["system_fingerprint"] == {"before": ["fp_0001"], "after": ["fp_0002"]}
    # a fingerprint change alone (providers redeploy) is reported by no event
    fake_provider.chat.models[MODEL] = Model(echo="chat-small-2026-06", fingerprint="fp_0003")
    assert types(await run(node, fake_provider, "openai")) == []


@pytest.mark.parametrize("flavor", CHAT)
async def test_a_model_that_vanishes_is_an_availability_change(
    node: Node, fake_provider: FakeProvider, flavor: str
) -> None:
    fake_provider.chat.models[MODEL] = Model()
    await run(node, fake_provider, flavor)
    del fake_provider.chat.models[MODEL]
    gone = await run(node, fake_provider, flavor)
    assert gone.status == "captured"
    assert types(gone) == ["behaviour_changed"]
    records = exchanges(node, gone)
    code = "model_not_found" if flavor == "openai" else "not_found_error"
    assert all(
        r["status"] == 404 and r["error"] == {"class": "not_found", "code": code} for r in records
    )
    payload = gone.events[0].payload
    assert payload["measure"] == "availability"
    assert payload["magnitude"] == "1.000"
    assert "arithmetic: ok → not_found" in payload["measures"][0]["detail"]


async def test_rejected_parameters_are_omitted_and_recorded(
    node: Node, fake_provider: FakeProvider
) -> None:
    fake_provider.chat.models[MODEL] = Model(rejects={"temperature"})
    result = await run(node, fake_provider, "anthropic")
    assert result.status == "captured"
    assert types(result) == []
    records = exchanges(node, result)
    assert records[0]["omitted_after_refusal"] == ["temperature"]
    assert all(r.get("omitted") == ["temperature"] for r in records[1:])
    assert all(r["status"] == 200 and "temperature" not in r["request"]["body"] for r in records)
    posts = fake_provider.chat_requests()
    assert len(posts) == 16  # one refused request, then 15 without the parameter
    assert "temperature" in posts[0].body
    assert "temperature" not in posts[1].body


async def test_429_is_retried_and_a_run_that_stays_rate_limited_is_not_compared(
    node: Node, fake_provider: FakeProvider
) -> None:
    fake_provider.chat.models[MODEL] = Model()
    path = "/openai/v1/chat/completions"
    fake_provider.fail_next(path, 429, times=2, retry_after="0")
    first = await run(node, fake_provider, "openai")
    assert first.status == "captured"
    assert all(r["status"] == 200 for r in exchanges(node, first))
    fake_provider.chat.models[MODEL] = Model(answer=other_answer)
    fake_provider.fail_next(path, 429, times=1000, retry_after="0")
    limited = await run(node, fake_provider, "openai")
    assert limited.status == "incomplete"
    assert types(limited) == ["capture_failed"]
    assert limited.events[0].severity == "routine"
    assert limited.events[0].payload["classes"] == ["rate_limited"]
    assert {r["error"]["class"] for r in exchanges(node, limited)} == {"rate_limited"}
    fake_provider._faults.clear()
    fake_provider.chat.models[MODEL] = Model()  # back as it was: nothing to say
    assert types(await run(node, fake_provider, "openai")) == []


async def test_the_api_key_is_never_stored_or_logged(
    node: Node, fake_provider: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_provider.chat.models[MODEL] = Model()
    wrong = "sk-wrong-0123456789abcdef0123456789"
    result = await run(node, fake_provider, "openai", env={"SV_TEST_PROVIDER_KEY": wrong})
    assert result.status == "incomplete"
    assert types(result) == ["capture_failed"]
    stored = json.dumps(read_run(node.vault, result.snapshot or ""))
    assert wrong not in stored
    assert "[redacted]" in stored
    out = capsys.readouterr()
    assert wrong not in out.out + out.err
    for path in [*(node.root / "vault").rglob("*"), *node.root.glob("catalog.sqlite*")]:
        if path.is_file():
            assert wrong.encode() not in path.read_bytes()
    missing = await run(node, fake_provider, "openai", env={})
    assert missing.status == "failed"
    assert missing.snapshot is None


async def test_deprecation_and_lead_times_trigger_rescue_runs(
    node: Node, fake_provider: FakeProvider
) -> None:
    fake_provider.chat.models[MODEL] = Model()
    watch = probes_watch("openai", rescue_before=["30d", "7d"])
    api = api_watch(fake_provider, "openai")

    async def rescue(now: datetime) -> list[WatchResult]:
        return await rescue_probes(
            watch, api, vault=node.vault, catalog=node.catalog, ingestor=node.ingestor,
            now=now, env=ENV, policy=FAST,
        )  # fmt: skip

    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    assert await rescue(today) == []  # nothing announced: no rescue
    day = (today + timedelta(days=60)).strftime("%Y-%m-%d")
    other = lifecycle("deprecated", "another-model", {"shutdown": shutdown(day)}, evidence="p0")
    record_event(node.vault, node.catalog, other)
    assert await rescue(today) == []
    event = lifecycle("deprecated", MODEL, {"shutdown": shutdown(day)})
    record_event(node.vault, node.catalog, event)
    done = await rescue(today)
    assert len(done) == 1
    assert done[0].status == "captured"
    manifest = node.vault.snapshot(done[0].snapshot or "")
    assert manifest.labels == ("last-known-behaviour",)
    assert manifest.trigger == "rescue"
    assert manifest.upstream["repeat"] == 5
    assert manifest.upstream["exchanges"] == 25
    assert await rescue(today) == []  # once per reason
    shutdown_at = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    assert len(await rescue(shutdown_at - timedelta(days=29))) == 1  # the 30-day lead
    assert await rescue(shutdown_at - timedelta(days=20)) == []
    assert len(await rescue(shutdown_at - timedelta(days=6))) == 1  # the 7-day lead
    assert await rescue(shutdown_at - timedelta(days=5)) == []
    assert await rescue(shutdown_at + timedelta(days=1)) == []  # past the date: nothing to save
    runs = node.catalog.snapshots(probes_source_key(watch.id, MODEL))
    assert len(runs) == 3
    assert all(node.vault.snapshot(r.id).trigger == "rescue" for r in runs)


async def test_probe_command_runs_a_watch_once(fake_provider: FakeProvider, tmp_path: Path) -> None:
    """`seedvault probe WATCH [--rescue]` prints each run's snapshot and its events; an unknown
    watch or a bad --repeat is a usage error (exit 2)."""
    fake_provider.chat.models[MODEL] = Model()
    config = tmp_path / "seedvault.toml"
    config.write_text(
        '[vault]\npath = "vault"\n[catalog]\npath = "catalog.sqlite"\n'
        f'[[watch.models_api]]\nid = "api"\nflavor = "openai"\n'
        f'base_url = "{fake_provider.base_url("openai")}"\napi_key_env = "SV_TEST_PROVIDER_KEY"\n'
        f'[[watch.probes]]\nid = "probes"\napi = "api"\nmodels = ["{MODEL}"]\nrepeat = 2\n'
    )

    async def cli(*args: str) -> subprocess.CompletedProcess[str]:
        argv = ["probe", *args, "--config", str(config)]
        return await asyncio.to_thread(run_cli, argv, tmp_path, ENV)

    done = await cli("probes")
    assert done.returncode == 0, done.stderr
    assert f"{MODEL}: captured: no event" in done.stderr
    fake_provider.chat.models[MODEL] = Model(answer=other_answer)
    again = await cli("probes", "--rescue", "--model", MODEL)
    assert again.returncode == 0, again.stderr
    assert f"{MODEL}: captured: behaviour_changed" in again.stderr
    snapshot = again.stdout.strip()
    shown = await asyncio.to_thread(
        run_cli, ["show", "--json", snapshot, "--config", str(config)], tmp_path, ENV
    )
    manifest = json.loads(shown.stdout)
    assert manifest["labels"] == ["last-known-behaviour"]
    assert manifest["trigger"] == "rescue"
    assert manifest["upstream"]["repeat"] == 5
    assert (await cli("nonesuch")).returncode == 2
    assert (await cli("probes", "--repeat", "1")).returncode == 2
    assert KEY not in done.stderr + again.stderr + shown.stdout


@pytest.mark.parametrize("broken", ["html", "no_choices"])
async def test_a_200_without_an_answer_is_inconclusive_not_a_change(
    node: Node, fake_provider: FakeProvider, broken: str
) -> None:
    fake_provider.chat.models[MODEL] = Model()
    await run(node, fake_provider, "openai")
    fake_provider.chat.models[MODEL] = Model(broken=broken)
    bad = await run(node, fake_provider, "openai")
    assert bad.status == "incomplete"
    assert types(bad) == ["capture_failed"]
    assert {r["error"]["class"] for r in exchanges(node, bad)} == {"bad_response"}
    fake_provider.chat.models[MODEL] = Model()
    assert types(await run(node, fake_provider, "openai")) == []  # the baseline held


async def test_a_422_naming_a_parameter_drops_it_too(
    node: Node, fake_provider: FakeProvider
) -> None:
    """Mistral refuses fields it does not know with a 422 whose detail names the field."""
    fake_provider.chat.models[MODEL] = Model(rejects={"seed"}, reject_style="mistral")
    result = await run(node, fake_provider, "mistral")
    assert result.status == "captured"
    records = exchanges(node, result)
    assert records[0]["omitted_after_refusal"] == ["seed"]
    assert all(r["status"] == 200 and "seed" not in r["request"]["body"] for r in records)
    assert all(r["request"]["body"]["temperature"] == 0 for r in records)


@pytest.mark.parametrize(
    ("message", "error_class"),
    [("prompt is too long: 250000 tokens > 200000 maximum", "bad_request"),
     ("Your credit balance is too low to access the API.", "auth")],
)  # fmt: skip
async def test_a_400_that_names_no_parameter_drops_nothing(
    node: Node, fake_provider: FakeProvider, message: str, error_class: str
) -> None:
    """A 400 naming no parameter is recorded as it came; one about the account (credit) is an
    account matter like a bad key: the run is inconclusive, never a behaviour change."""
    fake_provider.chat.models[MODEL] = Model(refuse_400=message)
    result = await run(node, fake_provider, "openai")
    records = exchanges(node, result)
    assert len(fake_provider.chat_requests()) == 15  # no second try without parameters
    assert all(r["error"]["class"] == error_class for r in records)
    assert all("omitted" not in r and "omitted_after_refusal" not in r for r in records)
    assert all(r["request"]["body"]["temperature"] == 0 for r in records)
    assert result.status == ("incomplete" if error_class == "auth" else "captured")


async def test_answers_seen_in_unchanged_runs_are_noise_for_later_runs(
    node: Node, fake_provider: FakeProvider
) -> None:
    """A probe that once answered in a second wording inside a run (no change: noise) may
    answer in that wording in every repeat later without an event; a third wording is a
    change."""
    calls = {"n": 0}

    def answer(first: str, second: str = "", at: int = -1) -> Any:
        def reply(prompt: str) -> str:
            if "catalogue" not in prompt:
                return good_answer(prompt)
            calls["n"] += 1
            return second if calls["n"] == at else first

        return reply

    a, b = "It lists the books a library holds.", "It is an index of the books held."
    fake_provider.chat.models[MODEL] = Model(answer=answer(a))
    await run(node, fake_provider, "openai")  # baseline: a, a, a
    calls["n"] = 0
    fake_provider.chat.models[MODEL] = Model(answer=answer(a, b, at=2))
    mixed = await run(node, fake_provider, "openai")  # a, b, a: noise inside the run
    assert types(mixed) == []
    fake_provider.chat.models[MODEL] = Model(answer=answer(b))
    assert types(await run(node, fake_provider, "openai")) == []  # b, b, b: seen before
    fake_provider.chat.models[MODEL] = Model(answer=answer("A catalogue is for cooking."))
    changed = await run(node, fake_provider, "openai")
    assert types(changed) == ["behaviour_changed"]
    assert changed.events[0].payload["probes"] == ["instruction"]


async def test_a_rate_limited_rescue_is_tried_again_and_runs_never_overlap(
    node: Node, fake_provider: FakeProvider
) -> None:
    fake_provider.chat.models[MODEL] = Model()
    watch = probes_watch("openai")
    api = api_watch(fake_provider, "openai")
    day = (datetime.now(UTC) + timedelta(days=60)).strftime("%Y-%m-%d")
    record_event(
        node.vault, node.catalog, lifecycle("deprecated", MODEL, {"shutdown": shutdown(day)})
    )
    fake_provider.fail_next("/openai/v1/chat/completions", 429, times=1000, retry_after="0")
    limited = await rescue_probes(
        watch, api, vault=node.vault, catalog=node.catalog, ingestor=node.ingestor,
        env=ENV, policy=FAST,
    )  # fmt: skip
    assert [r.status for r in limited] == ["incomplete"]
    fake_provider._faults.clear()
    # a scheduled run and the retried rescue at once: they take turns on the model's state
    scheduled, rescued = await asyncio.gather(
        run(node, fake_provider, "openai"),
        rescue_probes(
            watch, api, vault=node.vault, catalog=node.catalog, ingestor=node.ingestor,
            env=ENV, policy=FAST,
        ),
    )  # fmt: skip
    assert scheduled.status == "captured"
    assert [r.status for r in rescued] == ["captured"]
    state = node.catalog.source_state(probes_source_key(watch.id, MODEL)) or {}
    assert len(state["rescued"]) == 1  # not lost by the other run's save
    assert state["baseline"] in (scheduled.snapshot, rescued[0].snapshot)
    assert await rescue_probes(
        watch, api, vault=node.vault, catalog=node.catalog, ingestor=node.ingestor,
        env=ENV, policy=FAST,
    ) == []  # fmt: skip


async def test_a_crash_after_the_event_never_gives_a_second_event(
    node: Node, fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies right after `behaviour_changed` is recorded, before the poll's last
    state save: the next poll neither loses nor repeats the event."""
    fake_provider.chat.models[MODEL] = Model()
    await run(node, fake_provider, "openai")
    fake_provider.chat.models[MODEL] = Model(answer=other_answer)
    real_save = SourceState.save

    class Killed(BaseException):
        pass

    def dying_save(self: SourceState, vault: Any, catalog: Any) -> bool:
        if catalog.events(type="behaviour_changed").events:
            monkeypatch.setattr(SourceState, "save", real_save)
            raise Killed  # the poll's last save never happens
        return real_save(self, vault, catalog)

    monkeypatch.setattr(SourceState, "save", dying_save)
    with pytest.raises(Killed):
        await run(node, fake_provider, "openai")
    after = await run(node, fake_provider, "openai")
    assert types(after) == []
    assert len(node.catalog.events(type="behaviour_changed").events) == 1


def test_the_per_source_lock_works_in_each_event_loop_it_is_used_in() -> None:
    """A process that runs probes under two event loops one after the other (the CLI, the
    tests) waits on the per-source lock in each: a lock shared across loops failed with "bound
    to a different event loop" the first time the second loop had to wait for it."""
    from seedvault.provider import _source_lock_in_loop as _probe_lock

    async def contend() -> list[str]:
        order: list[str] = []

        async def hold(name: str) -> None:
            async with _probe_lock("probes:one"):
                order.append(f"{name} in")
                await asyncio.sleep(0.01)
                order.append(f"{name} out")

        await asyncio.gather(hold("a"), hold("b"))
        return order

    for _ in range(2):
        assert asyncio.run(contend()) == ["a in", "a out", "b in", "b out"]


async def test_a_run_waits_while_another_process_runs_the_same_source(
    node: Node, fake_provider: FakeProvider
) -> None:
    """A manual ``seedvault probe`` and the daemon share the node's catalog: while another
    process holds the source's lock, a run waits; killed with SIGKILL, the holder lets go."""
    import sys

    from seedvault.provider import source_lock_path

    fake_provider.chat.models[MODEL] = Model()
    path = source_lock_path(node.catalog, probes_source_key("openai-probes", MODEL))
    assert path is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", (
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n"
        ), str(path),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"held\n"
        waiting = asyncio.ensure_future(run(node, fake_provider, "openai"))
        await asyncio.sleep(1.5)
        assert not waiting.done()
        assert fake_provider.chat_requests() == []  # not one probe sent while it waits
    finally:
        holder.kill()
        await holder.wait()
    result = await asyncio.wait_for(waiting, timeout=60)
    assert result.status == "captured"
    assert fake_provider.chat_requests()
