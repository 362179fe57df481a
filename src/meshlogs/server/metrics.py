"""Prometheus metrics at ``/metrics``: connections, joins, messages, lag, slow consumers, authz cache,
search indexing.

Counters that the hot path already keeps (hub, gateway, authorizer, capture stats) are read at scrape
time by a custom collector, so fan-out pays nothing per message for metrics; only the commit→fan-out
lag is observed into a histogram, once per transaction. Each app gets its own registry (tests run
several servers in one process).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["METRICS", "Metrics", "add_metrics_route"]

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class _GatewayCollector(Collector):
    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Any]:
        from meshlogs.realtime.gateway import GATEWAY

        gateway = self._app.get(GATEWAY)
        if gateway is None:
            return
        hub, authz = gateway.hub, gateway.hub.authorizer
        yield GaugeMetricFamily(
            "meshlogs_realtime_connections", "Open WebSocket connections.", value=len(gateway.sessions)
        )
        yield GaugeMetricFamily(
            "meshlogs_realtime_subscriptions", "postgres_changes subscriptions.", value=len(hub.index)
        )
        yield CounterMetricFamily(
            "meshlogs_realtime_connections",
            "WebSocket connections accepted.",
            value=gateway.stats_connections,
        )
        yield CounterMetricFamily(
            "meshlogs_realtime_joins", "Channel joins accepted.", value=gateway.stats_joins
        )
        yield CounterMetricFamily(
            "meshlogs_realtime_messages", "postgres_changes frames delivered.", value=hub.stats.delivered
        )
        yield CounterMetricFamily(
            "meshlogs_realtime_bytes",
            "Bytes written to WebSocket clients.",
            value=sum(s.bytes_sent for s in gateway.sessions) + gateway.stats_bytes_closed,
        )
        yield CounterMetricFamily(
            "meshlogs_realtime_slow_consumer_disconnects",
            "Connections closed because they fell behind.",
            value=gateway.stats_slow_consumers,
        )
        yield CounterMetricFamily(
            "meshlogs_capture_transactions",
            "Transactions received from the WAL.",
            value=hub.stats.transactions,
        )
        yield CounterMetricFamily(
            "meshlogs_capture_changes", "Row changes received from the WAL.", value=hub.stats.changes
        )
        yield CounterMetricFamily(
            "meshlogs_capture_stream_resets",
            "Replication stream interruptions (subscribers resynced).",
            value=hub.stats.resets,
        )
        status = hub.source.status
        yield GaugeMetricFamily(
            "meshlogs_capture_ready", "1 while the replication stream is up.", value=1 if status.ready else 0
        )
        if status.lag_bytes is not None:
            yield GaugeMetricFamily(
                "meshlogs_capture_lag_bytes", "WAL bytes not yet received.", value=status.lag_bytes
            )
        yield CounterMetricFamily("meshlogs_authz_queries", "Authorization round trips.", value=authz.queries)
        yield CounterMetricFamily(
            "meshlogs_authz_cache_hits", "Authorization decisions from cache.", value=authz.cache_hits
        )
        yield CounterMetricFamily(
            "meshlogs_authz_cache_misses", "Authorization decisions checked in SQL.", value=authz.cache_misses
        )
        yield CounterMetricFamily(
            "meshlogs_authz_visibility_waits",
            "Authorization checks repeated: a streamed commit was not visible to new snapshots yet.",
            value=authz.visibility_waits,
        )
        yield CounterMetricFamily(
            "meshlogs_authz_failures",
            "Batches not delivered: authorization failed.",
            value=hub.stats.authz_failures,
        )


class _SearchIndexCollector(Collector):
    def __init__(self, app: web.Application) -> None:
        self._app = app

    def collect(self) -> Iterator[Any]:
        from meshlogs.server.search_index import SEARCH_INDEXER

        indexer = self._app.get(SEARCH_INDEXER)
        if indexer is None:
            return
        yield CounterMetricFamily(
            "meshlogs_search_indexed_lines",
            "Lines the background search indexer has indexed.",
            value=indexer.lines_indexed,
        )
        yield CounterMetricFamily(
            "meshlogs_search_index_failures",
            "Background indexer calls that failed (retried at the next interval).",
            value=indexer.failures,
        )
        yield GaugeMetricFamily(
            "meshlogs_search_index_duty",
            "Share of the time the indexer works while catching up (lower under live writes).",
            value=indexer.duty,
        )


class Metrics:
    """The app's registry and the instruments the hot path observes directly."""

    def __init__(self, app: web.Application) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.commit_lag = Histogram(
            "meshlogs_delivery_lag_seconds",
            "From a transaction's commit to its fan-out (frames queued to clients).",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_GatewayCollector(app))
        self.registry.register(_SearchIndexCollector(app))


METRICS = web.AppKey("meshlogs.metrics", Metrics)


def add_metrics_route(app: web.Application) -> None:
    app[METRICS] = Metrics(app)

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(request.app[METRICS].registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", metrics)
