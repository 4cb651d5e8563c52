"""Source type ``prometheus``: §6.5 catalogue metrics from PromQL range queries (§8 item 3)."""

from app.collectors.prometheus.collector import PrometheusCollector, PrometheusOptions

__all__ = ["PrometheusCollector", "PrometheusOptions"]
