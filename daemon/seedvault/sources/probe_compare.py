"""Comparing two probe runs: what changed, by how much, and whether it is beyond the noise.

The ladder of ``providers.md`` §3, in order; every rung is measured on the probes both runs
share (same suite version), and its *noise* is what the repeats inside each run show:

1. ``availability`` — per probe, the set of outcomes over its repeats (``ok`` or an error class).
   Changed: the two sets share nothing (a model that answered now says ``not_found``, a request
   it took is now refused). Noise: probes with mixed outcomes inside a run.
2. ``identity`` — the ``model`` echoed in answers and the model headers (``openai-model``…).
   Changed: both runs report some and the sets share nothing. ``system_fingerprint`` is
   reported alongside but never decides alone (providers change it with deployments).
   llama.cpp-style servers echo whatever name was asked for, so an unchanged echo proves
   nothing: the text rungs below still run.
3. ``text`` — exact match of normalised answers. A probe whose repeats agree in both runs
   (stable) — and that never answered otherwise in the unchanged runs since the baseline
   (``seen``) — but whose answers differ between them changed beyond any noise the repeats
   could show. Magnitude: changed / compared probes (the answer-mismatch rate of Chen et al.).
   Noise: the share of probes whose answers varied.
4. ``tokens`` — for every probe: the mean token-level distance (1 − difflib ratio on words)
   between the runs' answers (cross) against the mean distance among each run's own repeats
   (noise, the larger of the two runs'). Changed: cross − noise ≥ :data:`TOKEN_MARGIN` and
   cross ≥ 2 × noise. With ``logprobs`` in both runs and identical texts, the mean absolute
   difference of the chosen tokens' log-probabilities is measured the same way (``logprobs``,
   margin :data:`LOGPROB_MARGIN`): a re-quantised model can say the same words with different
   confidence.
5. ``score`` — the suite's mean task score. Changed: the means differ by more than the mean
   per-probe score spread inside the runs, and some probe's scores moved with no overlap.

A run that holds an inconclusive error (rate limits, server errors, network, auth) is never
compared. Magnitudes and noise are decimal strings (events hold no floats).
"""

from __future__ import annotations

import difflib
import statistics
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations, product
from typing import Any

from seedvault.sources.probe_scoring import text_hash

TOKEN_MARGIN = 0.15
LOGPROB_MARGIN = 0.05
MODEL_HEADERS = ("openai-model", "anthropic-model", "x-model")


@dataclass(frozen=True)
class Measure:
    """One rung that changed: which probes, how much, against how much noise."""

    measure: str
    probes: tuple[str, ...]
    magnitude: float
    noise: float
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "measure": self.measure,
            "probes": list(self.probes),
            "magnitude": f"{self.magnitude:.3f}",
            "noise": f"{self.noise:.3f}",
        }
        if self.detail:
            out["detail"] = self.detail
        return out


@dataclass(frozen=True)
class Verdict:
    """The comparison of two runs."""

    measures: tuple[Measure, ...]
    compared: tuple[str, ...]
    """Probe ids both runs have."""
    fingerprints: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    omitted: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    """Parameters each run left out: a change here is reported with the verdict, since it
    changes the conditions (a temperature-0 baseline against a default-temperature run)."""

    @property
    def changed(self) -> bool:
        return bool(self.measures)


def _by_probe(run: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for ex in run.get("exchanges", []):
        out.setdefault(str(ex["probe"]), []).append(ex)
    return out


def _outcome(ex: Mapping[str, Any]) -> str:
    error = ex.get("error")
    return str(error.get("class", "error")) if isinstance(error, dict) else "ok"


def _ok(exs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [e for e in exs if _outcome(e) == "ok"]


def _distance(a: str, b: str) -> float:
    if a == b:
        return 0.0
    return 1.0 - difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()


def _mean_pairwise(texts: Sequence[str]) -> float:
    pairs = list(combinations(texts, 2))
    return statistics.fmean(_distance(a, b) for a, b in pairs) if pairs else 0.0


def _text(ex: Mapping[str, Any]) -> str:
    return " ".join(str(ex.get("parsed", {}).get("content", "")).split())


def _logprob_gap(a: Mapping[str, Any], b: Mapping[str, Any]) -> float | None:
    """Mean |Δ logprob| over aligned tokens of two answers with the same tokens, else None."""
    la, lb = a.get("parsed", {}).get("logprobs"), b.get("parsed", {}).get("logprobs")
    if not la or not lb or len(la) != len(lb):
        return None
    if any(x[0] != y[0] for x, y in zip(la, lb, strict=True)):
        return None
    return statistics.fmean(abs(float(x[1]) - float(y[1])) for x, y in zip(la, lb, strict=True))


def compare_runs(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    seen: Mapping[str, Collection[str]] | None = None,
) -> Verdict:
    """The :class:`Verdict` of ``new`` against ``old`` (both comparable, same suite).

    ``seen`` adds, per probe, the normalised-text hashes of the runs between ``old`` and
    ``new`` that showed no change: answers that varied across runs are noise too. A probe
    whose answers now were all seen before is not judged by the text rungs, and one that has
    ever answered in two ways is not judged by exact text.
    """
    a, b = _by_probe(old), _by_probe(new)
    shared = tuple(sorted(set(a) & set(b)))
    if not shared:
        return Verdict((), ())
    seen = seen or {}
    # probes whose every answer now was already given in an unchanged run: not a change
    fresh = tuple(
        p for p in shared
        if not (now := {_hash(e) for e in _ok(b[p])}) or not now <= set(seen.get(p, ()))
    )  # fmt: skip
    found = (
        _availability(a, b, shared),
        _identity(a, b, shared),
        _text_rung(a, b, fresh, seen),
        _tokens(a, b, fresh),
        _logprobs(a, b, shared),
        _score(a, b, shared),
    )
    measures = tuple(m for m in found if m is not None)
    prints = tuple(
        tuple(sorted({str(e["parsed"]["system_fingerprint"]) for e in _all(run, shared)
                      if e.get("parsed", {}).get("system_fingerprint")}))
        for run in (a, b)
    )  # fmt: skip
    omitted = (_omitted(old), _omitted(new))
    return Verdict(measures, shared, (prints[0], prints[1]), omitted)


def _omitted(run: Mapping[str, Any]) -> tuple[str, ...]:
    """Parameters a run left out (after a 400 or for the whole run)."""
    names: set[str] = set()
    for e in run.get("exchanges", []):
        names.update(e.get("omitted", []), e.get("omitted_after_refusal", []))
    return tuple(sorted(names))


def _all(run: Mapping[str, list[dict[str, Any]]], probes: Iterable[str]) -> list[dict[str, Any]]:
    return [e for p in probes for e in run[p]]


def _availability(
    a: Mapping[str, list[dict[str, Any]]],
    b: Mapping[str, list[dict[str, Any]]],
    shared: tuple[str, ...],
) -> Measure | None:
    changed, mixed, details = [], 0, []
    for p in shared:
        sa, sb = {_outcome(e) for e in a[p]}, {_outcome(e) for e in b[p]}
        mixed += len(sa) > 1 or len(sb) > 1
        if not sa & sb:
            changed.append(p)
            details.append(f"{p}: {'/'.join(sorted(sa))} → {'/'.join(sorted(sb))}")
    if not changed:
        return None
    return Measure(
        "availability", tuple(changed), len(changed) / len(shared), mixed / len(shared),
        "; ".join(details),
    )  # fmt: skip


def _identities(exs: Iterable[Mapping[str, Any]]) -> set[str]:
    out: set[str] = set()
    for e in exs:
        model = e.get("parsed", {}).get("model")
        if isinstance(model, str) and model:
            out.add(f"model={model}")
        for h in MODEL_HEADERS:
            value = e.get("headers", {}).get(h)
            if value:
                out.add(f"{h}={value}")
    return out


def _identity(
    a: Mapping[str, list[dict[str, Any]]],
    b: Mapping[str, list[dict[str, Any]]],
    shared: tuple[str, ...],
) -> Measure | None:
    ia, ib = _identities(_all(a, shared)), _identities(_all(b, shared))
    if not ia or not ib or ia & ib:
        return None
    detail = f"{', '.join(sorted(ia))} → {', '.join(sorted(ib))}"
    return Measure("identity", shared, 1.0, 0.0, detail)


def text_hashes(run: Mapping[str, Any]) -> dict[str, set[str]]:
    """Probe id → the normalised-text hashes of its answered exchanges in ``run``."""
    out: dict[str, set[str]] = {}
    for p, exs in _by_probe(run).items():
        found = {str(e.get("derived", {}).get("text_b3", "")) for e in _ok(exs)}
        if found - {""}:
            out[p] = found - {""}
    return out


def _text_rung(
    a: Mapping[str, list[dict[str, Any]]],
    b: Mapping[str, list[dict[str, Any]]],
    shared: tuple[str, ...],
    seen: Mapping[str, Collection[str]],
) -> Measure | None:
    changed, unstable, compared = [], 0, 0
    for p in shared:
        ta = {_hash(e) for e in _ok(a[p])} | set(seen.get(p, ()))
        tb = {_hash(e) for e in _ok(b[p])}
        if not ta or not tb:
            continue
        compared += 1
        if len(ta) > 1 or len(tb) > 1:
            unstable += 1
        elif ta != tb:
            changed.append(p)
    if not changed:
        return None
    return Measure("text", tuple(changed), len(changed) / compared, unstable / compared)


def _hash(ex: Mapping[str, Any]) -> str:
    return str(ex.get("derived", {}).get("text_b3") or text_hash(_text(ex)))


Pair = tuple[float, float]
"""(between the runs, inside them) for one probe."""


def _distance_rung(
    measure: str,
    detail: str,
    margin: float,
    between: Any,
    a: Mapping[str, list[dict[str, Any]]],
    b: Mapping[str, list[dict[str, Any]]],
    shared: tuple[str, ...],
) -> Measure | None:
    """A rung measured as a distance: a probe changed when the between-run distance exceeds
    the within-run one by ``margin`` and is at least twice it. ``between(old, new)`` gives a
    probe's :data:`Pair` from its answered exchanges, or None when it cannot be measured."""
    changed: list[str] = []
    cross_all, noise_all = [], []
    for p in shared:
        found: Pair | None = between(_ok(a[p]), _ok(b[p]))
        if found is None:
            continue
        cross, noise = found
        cross_all.append(cross)
        noise_all.append(noise)
        if cross - noise >= margin and cross >= 2 * noise:
            changed.append(p)
    if not changed:
        return None
    mean_cross, mean_noise = statistics.fmean(cross_all), statistics.fmean(noise_all)
    return Measure(measure, tuple(changed), mean_cross, mean_noise, detail)


def _token_pair(old: list[Mapping[str, Any]], new: list[Mapping[str, Any]]) -> Pair | None:
    ta, tb = [_text(e) for e in old], [_text(e) for e in new]
    if not ta or not tb:
        return None
    noise = max(_mean_pairwise(ta), _mean_pairwise(tb))
    return statistics.fmean(_distance(x, y) for x, y in product(ta, tb)), noise


def _logprob_pair(old: list[Mapping[str, Any]], new: list[Mapping[str, Any]]) -> Pair | None:
    cross = [g for x, y in product(old, new) if (g := _logprob_gap(x, y)) is not None]
    if not cross:
        return None
    inside = [
        g for run in (old, new) for x, y in combinations(run, 2)
        if (g := _logprob_gap(x, y)) is not None
    ]  # fmt: skip
    return statistics.fmean(cross), statistics.fmean(inside) if inside else 0.0


def _tokens(
    a: Mapping[str, list[dict[str, Any]]],
    b: Mapping[str, list[dict[str, Any]]],
    shared: tuple[str, ...],
) -> Measure | None:
    detail = "mean token distance between the runs against the mean inside them"
    return _distance_rung("tokens", detail, TOKEN_MARGIN, _token_pair, a, b, shared)


def _logprobs(
    a: Mapping[str, list[dict[str, Any]]],
    b: Mapping[str, list[dict[str, Any]]],
    shared: tuple[str, ...],
) -> Measure | None:
    detail = "mean |Δ logprob| per token of identical answers"
    return _distance_rung("logprobs", detail, LOGPROB_MARGIN, _logprob_pair, a, b, shared)


def _scores(exs: Iterable[Mapping[str, Any]]) -> list[int]:
    out = []
    for e in exs:
        value = e.get("derived", {}).get("score")
        if isinstance(value, int):
            out.append(value)
    return out


def _score(
    a: Mapping[str, list[dict[str, Any]]],
    b: Mapping[str, list[dict[str, Any]]],
    shared: tuple[str, ...],
) -> Measure | None:
    means_a, means_b, spreads, moved = [], [], [], []
    for p in shared:
        sa, sb = _scores(a[p]), _scores(b[p])
        if not sa or not sb:
            continue
        means_a.append(statistics.fmean(sa))
        means_b.append(statistics.fmean(sb))
        spreads.append(max(max(sa) - min(sa), max(sb) - min(sb)))
        if not set(sa) & set(sb):
            moved.append(p)
    if not means_a:
        return None
    delta = statistics.fmean(means_b) - statistics.fmean(means_a)
    noise = statistics.fmean(spreads)
    if not moved or abs(delta) <= noise:
        return None
    detail = f"mean score {statistics.fmean(means_a):.3f} → {statistics.fmean(means_b):.3f}"
    return Measure("score", tuple(moved), delta, noise, detail)
