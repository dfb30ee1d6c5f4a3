"""The process's real log set-up masks secrets, in fields and in logged exceptions alike."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from seedvault.logs import setup_logging

BEARER = "sk-live-" + "Q7" * 12
HF = "hf_" + "Zx4" * 8


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def fail_with_secrets() -> None:
    raise RuntimeError(f"GET https://h.example/x refused; sent Authorization: Bearer {BEARER}")


@pytest.mark.parametrize("as_json", [True, False])
def test_a_logged_exception_is_masked_and_still_shows_its_traceback(as_json: bool) -> None:
    out = io.StringIO()
    setup_logging(stream=out, json=as_json)
    log = structlog.get_logger("test")
    try:
        fail_with_secrets()
    except RuntimeError:
        log.exception("job_failed", job="poll", detail=f"token {HF} in a value")
    log.error("watch_failed", error=f"Bearer {BEARER}", api_key=BEARER)

    text = out.getvalue()
    assert BEARER not in text
    assert HF not in text
    assert "Bearer ***" in text
    assert "hf_***" in text
    assert "fail_with_secrets" in text
    assert "RuntimeError" in text
    if as_json:
        first, second = (json.loads(line) for line in text.splitlines())
        assert first["event"] == "job_failed"
        assert "Bearer ***" in first["exception"]
        assert second["api_key"] == "***"


def test_libraries_stdlib_logging_comes_out_as_the_same_json_lines_masked() -> None:
    """apscheduler's "skipped" warning (and any library's stdlib logging) is one JSON line on
    the same stream, not plain text on stderr; INFO chatter is dropped; secrets are masked."""
    out = io.StringIO()
    setup_logging(stream=out, json=True)
    setup_logging(stream=out, json=True)  # set up twice (reload): still one line per record
    scheduler = logging.getLogger("apscheduler.executors.default")
    scheduler.warning("Execution of job %r skipped: maximum number of running instances", "w")
    logging.getLogger("aiohttp.access").info("GET / 200")
    logging.getLogger("aiohttp.server").error("failed with Authorization: Bearer %s", BEARER)

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["logger"], r["level"]) for r in lines] == [
        ("apscheduler.executors.default", "warning"),
        ("aiohttp.server", "error"),
    ]
    assert "skipped: maximum number of running instances" in lines[0]["event"]
    assert lines[1]["event"] == "failed with Authorization: Bearer ***"
    assert all("timestamp" in r for r in lines)


def test_an_exception_passed_as_a_value_is_masked_and_levels_apply_to_libraries() -> None:
    out = io.StringIO()
    setup_logging(level="error", stream=out, json=True)
    log = structlog.get_logger("test")
    log.error("job_failed", error=RuntimeError(f"sent Bearer {BEARER}"))
    logging.getLogger("apscheduler.scheduler").warning("below the level: dropped")
    logging.getLogger("aiohttp.server").error("kept")

    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["event"] for r in lines] == ["job_failed", "kept"]
    assert lines[0]["error"] == "RuntimeError: sent Bearer ***"
