"""Every administrative list is a §2.2 list: ``data.items`` + ``data.next_cursor`` in a fixed,
documented order, keyset-paged (``limit``, ``cursor``), ``with_total``; a cursor is bound to the
filters it was made with, and a forged one is refused (400 ``1001``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from app.models import SourceRun
from tests.helpers import Hub

ADMIN = "/api/v1/admin"
GZ, SZ, FS = "GD-GZ-01", "GD-SZ-01", "GD-FS-01"


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.json()["message"][0] >= "\u4e00", response.text  # zh-CN first


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _source(source_id: str, platform_code: str | None = None) -> dict[str, Any]:
    if platform_code is None:
        return {
            "source_id": source_id,
            "type": "hub",
            "base_url": "http://city-hub.example",
            "credentials": {"token": "ak_0123456789abcdef0123.secret-value"},
            "kinds": ["assets"],
            "options": {"region": "4401"},
        }
    return {
        "source_id": source_id,
        "platform_code": platform_code,
        "type": "prometheus",
        "base_url": "http://10.20.7.9:9090",
        "credentials": {},
        "interval_s": 60,
        "kinds": ["metrics"],
        "options": {"asset_label": "instance", "queries": {"cpu.util": "up"}},
    }


def _rule(code: str, subject: str = "point_type", **fields: Any) -> dict[str, Any]:
    condition = {
        "point_type": {"state_in": ["critical"]},
        "indicator": {"status_in": ["fail"]},
        "freshness": {"stale": True},
    }[subject]
    return {
        "rule_code": code,
        "name_zh": f"规则 {code}",
        "subject": subject,
        "target": "*",
        "condition": condition,
        "level": 2,
        "hold_s": 0,
        "clear_s": 0,
        **fields,
    }


async def _post(hub: Hub, path: str, body: dict[str, Any], status: int = 201) -> Any:
    response = await hub.http.post(path, json=body, headers=hub.auth(hub.admin))
    assert response.status_code == status, response.text
    return response.json()["data"]


async def _put(hub: Hub, path: str, body: dict[str, Any]) -> Any:
    response = await hub.http.put(path, json=body, headers=hub.auth(hub.admin))
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def _platforms(hub: Hub, app: Any) -> None:
    for code, region in ((SZ, "440300"), (GZ, "440100"), (FS, "440600")):
        await hub.create_platform(code, region)
    response = await hub.http.patch(
        f"{ADMIN}/platforms/{FS}", json={"status": "decommissioned"}, headers=hub.auth(hub.admin)
    )
    assert response.status_code == 200, response.text


async def _clients(hub: Hub, app: Any) -> None:
    await hub.create_platform(GZ, "440100")
    await hub.create_client("regulator", regions=["440000"])
    await hub.create_client("provider", platforms=[GZ])
    await hub.create_client("integrator", regions=["4401"], kinds=["assets"])
    await hub.create_client("regulator", regions=["440100"])


async def _sources(hub: Hub, app: Any) -> None:
    await hub.create_platform(GZ, "440100")
    for body in (_source("zz-city"), _source("gz-prom", GZ), _source("a-city"), _source("gz-prom-2", GZ)):
        await _post(hub, f"{ADMIN}/sources", body)


async def _runs(hub: Hub, app: Any) -> None:
    """Five runs of one source (two started at the same instant) and one of another source."""
    await _post(hub, f"{ADMIN}/sources", _source("city"))
    await _post(hub, f"{ADMIN}/sources", _source("other"))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    async with app.state.sessionmaker() as session:
        for n, (minutes, status) in enumerate(((0, "success"), (5, "failed"), (5, "success"), (9, "failed"))):
            session.add(
                SourceRun(
                    run_id=f"run-{n}",
                    source_id="city",
                    started_at=start + timedelta(minutes=minutes),
                    finished_at=start + timedelta(minutes=minutes, seconds=3),
                    status=status,
                    mode="full",
                    trigger="schedule",
                )
            )
        session.add(
            SourceRun(
                run_id="run-x",
                source_id="other",
                started_at=start,
                status="success",
                mode="full",
                trigger="manual",
            )
        )
        await session.commit()


async def _thresholds(hub: Hub, app: Any) -> None:
    await hub.create_platform(GZ, "440100")
    await hub.create_platform(SZ, "440300")
    row = {"upper_caution": 27.0, "upper_critical": 32.0, "source": "监管决定"}
    overrides = [
        {"platform_code": SZ, "point_type": "cold_aisle_temp", **row},
        {"platform_code": GZ, "point_type": "cold_aisle_rh", "upper_caution": 70.0, "source": "监管决定"},
        {"platform_code": GZ, "point_type": "cold_aisle_temp", **row},
    ]
    await _put(hub, f"{ADMIN}/thresholds", {"overrides": overrides})


async def _rules(hub: Hub, app: Any) -> None:
    await _put(
        hub,
        f"{ADMIN}/warning-rules",
        {"rules": [_rule("zz_last"), _rule("aa_first", "freshness"), _rule("mm_off", enabled=False)]},
    )


@dataclass(frozen=True)
class Case:
    path: str
    setup: Callable[[Hub, Any], Awaitable[None]]
    #: the documented order, as a sort key of an item (and whether it runs backwards)
    order: Callable[[dict[str, Any]], Any]
    #: two filters: a cursor made under the first is refused under the second
    one_filter: dict[str, str]
    other_filter: dict[str, str]
    #: how many items the list holds after ``setup`` (at least three: paging must cross pages)
    minimum: int = 3
    descending: bool = False


CASES = {
    "platforms": Case(
        f"{ADMIN}/platforms",
        _platforms,
        lambda p: p["platform_code"],
        {"status": "active,decommissioned"},
        {"status": "active"},
    ),
    "clients": Case(
        f"{ADMIN}/clients",
        _clients,
        lambda c: (_time(c["created_at"]), c["app_key"]),
        {"role": "regulator,provider,integrator,admin"},
        {"role": "regulator"},
    ),
    "sources": Case(
        f"{ADMIN}/sources",
        _sources,
        lambda s: s["source_id"],
        {},
        {"platform_code": GZ},
    ),
    "runs": Case(
        f"{ADMIN}/sources/city/runs",
        _runs,
        lambda r: (_time(r["started_at"]), r["run_id"]),
        {},
        {"status": "success"},
        descending=True,
    ),
    "thresholds": Case(
        f"{ADMIN}/thresholds",
        _thresholds,
        lambda t: (
            t["applies_to"] != "default",
            t["platform_code"] or "",
            t["room_code"] or "",
            t["point_type"],
        ),
        {},
        {"applies_to": "platform,room"},
    ),
    "warning-rules": Case(
        f"{ADMIN}/warning-rules",
        _rules,
        lambda r: r["rule_code"],
        {"subject": "point_type,indicator,freshness"},
        {"enabled": "true"},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_an_admin_list_pages_every_row_once_in_its_documented_order(
    hub: Hub, app: Any, name: str
) -> None:
    case = CASES[name]
    await case.setup(hub, app)
    whole = (await hub.get(case.path, with_total="true", **case.one_filter)).json()["data"]
    assert set(whole) == {"items", "next_cursor", "total"}, whole
    assert whole["next_cursor"] is None and whole["total"] == len(whole["items"]) >= case.minimum
    paged = await hub.items(case.path, limit=1, **case.one_filter)
    # every row once, in the documented order
    assert paged == sorted(whole["items"], key=case.order, reverse=case.descending)
    first = (await hub.get(case.path, limit=1, **case.one_filter)).json()["data"]
    assert set(first) == {"items", "next_cursor"} and len(first["items"]) == 1  # total only when asked

    narrowed = await hub.items(case.path, limit=1, **case.other_filter)
    assert 0 < len(narrowed) < len(paged), narrowed
    assert narrowed == [item for item in paged if item in narrowed]  # same order under a filter


@pytest.mark.parametrize("name", list(CASES))
async def test_an_admin_list_refuses_a_cursor_made_with_other_filters_or_forged(
    hub: Hub, app: Any, name: str
) -> None:
    case = CASES[name]
    await case.setup(hub, app)
    cursor = (await hub.get(case.path, limit=1, **case.one_filter)).json()["data"]["next_cursor"]
    assert cursor
    assert (await hub.get(case.path, limit=1, cursor=cursor, **case.one_filter)).status_code == 200
    _error(await hub.get(case.path, limit=1, cursor=cursor, **case.other_filter), 400, "1001")
    forged = cursor[:-4] + ("AAAA" if not cursor.endswith("AAAA") else "BBBB")
    _error(await hub.get(case.path, limit=1, cursor=forged, **case.one_filter), 400, "1001")
    _error(await hub.get(case.path, cursor="not-a-cursor", **case.one_filter), 400, "1001")
    # a cursor of another list (the northbound platforms) is not one of this list
    await hub.create_platform("GD-ZZ-98", "440100")
    await hub.create_platform("GD-ZZ-99", "440100")
    other = (await hub.get("/api/v1/platforms", limit=1)).json()["data"]["next_cursor"]
    _error(await hub.get(case.path, cursor=other), 400, "1001")
    _error(await hub.get(case.path, limit=1001), 400, "1001")


async def test_runs_page_back_newest_first_and_a_cursor_stays_with_its_source(hub: Hub, app: Any) -> None:
    await _runs(hub, app)
    runs = await hub.items(f"{ADMIN}/sources/city/runs", limit=2)
    # newest first; the two runs started at the same instant by run_id, descending
    assert [r["run_id"] for r in runs] == ["run-3", "run-2", "run-1", "run-0"]
    cursor = (await hub.get(f"{ADMIN}/sources/city/runs", limit=1)).json()["data"]["next_cursor"]
    _error(await hub.get(f"{ADMIN}/sources/other/runs", cursor=cursor), 400, "1001")
    failed = await hub.items(f"{ADMIN}/sources/city/runs", limit=1, status="failed")
    assert [r["run_id"] for r in failed] == ["run-3", "run-1"]


async def test_threshold_rows_read_back_as_the_put_takes_them(hub: Hub, app: Any) -> None:
    """``applies_to: default`` rows go back in ``defaults``, the others in ``overrides``: a PUT of
    what GET lists changes nothing; the PUT answers GET's first page."""
    await _thresholds(hub, app)
    rows = await hub.items(f"{ADMIN}/thresholds", limit=3)
    fields = (
        "point_type",
        "lower_critical",
        "lower_caution",
        "upper_caution",
        "upper_critical",
        "dwell_s",
        "source",
    )
    defaults = [{f: r[f] for f in fields} for r in rows if r["applies_to"] == "default" and r["source"]]
    overrides = [
        {f: r[f] for f in fields} | {"platform_code": r["platform_code"], "room_code": r["room_code"]}
        for r in rows
        if r["applies_to"] != "default"
    ]
    assert [(o["platform_code"], o["point_type"]) for o in overrides] == [
        (GZ, "cold_aisle_rh"),
        (GZ, "cold_aisle_temp"),
        (SZ, "cold_aisle_temp"),
    ]
    answer = await _put(hub, f"{ADMIN}/thresholds", {"defaults": defaults, "overrides": overrides})
    assert answer == (await hub.get(f"{ADMIN}/thresholds")).json()["data"]

    def unstamped(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r | {"updated_at": None} for r in items]

    assert unstamped(await hub.items(f"{ADMIN}/thresholds", limit=3)) == unstamped(rows)
