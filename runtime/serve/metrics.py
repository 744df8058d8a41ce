"""Prometheus metrics of one replica, in the text format ``GET /metrics`` answers (prometheus-client, which Ray
brings).

drcn's own series (``drcn_`` prefix), each with the label ``replica`` (the replica's process id):

- ``drcn_requests_total{route,status}`` and ``drcn_request_seconds{route}`` (histogram): every answer, errors too;
- ``drcn_requests_in_hand``, ``drcn_queued_calls``: requests held now, backend calls waiting for the scheduler;
- ``drcn_windows_per_backend_call`` (histogram), ``drcn_windows_total``, ``drcn_backend_calls_total``;
- ``drcn_cancelled_requests_total{reason}`` (client_gone, deadline), ``drcn_dropped_windows_total`` (never computed);
- ``drcn_refused_requests_total{reason}`` (busy, memory): 503s before any work;
- ``drcn_memory_rss_bytes``, ``drcn_memory_budget_bytes``, ``drcn_memory_reserved_bytes``;
- ``drcn_jobs{state}`` (video jobs in the job folder by state), ``drcn_job_disk_bytes`` (what the job folder holds),
  ``drcn_job_segments_total`` and ``drcn_job_seconds_total`` (this replica's job work).

Ray Serve's own series (``ray_serve_*``) come from Ray's metrics exporter on this node, appended to the same answer
where it runs (``drcn-serve --metrics-port``).
"""

from __future__ import annotations

import os
from typing import Callable

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ReplicaMetrics:
    """The series of one replica; :meth:`render` reads the scheduler and the memory budget when scraped."""

    def __init__(self, read_state: Callable[[], dict]):
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        disable_created_metrics()      # the *_created series only double what a scrape shows

        self.read_state = read_state
        self.registry = registry = CollectorRegistry()
        self.requests = Counter("drcn_requests", "HTTP answers by route and status", ["route", "status"],
                                registry=registry)
        self.latency = Histogram("drcn_request_seconds", "seconds from the request to its answer", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.cancelled = Counter("drcn_cancelled_requests", "requests given up while their work ran", ["reason"],
                                 registry=registry)
        self.refused = Counter("drcn_refused_requests", "requests refused before any work (503)", ["reason"],
                               registry=registry)
        # The collector reads the state render() read: one read per scrape (it walks the job folder).
        self._scraped: dict = {}
        registry.register(_StateCollector(lambda: self._scraped))
        self._batch = Histogram("drcn_windows_per_backend_call", "windows in each backend call",
                                buckets=BATCH_BUCKETS, registry=registry)
        self._seen_batches: dict[int, int] = {}
        self.replica = str(os.getpid())

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.latency.labels(route=route).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of this replica's series, read now."""
        from prometheus_client import generate_latest

        state = self._scraped = self.read_state()
        for size, count in dict(state.get("batch_sizes", {})).items():
            for _ in range(count - self._seen_batches.get(size, 0)):
                self._batch.observe(size)
            self._seen_batches[size] = count
        text = generate_latest(self.registry).decode()
        # Every series carries the replica it came from: with several replicas a scrape answers from one of them.
        lines = []
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                if "{" in name:
                    name = name.replace("{", f'{{replica="{self.replica}",', 1)
                else:
                    name = f'{name}{{replica="{self.replica}"}}'
                line = f"{name} {value}"
            lines.append(line)
        return ("\n".join(lines) + "\n").encode()


_installed: list[ReplicaMetrics] = []


def install(metrics: ReplicaMetrics) -> ReplicaMetrics:
    """Make ``metrics`` this process's replica metrics (what the HTTP middleware records into)."""
    _installed[:] = [metrics]
    return metrics


def installed() -> ReplicaMetrics | None:
    return _installed[0] if _installed else None


GAUGES = {
    "drcn_requests_in_hand": "requests this replica holds now (running or waiting)",
    "drcn_queued_calls": "backend calls waiting for the scheduler now",
    "drcn_memory_rss_bytes": "resident memory of the replica process",
    "drcn_memory_budget_bytes": "the replica's memory budget",
    "drcn_memory_reserved_bytes": "working memory reserved by the requests in hand",
    "drcn_job_disk_bytes": "bytes the video job folder holds",
}
COUNTERS = {
    "drcn_windows": "windows computed",
    "drcn_backend_calls": "backend calls (batches) run",
    "drcn_dropped_windows": "windows of given-up requests left undone",
    "drcn_job_segments": "video job segments this replica finished",
    "drcn_job_seconds": "seconds this replica spent on video jobs",
}


class _StateCollector:
    """The replica's state, read when scraped: gauges, and counters kept by the scheduler and the app."""

    def __init__(self, read_state: Callable[[], dict]):
        self.read_state = read_state

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        state = self.read_state()
        # Every series must be wired to a value: a missing one fails the scrape (and the tests) instead of showing
        # a 0 that nothing ever changes.
        missing = [name for name in GAUGES if name not in state] + \
            [name + "_total" for name in COUNTERS if name + "_total" not in state] + \
            [name for name in ("drcn_jobs",) if name not in state]
        if missing:
            raise KeyError(f"metrics not wired to the replica's state: {', '.join(missing)}")
        for name, text in GAUGES.items():
            yield GaugeMetricFamily(name, text, value=state[name])
        for name, text in COUNTERS.items():
            yield CounterMetricFamily(name, text, value=state[name + "_total"])
        jobs = GaugeMetricFamily("drcn_jobs", "video jobs in the job folder by state", labels=["state"])
        for job_state, count in sorted(state["drcn_jobs"].items()):
            jobs.add_metric([job_state], count)
        yield jobs


def fetch_ray_metrics(port: int | None, timeout: float = 2.0) -> bytes:
    """Ray's own exporter on this node (Ray Serve's ``ray_serve_*`` series among them), or b"" where it does not
    answer within ``timeout``."""
    if not port:
        return b""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as answer:
            return answer.read()
    except (urllib.error.URLError, OSError):
        return b""
