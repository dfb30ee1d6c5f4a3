"""The process's real log set-up masks secrets, in fields and in logged exceptions alike."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from seedvault.logs import setup_logging

BEARER = "sk-live-" + "Q7" * 12
HF = "hf_" + "Zx4" * 8


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


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
