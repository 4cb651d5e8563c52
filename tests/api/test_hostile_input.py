"""Inputs that reach PostgreSQL's limits must be refused per record, never a 500."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest

from tests.helpers import Hub, batch, now_utc, rfc3339, vm

P = "GD-GZ-ZWY-01"
JSON = {"Content-Type": "application/json"}


async def test_nul_characters_are_refused_per_record_and_quarantined_as_sent(hub: Hub) -> None:
    await hub.create_platform(P)
    records = [vm("vm-1"), vm("vm-2", name="bad\u0000name"), vm("vm-3", **{"odd\u0000key": 1})]
    response = await hub.push("assets", batch(P, "nul", records))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["accepted"], data["rejected"]) == (1, 2)
    assert {e["index"] for e in data["errors"]} == {1, 2}
    receipt = (await hub.get("/api/v1/reports/batches/nul")).json()["data"]
    assert [q["record"] for q in receipt["quarantined"]] == records[1:]


async def test_values_beyond_column_ranges_are_refused_per_record(hub: Hub) -> None:
    await hub.create_platform(P)
    records = [
        vm("vm-1", cpu_cores=2**31),
        vm("vm-2", source_updated_at="0001-01-01T00:00:00+08:00"),
        {"room_code": "R", "name": "x" * 300},
        vm("vm-4", name="名" * 256),
    ]
    response = await hub.push("assets", batch(P, "range", records))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert {e["index"] for e in data["errors"]} == {0, 1, 2}
    assert [a["asset_id"] for a in await hub.assets()] == ["vm-4"]
    room = {
        "room_code": "R1",
        "name": "机" * 256,
        "datacenter_code": "DC",
        "datacenter_name": "中" * 256,
        "region_code": "440100",
        "gb50174_class": "B",
        "aisle_containment": False,
    }
    assert (await hub.push("rooms", batch(P, "room", [room]))).json()["data"]["accepted"] == 1


async def test_a_nul_in_a_query_or_path_is_400_on_every_route(hub: Hub) -> None:
    await hub.create_platform(P)
    for path, params in [
        ("/api/v1/assets", {"using_unit": "a\u0000b"}),
        ("/api/v1/logs", {"actor": "\u0000"}),
        ("/api/v1/assets/abc%00def", {}),
        ("/api/v1/platforms", {"region_code": "44\u0000"}),
    ]:
        answer = await hub.http.get(path, params=params, headers=hub.auth(hub.admin))
        assert (answer.status_code, answer.json()["code"]) == (400, "1001"), (path, answer.text)


# --- §14 control characters -------------------------------------------------------------------


async def test_control_characters_are_refused_in_names_and_codes_and_allowed_as_layout_in_free_text(
    hub: Hub,
) -> None:
    await hub.create_platform(P)
    records = [
        vm("vm-1", name="bad\u0001name"),
        vm("vm-2", tags={"k": "v\nw"}),
        vm("vm-\u001b3", name="vm 3"),
        vm("vm-4", os_name="Linux\u007f"),  # DEL is not a C0 character: kept
    ]
    data = (await hub.push("assets", batch(P, "c0", records))).json()["data"]
    assert {e["index"]: e["loc"] for e in data["errors"]} == {
        0: "records[0].name",
        1: "records[1].tags.k",
        2: "records[2].asset_id",
    }
    assert all("控制字符" in e["message"] for e in data["errors"])
    assert [a["asset_id"] for a in await hub.assets()] == ["vm-4"]

    log = {
        "category": "system",
        "type": "t",
        "event_time": rfc3339(now_utc()),
        "severity": 5,
        "action": "a",
        "outcome": "success",
    }
    logs = [
        {**log, "log_id": "ok", "message": "line 1\r\n\tline 2", "raw": "a\tb\nc"},
        {**log, "log_id": "bell", "message": "ding\u0007"},
        {**log, "log_id": "type", "type": "lo\ngin", "message": "m"},
    ]
    data = (await hub.push("logs", batch(P, "logs", logs))).json()["data"]
    assert {e["index"]: e["loc"] for e in data["errors"]} == {1: "records[1].message", 2: "records[2].type"}
    stored = (await hub.get("/api/v1/logs", platform_code=P)).json()["data"]["items"]
    assert [(s["message"], s["raw"]) for s in stored] == [("line 1\r\n\tline 2", "a\tb\nc")]


async def test_control_characters_in_administration_bodies_are_422_naming_the_field(hub: Hub) -> None:
    bad_platform = {
        "platform_code": "GD-01",
        "name": "平台\u0000",
        "region_code": "440100",
        "network_zone": "gov_extranet",
        "level": "city",
    }
    for path, body, loc in [
        ("/api/v1/admin/platforms", bad_platform | {"name": "平台\u0002"}, "name"),
        ("/api/v1/admin/clients", {"name": "root\n2", "role": "admin"}, "name"),
    ]:
        answer = await hub.http.post(path, json=body, headers=hub.auth(hub.admin))
        assert (answer.status_code, answer.json()["code"]) == (422, "1002"), answer.text
        assert [e["loc"] for e in answer.json()["errors"]] == [loc]


# --- §14 no 500 on input -------------------------------------------------------------------------

BIG = 2**70


async def test_integers_beyond_64_bits_in_administration_bodies_are_422(hub: Hub) -> None:
    await hub.create_platform(P)
    platform = {
        "platform_code": "GD-02",
        "name": "x",
        "region_code": "440100",
        "network_zone": "gov_extranet",
        "level": "city",
    }
    for method, path, body, loc in [
        ("POST", "/api/v1/admin/platforms", platform | {"expected_intervals": {"metrics": BIG}}, "metrics"),
        ("PATCH", f"/api/v1/admin/platforms/{P}", {"expected_intervals": {"metrics": BIG}}, "metrics"),
        ("PATCH", f"/api/v1/admin/platforms/{P}", {"expected_intervals": {"metrics": 0}}, "metrics"),
        ("PATCH", f"/api/v1/admin/platforms/{P}", {"expected_intervals": {"bogus": 60}}, "bogus"),
        ("PATCH", f"/api/v1/admin/platforms/{P}", {"protection_level": BIG}, "protection_level"),
        ("PATCH", f"/api/v1/admin/platforms/{P}", {"availability_target": BIG}, "availability_target"),
        (
            "PUT",
            "/api/v1/admin/indicator-policy",
            {"policies": [{"code": "pue", "params": {"target": BIG}}]},
            "",
        ),
        ("POST", "/api/v1/admin/indicators/recompute", {"period": "0001-01", "platform_code": P}, "period"),
        ("POST", "/api/v1/admin/indicators/recompute", {"period": "9999-12", "platform_code": P}, "period"),
        (
            "POST",
            "/api/v1/admin/sources",
            {
                "source_id": "big",
                "type": "prometheus",
                "platform_code": P,
                "base_url": "http://10.0.0.9:9090",
                "kinds": ["metrics"],
                "options": {"queries": {"cpu.util": "up"}, "asset_map": {"a": BIG}},
            },
            "options",
        ),
    ]:
        answer = await hub.http.request(
            method, path, content=json.dumps(body), headers=hub.auth(hub.admin) | JSON
        )
        assert (answer.status_code, answer.json()["code"]) == (422, "1002"), (path, body, answer.text)
        assert any(loc in e["loc"] for e in answer.json()["errors"]), answer.text
    assert (await hub.get(f"/api/v1/admin/platforms/{P}")).json()["data"]["expected_intervals"] == {}


async def test_a_record_nested_300_deep_is_quarantined_not_a_500(hub: Hub) -> None:
    await hub.create_platform(P)
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    records = [vm("vm-1"), {"asset_id": deep}, vm("vm-3", tags={"k": deep}), deep]
    body = json.dumps(batch(P, "deep", records)).encode()  # orjson refuses to write it
    response = await hub.push("assets", None, raw=body)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["accepted"], data["rejected"]) == (1, 3)
    receipt = await hub.get("/api/v1/reports/batches/deep")
    assert receipt.status_code == 200, receipt.text
    quarantined = receipt.json()["data"]["quarantined"]
    assert [q["index"] for q in quarantined] == [1, 2, 3]
    # too deep to answer as JSON: the record is kept as the JSON text it was
    assert json.loads(quarantined[0]["record"]) == records[1]


async def test_big_integers_in_a_push_are_refused_per_record(hub: Hub) -> None:
    await hub.create_platform(P)
    records = [vm("vm-1", cpu_cores=BIG), vm("vm-2", memory_mib=-BIG), vm("vm-3", zz=BIG), vm("vm-4")]
    response = await hub.push("assets", None, raw=json.dumps(batch(P, "big", records)).encode())
    assert response.status_code == 200, response.text
    assert {e["index"] for e in response.json()["data"]["errors"]} == {0, 1}
    assert (await hub.get("/api/v1/reports/batches/big")).status_code == 200


FAR = ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59Z", "1969-12-31T23:59:59Z", "2101-01-01T00:00:00Z"]


async def test_times_outside_1970_to_2100_in_queries_are_400(hub: Hub) -> None:
    await hub.create_platform(P)
    near = rfc3339(now_utc())
    for far in FAR:
        for path, params in [
            ("/api/v1/logs", {"from": far}),
            ("/api/v1/logs", {"to": far}),
            ("/api/v1/logs", {"updated_since": far}),
            ("/api/v1/alarms", {"from": far}),
            ("/api/v1/alarms", {"to": far}),
            ("/api/v1/alarms", {"updated_since": far}),
            ("/api/v1/warnings", {"from": far}),
            ("/api/v1/warnings", {"to": far}),
            ("/api/v1/indicators", {"platform_code": P, "from": far, "to": near}),
            ("/api/v1/indicators", {"platform_code": P, "from": near, "to": far}),
            ("/api/v1/assets", {"updated_since": far}),
            ("/api/v1/metrics/samples", {"to": far}),
            ("/api/v1/environment/samples", {"to": far}),
            ("/api/v1/admin/audit", {"from": far}),
            ("/api/v1/export/logs", {"to": far}),
            ("/api/v1/export/assets", {"updated_since": far}),
            ("/api/v1/indicators", {"platform_code": P, "period": far[:7]}),
        ]:
            answer = await hub.http.get(path, params=params, headers=hub.auth(hub.admin))
            assert (answer.status_code, answer.json()["code"]) == (400, "1001"), (path, params, answer.text)
            assert "1970" in answer.json()["message"], answer.text
    for path in ("/api/v1/admin/audit/verify", "/api/v1/logs/verify"):
        for params in ({"from_seq": str(BIG)}, {"to_seq": str(2**63)}):  # beyond a database integer
            params |= {"platform_code": P} if path.startswith("/api/v1/logs") else {}
            answer = await hub.http.get(path, params=params, headers=hub.auth(hub.admin))
            assert (answer.status_code, answer.json()["code"]) == (400, "1001"), answer.text


async def test_times_outside_1970_to_2100_in_bodies_are_422(hub: Hub) -> None:
    await hub.create_platform(P)
    for far in FAR:
        answer = await hub.push("assets", batch(P, "far", [vm("vm-1")], collected_at=far))
        assert (answer.status_code, answer.json()["code"]) == (422, "1002"), answer.text
        assert [e["loc"] for e in answer.json()["errors"]] == ["collected_at"]
        records = [
            {"alarm_id": "a", "level": 1, "status": "active", "title": "t", "first_at": far},
            {"alarm_id": "b", "level": 1, "status": "cleared", "title": "t", "first_at": rfc3339(now_utc())}
            | {"cleared_at": far},
        ]
        data = (await hub.push("alarms", batch(P, "far", records))).json()
        assert data["code"] == "1002" and [e["loc"] for e in data["data"]["errors"]] == [
            "records[0].first_at",
            "records[1].cleared_at",
        ]
        data = (await hub.push("assets", batch(P, "far", [vm("vm-1", source_updated_at=far)]))).json()
        assert [e["loc"] for e in data["data"]["errors"]] == ["records[0].source_updated_at"]


# --- §13 client values in the hub's log -----------------------------------------------------------


async def test_a_newline_from_a_source_never_starts_a_log_line(
    hub: Hub, app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A source's answer reaches the log twice: a warning it sent, and its error text."""
    await hub.create_platform(P)
    forged = "ERROR app.security.audit forged line"

    def prometheus(request: httpx.Request) -> httpx.Response:
        if "fail" in request.url.params.get("query", request.content.decode()):
            return httpx.Response(
                422, json={"status": "error", "errorType": "execution", "error": f"x\n{forged}"}
            )
        matrix = {"resultType": "matrix", "result": []}
        return httpx.Response(
            200, json={"status": "success", "data": matrix, "warnings": [f"slow\r\n{forged}"]}
        )

    app.state.collector_transport = httpx.MockTransport(prometheus)
    for source_id, query in [("warns", "up"), ("fails", "fail")]:
        body = {
            "source_id": source_id,
            "platform_code": P,
            "type": "prometheus",
            "base_url": "http://10.0.0.9:9090",
            "kinds": ["metrics"],
            "options": {"queries": {"cpu.util": query}},
        }
        created = await hub.http.post("/api/v1/admin/sources", json=body, headers=hub.auth(hub.admin))
        assert created.status_code == 201, created.text
    with caplog.at_level(logging.INFO):
        for source_id in ("warns", "fails"):
            started = await hub.http.post(
                f"/api/v1/admin/sources/{source_id}/run", headers=hub.auth(hub.admin)
            )
            assert started.status_code == 202, started.text
            await app.state.collector_runner.wait_idle()
    lines = caplog.text.splitlines()
    assert any(f"slow\\r\\n{forged}" in line for line in lines), caplog.text
    assert any(f"x\\n{forged}" in line for line in lines), caplog.text
    assert not [line for line in lines if line.startswith(forged)]


async def test_a_record_nested_as_deep_as_the_parser_allows_is_refused_not_a_500(hub: Hub) -> None:
    """1 000 levels (orjson reads 1 024): beyond Python's recursion, with a NUL at the bottom."""
    await hub.create_platform(P)
    deep = "[" * 1000 + '"x\\u0000"' + "]" * 1000
    plain = "[" * 1000 + "1" + "]" * 1000  # in an enumeration: its error quotes the value back
    records = f'{{"asset_id": {deep}}}, {deep}, {json.dumps(vm("vm-3"))}, {{"asset_type": {plain}}}'
    envelope = json.dumps(batch(P, "deeper", []))
    body = envelope.replace('"records": []', f'"records": [{records}]')
    response = await hub.push("assets", None, raw=body.encode())
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["accepted"], data["rejected"]) == (1, 3)
    assert [e["loc"] for e in data["errors"] if e["index"] < 2] == [
        "records[0].asset_id" + "[0]" * 1000,
        "records[1]",
    ]
    assert "records[3].asset_type" in [e["loc"] for e in data["errors"]]
    receipt = await hub.get("/api/v1/reports/batches/deeper")
    assert receipt.status_code == 200 and len(receipt.json()["data"]["quarantined"]) == 3


async def test_an_administration_body_nested_beyond_the_parser_is_422(hub: Hub) -> None:
    """Python's JSON parser (FastAPI's) gives up on 2 000 levels: 422 1002, not 400 with code 5000."""
    deep = "[" * 2000 + "1" + "]" * 2000
    options = f'{{"queries": {{"cpu.util": "up"}}, "x": {deep}}}'
    body = f'{{"source_id": "s", "type": "prometheus", "kinds": ["metrics"], "options": {options}}}'
    for content in (body, deep):
        answer = await hub.http.post(
            "/api/v1/admin/sources", content=content, headers=hub.auth(hub.admin) | JSON
        )
        assert (answer.status_code, answer.json()["code"]) == (422, "1002"), answer.text
    shallow = body.replace(deep, "[" * 40 + "1" + "]" * 40)  # parsed, but deeper than an option may be
    answer = await hub.http.post("/api/v1/admin/sources", content=shallow, headers=hub.auth(hub.admin) | JSON)
    assert (answer.status_code, answer.json()["code"]) == (422, "1002"), answer.text
