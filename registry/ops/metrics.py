"""/metrics in Prometheus text format through prometheus_client; every name starts with
``dockyard_registry_`` (each one is documented in deploy/metrics.md).

Each app has its own CollectorRegistry (tests run many apps in one process). Request metrics are
updated by the ops middleware; GC, storage-per-namespace and database-pool figures are read when
scraped (namespace usage is a query, cached for ``USAGE_TTL`` seconds).
"""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

PREFIX = "dockyard_registry_"
USAGE_TTL = 30.0


class _ScrapeTime:
    """Figures owned elsewhere, read at scrape time."""

    def __init__(self, app) -> None:
        self.app = app
        self.usage: dict[str, int] = {}

    def collect(self):
        from registry.lifecycle import WORKER

        worker = self.app.get(WORKER)
        c = worker.counters if worker is not None else None
        reviews = CounterMetricFamily(PREFIX + "gc_reviews", "GC reviews done, by kind and outcome",
                                      labels=["kind", "outcome"])
        for kind, outcome, value in (("blob", "swept", c.blobs_swept if c else 0), ("blob", "kept", c.blobs_kept if c else 0),
                                     ("manifest", "deleted", c.manifests_deleted if c else 0),
                                     ("manifest", "kept", c.manifests_kept if c else 0)):
            reviews.add_metric([kind, outcome], value)
        yield reviews
        yield CounterMetricFamily(PREFIX + "gc_bytes_freed", "Bytes the GC worker deleted", value=c.bytes_freed if c else 0)
        yield CounterMetricFamily(PREFIX + "gc_failures", "GC reviews that failed (retried with backoff)",
                                  value=c.failures if c else 0)
        storage = GaugeMetricFamily(PREFIX + "storage_bytes", "Bytes stored per namespace (each blob once)",
                                    labels=["namespace"])
        for namespace, used in sorted(self.usage.items()):
            storage.add_metric([namespace], used)
        yield storage
        pool = GaugeMetricFamily(PREFIX + "db_pool_connections", "Index database connections by state",
                                 labels=["state"])
        for state, value in _pool_figures(self.app).items():
            pool.add_metric([state], value)
        yield pool


def _pool_figures(app) -> dict[str, int]:
    from registry import state

    idx = app.get(state.INDEX)
    if idx is None:
        return {}
    # PostgreSQL: the async engine's pool. SQLite: the reader and writer engines' pools, the
    # connections queries actually hold (the async engine there only ever serves a migration).
    pools: list[Any] = idx.db.pools()
    out = {}
    for name, fn in (("checked_out", "checkedout"), ("idle", "checkedin"), ("size", "size")):
        try:
            out[name] = sum(int(getattr(pool, fn)()) for pool in pools)
        except Exception:  # a pool class without that figure (NullPool, StaticPool)
            continue
    return out


class Metrics:
    def __init__(self, app) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(PREFIX + "http_requests", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram(PREFIX + "http_request_duration_seconds", "Request latency by route and method",
                                 ["route", "method"], registry=r,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.bytes_in = Counter(PREFIX + "http_received_bytes", "Request body bytes received", registry=r)
        self.bytes_out = Counter(PREFIX + "http_sent_bytes", "Response body bytes sent", registry=r)
        self.uploads_in_flight = Gauge(PREFIX + "uploads_in_flight", "Blob upload requests being received now",
                                       registry=r)
        self.scrape = _ScrapeTime(app)
        r.register(self.scrape)
        self._usage_at = 0.0
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self.usage_ttl = USAGE_TTL

    def observe(self, route: str, method: str, status: int, seconds: float, received: int, sent: int) -> None:
        # The labelled children, looked up once per (route, method, status): ``labels()``
        # validates and locks on every call (a few % of a 4 KiB push, profile). Routes are the
        # route table's names, so the keys are few.
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(route, method, str(status)),
                                               self.latency.labels(route, method))
        children[0].inc()
        children[1].observe(seconds)
        if received:
            self.bytes_in.inc(received)
        if sent:
            self.bytes_out.inc(sent)

    async def render(self, index) -> bytes:
        if time.monotonic() - self._usage_at > self.usage_ttl:
            from registry.lifecycle.quotas import all_usage

            self.scrape.usage = await all_usage(index)
            self._usage_at = time.monotonic()
        return generate_latest(self.registry)
