"""Prometheus metrics of the server (the only importer of ``prometheus_client``, and only once
metrics are asked for: the library and what it imports take 50 ms and 5.5 MiB of a start).

Names follow Prometheus conventions: ``mandos_`` prefix, base units (seconds), ``_total`` on
counters (the library adds it), no per-client labels unless asked (``--metrics-per-client``:
a label per client multiplies every series by the number of clients). Counters exist with
every label value from the start, so a rate is defined before the first event. Gauges about
clients are read from the registry when scraped (in the event loop, like every other read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final, cast

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter
    from prometheus_client.metrics_core import Metric

OUTCOMES: Final = (
    "secret_sent",
    "unknown_client",
    "disabled",
    "not_approved",
    "handshake_failed",
    "timed_out",
    "abandoned",
    "failed",
)
CHECKER_RESULTS: Final = ("success", "failure", "timeout")
CONTENT_TYPE: Final = "text/plain; version=1.0.0; charset=utf-8"  # the library's latest
#: A request is a TLS handshake and a few kB, unless it waits for an approval (minutes).
REQUEST_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
CHECKER_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


@dataclass(frozen=True, slots=True)
class ClientGauges:
    """One client as the gauges see it at scrape time."""

    name: str
    enabled: bool
    approvals_pending: int
    last_checked_ok: datetime | None
    expires: datetime | None


class _ClientCollector:
    """The client gauges, read when scraped (a ``prometheus_client`` collector)."""

    def __init__(self, clients: Callable[[], Iterable[ClientGauges]], per_client: bool) -> None:
        self._clients = clients
        self._per_client = per_client

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.metrics_core import GaugeMetricFamily

        clients = list(self._clients())
        states = GaugeMetricFamily(
            "mandos_clients", "Configured clients by state", labels=["state"]
        )
        enabled = sum(1 for c in clients if c.enabled)
        states.add_metric(["enabled"], enabled)
        states.add_metric(["disabled"], len(clients) - enabled)
        yield states
        yield GaugeMetricFamily(
            "mandos_approvals_pending",
            "Requests waiting for an operator's approval",
            value=sum(c.approvals_pending for c in clients),
        )
        if not self._per_client:
            return
        up = GaugeMetricFamily(
            "mandos_client_enabled", "1 if the client is enabled", labels=["client"]
        )
        checked = GaugeMetricFamily(
            "mandos_client_last_checked_ok_timestamp_seconds",
            "When the client's checker last succeeded (Unix time)",
            labels=["client"],
        )
        expires = GaugeMetricFamily(
            "mandos_client_expires_timestamp_seconds",
            "When the client will be disabled unless a check succeeds (Unix time)",
            labels=["client"],
        )
        for c in clients:
            up.add_metric([c.name], 1 if c.enabled else 0)
            if c.last_checked_ok is not None:
                checked.add_metric([c.name], c.last_checked_ok.timestamp())
            if c.expires is not None:
                expires.add_metric([c.name], c.expires.timestamp())
        yield from (up, checked, expires)


def _counter(
    registry: CollectorRegistry, name: str, doc: str, label: str, values: tuple[str, ...]
) -> Counter:
    """A counter with one label, every value present (at 0) from the start."""
    from prometheus_client import Counter

    counter = Counter(name, doc, [label], registry=registry)
    for value in values:
        counter.labels(value)
    return counter


class Metrics:
    """Every metric of one server, in a registry of its own."""

    def __init__(
        self, clients: Callable[[], Iterable[ClientGauges]], *, per_client: bool = False
    ) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client.registry import Collector

        self.per_client = per_client
        self.registry = CollectorRegistry()
        r = self.registry
        self._requests = _counter(r, "mandos_requests", "Requests by outcome", "outcome", OUTCOMES)
        self._duration = Histogram(
            "mandos_request_duration_seconds",
            "Time from connect to secret sent",
            buckets=REQUEST_BUCKETS,
            registry=r,
        )
        self._checker_runs = _counter(
            r, "mandos_checker_runs", "Checker runs by result", "result", CHECKER_RESULTS
        )
        self._checker_duration = Histogram(
            "mandos_checker_duration_seconds",
            "How long checkers ran",
            buckets=CHECKER_BUCKETS,
            registry=r,
        )
        self._open = Gauge("mandos_connections_open", "Connections being served", registry=r)
        self._saves = Counter("mandos_state_saves", "State file writes", registry=r)
        self._audit_lost = Counter(
            "mandos_audit_records_lost",
            "Audit records that could not be written (no secret is sent meanwhile)",
            registry=r,
        )
        self._client_requests: Counter | None = None
        if per_client:
            self._client_requests = Counter(
                "mandos_client_requests",
                "Requests by client and outcome",
                ["client", "outcome"],
                registry=r,
            )
        r.register(cast(Collector, _ClientCollector(clients, per_client)))

    def connection_opened(self) -> None:
        """A connection was accepted."""
        self._open.inc()

    def request_finished(self, outcome: str, client: str | None, seconds: float | None) -> None:
        """A connection ended with ``outcome``; ``seconds`` is set when a secret was sent."""
        self._open.dec()
        self._requests.labels(outcome).inc()
        if seconds is not None:
            self._duration.observe(seconds)
        if self._client_requests is not None and client is not None:
            self._client_requests.labels(client, outcome).inc()

    def checker_finished(self, result: str, seconds: float | None) -> None:
        """A checker ended: ``success``, ``failure`` or ``timeout``."""
        self._checker_runs.labels(result).inc()
        if seconds is not None:
            self._checker_duration.observe(seconds)

    def state_saved(self) -> None:
        """The state file was written."""
        self._saves.inc()

    def audit_records_lost(self, count: int) -> None:
        """A batch of ``count`` audit records could not be written."""
        self._audit_lost.inc(count)

    def render(self) -> bytes:
        """The text exposition format of every metric."""
        from prometheus_client.exposition import generate_latest

        return generate_latest(self.registry)
