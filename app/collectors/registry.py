"""Collector types by name: the built-in sources, plus any installed package's entry points.

A third-party source type is a package declaring, in its ``pyproject.toml``,
``[project.entry-points."supervision_hub.collectors"] mytype = "mypkg.collector:MyCollector"``.
Types are imported lazily, when a source of that type is created or run.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from app.collectors.base import Collector

ENTRY_POINT_GROUP = "supervision_hub.collectors"

#: built-in source types, in the priority order of §8
BUILTIN: dict[str, str] = {
    "hub": "app.collectors.hub.collector:HubCollector",
    "openstack": "app.collectors.openstack.collector:OpenStackCollector",
    "prometheus": "app.collectors.prometheus.collector:PrometheusCollector",
    "redfish": "app.collectors.redfish.collector:RedfishCollector",
}


def _targets() -> dict[str, str]:
    targets = dict(BUILTIN)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        targets.setdefault(point.name, point.value)
    return targets


def available_types() -> list[str]:
    """Every type whose module can be imported (a type still being built is left out)."""
    names = []
    for name in sorted(_targets()):
        try:
            collector_class(name)
        except (ImportError, LookupError):
            continue
        names.append(name)
    return names


def collector_class(type_name: str) -> type[Collector]:
    """The collector class of ``type_name``; ``LookupError`` when no such type is installed."""
    target = _targets().get(type_name)
    if target is None:
        raise LookupError(type_name)
    module_name, _, attribute = target.partition(":")
    found = getattr(importlib.import_module(module_name), attribute)
    if not (isinstance(found, type) and issubclass(found, Collector)):
        raise LookupError(type_name)
    return found
