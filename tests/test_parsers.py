"""Deprecation-page parsers: dates, cells, tables, each provider layout and the real sample pages.

Fixture pages in ``tests/fixtures/pages/`` are the project's own (invented ids, neutral text)
and carry one trap each from ``reference/providers.md``; the real sample pages are read from
the shared reference directory at test time and skipped where it is absent.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from seedvault.errors import UsageError
from seedvault.sources.parsers import PARSERS, Record, Shutdown, parse_page
from seedvault.sources.parsers.blocks import Table
from seedvault.sources.parsers.cells import (
    clean_text,
    clean_value,
    map_status,
    parse_model_cell,
    parse_regions,
)
from seedvault.sources.parsers.dates import find_date, parse_shutdown
from seedvault.sources.parsers.mdpage import read_page
from tests.testdata import missing

FIXTURES = Path(__file__).parent / "fixtures" / "pages"
SAMPLES = Path(
    os.environ.get(
        "SEEDVAULT_REFERENCE_PAGES",
        Path(__file__).resolve().parents[2] / "shared" / "reference" / "pages",
    )
)
NB = "\u2011"  # NON-BREAKING HYPHEN, as in some ISO dates on the OpenAI page


def fixture(name: str, provider: str) -> list[Record]:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return parse_page(provider, text, f"https://example.invalid/{name}")


def sample(name: str, provider: str) -> list[Record]:
    path = SAMPLES / name
    if not path.is_file():
        missing(f"reference sample page {path}")
    return parse_page(provider, path.read_text(encoding="utf-8"), f"https://sample.invalid/{name}")


def brief(record: Record) -> tuple[Any, ...]:
    """The facts of a record without its provenance, for compact pinning."""
    shutdown = record.shutdown
    when = "none" if shutdown.date is None else shutdown.date
    if shutdown.qualifier == "not_before":
        when = f">={when}"
    return (
        record.model,
        record.region,
        when,
        record.announced,
        record.status,
        record.replacement,
        record.aliases,
    )


def only(records: list[Record], model: str, region: str | None = None) -> list[Record]:
    return [r for r in records if r.model == model and r.region == region]


# -- dates --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "date", "qualifier"),
    [
        ("2024-01-04", "2024-01-04", "exact"),
        ("at earliest 2024-06-13", "2024-06-13", "not_before"),
        ("Dec 11, 2026", "2026-12-11", "exact"),
        ("October 23, 2026", "2026-10-23", "exact"),
        ("9/23/2024", "2024-09-23", "exact"),
        ("July 15th, 2025 (all Regions)", "2025-07-15", "exact"),
        ("January 04, 2024", "2024-01-04", "exact"),
        ("11 December 2026", "2026-12-11", "exact"),
        ("Sept 5, 2025", "2025-09-05", "exact"),
        (f"2026{NB}03{NB}26", "2026-03-26", "exact"),
        ("2026\u201303\u201326", "2026-03-26", "exact"),
        ("2026\u201203\u201226", "2026-03-26", "exact"),
        ("Not sooner than June 9, 2027", "2027-06-09", "not_before"),
        ("No sooner than 9/23/2025", "2025-09-23", "not_before"),
        ("no earlier than 2025-06-13", "2025-06-13", "not_before"),
        ("earliest possible: May 7, 2027", "2027-05-07", "not_before"),
        ("2025-06-13 at the earliest", "2025-06-13", "not_before"),
        ("2026-03-26*", "2026-03-26", "exact"),
    ],
)
def test_shutdown_forms(text: str, date: str, qualifier: str) -> None:
    """Every date form of providers.md becomes YYYY-MM-DD; lower-bound wording → not_before."""
    assert parse_shutdown(text) == Shutdown(date, qualifier)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["NA", "N/A", "n/a", "---", "\\---", "\u2014", "\u2013", "", "  ", "TBD",
     "No shutdown date announced", "not announced", "June 2024", "2026-02-30", "13/45/2024"],
)  # fmt: skip
def test_shutdown_none(text: str) -> None:
    """None-markers, "No shutdown date announced", month-only and impossible dates give none."""
    assert parse_shutdown(text) == Shutdown(None, "none")
    assert parse_shutdown(text).to_json() == {"qualifier": "none"}


def test_bare_date_takes_default_qualifier() -> None:
    """A page that says its dates are earliest-possible reads bare dates as not_before."""
    assert parse_shutdown("May 7, 2027", "not_before") == Shutdown("2027-05-07", "not_before")


def test_dates_inside_model_ids_are_not_dates() -> None:
    """A snapshot id such as gpt-4o-2024-05-13 is not read as a date."""
    assert find_date("gpt-4o-2024-05-13") is None
    assert find_date("`ex-5-2025-08-07`") is None


def test_shutdown_rejects_date_without_qualifier() -> None:
    """A Shutdown cannot claim a date with qualifier none (or none without a date)."""
    with pytest.raises(ValueError, match="contradicts"):
        Shutdown("2026-01-01", "none")
    with pytest.raises(ValueError, match="contradicts"):
        Shutdown(None, "exact")


# -- cells --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "text"),
    [
        ("`gpt-5` or `gpt-4.1*`", "gpt-5 or gpt-4.1"),
        ("ex-small\u2020", "ex-small"),
        ("ex-embed\u2021", "ex-embed"),
        ("ex-embed[1]", "ex-embed"),
        ("ex-embed\u00b9", "ex-embed"),
        ("ex-embed<sup>2</sup>", "ex-embed"),
        ("eu-west-1 (Gated)*", "eu-west-1 (Gated)"),
        ("**Model**", "Model"),
        ("[/v1/models](https://example.invalid/x)", "/v1/models"),
        ("a<br>b", "a, b"),
    ],
)
def test_footnote_markers_and_markup_are_stripped(cell: str, text: str) -> None:
    """Footnote markers (*, †, ‡, [1], ¹, <sup>) and markup never reach record fields."""
    assert clean_text(cell) == text


@pytest.mark.parametrize("cell", ["---", "\\---", "\u2014", "N/A", "NA", "", "none"])
def test_none_cells(cell: str) -> None:
    """---, —, N/A and empty cells mean "no value"."""
    assert clean_value(cell) is None


@pytest.mark.parametrize(
    ("cell", "model", "aliases"),
    [
        ("gpt-4-0314 (alias: gpt-4)", "gpt-4-0314", ("gpt-4",)),
        ("`ex-a` (aliases: ex-b, ex-c)", "ex-a", ("ex-b", "ex-c")),
        (
            "`gpt-4-0125-preview` (including `gpt-4-turbo-preview` and "
            "`gpt-4-turbo-preview-completions`, which point to this snapshot)",
            "gpt-4-0125-preview",
            ("gpt-4-turbo-preview", "gpt-4-turbo-preview-completions"),
        ),
        (
            "`gpt-4-0613` \\| `gpt-4`, `gpt-4-completions`",
            "gpt-4-0613",
            ("gpt-4", "gpt-4-completions"),
        ),
        ("ex-large-2402<br>ex-large-latest", "ex-large-2402", ("ex-large-latest",)),
        ("ex-a, ex-a-latest", "ex-a", ("ex-a-latest",)),
        ("`ex-pipe|v2`", "ex-pipe|v2", ()),
        ("New tuning runs on `ex-base`", "New tuning runs on ex-base", ()),
        ("Mistral Large (24.02)", "Mistral Large (24.02)", ()),
        ("Claude 3 Opus, Claude 3 Sonnet", "Claude 3 Opus, Claude 3 Sonnet", ()),
        ("`ex-model*`", "ex-model", ()),
        ("---", "", ()),
    ],
)
def test_model_cell_aliases(cell: str, model: str, aliases: tuple[str, ...]) -> None:
    """Aliases come out of alias/including parentheses, escaped pipes and id lists."""
    assert parse_model_cell(cell) == (model, aliases)


def test_regions() -> None:
    """Region lists are read from date cells; "all Regions" means no per-region split."""
    assert parse_regions("May 20, 2025 (us-east-1 and us-west-2)") == ["us-east-1", "us-west-2"]
    assert parse_regions("October 4, 2024 (only in us-gov-west-1)") == ["us-gov-west-1"]
    assert parse_regions("January 15th, 2026 (all Regions)") == []
    assert parse_regions("March 1, 2026") == []


@pytest.mark.parametrize(
    ("cell", "status"),
    [("Active", "active"), ("Legacy", "legacy"), ("Deprecated", "deprecated"),
     ("Retired", "retired"), ("Shut down", "retired"), ("EOL", "retired"), ("Preview", None)],
)  # fmt: skip
def test_status_words(cell: str, status: str | None) -> None:
    """Status cells map onto active/legacy/deprecated/retired, anything else to None."""
    assert map_status(cell) == status


# -- tables -------------------------------------------------------------------------------------


def test_pipe_inside_backticks_and_escaped_pipe_are_cell_text() -> None:
    """A | inside a code span or written \\| does not split the cell."""
    text = "| A | B |\n| --- | --- |\n| `x|y` | p \\| q |\n"
    (table,) = read_page(text)
    assert isinstance(table, Table)
    assert table.rows == (("`x|y`", "p \\| q"),)


def test_back_to_back_tables_split_at_the_second_header() -> None:
    """A data row followed by a separator line is the header of the next table."""
    text = "A| B\n---|---\n1| 2\nC| D\n---|---\n3| 4\n"
    tables = [b for b in read_page(text) if isinstance(b, Table)]
    assert [(t.header, t.rows) for t in tables] == [
        (("A", "B"), (("1", "2"),)),
        (("C", "D"), (("3", "4"),)),
    ]


def test_header_shorter_than_rows_aligns_the_unnamed_date_column() -> None:
    """Bedrock's Active table: the EOL column has no header; its cells are found anyway."""
    blocks = read_page((FIXTURES / "bedrock.md").read_text(encoding="utf-8"))
    active = next(b for b in blocks if isinstance(b, Table))
    assert len(active.header) == 7
    assert {len(row) for row in active.rows} == {8}
    first = dict(active.aligned()[0])
    assert first[""] == "No sooner than 9/23/2025"
    assert first["Launch date"] == "9/23/2024"
    assert first["Input modalities"] == "Text"


def test_multiline_bullet_cells_are_one_row() -> None:
    """Converter-style rows spread over many lines (bullet lists, blank lines) stay one row."""
    blocks = read_page((FIXTURES / "bedrock.md").read_text(encoding="utf-8"))
    active = next(b for b in blocks if isinstance(b, Table))
    assert len(active.rows) == 4
    pro = dict(active.aligned()[1])
    assert pro["Regions supported"] == "us-east-1\nus-west-2*"
    assert pro["Launch date"] == "12/4/2024\n\n12/4/2024"


def test_html_tables_keep_breaks_and_drop_sup_and_scripts() -> None:
    """HTML cells: <br> separates items, <sup> footnotes vanish, <script> is not read."""
    blocks = read_page((FIXTURES / "generic.html").read_text(encoding="utf-8"))
    tables = [b for b in blocks if isinstance(b, Table)]
    assert len(tables) == 2
    assert tables[0].rows[0][1] == "ex-large-2402\nex-large-latest"
    assert tables[0].rows[0][3] == "3/30/2025"


# -- provider fixtures ------------------------------------------------------------------------


def test_openai_entries_layout() -> None:
    """2025-11 layout: U+2011 dates, "at earliest", (including …) aliases, footnotes, prose date."""
    records = fixture("openai-entries.md", "openai")
    assert [brief(r) for r in records] == [
        ("/v1/example", None, "2023-07-10", "2023-01-10", "deprecated", "/v1/newer", ()),
        ("Example Batch API", None, "2025-09-01", "2025-03-04", "deprecated", None, ()),
        ("New tuning runs on ex-base", None, "2025-01-15", "2024-06-01", "deprecated",
         "ex-chat-2", ()),
        ("ex-base", None, "2025-01-15", "2024-06-01", "deprecated", "ex-chat-2", ()),
        ("ex-chat-0301", None, ">=2025-06-01", "2024-06-01", "legacy", "ex-chat-2", ()),
        ("ex-chat-0301", None, "2025-09-01", "2025-03-04", "deprecated",
         "ex-chat-2 or ex-chat-3", ()),
        ("ex-chat-0401", None, "2025-09-01", "2025-03-04", "deprecated", "ex-chat-2",
         ("ex-chat", "ex-chat-latest")),
    ]  # fmt: skip


def test_openai_heading_date_yields_to_prose_date() -> None:
    """The heading says 2025-03-01 but the prose says "On March 4th, 2025, we notified"."""
    records = fixture("openai-entries.md", "openai")
    assert {r.announced for r in records if r.model == "ex-chat-0401"} == {"2025-03-04"}


def test_openai_one_model_in_several_entries() -> None:
    """A model listed in two entries gives one record per entry, each with its own dates."""
    records = only(fixture("openai-entries.md", "openai"), "ex-chat-0301")
    assert [(r.announced, r.shutdown) for r in records] == [
        ("2024-06-01", Shutdown("2025-06-01", "not_before")),
        ("2025-03-04", Shutdown("2025-09-01", "exact")),
    ]


def test_openai_sections_layout() -> None:
    """2026-08 layout: escaped-pipe aliases, Date|Update timelines, past-tense prose → retired."""
    records = fixture("openai-sections.md", "openai")
    assert [brief(r) for r in records] == [
        ("Example prompt objects", None, "2026-11-30", "2026-06-03", "deprecated", None, ()),
        ("ex-5-2025-08-07", None, "2026-12-11", "2026-06-11", "deprecated", "ex-6", ("ex-5",)),
        ("ex-5-pro", None, "2026-12-11", "2026-06-11", "deprecated", "ex-6 (mode: a|b)",
         ("ex-5-pro-latest", "ex-5-pro-completions")),
        ("ex-chat-0301", None, "2025-09-01", "2025-03-04", "deprecated", "ex-chat-2", ()),
        ("ex-chat-0301", None, "2026-10-23", "2026-06-11", "deprecated", "ex-6", ()),
        ("ex-search-2025-03-11", None, "2026-07-23", "2026-04-22", "retired", "ex-6",
         ("ex-search",)),
    ]  # fmt: skip


def test_openai_consolidated_table() -> None:
    """A single table with Status and Notice-date columns is read directly."""
    records = fixture("openai-consolidated.md", "openai")
    assert [brief(r) for r in records] == [
        ("ex-5-2025-08-07", None, "2026-12-11", "2026-06-11", "deprecated", "ex-6", ("ex-5",)),
        ("ex-7", None, "none", None, "legacy", None, ()),
        ("ex-chat-0301", None, "2025-09-01", "2025-03-04", "retired", "ex-chat-2", ()),
    ]


def test_anthropic_status_table_and_history() -> None:
    """Not-sooner-than and tentative dates are lower bounds until a model is deprecated."""
    records = fixture("anthropic.md", "anthropic")
    assert [brief(r) for r in records] == [
        ("ex-haiku-2", None, "2026-04-06", "2026-01-05", "retired", None, ()),
        ("ex-haiku-2", None, "2026-04-06", "2026-01-05", "retired", "ex-opus-5", ()),
        ("ex-opus-4", None, ">=2027-03-01", None, "legacy", None, ()),
        ("ex-opus-5", None, ">=2027-06-09", None, "active", None, ()),
        ("ex-sonnet-3", None, "2026-08-05", "2026-05-05", "deprecated", None, ()),
        ("ex-sonnet-3", None, "2026-08-05", "2026-05-05", "deprecated", "ex-opus-5", ()),
    ]


def test_gemini_family_tables() -> None:
    """Earliest-possible dates → not_before; "No shutdown date announced" → none; no sub-rows."""
    records = fixture("gemini.md", "gemini")
    assert [brief(r) for r in records] == [
        ("ex-2-flash", None, ">=2026-06-01", None, None, "ex-3-flash", ()),
        ("ex-2-preview", None, ">=2025-12-09", None, None, "ex-3-lite", ()),
        ("ex-3-flash", None, "none", None, None, None, ()),
        ("ex-3-lite", None, ">=2027-05-07", None, None, "ex-3-flash", ()),
        ("ex-3-preview", None, "none", None, None, "ex-3-flash", ()),
    ]
    assert not [r for r in records if "Preview" in r.model]


def test_bedrock_tables_and_per_region_dates() -> None:
    """Active rows (short header) give not_before EOLs; Legacy/EOL dates split per region."""
    records = fixture("bedrock.md", "bedrock")
    assert [brief(r) for r in records] == [
        ("Ex Classic", None, "2026-01-15", "2025-07-15", "legacy", "exco.ex-pro-v1:0", ()),
        ("Ex Old", "us-east-1", "2025-05-20", "2024-10-16", "legacy", "exco.ex-pro-v1:0",
         ("exco.ex-old-v1:0",)),
        ("Ex Old", "us-west-2", "2025-05-20", "2024-10-16", "legacy", "exco.ex-pro-v1:0",
         ("exco.ex-old-v1:0",)),
        ("Ex Tiny", "us-west-2", "2024-10-04", "2024-04-30", "retired", "exco.ex-lite-v1:0", ()),
        ("Ex Tiny", "us-east-1", "2025-03-12", "2024-10-04", "retired", "exco.ex-lite-v1:0", ()),
        ("exco.ex-lite-v1:0", None, ">=2025-09-23", None, "active", None, ("Ex Lite",)),
        ("exco.ex-old-v1:0", None, ">=2025-01-02", None, "active", None, ("Ex Old",)),
        ("exco.ex-pro-v1:0", None, ">=2025-12-04", None, "active", None, ("Ex Pro",)),
        ("exco.ex-rank-v1:0", None, "none", None, "active", None, ("Ex Rank",)),
    ]  # fmt: skip


def test_generic_html_page() -> None:
    """HTML tables: id column preferred, <br> aliases, †/[1]/<sup>/² markers, M/D/YYYY dates."""
    records = fixture("generic.html", "generic")
    assert [brief(r) for r in records] == [
        ("ex-embed", None, "none", "2025-01-10", None, "ex-embed-2", ()),
        ("ex-large-2402", None, "2025-03-30", "2024-09-23", None, "ex-large-2411",
         ("ex-large-latest",)),
        ("ex-small-2312", None, ">=2025-06-30", "2024-11-30", None, None, ()),
    ]  # fmt: skip


def test_generic_markdown_page() -> None:
    """Generic headers (Model ID, Announced, End-of-life, Alternative); other tables ignored."""
    records = fixture("generic.md", "generic")
    assert [brief(r) for r in records] == [
        ("ex-a", None, "2025-02-02", "2024-02-02", None, None, ("ex-a-latest", "ex-a-2024")),
        ("ex-code-0314", None, ">=2025-06-13", "2024-01-04", None, "ex-code-2", ("ex-code",)),
        ("ex-pipe|v2", None, "2025-12-11", "2024-12-01", None, "ex-code-2", ()),
    ]


# -- parse_page and the record contract -------------------------------------------------------


def test_unknown_provider_is_a_usage_error_naming_the_known_ones() -> None:
    """parse_page refuses an unknown provider and lists the registry's names."""
    assert sorted(PARSERS) == ["anthropic", "bedrock", "gemini", "generic", "openai"]
    with pytest.raises(UsageError, match="anthropic, bedrock, gemini, generic, openai"):
        parse_page("azure", "", "u")


def test_records_sorted_and_deduplicated() -> None:
    """Output is sorted by model, shutdown, region, announced…, and duplicates collapse."""
    text = (FIXTURES / "openai-consolidated.md").read_text(encoding="utf-8")
    doubled = text + "\n" + text.split("\n", 4)[4]
    records = parse_page("openai", doubled, "u")
    assert records == parse_page("openai", text, "u")
    assert records == sorted(records, key=Record.sort_key)


def _walk(value: object) -> list[object]:
    if isinstance(value, dict):
        return [value, *[x for v in value.values() for x in _walk(v)]]
    if isinstance(value, list):
        return [value, *[x for v in value for x in _walk(v)]]
    return [value]


@pytest.mark.parametrize(
    ("name", "provider"),
    [("openai-entries.md", "openai"), ("openai-sections.md", "openai"),
     ("anthropic.md", "anthropic"), ("gemini.md", "gemini"), ("bedrock.md", "bedrock"),
     ("generic.html", "generic"), ("generic.md", "generic")],
)  # fmt: skip
def test_json_contract(name: str, provider: str) -> None:
    """to_json has exactly the contract keys, optional ones absent (never null), no floats."""
    required = {"provider", "model", "aliases", "shutdown", "source_url", "quote"}
    optional = {"announced", "replacement", "status", "region"}
    for record in fixture(name, provider):
        obj = record.to_json()
        assert required <= obj.keys() <= required | optional
        assert all(v is not None for v in _walk(obj))
        assert not any(isinstance(v, float) for v in _walk(obj))
        assert obj["shutdown"] in (
            {"qualifier": "none"},
            {"date": record.shutdown.date, "qualifier": "exact"},
            {"date": record.shutdown.date, "qualifier": "not_before"},
        )
        assert "  " not in obj["quote"]
        assert "\n" not in obj["quote"]
        json.dumps(obj)


@pytest.mark.parametrize(
    "text",
    [
        "|" * 50_000,
        "`" * 20_000 + "|" * 20_000,
        "a|b\n---|---\n" + "x | \n" * 5_000,
        "Not sooner than " * 5_000 + "9/9/9999",
        "<table>" + "<tr><td>" * 5_000,
        "[" * 10_000 + "](" * 10_000,
        "1" * 50_000 + "-" + "1" * 50_000,
    ],
)
def test_hostile_page_text_is_parsed_quickly(text: str) -> None:
    """Untrusted page text: no catastrophic backtracking, no crash, for every parser."""
    start = time.monotonic()
    for provider in PARSERS:
        parse_page(provider, text, "u")
    assert time.monotonic() - start < 10


# -- the real sample pages --------------------------------------------------------------------


def test_sample_openai_2025_11() -> None:
    """The 2025-11 OpenAI copy: 76 records; aliases, "at earliest", prose announcement date."""
    records = sample("openai-deprecations-2025-11-13.md", "openai")
    assert len(records) == 76
    assert [brief(r) for r in only(records, "gpt-4-0314")] == [
        ("gpt-4-0314", None, ">=2024-06-13", "2023-06-13", "legacy", "gpt-4o", ()),
        ("gpt-4-0314", None, "2026-03-26", "2025-09-26", "deprecated", "gpt-5 or gpt-4.1", ()),
    ]
    (preview,) = only(records, "gpt-4-0125-preview")
    assert preview.aliases == ("gpt-4-turbo-preview", "gpt-4-turbo-preview-completions")
    (assistants,) = only(records, "Assistants API")
    assert (assistants.announced, assistants.shutdown.date) == ("2025-08-26", "2026-08-26")
    (cdv,) = [r for r in only(records, "code-davinci-002") if r.announced == "2023-07-06"]
    assert cdv.replacement == "gpt-3.5-turbo-instruct"


def test_sample_openai_2026_08() -> None:
    """The 2026-08 OpenAI copy: 143 records; text dates, pipe aliases, retired past entries."""
    records = sample("openai-deprecations-2026-08-20.md", "openai")
    assert len(records) == 143
    (turbo,) = only(records, "gpt-3.5-turbo-0125")
    assert brief(turbo) == (
        "gpt-3.5-turbo-0125", None, "2026-10-23", "2026-04-22", "deprecated", "gpt-5.6-terra",
        ("gpt-3.5-turbo", "gpt-3.5-turbo-completions"),
    )  # fmt: skip
    (gpt5,) = only(records, "gpt-5-2025-08-07")
    assert gpt5.shutdown == Shutdown("2026-12-11", "exact")
    (computer,) = only(records, "computer-use-preview-2025-03-11")
    assert (computer.status, computer.aliases) == ("retired", ("computer-use-preview",))
    (builder,) = only(records, "Agent Builder")
    assert (builder.shutdown.date, builder.announced) == ("2026-11-30", "2026-06-03")
    (sora,) = only(records, "sora-2")
    assert sora.replacement is None
    assert not only(records, "Update to OpenAI’s self-serve fine-tuning")


def test_sample_anthropic() -> None:
    """The Anthropic copy: 35 records; "Not sooner than" active rows, retired history rows."""
    records = sample("anthropic-model-deprecations-2026-08-20.md", "anthropic")
    assert len(records) == 35
    (fable,) = only(records, "claude-fable-5")
    assert brief(fable) == ("claude-fable-5", None, ">=2027-06-09", None, "active", None, ())
    assert [brief(r) for r in only(records, "claude-opus-4-1-20250805")] == [
        ("claude-opus-4-1-20250805", None, "2026-08-05", "2026-06-05", "retired", None, ()),
        ("claude-opus-4-1-20250805", None, "2026-08-05", "2026-06-05", "retired",
         "claude-opus-4-8", ()),
    ]  # fmt: skip
    (sonnet35,) = only(records, "claude-3-5-sonnet-20240620")
    assert (sonnet35.status, sonnet35.shutdown.date) == ("retired", "2025-10-28")
    assert not [r for r in records if "temperature" in r.model]


def test_sample_gemini() -> None:
    """The Gemini copy: 65 model rows, earliest-possible dates, no "Preview models" rows."""
    records = sample("gemini-api-deprecations-2026-08-21.md", "gemini")
    assert len(records) == 65
    (flash,) = only(records, "gemini-2.0-flash")
    assert brief(flash) == ("gemini-2.0-flash", None, ">=2026-06-01", None, None,
                            "gemini-3.6-flash", ())  # fmt: skip
    (pro,) = only(records, "gemini-2.5-pro")
    assert pro.shutdown == Shutdown()
    assert pro.replacement is None
    (veo,) = only(records, "veo-2.0-generate-001")
    assert veo.replacement is not None
    assert "](" not in veo.replacement
    assert not [r for r in records if r.model.lower().startswith("preview")]


def test_sample_bedrock() -> None:
    """The Bedrock copy: 55 active rows plus per-region Legacy/EOL records (116 in all)."""
    records = sample("aws-bedrock-model-lifecycle-2025-11-13.md", "bedrock")
    assert len(records) == 116
    assert len([r for r in records if r.status == "active"]) == 55
    (jamba,) = only(records, "ai21.jamba-1-5-large-v1:0")
    assert brief(jamba) == ("ai21.jamba-1-5-large-v1:0", None, ">=2025-09-23", None, "active",
                            None, ("Jamba 1.5 Large",))  # fmt: skip
    (opus,) = only(records, "Claude 3 Opus")
    assert (opus.status, opus.shutdown.date, opus.announced) == (
        "legacy", "2026-01-15", "2025-07-15",
    )  # fmt: skip
    mid = [r for r in records if r.model == "Ai21 J2 Mid-v1"]
    assert [(r.region, r.shutdown.date) for r in mid] == [
        ("us-west-2", "2024-10-04"),
        ("us-east-1", "2025-03-12"),
    ]
    sdxl = [r.region for r in records if r.model == "Stable Diffusion XL 1.0"]
    assert sdxl == ["us-east-1", "us-west-2"]
    (sonnet_v1,) = only(records, "Claude 3.5 Sonnet v1", "us-east-1")
    assert "anthropic.claude-3-5-sonnet-20240620-v1:0" in sonnet_v1.aliases
