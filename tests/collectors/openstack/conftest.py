"""The recorded cloud installed as the hub's collector transport, and a source that polls it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.collectors.openstack.fake import KEYSTONE, PROJECT2, FakeOpenStack
from tests.helpers import Hub

GZ = "GD-GZ-ZWY-01"
SOURCES = "/api/v1/admin/sources"
#: a valid USCC (GB 32100 check character) for the second project's using unit
USCC = "11440100MB2C12345P"
SECRET = "s3cr3t-application-credential-secret"


@pytest.fixture
def cloud(app: Any) -> FakeOpenStack:
    """The recorded cloud; set before the first run (the runner reads it when it is made)."""
    fake = FakeOpenStack()
    app.state.collector_transport = httpx.MockTransport(fake.handler)
    return fake


def openstack_source(source_id: str = "gz-os", **change: Any) -> dict[str, Any]:
    options = {
        "limit": 2,
        "projects": {PROJECT2: {"using_unit": "广州市数据局", "using_unit_uscc": USCC}},
        **change.pop("options", {}),
    }
    return {
        "source_id": source_id,
        "platform_code": GZ,
        "type": "openstack",
        "base_url": KEYSTONE,
        "credentials": {
            "application_credential_id": "423f19a4ac1e4f48bbb4180756e6eb6c",
            "application_credential_secret": SECRET,
        },
        "interval_s": 300,
        "kinds": ["assets", "metrics"],
        "options": options,
        **change,
    }


async def create_source(hub: Hub, **change: Any) -> dict[str, Any]:
    """The GZ platform and an ``openstack`` source for it."""
    await hub.create_platform(GZ, "440100")
    response = await hub.http.post(SOURCES, json=openstack_source(**change), headers=hub.auth(hub.admin))
    assert response.status_code == 201, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def run_source(hub: Hub, app: Any, source_id: str = "gz-os", mode: str | None = None) -> dict[str, Any]:
    """Run now, wait for the run to end, and answer its record from the run history."""
    params = {"mode": mode} if mode else None
    response = await hub.http.post(f"{SOURCES}/{source_id}/run", params=params, headers=hub.auth(hub.admin))
    assert response.status_code == 202, response.text
    run_id = response.json()["data"]["run_id"]
    await app.state.collector_runner.wait_idle()
    response = await hub.get(f"{SOURCES}/{source_id}/runs")
    assert response.status_code == 200, response.text
    runs = {run["run_id"]: run for run in response.json()["data"]["items"]}
    return runs[run_id]  # type: ignore[no-any-return]


async def assets_by_id(hub: Hub, **params: Any) -> dict[str, dict[str, Any]]:
    return {a["asset_id"]: a for a in await hub.assets(platform_code=GZ, **params)}
