"""Metrics: a tiny registry of counters and gauges, rendered in the Prometheus text format.

No client library: a node needs a handful of series, served by ``/metrics``. Every name starts
with ``seedvault_``; counters end in ``_total``. A series is a metric plus label values
(``seedvault_captures_total{watch="hf:org/m",outcome="captured"}``). Gauges may be computed at
scrape time from a callback (queue depth, outbox size); a callback that fails is logged and its
series left out, never failing the scrape. Thread-safe: the scrubber updates from threads.

:class:`DaemonMetrics` declares the daemon's series in one place (the metrics reference of
``docs/operations.md`` lists the same names).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence

import structlog

from seedvault import __version__

log = structlog.get_logger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "seedvault_"
_NAME = re.compile(r"^seedvault_[a-z0-9_]+$")
_LABEL = re.compile(r"^[a-z_][a-z0-9_]*$")

Labels = tuple[str, ...]
Sampler = Callable[[], float | Mapping[Labels, float]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class Metric:
    """One named metric and its series."""

    def __init__(self, kind: str, name: str, help: str, labels: Sequence[str]) -> None:
        if not _NAME.match(name):
            raise ValueError(f"metric name {name!r} must match {_NAME.pattern}")
        if kind == "counter" and not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must end in _total")
        for label in labels:
            if not _LABEL.match(label):
                raise ValueError(f"label {label!r} of {name} is not a valid label name")
        self.kind, self.name, self.help, self.labels = kind, name, help, tuple(labels)
        self._values: dict[Labels, float] = {}
        self._lock = threading.Lock()
        self._sampler: Sampler | None = None

    def _key(self, labels: Mapping[str, str]) -> Labels:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {sorted(labels)}")
        return tuple(str(labels[name]) for name in self.labels)

    def value(self, **labels: str) -> float:
        """The current value of one series (0 when never set)."""
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> dict[Labels, float]:
        if self._sampler is not None:
            got = self._sampler()
            return dict(got) if isinstance(got, Mapping) else {(): float(got)}
        with self._lock:
            return dict(self._values)

    def remove(self, **labels: str) -> None:
        """Drop one series (a watch that was removed)."""
        with self._lock:
            self._values.pop(self._key(labels), None)


class Counter(Metric):
    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount


class Gauge(Metric):
    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)


class Registry:
    """The metrics of one process, in registration order."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def _add(self, metric: Metric) -> Metric:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self._metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        metric = Counter("counter", name, help, labels)
        self._add(metric)
        return metric

    def gauge(self, name: str, help: str, labels: Sequence[str] = ()) -> Gauge:
        metric = Gauge("gauge", name, help, labels)
        self._add(metric)
        return metric

    def gauge_fn(self, name: str, help: str, sampler: Sampler, labels: Sequence[str] = ()) -> None:
        """A gauge read from ``sampler`` at each scrape: a number, or {label values: number}."""
        metric = Metric("gauge", name, help, labels)
        metric._sampler = sampler
        self._add(metric)

    def counter_fn(self, name: str, help: str, sampler: Sampler) -> None:
        """A counter read from ``sampler`` at each scrape (a durable count kept elsewhere, such
        as the catalog's outbox), so it survives restarts."""
        metric = Metric("counter", name, help, ())
        metric._sampler = sampler
        self._add(metric)

    def get(self, name: str) -> Metric:
        return self._metrics[name]

    def render(self) -> str:
        """Every metric in the Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []
        for metric in self._metrics.values():
            try:
                samples = metric.samples()
            except Exception as exc:  # a broken hook must not break the scrape
                log.warning("metric_sample_failed", metric=metric.name, error=repr(exc))
                continue
            lines.append(f"# HELP {metric.name} {_escape(metric.help)}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            for key, value in sorted(samples.items()):
                pairs = ",".join(
                    f'{name}="{_escape(v)}"' for name, v in zip(metric.labels, key, strict=True)
                )
                series = f"{metric.name}{{{pairs}}}" if pairs else metric.name
                lines.append(f"{series} {_number(value)}")
        return "\n".join(lines) + "\n"


def node_registry() -> Registry:
    """A registry with the series every node process has (``serve`` as well as ``run``)."""
    registry = Registry()
    registry.gauge_fn(
        "seedvault_build_info",
        "Always 1; the version label says which seedvault runs.",
        lambda: {(__version__,): 1.0},
        ("version",),
    )
    return registry


class DaemonMetrics:
    """The daemon's series (names and meanings: ``docs/operations.md``, "Metrics")."""

    def __init__(self, registry: Registry | None = None) -> None:
        r = self.registry = registry or node_registry()
        self.captures = r.counter(
            "seedvault_captures_total",
            "Revisions polled per watch, by outcome (captured, unchanged, capture_failed, "
            "verification_failed, over_quota, ref_missing, blocked, failed, error).",
            ("watch", "outcome"),
        )
        self.bytes_ingested = r.counter(
            "seedvault_bytes_ingested_total",
            "Plaintext bytes downloaded and stored by captures, per watch.",
            ("watch",),
        )
        self.bytes_stored = r.counter(
            "seedvault_bytes_stored_total",
            "New encoded bytes written to the vault by captures, per watch.",
            ("watch",),
        )
        self.last_success = r.gauge(
            "seedvault_last_success_timestamp_seconds",
            "Unix time of the last poll of a watch that captured or confirmed every revision.",
            ("watch",),
        )
        self.events = r.counter(
            "seedvault_events_total",
            "Events recorded by this process since it started, per type.",
            ("type",),
        )
        self.fixity_checked = r.counter(
            "seedvault_fixity_objects_checked_total",
            "Objects re-read and re-hashed by the scrubber, per kind (snapshot, file, chunk).",
            ("kind",),
        )
        self.fixity_bytes = r.counter(
            "seedvault_fixity_bytes_checked_total", "File bytes verified by the scrubber."
        )
        self.fixity_damaged = r.counter(
            "seedvault_fixity_damaged_total", "Damaged or missing objects found by the scrubber."
        )
        self.fixity_repaired = r.counter(
            "seedvault_fixity_repaired_total",
            "Damaged objects repaired by a verified re-put of upstream bytes.",
        )
        self.fixity_unrepaired = r.gauge(
            "seedvault_fixity_unrepaired_objects",
            "Objects found damaged by the last scrub and not repaired.",
        )
        self.fixity_last_run = r.gauge(
            "seedvault_fixity_last_run_timestamp_seconds", "Unix time the last scrub finished."
        )
        self.config_reloads = r.counter(
            "seedvault_config_reloads_total",
            "SIGHUP reloads by result (applied, rejected).",
            ("result",),
        )
