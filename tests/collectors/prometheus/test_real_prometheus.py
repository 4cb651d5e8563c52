"""A prometheus source against a real Prometheus scraping a real node_exporter, through the hub's API.

The admin registers the §8 example source, presses "run now", and reads the node's CPU and memory
use back through ``/metrics/samples`` and ``/metrics/series``; the next run continues exactly
where the first one ended.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest

from app.config import Settings
from tests.collectors.prometheus.conftest import HOST, P, PrometheusPeer, create_source, run
from tests.helpers import Hub


@pytest.fixture(scope="session")
def settings(settings: Settings) -> Settings:
    """Prometheus listens on loopback, which §8 refuses unless the host is listed."""
    return settings.model_copy(update={"source_allowed_hosts": ["127.0.0.1"]})


async def samples(hub: Hub, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {"platform_code": P, "limit": "1000", **params, **({"cursor": cursor} if cursor else {})}
        answer = await hub.get("/api/v1/metrics/samples", **query)
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        items += data["items"]
        cursor = data["next_cursor"]
        if not cursor:
            return items


def times(items: list[dict[str, Any]]) -> dict[tuple[str, str], list[datetime]]:
    """Sample times per (metric, asset) series, in order."""
    out: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for item in items:
        out[item["metric"], item["asset_id"]].append(datetime.fromisoformat(item["ts"]))
    return {key: sorted(ts) for key, ts in out.items()}


async def test_cpu_and_memory_use_of_a_real_node_arrive_and_the_next_run_continues_without_gap(
    hub: Hub, app: Any, prometheus: PrometheusPeer
) -> None:
    await hub.create_platform(P)
    source_id = await create_source(hub, prometheus)

    first = await run(hub, app, source_id)
    assert first["status"] == "success", first["error"]
    assert first["records"] > 0 and first["accepted"] == first["records"] and first["rejected"] == 0
    stored = await samples(hub)
    assert len(stored) == first["records"]
    cpu = [s for s in stored if s["metric"] == "cpu.util"]
    mem = [s for s in stored if s["metric"] == "mem.util"]
    assert cpu and mem
    assert {s["asset_id"] for s in stored} == {HOST}  # instance mapped through asset_map
    assert all(0 <= s["value"] <= 100 for s in cpu)
    assert all(0 < s["value"] < 100 for s in mem)
    # avg by (instance) keeps only the asset label; the raw ratio keeps job, which becomes a label
    assert all(s["labels"] == {} for s in cpu)
    assert all(s["labels"] == {"job": "node"} for s in mem)

    series = await hub.get(
        "/api/v1/metrics/series", metric="mem.util", platform_code=P, asset_id=HOST, step="raw"
    )
    assert series.status_code == 200, series.text
    (only,) = series.json()["data"]["series"]
    assert only["labels"] == {"job": "node"}
    assert [p["value"] for p in only["points"]] == [s["value"] for s in mem]

    await asyncio.sleep(2.2)  # two more scrapes and evaluation steps
    second = await run(hub, app, source_id)
    assert second["status"] == "success", second["error"]
    assert second["records"] >= 4  # ≥ 2 one-second steps for each of the two metrics
    after = await samples(hub)
    assert len(after) == first["records"] + second["records"]  # nothing fetched twice
    before = times(stored)
    for key, ts in times(after).items():
        assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(ts)), key  # no gap
        new = [t for t in ts if t not in set(before[key])]
        assert new and new[0] == before[key][-1] + timedelta(seconds=1), key  # continues after the end
    source = (await hub.get(f"/api/v1/admin/sources/{source_id}")).json()["data"]
    assert (source["consecutive_failures"], source["stale"]) == (0, False)


async def test_a_window_of_more_than_11000_steps_is_fetched_in_pieces_the_real_server_accepts(
    hub: Hub, app: Any, prometheus: PrometheusPeer
) -> None:
    """12 s at a 1 ms step is 12 000 evaluation times: one request would be refused
    ("exceeded maximum resolution of 11,000 points per timeseries"); the last second of them is
    the second piece, and the node has been scraped for longer than that."""
    await hub.create_platform(P)
    source_id = await create_source(
        hub, prometheus, interval_s=12, step_s=0.001, queries={"service.availability": "100 * up"}
    )
    done = await run(hub, app, source_id)
    assert done["status"] == "success", done["error"]
    assert done["pages"] >= 2 and done["accepted"] == done["records"] > 0
    stored = await samples(hub, metric="service.availability")
    assert len(stored) == done["records"] and {s["value"] for s in stored} == {100.0}
    ts = sorted(datetime.fromisoformat(s["ts"]) for s in stored)
    steps = {b - a for a, b in itertools.pairwise(ts)}
    assert steps == {timedelta(milliseconds=1)}  # the pieces join without gap or overlap
