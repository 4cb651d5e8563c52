"""Source type prometheus: a real Prometheus + node_exporter, recorded answers, faults."""
