"""The hub as an administrator drives a redfish source: platform, room, source, run, read back."""

from __future__ import annotations

from typing import Any

from tests.api.test_query_lists import room
from tests.helpers import Hub, batch

PLATFORM, ROOM = "GD-GZ-ZWY-01", "GZ-NS-101"
SOURCES = "/api/v1/admin/sources"
ALL_KINDS = ["assets", "metrics", "environment"]


def data(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()["data"]


async def platform_with_room(hub: Hub) -> None:
    await hub.create_platform(PLATFORM)
    data(await hub.push("rooms", batch(PLATFORM, "rooms-1", [room(ROOM, aisle_containment=False)])))


async def create_source(
    hub: Hub,
    base_url: str,
    *,
    source_id: str = "bmc-1",
    credentials: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    kinds: list[str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source_id": source_id,
        "platform_code": PLATFORM,
        "type": "redfish",
        "base_url": base_url,
        "interval_s": 60,
        "kinds": kinds or ALL_KINDS,
        "options": {"room_code": ROOM} if options is None else options,
        "enabled": False,  # runs only when a test asks
    }
    if credentials is not None:
        body["credentials"] = credentials
    created: dict[str, Any] = data(await hub.http.post(SOURCES, json=body, headers=hub.auth(hub.admin)), 201)
    return created


async def run(hub: Hub, app: Any, source_id: str = "bmc-1", mode: str | None = None) -> dict[str, Any]:
    """Run now (202), wait for the runner, and return the run as the API records it."""
    params = {"mode": mode} if mode else None
    started = data(
        await hub.http.post(f"{SOURCES}/{source_id}/run", params=params, headers=hub.auth(hub.admin)), 202
    )
    assert started["started"] is True
    await app.state.collector_runner.wait_idle()
    record: dict[str, Any] = data(await hub.get(f"{SOURCES}/{source_id}/runs/{started['run_id']}"))
    return record


async def latest(hub: Hub, metric: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = data(await hub.get("/api/v1/metrics/latest", metric=metric))["items"]
    return items


def by_sensor(items: list[dict[str, Any]]) -> dict[tuple[str, str], float]:
    """``(asset_id, labels.sensor or "") → value`` of a latest-values answer."""
    return {(i["asset_id"], i["labels"].get("sensor", "")): i["value"] for i in items}


async def environment(hub: Hub) -> dict[str, dict[str, Any]]:
    items = data(await hub.get("/api/v1/environment/latest", room_code=ROOM))["items"]
    return {i["point_code"]: i for i in items}
