"""The redfish source through ``httpx.MockTransport``: sessions, retries, failures and bad answers,
and a replayed case of two domestic servers. Every test drives the hub over its API.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest

from app.collectors.http import SourceHTTP
from tests.collectors.redfish.fake import SESSIONS, FakeBMC, Fault, load_case, routed
from tests.collectors.redfish.flow import (
    PLATFORM,
    by_sensor,
    create_source,
    environment,
    latest,
    platform_with_room,
    run,
)
from tests.helpers import Hub

BMC = "http://10.0.0.5"
SERIAL = "437XR1138R2"
SYSTEM = f"/redfish/v1/Systems/{SERIAL}"
CREDENTIALS = {"username": "admin", "password": "secret"}
BASIC = "Basic " + base64.b64encode(b"admin:secret").decode()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without waiting (the back-off itself is the framework's, tested there)."""
    monkeypatch.setattr(SourceHTTP, "_delay", lambda self, attempt, retry_after: 0.0)


async def _source(hub: Hub, app: Any, bmc: FakeBMC, **kwargs: Any) -> None:
    app.state.collector_transport = bmc.transport()  # read when the runner is first made
    await platform_with_room(hub)
    await create_source(hub, BMC, credentials=CREDENTIALS, **kwargs)


# --- sessions -----------------------------------------------------------------------------------


async def test_a_session_is_created_used_for_every_request_and_deleted_at_the_end(hub: Hub, app: Any) -> None:
    bmc = FakeBMC.mockup(sessions=True)
    await _source(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    assert (done["records"], done["accepted"]) == (9, 9)

    methods = [(r.method, r.url.path) for r in bmc.requests]
    assert methods[:2] == [("GET", "/redfish/v1/"), ("POST", SESSIONS)]
    assert orjson.loads(bmc.requests[1].content) == {"UserName": "admin", "Password": "secret"}
    after_login = bmc.requests[2:-1]
    assert after_login and all(r.method == "GET" for r in after_login)
    assert all(r.headers.get("X-Auth-Token") == "token-1" for r in after_login)
    assert not any("Authorization" in r.headers for r in after_login)  # the password is sent once
    assert methods[-1] == ("DELETE", f"{SESSIONS}/1") and bmc.deleted == [f"{SESSIONS}/1"]
    assert bmc.tokens == {}  # nothing left open on the BMC


async def test_the_session_is_deleted_when_the_run_fails_halfway(hub: Hub, app: Any) -> None:
    bmc = FakeBMC.mockup(sessions=True)
    bmc.fail("GET", SYSTEM, 500)
    await _source(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "failed"
    assert done["error"] == f"GET {BMC}{SYSTEM} → HTTP 500"
    assert bmc.deleted == [f"{SESSIONS}/1"] and bmc.tokens == {}
    assert await hub.assets(platform_code=PLATFORM) == []


async def test_a_session_that_cannot_be_created_falls_back_to_basic(hub: Hub, app: Any) -> None:
    bmc = FakeBMC.mockup(sessions=True)
    bmc.fail("POST", SESSIONS, 500)  # e.g. the BMC's session table is full
    await _source(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    gets = [r for r in bmc.requests if r.method == "GET"]
    assert all(r.headers.get("Authorization") == BASIC for r in gets)
    assert not any(r.method == "DELETE" for r in bmc.requests)


async def test_an_expired_session_logs_in_again(hub: Hub, app: Any) -> None:
    bmc = FakeBMC.mockup(sessions=True)

    def expire_once(request: httpx.Request, attempt: int) -> httpx.Response | None:
        if attempt == 1:
            bmc.expire()  # the BMC timed the session out: this request answers 401
        return None

    bmc.fail("GET", "/redfish/v1/Chassis", expire_once)
    await _source(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    assert bmc.paths("POST") == [SESSIONS, SESSIONS]
    assert bmc.paths("GET").count("/redfish/v1/Chassis") == 2
    # both sessions are closed; the expired one answers 401, which is fine
    assert bmc.paths("DELETE") == [f"{SESSIONS}/1", f"{SESSIONS}/2"] and bmc.tokens == {}


# --- credentials go only to the BMC's own origin (§8) ---------------------------------------------

ELSEWHERE = "http://evil.example"


def beside(bmc: FakeBMC) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """The BMC at ``BMC``, and a host elsewhere that records whatever reaches it."""
    elsewhere: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.host == "10.0.0.5" and request.url.port in (None, 80):
            return bmc.handle(request)
        elsewhere.append(request)
        return httpx.Response(200, json={"Members": [], "Id": "x"})

    return httpx.MockTransport(handle), elsewhere


async def _beside(hub: Hub, app: Any, bmc: FakeBMC) -> list[httpx.Request]:
    transport, elsewhere = beside(bmc)
    await _source(hub, app, bmc)
    app.state.collector_transport = transport
    return elsewhere


async def test_a_next_link_to_another_origin_is_not_followed_and_fails_the_snapshot(
    hub: Hub, app: Any
) -> None:
    bmc = FakeBMC.mockup(sessions=True)
    systems = bmc.tree["/redfish/v1/Systems"]
    systems["Members@odata.nextLink"] = f"{ELSEWHERE}/redfish/v1/Systems?page=2"
    elsewhere = await _beside(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "failed"
    assert "another origin" in done["error"] and "evil.example" in done["error"]
    assert elsewhere == []  # neither the session token nor anything else went there
    assert bmc.deleted == [f"{SESSIONS}/1"]
    assert await hub.assets(platform_code=PLATFORM) == []


async def test_a_detail_resource_on_another_origin_is_skipped_and_counted(hub: Hub, app: Any) -> None:
    bmc = FakeBMC.mockup()
    chassis = bmc.tree["/redfish/v1/Chassis"]
    chassis["Members"] = [*chassis["Members"], {"@odata.id": f"{ELSEWHERE}:8000/redfish/v1/Chassis/Evil"}]
    # the BMC's own host on another port is another origin too
    bmc.tree["/redfish/v1/Systems/437XR1138R2"]["Processors"] = {
        "@odata.id": "http://10.0.0.5:8080/redfish/v1/Systems/437XR1138R2/Processors"
    }
    elsewhere = await _beside(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    assert done["rejected"] == 2
    assert elsewhere == []
    [server] = await hub.assets(platform_code=PLATFORM)
    assert server["asset_id"] == SERIAL


async def test_a_session_service_on_another_origin_gets_no_password(hub: Hub, app: Any) -> None:
    bmc = FakeBMC.mockup(sessions=True)
    root = bmc.tree["/redfish/v1/"]
    root["Links"] = {"Sessions": {"@odata.id": f"{ELSEWHERE}{SESSIONS}"}}
    elsewhere = await _beside(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    assert elsewhere == []
    assert bmc.paths("POST") == []  # no login at all: Basic to the BMC itself
    assert all(r.headers.get("Authorization") == BASIC for r in bmc.requests if r.url.path != "/redfish/v1/")


async def test_a_login_redirected_to_another_origin_falls_back_to_basic(hub: Hub, app: Any) -> None:
    bmc = FakeBMC.mockup(sessions=True)
    bmc.fail(
        "POST",
        SESSIONS,
        lambda request, attempt: httpx.Response(307, headers={"Location": ELSEWHERE + SESSIONS}),
    )
    elsewhere = await _beside(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    assert elsewhere == []  # the 307 would have carried the password in its body
    gets = [r for r in bmc.requests if r.method == "GET" and r.url.path != "/redfish/v1/"]
    assert gets and all(r.headers.get("Authorization") == BASIC for r in gets)


async def test_a_session_located_on_another_origin_is_not_deleted_there_with_its_token(
    hub: Hub, app: Any
) -> None:
    bmc = FakeBMC.mockup(sessions=True)

    def foreign_location(request: httpx.Request, attempt: int) -> httpx.Response:
        bmc.tokens["token-9"] = f"{SESSIONS}/9"
        return httpx.Response(
            201, json={"Id": "9"}, headers={"X-Auth-Token": "token-9", "Location": f"{ELSEWHERE}{SESSIONS}/9"}
        )

    bmc.fail("POST", SESSIONS, foreign_location)
    elsewhere = await _beside(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    assert elsewhere == []
    gets = [r for r in bmc.requests if r.method == "GET" and r.url.path != "/redfish/v1/"]
    assert gets and all(r.headers.get("X-Auth-Token") == "token-9" for r in gets)
    assert bmc.paths("DELETE") == []


# --- transport and HTTP failures ----------------------------------------------------------------


async def test_429_and_503_are_retried_and_the_run_succeeds(hub: Hub, app: Any) -> None:
    bmc = FakeBMC.mockup()

    def busy(request: httpx.Request, attempt: int) -> httpx.Response | None:
        if attempt == 1:
            return httpx.Response(429, headers={"Retry-After": "0"})
        if attempt == 2:
            return httpx.Response(503)
        return None

    bmc.fail("GET", "/redfish/v1/Systems", busy)
    await _source(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    assert bmc.paths().count("/redfish/v1/Systems") == 3
    assert len(await hub.assets(platform_code=PLATFORM)) == 1


FAILING: dict[str, tuple[str, Fault, str]] = {
    # host: (path, fault, what the run's error says)
    "10.0.1.1": (SYSTEM, httpx.ReadTimeout("timed out"), "ReadTimeout"),
    "10.0.1.2": (SYSTEM, httpx.ConnectError("refused"), "ConnectError"),
    "10.0.1.3": (SYSTEM, 429, "HTTP 429"),
    # a sensor resource too: a transport failure is never a detail to skip
    "10.0.1.4": ("/redfish/v1/Chassis/1U/ThermalSubsystem", httpx.ReadTimeout("timed out"), "ReadTimeout"),
}


async def test_a_source_that_keeps_failing_fails_the_run_after_the_retries(hub: Hub, app: Any) -> None:
    bmcs = {host: FakeBMC.mockup() for host in FAILING}
    for host, (path, fault, _) in FAILING.items():
        bmcs[host].fail("GET", path, fault)
    app.state.collector_transport = routed(bmcs)
    await platform_with_room(hub)
    for n, host in enumerate(FAILING):
        await create_source(hub, f"http://{host}", source_id=f"bmc-{n}", credentials=CREDENTIALS)
    for n, (host, (path, _, message)) in enumerate(FAILING.items()):
        done = await run(hub, app, f"bmc-{n}")
        assert done["status"] == "failed", host
        assert message in done["error"] and "已重试 4 次" in done["error"] and path in done["error"]
        assert bmcs[host].paths().count(path) == 4
    assert await hub.assets(platform_code=PLATFORM) == []


async def test_a_failed_full_run_retires_nothing_and_a_complete_one_does(hub: Hub, app: Any) -> None:
    bmc = FakeBMC.mockup()
    await _source(hub, app, bmc, kinds=["assets"])
    assert (await run(hub, app))["status"] == "success"

    bmc.fail("GET", "/redfish/v1/Systems", 500)
    failed = await run(hub, app, mode="full")
    assert failed["status"] == "failed" and "HTTP 500" in failed["error"]
    [server] = await hub.assets(platform_code=PLATFORM)
    assert server["lifecycle"] == "in_use"

    # the server is replaced by another one: a complete snapshot retires the one no longer there
    del bmc.faults[("GET", "/redfish/v1/Systems")]
    replacement = f"{SYSTEM}-NEW"
    bmc.tree[replacement] = {**bmc.tree[SYSTEM], "SerialNumber": "NEW-0001", "@odata.id": replacement}
    listing = {**bmc.tree["/redfish/v1/Systems"], "Members": [{"@odata.id": replacement}]}
    bmc.tree["/redfish/v1/Systems"] = listing
    replaced = await run(hub, app, mode="full")
    assert replaced["status"] == "success", replaced["error"]
    everything = await hub.assets(platform_code=PLATFORM, include_retired="true")
    lifecycles = {a["asset_id"]: a["lifecycle"] for a in everything}
    assert lifecycles == {SERIAL: "retired", "NEW-0001": "in_use"}


# --- bad answers --------------------------------------------------------------------------------


MALFORMED = {
    "10.0.2.1": (SYSTEM, b"{not json", "应答不是 JSON (answer is not JSON)"),
    "10.0.2.2": (SYSTEM, b'["a list"]', "应答不是 JSON 对象"),
    "10.0.2.3": ("/redfish/v1/Systems", b'{"Members": {"@odata.id": "/x"}}', "Members 不是引用数组"),
}


async def test_a_malformed_answer_about_the_servers_fails_the_run(hub: Hub, app: Any) -> None:
    bmcs = {host: FakeBMC.mockup() for host in MALFORMED}
    for host, (path, body, _) in MALFORMED.items():
        bmcs[host].fail("GET", path, body)
    app.state.collector_transport = routed(bmcs)
    await platform_with_room(hub)
    for n, host in enumerate(MALFORMED):
        await create_source(hub, f"http://{host}", source_id=f"bmc-{n}", credentials=CREDENTIALS)
    for n, (path, _, message) in enumerate(MALFORMED.values()):
        done = await run(hub, app, f"bmc-{n}")
        assert done["status"] == "failed"
        assert message in done["error"] and path in done["error"]
    assert await hub.assets(platform_code=PLATFORM) == []


async def test_a_broken_sensor_resource_is_skipped_and_counted(hub: Hub, app: Any) -> None:
    bmc = FakeBMC.mockup()
    bmc.fail("GET", "/redfish/v1/Chassis/1U/ThermalSubsystem/Fans/Bay1", 500)
    bmc.fail("GET", "/redfish/v1/Chassis/1U/EnvironmentMetrics", b"<html>gateway error</html>")
    await _source(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    assert done["rejected"] == 2  # the two resources, counted as skipped
    assert by_sensor(await latest(hub, "hw.fan.rpm")) == {(SERIAL, "Bay2"): 2400.0, (SERIAL, "CPU2"): 1490.0}
    # without EnvironmentMetrics the power is the PowerSubsystem's (the one present supply's input)
    assert by_sensor(await latest(hub, "hw.power.watts")) == {(SERIAL, ""): 937.4}
    [server] = await hub.assets(platform_code=PLATFORM)
    assert server["cpu_arch"] == "x86_64"


async def test_a_misconfigured_source_is_refused_or_fails_before_any_request(hub: Hub, app: Any) -> None:
    bmc = FakeBMC.mockup()
    app.state.collector_transport = bmc.transport()
    await platform_with_room(hub)
    # options are checked when the source is saved: 422 naming them
    for options, message in (
        ({"concurrency": "many"}, "redfish 选项 concurrency 无效"),
        ({"room_code": 5}, "redfish 选项 room_code 无效"),
    ):
        body = {
            "source_id": "bad",
            "platform_code": PLATFORM,
            "type": "redfish",
            "base_url": BMC,
            "credentials": CREDENTIALS,
            "kinds": ["assets"],
            "options": options,
        }
        refused = await hub.http.post("/api/v1/admin/sources", json=body, headers=hub.auth(hub.admin))
        assert (refused.status_code, refused.json()["code"]) == (422, "1002") and message in refused.text
    # credentials may come from the environment at run time: those fail the run, before any request
    await create_source(hub, BMC, source_id="bad-credentials", credentials={"token": "abc"})
    done = await run(hub, app, "bad-credentials")
    assert done["status"] == "failed" and "redfish 凭据须为 {username, password}" in done["error"]
    assert bmc.requests == []


# --- a replayed case: two domestic servers ------------------------------------------------------


async def test_domestic_servers_get_their_architecture_from_vendor_strings(hub: Hub, app: Any) -> None:
    bmc = FakeBMC(load_case("domestic-loongson-sunway.json"))
    await _source(hub, app, bmc)
    done = await run(hub, app)
    assert done["status"] == "success", done["error"]
    assert done["rejected"] == 0

    servers = {a["asset_id"]: a for a in await hub.assets(platform_code=PLATFORM)}
    sunway_id = "4c4c4544-0053-3310-8031-b2c04f4e3232"  # placeholder serial: the UUID instead
    assert set(servers) == {"LS3C5K0001", sunway_id}
    loongson, sunway = servers["LS3C5K0001"], servers[sunway_id]
    assert (loongson["name"], loongson["cpu_arch"], loongson["cpu_cores"], loongson["memory_mib"]) == (
        "ls-db-01",
        "loongarch64",
        32,  # two 16-core CPUs (no CoreCount in the summary)
        256 * 1024,
    )
    assert (loongson["rack_code"], loongson["u_position"], loongson["u_height"]) == ("B07", 20, 2)
    assert (sunway["name"], sunway["cpu_arch"], sunway["status"], sunway["serial_number"]) == (
        "sw-app-02",
        "sw_64",
        "stopped",
        None,
    )
    assert sunway["rack_code"] == "B08"  # the system links its chassis, the chassis not the system
    assert loongson["is_domestic"] is True and sunway["is_domestic"] is True

    assert by_sensor(await latest(hub, "hw.temp.cpu")) == {
        ("LS3C5K0001", "CPU0 Temp"): 51.0,
        ("LS3C5K0001", "CPU1 Temp"): 49.0,
    }
    assert by_sensor(await latest(hub, "hw.fan.rpm")) == {
        ("LS3C5K0001", "Fan1"): 5400.0,  # Thermal 1.0: FanName / ReadingRPM
        ("LS3C5K0001", "Fan2"): 5350.0,
    }
    assert by_sensor(await latest(hub, "hw.temp.inlet")) == {("LS3C5K0001", ""): 22.5, (sunway_id, ""): 23.0}
    assert by_sensor(await latest(hub, "hw.power.watts")) == {("LS3C5K0001", ""): 420.0}
    points = await environment(hub)
    assert {code: (p["point_type"], p["value"], p["rack_code"]) for code, p in points.items()} == {
        "LS3C5K0001:inlet": ("rack_inlet_temp", 22.5, "B07"),
        "LS3C5K0001:it_power": ("it_power_kw", 0.42, "B07"),
        f"{sunway_id}:inlet": ("rack_inlet_temp", 23.0, "B08"),
    }
