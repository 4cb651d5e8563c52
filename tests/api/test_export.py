"""Exports (§5): the list's rows as csv, ndjson and xlsx — parsed back and compared with the list."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import orjson
import pytest
from sqlalchemy import update

from app.config import Settings
from app.main import create_app
from app.models import Asset
from app.services import export as export_module
from tests.helpers import Hub, batch, vm

GZ, SZ = "GD-GZ-01", "GD-SZ-01"
FORMULA = '=HYPERLINK("http://evil","点我")'


async def _world(hub: Hub) -> list[dict[str, Any]]:
    await hub.create_platform(GZ, "440100")
    await hub.create_platform(SZ, "440300")
    gz = [
        vm(
            f"vm-{i:02d}",
            cpu_vendor="Hygon" if i % 2 else "Intel",
            memory_mib=1024 * i,
            ip_addresses=[{"ip": f"10.0.0.{i}", "kind": "business"}],
        )
        for i in range(7)
    ]
    gz.append(vm("vm-evil", name=FORMULA, using_unit="+86 市局", business_system="@system"))
    assert (await hub.push("assets", batch(GZ, "gz", gz))).status_code == 200
    assert (await hub.push("assets", batch(SZ, "sz", [vm("vm-sz")]))).status_code == 200
    return await hub.assets()


async def export(hub: Hub, key: str | None = None, **params: Any) -> httpx.Response:
    return await hub.http.get("/api/v1/export/assets", params=params, headers=hub.auth(key or hub.admin))


async def test_csv_has_a_bom_the_list_s_rows_and_neutralised_formulas(hub: Hub) -> None:
    listed = await _world(hub)
    answer = await export(hub, format="csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.content.startswith("\ufeff".encode())
    assert "attachment" in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert [r["asset_id"] for r in rows] == [a["asset_id"] for a in listed]
    by_id = {r["asset_id"]: r for r in rows}
    assert by_id["vm-03"]["memory_mib"] == "3072" and by_id["vm-03"]["is_domestic"] == "True"
    assert orjson.loads(by_id["vm-03"]["ip_addresses"]) == [{"ip": "10.0.0.3", "kind": "business"}]
    evil = by_id["vm-evil"]
    assert evil["name"] == "'" + FORMULA
    assert evil["using_unit"] == "'+86 市局" and evil["business_system"] == "'@system"


async def test_chinese_headers_and_filters_apply_to_the_export(hub: Hub) -> None:
    await _world(hub)
    answer = await export(hub, format="csv", headers="zh", platform_code=SZ)
    reader = csv.reader(io.StringIO(answer.content.decode("utf-8-sig")))
    header = next(reader)
    assert header[:4] == ["云平台编码", "资产统一编号", "资产ID", "资产类型"]
    assert [row[2] for row in reader] == ["vm-sz"]


async def test_ndjson_lines_are_the_list_s_items(hub: Hub) -> None:
    listed = await _world(hub)
    answer = await export(hub, format="ndjson", is_domestic="true")
    lines = [orjson.loads(line) for line in answer.content.splitlines()]
    expected = [a for a in listed if a["is_domestic"]]
    assert [item["asset_id"] for item in lines] == [a["asset_id"] for a in expected]
    assert lines[0]["ip_addresses"] == expected[0]["ip_addresses"]  # structures stay structures


async def test_xlsx_parses_back_and_starts_a_new_sheet_when_one_is_full(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    listed = await _world(hub)
    monkeypatch.setattr(export_module, "SHEET_ROWS", 4)
    answer = await export(hub, format="xlsx", headers="zh")
    assert answer.status_code == 200
    book = openpyxl.load_workbook(io.BytesIO(answer.content), read_only=True)
    sheets = [list(sheet.iter_rows(values_only=True)) for sheet in book.worksheets]
    assert [len(rows) for rows in sheets] == [5, 5, 2]  # 9 assets: a header and at most 4 rows each
    assert all(rows[0][2] == "资产ID" for rows in sheets)
    ids = [row[2] for rows in sheets for row in rows[1:]]
    assert ids == [a["asset_id"] for a in listed]
    names = {row[2]: row[4] for rows in sheets for row in rows[1:]}
    assert names["vm-evil"] == "'" + FORMULA


async def test_more_rows_than_the_cap_is_413_before_anything_is_sent(hub: Hub, settings: Settings) -> None:
    await _world(hub)
    capped = create_app(settings.model_copy(update={"export_max_rows": 5}))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=capped), base_url="http://hub.test"
    ) as http:
        answer = await http.get("/api/v1/export/assets", headers=hub.auth(hub.admin))
        assert (answer.status_code, answer.json()["code"]) == (413, "1003")
        small = await http.get(
            "/api/v1/export/assets", params={"platform_code": SZ}, headers=hub.auth(hub.admin)
        )
        assert small.status_code == 200
    await capped.state.audit_writer.close()
    await capped.state.rate_limiter.close()
    await capped.state.engine.dispose()


async def test_exports_keep_to_the_caller_s_scope_and_kinds(hub: Hub) -> None:
    await _world(hub)
    regulator = await hub.create_client("regulator", regions=["440300"])
    answer = await export(hub, regulator, format="ndjson")
    assert [orjson.loads(line)["asset_id"] for line in answer.content.splitlines()] == ["vm-sz"]
    refused = await export(hub, regulator, platform_code=GZ)
    assert (refused.status_code, refused.json()["code"]) == (403, "2006")
    logs_only = await hub.create_client("integrator", regions=["44"], kinds=["logs"])
    assert (await export(hub, logs_only)).json()["code"] == "2006"


async def _pushed_kinds(hub: Hub) -> None:
    from datetime import timedelta

    from tests.helpers import now_utc, rfc3339

    await hub.create_platform(GZ, "440100")
    base = now_utc() - timedelta(hours=1)
    room = {
        "room_code": "R1",
        "name": "机房",
        "datacenter_code": "DC",
        "datacenter_name": "数据中心",
        "region_code": "440100",
        "gb50174_class": "A",
        "aisle_containment": True,
    }
    pushes = {
        "rooms": [room],
        "logs": [
            {
                "log_id": f"L{i}",
                "category": "operation",
                "type": "login",
                "event_time": rfc3339(base + timedelta(minutes=i)),
                "severity": 6,
                "actor": "=admin" if i == 0 else f"user{i}",
                "action": "login",
                "outcome": "success",
                "message": f"第 {i} 次登录",
            }
            for i in range(5)
        ],
        "alarms": [
            {
                "alarm_id": f"A{i}",
                "level": 1 + i % 4,
                "status": "active",
                "title": f"告警 {i}",
                "first_at": rfc3339(base + timedelta(minutes=i)),
            }
            for i in range(4)
        ],
        "metrics": [
            {
                "metric": "cpu.util",
                "asset_id": f"vm-{i % 2}",
                "ts": rfc3339(base + timedelta(minutes=i)),
                "value": i * 1.5,
            }
            for i in range(6)
        ],
        "environment": [
            {
                "room_code": "R1",
                "point_code": "T1",
                "point_type": "cold_aisle_temp",
                "ts": rfc3339(base + timedelta(minutes=i)),
                "value": 22.0 + i,
            }
            for i in range(3)
        ],
    }
    for kind, records in pushes.items():
        assert (await hub.push(kind, batch(GZ, f"{kind}-1", records))).status_code == 200


async def _listed(hub: Hub, path: str, **params: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": "2", **({"cursor": cursor} if cursor else {})}
        data = (await hub.get(path, **query)).json()["data"]
        items += data["items"]
        cursor = data["next_cursor"]
        if not cursor:
            return items


@pytest.mark.parametrize(
    ("kind", "list_path", "key", "params"),
    [
        ("logs", "/api/v1/logs", "log_id", {}),
        ("alarms", "/api/v1/alarms", "alarm_id", {"level_max": "3"}),
        ("metrics", "/api/v1/metrics/samples", "value", {"metric": "cpu.util"}),
        ("environment", "/api/v1/environment/samples", "value", {}),
    ],
)
@pytest.mark.parametrize("fmt", ["csv", "ndjson", "xlsx"])
async def test_every_kind_exports_the_rows_of_its_list(
    hub: Hub, kind: str, list_path: str, key: str, params: dict[str, str], fmt: str
) -> None:
    await _pushed_kinds(hub)
    listed = await _listed(hub, list_path, **params)
    assert listed
    answer = await hub.http.get(
        f"/api/v1/export/{kind}", params={**params, "format": fmt}, headers=hub.auth(hub.admin)
    )
    assert answer.status_code == 200, answer.text
    if fmt == "csv":
        rows: list[dict[str, Any]] = list(csv.DictReader(io.StringIO(answer.content.decode("utf-8-sig"))))
    elif fmt == "ndjson":
        rows = [orjson.loads(line) for line in answer.content.splitlines()]
    else:
        sheet = openpyxl.load_workbook(io.BytesIO(answer.content), read_only=True).worksheets[0]
        values = list(sheet.iter_rows(values_only=True))
        rows = [dict(zip(values[0], row, strict=True)) for row in values[1:]]

    def norm(value: Any) -> Any:
        return float(value) if key == "value" else str(value)  # xlsx reads 22.0 back as 22

    assert [norm(r[key]) for r in rows] == [norm(item[key]) for item in listed]
    if kind == "logs" and fmt != "ndjson":
        assert {r["actor"] for r in rows} >= {"'=admin"}  # formula neutralised in spreadsheets


async def test_an_xlsx_export_never_fails_on_a_stored_control_character(
    hub: Hub, app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Rows stored before pushes refused control characters may hold them (§14): the workbook
    shows them escaped, and no temporary file is left behind."""
    await _world(hub)
    async with app.state.engine.begin() as conn:
        await conn.execute(
            update(Asset).where(Asset.asset_id == "vm-01").values(name="bad\x01name", using_unit="a\x1bb\tc")
        )
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the export's and openpyxl's files
    answer = await export(hub, format="xlsx")
    assert answer.status_code == 200, answer.text
    sheet = openpyxl.load_workbook(io.BytesIO(answer.content), read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    by_id = {row[2]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert by_id["vm-01"]["name"] == "bad\\x01name"
    assert by_id["vm-01"]["using_unit"] == "a\\x1bb\tc"
    csv_answer = await export(hub, format="csv")  # csv carries any character as it is
    assert "bad\x01name" in csv_answer.content.decode("utf-8-sig")
    assert await asyncio.to_thread(os.listdir, tmp_path) == []
