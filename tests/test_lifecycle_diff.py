"""Lifecycle diff: merge rule, each Events v1 change type, parse failures, layout changes.

The layout-change test parses the two real OpenAI sample copies (2025-11 entries layout and
2026-08 upcoming/past layout) from the shared reference directory and pins the exact list of
changes; it is skipped where that directory is absent.
"""

from __future__ import annotations

import json
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from seedvault.sources.parsers import Change, Record, Shutdown, diff_records, parse_page
from seedvault.sources.parsers.diff import merge_records, states_json
from tests.testdata import missing

FIXTURES = Path(__file__).parent / "fixtures" / "pages"
SAMPLES = Path(
    os.environ.get(
        "SEEDVAULT_REFERENCE_PAGES",
        Path(__file__).resolve().parents[2] / "shared" / "reference" / "pages",
    )
)


def rec(model: str, shutdown: str | None = None, **fields: Any) -> Record:
    """A record for ``model``; ``shutdown`` "2026-01-01" is exact, ">=2026-01-01" not_before."""
    if shutdown is None:
        when = Shutdown()
    elif shutdown.startswith(">="):
        when = Shutdown(shutdown[2:], "not_before")
    else:
        when = Shutdown(shutdown, "exact")
    fields.setdefault("provider", "example")
    fields.setdefault("source_url", "https://example.invalid/deprecations")
    fields.setdefault("quote", f"row for {model}")
    return Record(model=model, shutdown=when, **fields)


def kinds(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.type, c.model) for c in changes]


def read_sample(name: str) -> str:
    path = SAMPLES / name
    if not path.is_file():
        missing(f"reference sample page {path}")
    return path.read_text(encoding="utf-8")


BASE = [
    rec("ex-a", "2026-06-01", status="deprecated", replacement="ex-b", announced="2026-01-01"),
    rec("ex-c", status="active"),
    rec("ex-d", "2026-09-01", status="deprecated"),
]


# -- merge rule ---------------------------------------------------------------------------------


def test_merge_latest_announced_entry_wins() -> None:
    """Of two entries for one model, the later-announced one gives shutdown and replacement."""
    old_entry = rec("m", ">=2024-06-13", announced="2023-06-13", status="legacy", replacement="x")
    new_entry = rec("m", "2026-03-26", announced="2025-09-26", status="deprecated", replacement="y")
    for order in ([old_entry, new_entry], [new_entry, old_entry]):
        state = merge_records(order)[("example", "m", None)]
        assert (state.shutdown, state.status, state.replacement) == (
            Shutdown("2026-03-26", "exact"), "deprecated", "y",
        )  # fmt: skip


def test_merge_exact_beats_not_before_of_the_same_entry() -> None:
    """Within one announcement an exact date wins over a lower bound."""
    lower = rec("m", ">=2027-01-01", announced="2026-01-01")
    exact = rec("m", "2026-08-01", announced="2026-01-01")
    assert merge_records([lower, exact])[("example", "m", None)].shutdown == exact.shutdown


def test_merge_fills_status_and_replacement_from_other_entries() -> None:
    """A status-table row without a replacement and a history row with one combine."""
    table = rec("m", "2026-08-05", announced="2026-06-05", status="retired", quote="status row")
    history = rec("m", "2026-08-05", announced="2026-06-05", replacement="m2", quote="history")
    state = merge_records([table, history])[("example", "m", None)]
    assert (state.status, state.replacement) == ("retired", "m2")


def test_merge_keys_include_region() -> None:
    """Per-region records stay separate states."""
    states = merge_records([rec("m", "2025-01-01", region="us-east-1"), rec("m", "2025-03-01")])
    assert set(states) == {("example", "m", None), ("example", "m", "us-east-1")}
    assert [s["model"] for s in states_json(states)] == ["m", "m"]


# -- change types -------------------------------------------------------------------------------


def test_unchanged_records_give_no_changes() -> None:
    """The same records (in any order, with duplicates) give no change at all."""
    assert diff_records(BASE, [*reversed(BASE), BASE[0]]) == []


def test_new_deprecated_model() -> None:
    """A model newly present with a shutdown date is `deprecated`, carrying the new state."""
    new = [*BASE, rec("ex-e", "2027-01-01", status="deprecated", replacement="ex-f")]
    (change,) = diff_records(BASE, new)
    assert (change.type, change.model, change.before) == ("deprecated", "ex-e", None)
    assert change.after == {
        "shutdown": {"date": "2027-01-01", "qualifier": "exact"},
        "replacement": "ex-f",
        "status": "deprecated",
    }
    assert change.quote == "row for ex-e"


def test_active_model_turning_deprecated() -> None:
    """Active → deprecated is one `deprecated` change, not also a date and replacement change."""
    new = [BASE[0], rec("ex-c", "2026-12-01", status="deprecated", replacement="ex-a"), BASE[2]]
    assert kinds(diff_records(BASE, new)) == [("deprecated", "ex-c")]


def test_new_active_model_is_not_a_deprecation() -> None:
    """An active model with only a "not sooner than" bound is no deprecation."""
    new = [*BASE, rec("ex-new", ">=2027-01-01", status="active")]
    assert diff_records(BASE, new) == []


def test_shutdown_date_set() -> None:
    """A deprecated model without a date that gets one: `shutdown_date_set`."""
    old = [*BASE, rec("ex-g", status="deprecated")]
    new = [*BASE, rec("ex-g", "2026-10-01", status="deprecated")]
    (change,) = diff_records(old, new)
    assert (change.type, change.before, change.after) == (
        "shutdown_date_set", {"qualifier": "none"}, {"date": "2026-10-01", "qualifier": "exact"},
    )  # fmt: skip


def test_shutdown_date_moved() -> None:
    """A later date, or a lower bound becoming exact, is `shutdown_date_moved`."""
    moved = rec(
        "ex-a", "2026-09-01", status="deprecated", replacement="ex-b", announced="2026-01-01"
    )
    new = [moved, BASE[1], rec("ex-d", ">=2026-09-01", status="deprecated")]
    changes = diff_records(BASE, new)
    assert [(c.type, c.model, c.before, c.after) for c in changes] == [
        ("shutdown_date_moved", "ex-a", {"date": "2026-06-01", "qualifier": "exact"},
         {"date": "2026-09-01", "qualifier": "exact"}),
        ("shutdown_date_moved", "ex-d", {"date": "2026-09-01", "qualifier": "exact"},
         {"date": "2026-09-01", "qualifier": "not_before"}),
    ]  # fmt: skip


def test_shutdown_date_withdrawn() -> None:
    """A date replaced by "No shutdown date announced" is `shutdown_date_withdrawn`."""
    new = [BASE[0], BASE[1], rec("ex-d", status="deprecated")]
    (change,) = diff_records(BASE, new)
    assert (change.type, change.after) == ("shutdown_date_withdrawn", {"qualifier": "none"})


def test_gemini_page_withdrawing_a_date() -> None:
    """On a Gemini-style page, a date becoming "No shutdown date announced" is withdrawn."""
    text = (FIXTURES / "gemini.md").read_text(encoding="utf-8")
    edited = text.replace("May 7, 2027   ", "No shutdown date announced")
    old = parse_page("gemini", text, "u")
    new = parse_page("gemini", edited, "u")
    (change,) = diff_records(old, new)
    assert (change.type, change.model) == ("shutdown_date_withdrawn", "ex-3-lite")
    assert change.before == {"date": "2027-05-07", "qualifier": "not_before"}


def test_replacement_changed() -> None:
    """A rewritten replacement on an old entry is `replacement_changed` (strings before/after)."""
    new = [rec("ex-a", "2026-06-01", status="deprecated", replacement="ex-z",
               announced="2026-01-01"), *BASE[1:]]  # fmt: skip
    (change,) = diff_records(BASE, new)
    assert (change.type, change.before, change.after) == ("replacement_changed", "ex-b", "ex-z")


def test_retired_by_status() -> None:
    """A status turning `retired` is `retired`, alongside any date change it brings."""
    new = [BASE[0], BASE[1], rec("ex-d", "2026-10-01", status="retired")]
    assert kinds(diff_records(BASE, new)) == [
        ("shutdown_date_moved", "ex-d"),
        ("retired", "ex-d"),
    ]


def test_deprecated_model_no_longer_listed_is_retired() -> None:
    """A deprecated model that vanishes from the page is `retired` with after = null."""
    (change,) = diff_records(BASE, BASE[:2])
    assert (change.type, change.model, change.after) == ("retired", "ex-d", None)
    assert change.quote.startswith("no longer listed")


def test_vanished_active_model_is_silent() -> None:
    """An active model dropping off a lifecycle page is not evidence of anything."""
    assert diff_records(BASE, [BASE[0], BASE[2]]) == []


def test_per_region_changes_carry_the_region() -> None:
    """Region-keyed records change independently and the change names the region."""
    old = [rec("m", "2025-05-20", status="legacy", region=r) for r in ("us-east-1", "us-west-2")]
    new = [old[0], rec("m", "2025-05-20", status="retired", region="us-west-2")]
    (change,) = diff_records(old, new)
    assert (change.type, change.region) == ("retired", "us-west-2")
    assert change.to_json()["region"] == "us-west-2"


def test_changes_are_json_safe() -> None:
    """Change.to_json is JSON-serialisable, has no floats, and omits a None region."""
    new = [rec("ex-a", "2026-09-01", status="retired", replacement="ex-q",
               announced="2026-01-01"), rec("ex-n", "2027-01-01")]  # fmt: skip
    changes = diff_records(BASE, new)
    assert changes
    for change in changes:
        obj = change.to_json()
        assert "region" not in obj
        assert "float" not in json.dumps(obj, default=lambda v: "float")
        assert not re.search(r"\d\.\d", json.dumps([obj["before"], obj["after"]]))


# -- parse failures -----------------------------------------------------------------------------


def test_zero_records_is_parse_failed_only() -> None:
    """A parse with no records gives exactly one parse_failed, never retirements."""
    (change,) = diff_records(BASE, [])
    assert (change.type, change.provider, change.before, change.after) == (
        "parse_failed", "example", 3, 0,
    )  # fmt: skip


def test_under_a_third_of_the_records_is_parse_failed_only() -> None:
    """3 of 10 records (under a third) gives only parse_failed; 4 of 10 is diffed normally."""
    old = [rec(f"m{i}", "2026-01-01", status="deprecated") for i in range(10)]
    (change,) = diff_records(old, old[:3])
    assert change.type == "parse_failed"
    assert (change.before, change.after) == (10, 3)
    assert {c.type for c in diff_records(old, old[:4])} == {"retired"}


def test_parse_failed_ratio_is_configurable() -> None:
    """min_ratio sets the share below which a parse counts as failed."""
    old = [rec(f"m{i}", "2026-01-01", status="deprecated") for i in range(10)]
    assert kinds(diff_records(old, old[:6], min_ratio=Fraction(2, 3))) == [("parse_failed", "")]
    assert len(diff_records(old, old[:6], min_ratio=Fraction(1, 2))) == 4


def test_broken_layout_of_a_real_page_is_parse_failed_only() -> None:
    """A real page cut to its first entries parses to under a third: parse_failed alone."""
    text = read_sample("openai-deprecations-2026-08-20.md")
    old = parse_page("openai", text, "u")
    cut = text[: text.index("### 2026-06-03: Reusable prompts")]
    new = parse_page("openai", cut, "u")
    assert 0 < len(new) < len(old) / 3
    assert kinds(diff_records(old, new)) == [("parse_failed", "")]
    garbled = parse_page("openai", text.replace("|", "/"), "u")
    assert kinds(diff_records(old, garbled)) == [("parse_failed", "")]


# -- real pages: unchanged, reordered, layout change ------------------------------------------


def _is_separator(line: str) -> bool:
    return "|" in line and "-" in line and set(line.strip()) <= set("|-: ")


def _reverse_table_rows(text: str) -> str:
    """The page with the one-line data rows of every table in reverse order.

    Tables whose rows span several lines (Bedrock's Active table) are left as they are.
    """
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        out.append(lines[i])
        i += 1
        if not _is_separator(lines[i - 1]):
            continue
        j = i
        while (
            j < len(lines)
            and "|" in lines[j]
            and not (j + 1 < len(lines) and _is_separator(lines[j + 1]))
        ):
            j += 1
        rows = lines[i:j]
        multiline = any(r.rstrip().endswith("|") and not r.startswith("|") for r in rows)
        out += rows if multiline else list(reversed(rows))
        i = j
    return "\n".join(out)


@pytest.mark.parametrize(
    ("name", "provider"),
    [
        ("openai-deprecations-2025-11-13.md", "openai"),
        ("openai-deprecations-2026-08-20.md", "openai"),
        ("anthropic-model-deprecations-2026-08-20.md", "anthropic"),
        ("gemini-api-deprecations-2026-08-21.md", "gemini"),
        ("aws-bedrock-model-lifecycle-2025-11-13.md", "bedrock"),
    ],
)
def test_unchanged_and_reordered_real_pages_give_no_changes(name: str, provider: str) -> None:
    """Parsing a page twice, or with its table rows reordered, gives no change."""
    text = read_sample(name)
    first = parse_page(provider, text, "u")
    assert diff_records(first, parse_page(provider, text, "u")) == []
    reordered = _reverse_table_rows(text)
    assert reordered != text
    assert diff_records(first, parse_page(provider, reordered, "u")) == []


def _brief(value: Any) -> str:
    def when(shutdown: dict[str, str]) -> str:
        if shutdown["qualifier"] == "none":
            return "none"
        prefix = ">=" if shutdown["qualifier"] == "not_before" else ""
        return prefix + shutdown["date"]

    if value is None:
        return "-"
    if isinstance(value, dict) and "shutdown" in value:
        status, replacement = value.get("status", "-"), value.get("replacement", "-")
        return f"{status} {when(value['shutdown'])} {replacement}"
    if isinstance(value, dict):
        return when(value)
    return str(value)


OPENAI_LAYOUT_CHANGES = [
    # Entries present in both copies: only the facts that really changed.
    ("shutdown_date_moved", "OpenAI-Beta: realtime=v1", "2026-02-27", "2026-05-12"),
    ("retired", "OpenAI-Beta: realtime=v1", "deprecated 2026-02-27 Realtime API",
     "retired 2026-05-12 Realtime API"),
    ("replacement_changed", "babbage-002", "gpt-5-mini or gpt-4.1-mini", "gpt-5.6-terra"),
    ("replacement_changed", "davinci-002", "gpt-5-mini or gpt-4.1-mini", "gpt-5.6-terra"),
    ("replacement_changed", "gpt-3.5-turbo-1106", "gpt-5-mini or gpt-4.1-mini", "gpt-5.6-terra"),
    ("replacement_changed", "gpt-3.5-turbo-instruct", "gpt-5-mini or gpt-4.1-mini",
     "gpt-5.6-terra"),
    ("retired", "gpt-4-0125-preview", "deprecated 2026-03-26 gpt-5 or gpt-4.1",
     "retired 2026-03-26 gpt-5 or gpt-4.1"),
    ("retired", "gpt-4-0314", "deprecated 2026-03-26 gpt-5 or gpt-4.1",
     "retired 2026-03-26 gpt-5 or gpt-4.1"),
    ("shutdown_date_moved", "gpt-4-1106-preview", "2026-03-26", "2026-10-23"),
    ("replacement_changed", "gpt-4-1106-preview", "gpt-5 or gpt-4.1", "gpt-5.6-sol"),
    ("replacement_changed", "gpt-4o-audio-preview-2024-10-01", "gpt-4o-audio-preview",
     "gpt-audio-1.5"),
    ("shutdown_date_moved", "gpt-4o-realtime-preview", "2026-02-27", "2026-05-07"),
    ("replacement_changed", "gpt-4o-realtime-preview", "gpt-realtime", "gpt-realtime-1.5"),
    ("replacement_changed", "gpt-4o-realtime-preview-2024-10-01", "gpt-realtime",
     "gpt-realtime-1.5"),
    ("shutdown_date_moved", "gpt-4o-realtime-preview-2024-12-17", "2026-02-27", "2026-05-07"),
    ("replacement_changed", "gpt-4o-realtime-preview-2024-12-17", "gpt-realtime",
     "gpt-realtime-1.5"),
    ("shutdown_date_moved", "gpt-4o-realtime-preview-2025-06-03", "2026-02-27", "2026-05-07"),
    ("replacement_changed", "gpt-4o-realtime-preview-2025-06-03", "gpt-realtime",
     "gpt-realtime-1.5"),
    # Entries announced between the two copies.
    ("deprecated", "Agent Builder", "-", "deprecated 2026-11-30 -"),
    ("deprecated", "Evals platform", "-", "deprecated 2026-11-30 -"),
    ("deprecated", "Reusable prompts", "-", "deprecated 2026-11-30 -"),
    ("deprecated", "Videos API", "-", "deprecated 2026-09-24 -"),
    ("deprecated", "chatgpt-4o-latest", "-", "deprecated 2026-02-17 gpt-5.1-chat-latest"),
    ("deprecated", "chatgpt-image-latest", "-", "deprecated 2026-12-01 gpt-image-2"),
    ("deprecated", "codex-mini-latest", "-", "deprecated 2026-02-12 gpt-5-codex-mini"),
    ("retired", "computer-use-preview-2025-03-11", "-", "retired 2026-07-23 gpt-5.6-terra"),
    ("deprecated", "dall-e-2", "-",
     "deprecated 2026-05-12 gpt-image-2, gpt-image-1, or gpt-image-1-mini"),
    ("deprecated", "dall-e-3", "-",
     "deprecated 2026-05-12 gpt-image-2, gpt-image-1, or gpt-image-1-mini"),
    ("deprecated", "ft-babbage-002", "-", "deprecated 2026-10-23 gpt-5.6-terra"),
    ("deprecated", "ft-davinci-002", "-", "deprecated 2026-10-23 gpt-5.6-terra"),
    ("deprecated", "ft-gpt-3.5-turbo", "-", "deprecated 2026-10-23 gpt-5.6-terra"),
    ("deprecated", "ft-gpt-4", "-", "deprecated 2026-10-23 gpt-5.6-sol"),
    ("deprecated", "ft-gpt-4.1-nano-2025-04-14", "-", "deprecated 2026-10-23 gpt-5.6-luna"),
    ("deprecated", "ft-o4-mini-2025-04-16", "-", "deprecated 2026-10-23 gpt-5.6-terra"),
    ("deprecated", "gpt-3.5-turbo-0125", "-", "deprecated 2026-10-23 gpt-5.6-terra"),
    ("deprecated", "gpt-4-0613", "-", "deprecated 2026-10-23 gpt-5.6-sol"),
    ("deprecated", "gpt-4-turbo", "-", "deprecated 2026-10-23 gpt-5.6-sol"),
    ("deprecated", "gpt-4.1-nano", "-", "deprecated 2026-10-23 gpt-5.6-luna"),
    ("deprecated", "gpt-4o-2024-05-13", "-", "deprecated 2026-10-23 gpt-5.6-sol"),
    ("deprecated", "gpt-4o-audio", "-", "deprecated 2027-01-20 gpt-audio-1.5"),
    ("deprecated", "gpt-4o-audio-preview", "-", "deprecated 2026-05-07 gpt-audio-1.5"),
    ("deprecated", "gpt-4o-mini-audio", "-", "deprecated 2027-01-20 gpt-audio-1.5"),
    ("deprecated", "gpt-4o-mini-audio-preview", "-", "deprecated 2026-05-07 gpt-audio-mini"),
    ("deprecated", "gpt-4o-mini-realtime", "-", "deprecated 2027-01-20 gpt-realtime-2.1-mini"),
    ("deprecated", "gpt-4o-mini-realtime-preview", "-",
     "deprecated 2026-05-07 gpt-realtime-mini"),
    ("retired", "gpt-4o-mini-search-preview-2025-03-11", "-",
     "retired 2026-07-23 gpt-5.6-terra"),
    ("deprecated", "gpt-4o-mini-transcribe-2025-03-20", "-",
     "deprecated 2027-01-20 gpt-4o-mini-transcribe-2025-12-15"),
    ("deprecated", "gpt-4o-realtime", "-", "deprecated 2027-01-20 gpt-realtime-2.1"),
    ("retired", "gpt-4o-search-preview-2025-03-11", "-", "retired 2026-07-23 gpt-5.6-terra"),
    ("deprecated", "gpt-5-2025-08-07", "-", "deprecated 2026-12-11 gpt-5.6-sol"),
    ("retired", "gpt-5-chat-latest", "-", "retired 2026-07-23 gpt-5.6-sol"),
    ("retired", "gpt-5-codex", "-", "retired 2026-07-23 gpt-5.6-sol"),
    ("deprecated", "gpt-5-mini-2025-08-07", "-", "deprecated 2026-12-11 gpt-5.6-terra"),
    ("deprecated", "gpt-5-nano-2025-08-07", "-", "deprecated 2026-12-11 gpt-5.6-luna"),
    ("deprecated", "gpt-5-pro-2025-10-06", "-",
     "deprecated 2026-12-11 gpt-5.6-sol (reasoning.mode: pro)"),
    ("retired", "gpt-5.1-chat-latest", "-", "retired 2026-07-23 gpt-5.6-sol"),
    ("retired", "gpt-5.1-codex", "-", "retired 2026-07-23 gpt-5.6-sol"),
    ("retired", "gpt-5.1-codex-max", "-", "retired 2026-07-23 gpt-5.6-sol"),
    ("retired", "gpt-5.1-codex-mini", "-", "retired 2026-07-23 gpt-5.6-terra"),
    ("deprecated", "gpt-5.2-chat-latest", "-", "deprecated 2026-08-10 gpt-5.6-sol"),
    ("retired", "gpt-5.2-codex", "-", "retired 2026-07-23 gpt-5.6-sol"),
    ("deprecated", "gpt-5.3-chat-latest", "-", "deprecated 2026-08-10 gpt-5.6-sol"),
    ("deprecated", "gpt-audio", "-", "deprecated 2027-01-20 gpt-audio-1.5"),
    ("deprecated", "gpt-audio-mini", "-", "deprecated 2027-01-20 gpt-audio-1.5"),
    ("retired", "gpt-audio-mini-2025-10-06", "-", "retired 2026-07-23 gpt-audio-1.5"),
    ("deprecated", "gpt-image-1", "-", "deprecated 2026-10-23 gpt-image-2"),
    ("deprecated", "gpt-image-1-mini", "-", "deprecated 2026-12-01 gpt-image-2"),
    ("deprecated", "gpt-image-1.5", "-", "deprecated 2026-12-01 gpt-image-2"),
    ("deprecated", "gpt-realtime", "-", "deprecated 2027-01-20 gpt-realtime-2.1"),
    ("deprecated", "gpt-realtime-mini", "-", "deprecated 2027-01-20 gpt-realtime-2.1-mini"),
    ("retired", "gpt-realtime-mini-2025-10-06", "-", "retired 2026-07-23 gpt-realtime-2.1-mini"),
    ("deprecated", "o1-2024-12-17", "-", "deprecated 2026-10-23 gpt-5.6-sol"),
    ("deprecated", "o1-pro-2025-03-19", "-",
     "deprecated 2026-10-23 gpt-5.6-sol (reasoning.mode: pro)"),
    ("deprecated", "o3-2025-04-16", "-", "deprecated 2026-12-11 gpt-5.6-sol"),
    ("retired", "o3-deep-research-2025-06-26", "-", "retired 2026-07-23 gpt-5.6-sol"),
    ("deprecated", "o3-mini-2025-01-31", "-", "deprecated 2026-10-23 gpt-5.6-sol"),
    ("deprecated", "o3-pro-2025-06-10", "-",
     "deprecated 2026-12-11 gpt-5.6-sol (reasoning.mode: pro)"),
    ("deprecated", "o4-mini-2025-04-16", "-", "deprecated 2026-10-23 gpt-5.6-terra"),
    ("retired", "o4-mini-deep-research-2025-06-26", "-", "retired 2026-07-23 gpt-5.6-sol"),
    ("deprecated", "sora-2", "-", "deprecated 2026-09-24 -"),
    ("deprecated", "sora-2-2025-10-06", "-", "deprecated 2026-09-24 -"),
    ("deprecated", "sora-2-2025-12-08", "-", "deprecated 2026-09-24 -"),
    ("deprecated", "sora-2-pro", "-", "deprecated 2026-09-24 -"),
    ("deprecated", "sora-2-pro-2025-10-06", "-", "deprecated 2026-09-24 -"),
]  # fmt: skip


def test_openai_layout_change_gives_only_field_events() -> None:
    """2025-11 → 2026-08 OpenAI copies: no event for any unchanged model despite the new layout.

    Of the 69 models of the old copy, 51 keep their facts and give nothing; 18 changes are on
    models whose dates, replacements or status really changed; the other 66 are entries
    announced between the two copies. Nothing is reported as vanished.
    """
    old_text = read_sample("openai-deprecations-2025-11-13.md")
    new_text = read_sample("openai-deprecations-2026-08-20.md")
    old = parse_page("openai", old_text, "https://platform.openai.com/docs/deprecations")
    new = parse_page("openai", new_text, "https://developers.openai.com/api/docs/deprecations.md")
    changes = diff_records(old, new)
    got = sorted((c.type, c.model, _brief(c.before), _brief(c.after)) for c in changes)
    assert got == sorted(OPENAI_LAYOUT_CHANGES)
    assert all(c.region is None and c.provider == "openai" for c in changes)
    assert not [c for c in changes if c.after is None]
    old_models = {r.model for r in old}
    assert len(old_models) == 69
    touched = {c.model for c in changes if c.model in old_models}
    assert len(touched) == 13
    assert len(changes) - len([c for c in changes if c.model in old_models]) == 66
