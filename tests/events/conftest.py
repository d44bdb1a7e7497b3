"""Fixtures for events and metrics: the OpenTelemetry SDK's in-memory reader, and subscribers that record.

The global meter provider can be set once per process, so ``metric_reader`` is one per session;
``recorded`` gives each test what the instruments recorded *during* it (counters are cumulative,
so it subtracts what was there before). ``heard`` is a subscriber that keeps every event it hears.
"""
from __future__ import annotations

import threading
from dataclasses import fields

import pytest



@pytest.fixture(scope="session")
def metric_reader():
    from opentelemetry import metrics as otel_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    otel_metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return reader


def _points(reader) -> dict[tuple[str, frozenset], float]:
    """``(instrument, attributes) -> value``: a counter's sum, a histogram's count of recordings."""
    found: dict[tuple[str, frozenset], float] = {}
    data = reader.get_metrics_data()
    for resource in (data.resource_metrics if data else ()):
        for scope in resource.scope_metrics:
            if scope.scope.name != "pyramid_tokens":
                continue
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    value = point.count if hasattr(point, "bucket_counts") else point.value
                    found[(metric.name, frozenset(point.attributes.items()))] = value
    return found


class Recorded:
    """What the ``pyramid_tokens`` instruments recorded since the fixture was made."""

    def __init__(self, reader) -> None:
        self.reader = reader
        self.before = _points(reader)

    def __call__(self, name: str) -> dict[frozenset, float]:
        """``{attributes: how many}`` of instrument ``name`` during the test (zeros left out)."""
        now = _points(self.reader)
        counts = {attrs: value - self.before.get((metric, attrs), 0) for (metric, attrs), value in now.items()
                  if metric == name}
        return {attrs: value for attrs, value in counts.items() if value}

    def count(self, name: str, **attributes: str) -> float:
        """The sum over the data points of ``name`` whose attributes include ``attributes`` (dots as ``__``)."""
        wanted = {key.replace("__", "."): value for key, value in attributes.items()}
        return sum(value for attrs, value in self(name).items() if wanted.items() <= dict(attrs).items())

    def attribute_values(self) -> list[str]:
        """Every attribute value of every data point recorded so far (for the no-secrets checks)."""
        return [str(value) for _, attrs in _points(self.reader) for _, value in attrs]


@pytest.fixture
def recorded(metric_reader):
    return Recorded(metric_reader)


class Heard(list):
    """A thread-safe subscriber that keeps every event; ``names()`` lists their class names in order."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def __call__(self, event) -> None:
        with self._lock:
            self.append(event)

    def names(self) -> list[str]:
        return [type(event).__name__ for event in self]

    def of(self, cls) -> list:
        return [event for event in self if isinstance(event, cls)]


@pytest.fixture
def heard():
    return Heard()


def event_texts(event) -> list[str]:
    """Everything an event shows: its repr, its log line and every field value (claims included)."""
    texts = [repr(event), event.log_line()]
    for item in fields(event):
        if item.name != "request":
            texts.append(repr(getattr(event, item.name)))
    return texts
