"""监管预警 (§7.8): rules edited through §10, the evaluation job's state machine, and the list.

Conditions come from real pushed data (water-leak and smoke samples judged at push, a stale
feed, an availability figure below target); the job runs at explicit evaluation times, so hold
times and hysteresis are walked through without waiting.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from app.services.warnings import evaluate_warnings
from tests.helpers import Hub, batch, now_utc, rfc3339

GZ, SZ = "GD-GZ-WRN-01", "GD-SZ-WRN-01"
RULES = "/api/v1/admin/warning-rules"


def data_of(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == "0"
    return body["data"]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    return response.json()  # type: ignore[no-any-return]


def rule(code: str, **fields: Any) -> dict[str, Any]:
    return {
        "rule_code": code,
        "name_zh": "机房漏水",
        "subject": "point_type",
        "target": "water_leak",
        "condition": {"state_in": ["critical"]},
        "level": 1,
        "hold_s": 120,
        "clear_s": 300,
        **fields,
    }


async def put_rules(hub: Hub, *rules: dict[str, Any], key: str | None = None) -> httpx.Response:
    return await hub.http.put(RULES, json={"rules": list(rules)}, headers=hub.auth(key or hub.admin))


async def only_rules(hub: Hub, *rules: dict[str, Any]) -> None:
    """The given rules, every other rule disabled (the seeded ones included)."""
    existing = await hub.items(RULES)
    given = {r["rule_code"] for r in rules}
    others = [
        {
            k: r[k]
            for k in ("rule_code", "name_zh", "subject", "target", "condition", "level", "hold_s", "clear_s")
        }
        | {"enabled": False}
        for r in existing
        if r["rule_code"] not in given
    ]
    data_of(await put_rules(hub, *rules, *others))


async def platform_with_room(hub: Hub, code: str = GZ, region: str = "440100") -> None:
    await hub.create_platform(code, region)
    room = {
        "room_code": "R1",
        "name": "一号机房",
        "datacenter_code": "DC1",
        "datacenter_name": "数据中心",
        "region_code": region,
        "gb50174_class": "A",
        "aisle_containment": True,
    }
    response = await hub.push("rooms", batch(code, f"rooms-{code}", [room]))
    assert response.status_code == 200, response.text


_pushes = 0


async def reading(hub: Hub, point: str, point_type: str, at: datetime, value: float, code: str = GZ) -> None:
    """One sample of a point reported every 60 s (it stands 120 s after its time)."""
    global _pushes
    _pushes += 1
    record = {
        "room_code": "R1",
        "point_code": point,
        "point_type": point_type,
        "ts": rfc3339(at),
        "value": value,
        "interval_s": 60,
    }
    response = await hub.push("environment", batch(code, f"env-{_pushes}", [record]))
    assert response.status_code == 200 and response.json()["data"]["accepted"] == 1, response.text


class Clock:
    """The evaluation job run at chosen times."""

    def __init__(self, app: FastAPI, hub: Hub) -> None:
        self.app, self.hub = app, hub

    async def run(self, at: datetime) -> dict[str, Any]:
        report = await evaluate_warnings(
            self.app.state.sessionmaker, now=at, reporting_tz=self.hub.settings.reporting_tz
        )
        assert report["failed"] == [], report
        return report


async def warnings_of(hub: Hub, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = data_of(await hub.get("/api/v1/warnings", key, **query))
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return items


def same_time(text: str | None, t: datetime) -> bool:
    return text is not None and datetime.fromisoformat(text) == t


# --- the state machine ------------------------------------------------------------------------


async def test_a_warning_opens_after_the_hold_time_persists_clears_and_recurs_as_a_new_one(
    hub: Hub, app: FastAPI
) -> None:
    await platform_with_room(hub)
    await only_rules(hub, rule("leak"))
    clock = Clock(app, hub)
    t = now_utc() - timedelta(hours=3)

    def s(seconds: float) -> datetime:
        return t + timedelta(seconds=seconds)

    # the condition holds, but not yet for the hold time (120 s): nothing
    await reading(hub, "WL-1", "water_leak", t, 1.0)
    await clock.run(s(30))
    await reading(hub, "WL-1", "water_leak", s(60), 1.0)
    await clock.run(s(90))
    assert await warnings_of(hub) == []

    # 120 s after the first leaking sample: open, first_at = when the condition began
    await reading(hub, "WL-1", "water_leak", s(120), 1.0)
    report = await clock.run(s(150))
    assert len(report["opened"]) == 1
    [warning] = await warnings_of(hub)
    first_id = warning["warning_id"]
    assert warning["platform_code"] == GZ
    assert (warning["rule_code"], warning["subject_key"], warning["level"], warning["status"]) == (
        "leak",
        "point:R1/WL-1",
        1,
        "active",
    )
    assert same_time(warning["first_at"], t)
    assert same_time(warning["last_at"], s(150))
    assert warning["cleared_at"] is None
    assert (
        warning["title"].startswith("机房漏水：")
        and "WL-1" in warning["title"]
        and "漏水" in warning["title"]
    )
    evidence = warning["evidence"]
    assert (evidence["point_code"], evidence["point_type"], evidence["value"], evidence["state"]) == (
        "WL-1",
        "water_leak",
        1.0,
        "critical",
    )
    assert same_time(evidence["ts"], s(120))  # the sample that was standing when it opened

    # it persists: the same warning, last_at moves on
    await reading(hub, "WL-1", "water_leak", s(180), 1.0)
    await clock.run(s(210))
    [warning] = await warnings_of(hub)
    assert warning["warning_id"] == first_id and warning["status"] == "active"
    assert same_time(warning["last_at"], s(210))
    assert same_time(warning["evidence"]["latest"]["ts"], s(180))

    # dry for less than the hysteresis (300 s), then leaking again: still the same warning
    await reading(hub, "WL-1", "water_leak", s(240), 0.0)
    await clock.run(s(270))
    await clock.run(s(400))
    [warning] = await warnings_of(hub)
    assert (warning["warning_id"], warning["status"]) == (first_id, "active")
    assert same_time(warning["last_at"], s(210))
    await reading(hub, "WL-1", "water_leak", s(420), 1.0)
    await clock.run(s(430))
    [warning] = await warnings_of(hub)
    assert (warning["warning_id"], warning["status"]) == (first_id, "active")
    assert same_time(warning["last_at"], s(430))

    # dry for the whole hysteresis: cleared at the evaluation that clears it
    await reading(hub, "WL-1", "water_leak", s(480), 0.0)
    await clock.run(s(490))
    await clock.run(s(700))
    assert [w["status"] for w in await warnings_of(hub)] == ["active"]
    report = await clock.run(s(790))
    assert report["cleared"] == [first_id]
    [warning] = await warnings_of(hub)
    assert warning["status"] == "cleared"
    assert same_time(warning["cleared_at"], s(790))
    assert same_time(warning["last_at"], s(430))

    # a new leak after the clear: the hold time again, then a new warning
    await reading(hub, "WL-1", "water_leak", s(900), 1.0)
    await clock.run(s(960))
    assert len(await warnings_of(hub)) == 1
    await reading(hub, "WL-1", "water_leak", s(960), 1.0)
    await clock.run(s(1030))
    newest, oldest = await warnings_of(hub)
    assert oldest["warning_id"] == first_id and oldest["status"] == "cleared"
    assert newest["warning_id"] != first_id and newest["status"] == "active"
    assert same_time(newest["first_at"], s(900))
    # a second run at the same time changes nothing
    report = await clock.run(s(1030))
    assert report["opened"] == [] and report["cleared"] == []
    assert len(await warnings_of(hub)) == 2


async def test_a_flap_shorter_than_the_hold_time_opens_nothing(hub: Hub, app: FastAPI) -> None:
    await platform_with_room(hub)
    await only_rules(hub, rule("smoke", name_zh="烟感告警", target="smoke", hold_s=120, clear_s=0))
    clock = Clock(app, hub)
    t = now_utc() - timedelta(hours=2)
    for start in (0, 200, 400):  # smoke for 60 s, then clear air, three times
        await reading(hub, "SM-1", "smoke", t + timedelta(seconds=start), 1.0)
        await clock.run(t + timedelta(seconds=start + 30))
        await reading(hub, "SM-1", "smoke", t + timedelta(seconds=start + 60), 1.0)
        await clock.run(t + timedelta(seconds=start + 90))
        await reading(hub, "SM-1", "smoke", t + timedelta(seconds=start + 100), 0.0)
        await clock.run(t + timedelta(seconds=start + 110))
    assert await warnings_of(hub) == []
    # a sample that stops standing ends the condition as well: a lone reading then silence
    await reading(hub, "SM-1", "smoke", t + timedelta(seconds=600), 1.0)
    await clock.run(t + timedelta(seconds=610))
    await clock.run(t + timedelta(seconds=721))  # 600 + 2 × 60: no longer stands
    await clock.run(t + timedelta(seconds=760))
    assert await warnings_of(hub) == []
    # with a zero hold time the same flap is a warning at once, and clears at once (clear_s 0)
    await only_rules(hub, rule("smoke", name_zh="烟感告警", target="smoke", hold_s=0, clear_s=0))
    await reading(hub, "SM-1", "smoke", t + timedelta(seconds=800), 1.0)
    await clock.run(t + timedelta(seconds=805))
    await reading(hub, "SM-1", "smoke", t + timedelta(seconds=830), 0.0)
    await clock.run(t + timedelta(seconds=835))
    [warning] = await warnings_of(hub)
    assert warning["status"] == "cleared"
    assert same_time(warning["first_at"], t + timedelta(seconds=800))
    assert same_time(warning["cleared_at"], t + timedelta(seconds=835))


async def test_a_disabled_rule_clears_its_open_warnings_after_its_hysteresis(hub: Hub, app: FastAPI) -> None:
    await platform_with_room(hub)
    leak = rule("leak", hold_s=0, clear_s=60)
    await only_rules(hub, leak)
    clock = Clock(app, hub)
    t = now_utc() - timedelta(hours=1)
    await reading(hub, "WL-1", "water_leak", t, 1.0)
    await clock.run(t + timedelta(seconds=10))
    [warning] = await warnings_of(hub, status="active")
    data_of(await put_rules(hub, leak | {"enabled": False}))
    await reading(hub, "WL-1", "water_leak", t + timedelta(seconds=30), 1.0)
    await clock.run(t + timedelta(seconds=40))
    assert [w["status"] for w in await warnings_of(hub)] == ["active"]
    await clock.run(t + timedelta(seconds=100))
    [cleared] = await warnings_of(hub)
    assert (cleared["warning_id"], cleared["status"]) == (warning["warning_id"], "cleared")


async def test_a_stale_feed_and_an_indicator_below_target_raise_warnings(hub: Hub, app: FastAPI) -> None:
    await hub.create_platform(GZ, "440100", expected_intervals={"alarms": 60})
    await only_rules(
        hub,
        rule(
            "stale",
            name_zh="数据上报中断",
            subject="freshness",
            target="*",
            condition={"stale": True},
            level=3,
            hold_s=0,
            clear_s=0,
        ),
        rule(
            "avail",
            name_zh="可用性低于目标",
            subject="indicator",
            target="availability",
            condition={"status_in": ["fail"]},
            level=2,
            hold_s=0,
            clear_s=0,
        ),
    )
    now = now_utc()
    alarm = {"alarm_id": "A1", "level": 2, "status": "active", "title": "告警", "first_at": rfc3339(now)}
    assert (await hub.push("alarms", batch(GZ, "al-1", [alarm]))).status_code == 200
    # availability 90 % over the last minutes of this month, far below the 99.99 % target
    start = max(now - timedelta(minutes=10), month_start(now))
    samples = [
        {"metric": "service.availability", "ts": rfc3339(start + timedelta(seconds=30 * i)), "value": 90.0}
        for i in range(int((now - start).total_seconds() // 30))
    ] or [{"metric": "service.availability", "ts": rfc3339(now), "value": 90.0}]
    assert (await hub.push("metrics", batch(GZ, "m-1", samples))).status_code == 200

    clock = Clock(app, hub)
    await clock.run(now + timedelta(seconds=60))  # the alarms feed is 60 s old: fresh (stale after 120 s)
    by_subject = {w["subject_key"]: w for w in await warnings_of(hub)}
    assert set(by_subject) == {"indicator:availability"}
    avail = by_subject["indicator:availability"]
    assert (avail["rule_code"], avail["level"], avail["status"]) == ("avail", 2, "active")
    assert avail["evidence"]["code"] == "availability" and avail["evidence"]["status"] == "fail"
    assert avail["evidence"]["value"] == pytest.approx(90.0)
    assert avail["title"] == "可用性低于目标：可用性"

    await clock.run(now + timedelta(seconds=180))
    by_subject = {w["subject_key"]: w for w in await warnings_of(hub, status="active")}
    # the metrics feed is stale too (300 s default, 600 s limit): not yet; alarms (60 s) is
    assert set(by_subject) == {"indicator:availability", "feed:alarms"}
    stale = by_subject["feed:alarms"]
    assert (stale["rule_code"], stale["level"]) == ("stale", 3)
    assert stale["evidence"]["kind"] == "alarms" and stale["evidence"]["stale_after_s"] == 120
    assert stale["title"] == "数据上报中断：告警（alarms）"
    received = datetime.fromisoformat(stale["evidence"]["newest_at"])
    assert same_time(stale["first_at"], received + timedelta(seconds=120))  # when it went stale

    # alarms are now expected hourly: the feed is fresh again and the warning clears (clear_s 0)
    response = await hub.http.patch(
        f"/api/v1/admin/platforms/{GZ}",
        json={"expected_intervals": {"alarms": 3600}},
        headers=hub.auth(hub.admin),
    )
    assert response.status_code == 200, response.text
    report = await clock.run(now + timedelta(seconds=240))
    assert report["cleared"] == [stale["warning_id"]]
    statuses = {w["subject_key"]: w["status"] for w in await warnings_of(hub)}
    assert statuses == {"feed:alarms": "cleared", "indicator:availability": "active"}
    # an evaluation older than the last one (another process lagging behind) changes nothing
    report = await clock.run(now + timedelta(seconds=200))
    assert report["opened"] == [] and report["cleared"] == []


def month_start(now: datetime) -> datetime:
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


# --- the rules (§10) --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"level": 5}, "rules[0].level", "级别"),
        ({"level": 0}, "rules[0].level", "级别"),
        ({"hold_s": -1}, "rules[0].hold_s", "时长"),
        ({"clear_s": -5}, "rules[0].clear_s", "时长"),
        ({"subject": "weather"}, "rules[0]", "subject"),
        ({"target": "no_such_point"}, "rules[0]", "target"),
        ({"condition": {"status_in": ["fail"]}}, "rules[0]", "条件"),
        ({"condition": {"state_in": ["boiling"]}}, "rules[0]", "未知取值"),
        ({"condition": {"state_in": []}}, "rules[0]", "条件"),
        ({"condition": {"state_in": ["critical"], "extra": 1}}, "rules[0]", "条件"),
        ({"subject": "freshness", "target": "logs", "condition": {"stale": False}}, "rules[0]", "stale"),
        (
            {"subject": "indicator", "target": "pue", "condition": {"state_in": ["critical"]}},
            "rules[0]",
            "条件",
        ),
        ({"rule_code": "Bad Code"}, "rules[0].rule_code", "规则编码"),
        ({"name_zh": "  "}, "rules[0].name_zh", "非空"),
    ],
)
async def test_rule_changes_are_validated_with_zh_messages(
    hub: Hub, change: dict[str, Any], loc: str, words: str
) -> None:
    body = assert_error(await put_rules(hub, rule("ok"), rule("bad") | change), 422, "1002")
    # the second rule is the bad one
    loc = loc.replace("rules[0]", "rules[1]")
    assert any(e["loc"] == loc and words in e["message"] for e in body["errors"]), body
    assert "ok" not in {r["rule_code"] for r in await hub.items(RULES)}  # nothing was stored


async def test_rules_are_created_replaced_and_kept(hub: Hub) -> None:
    before = {r["rule_code"]: r for r in await hub.items(RULES)}
    assert_error(await put_rules(hub, rule("twice"), rule("twice")), 422, "1002")
    assert_error(await hub.http.put(RULES, json={"rules": []}, headers=hub.auth(hub.admin)), 422, "1002")
    created = data_of(await put_rules(hub, rule("leak"), rule("smoke", target="smoke", level=2)))["items"]
    listed = {r["rule_code"]: r for r in created}
    assert set(listed) == set(before) | {"leak", "smoke"}
    assert listed["smoke"]["level"] == 2 and listed["smoke"]["enabled"] is True
    replaced = data_of(
        await put_rules(hub, rule("smoke", target="*", level=4, hold_s=0, description="全部测点"))
    )["items"]  # the answer is GET's first page
    listed = {r["rule_code"]: r for r in replaced}
    assert (listed["smoke"]["target"], listed["smoke"]["level"], listed["smoke"]["hold_s"]) == ("*", 4, 0)
    assert listed["smoke"]["description"] == "全部测点"
    assert listed["leak"] == {r["rule_code"]: r for r in created}["leak"]  # not named: unchanged
    assert await hub.items(RULES) == replaced
    await hub.create_platform(GZ, "440100")
    scopes: dict[str, dict[str, Any]] = {
        "regulator": {"regions": ["440000"]},
        "provider": {"platforms": [GZ]},
        "integrator": {"regions": ["440000"], "kinds": ["indicators"]},
    }
    for role, scope in scopes.items():
        key = await hub.create_client(role, **scope)
        assert_error(await hub.get(RULES, key), 403, "2006")
        assert_error(await put_rules(hub, rule("hijack"), key=key), 403, "2006")
    assert "hijack" not in {r["rule_code"] for r in await hub.items(RULES)}


# --- the list and its scope -------------------------------------------------------------------


async def two_platforms_with_warnings(hub: Hub, app: FastAPI) -> datetime:
    await platform_with_room(hub, GZ, "440100")
    await platform_with_room(hub, SZ, "440300")
    await only_rules(
        hub,
        rule("leak", hold_s=0, clear_s=0, level=1),
        rule("smoke", name_zh="烟感", target="smoke", hold_s=0, clear_s=0, level=3),
    )
    clock = Clock(app, hub)
    t = now_utc() - timedelta(hours=1)
    await reading(hub, "WL-1", "water_leak", t, 1.0, code=GZ)
    await reading(hub, "SM-1", "smoke", t + timedelta(seconds=1), 1.0, code=GZ)
    await reading(hub, "WL-9", "water_leak", t + timedelta(seconds=2), 1.0, code=SZ)
    await clock.run(t + timedelta(seconds=10))
    await reading(hub, "SM-1", "smoke", t + timedelta(seconds=20), 0.0, code=GZ)
    await clock.run(t + timedelta(seconds=30))  # GZ's smoke clears
    return t


async def test_the_list_filters_pages_and_orders_newest_first(hub: Hub, app: FastAPI) -> None:
    t = await two_platforms_with_warnings(hub, app)
    everything = await warnings_of(hub)
    assert [(w["platform_code"], w["subject_key"], w["status"]) for w in everything] == [
        (SZ, "point:R1/WL-9", "active"),
        (GZ, "point:R1/SM-1", "cleared"),
        (GZ, "point:R1/WL-1", "active"),
    ]
    assert set(everything[0]) == {
        "warning_id",
        "platform_code",
        "rule_code",
        "subject_key",
        "level",
        "status",
        "title",
        "first_at",
        "last_at",
        "cleared_at",
        "evidence",
    }
    assert await warnings_of(hub, limit=1) == everything  # one per page, each exactly once
    page = data_of(await hub.get("/api/v1/warnings", limit=2, with_total="true"))
    assert page["total"] == 3 and page["next_cursor"]
    # a cursor is bound to its filters
    assert_error(await hub.get("/api/v1/warnings", status="active", cursor=page["next_cursor"]), 400, "1001")

    def codes(items: list[dict[str, Any]]) -> list[str]:
        return [w["subject_key"] for w in items]

    assert codes(await warnings_of(hub, status="active")) == ["point:R1/WL-9", "point:R1/WL-1"]
    assert codes(await warnings_of(hub, status="cleared")) == ["point:R1/SM-1"]
    assert codes(await warnings_of(hub, level_max=2)) == ["point:R1/WL-9", "point:R1/WL-1"]
    assert codes(await warnings_of(hub, rule_code="smoke")) == ["point:R1/SM-1"]
    assert codes(await warnings_of(hub, rule_code="smoke,leak", platform_code=GZ)) == [
        "point:R1/SM-1",
        "point:R1/WL-1",
    ]
    assert codes(await warnings_of(hub, region_code="440300")) == ["point:R1/WL-9"]
    assert codes(await warnings_of(hub, region_code="44")) == codes(everything)
    assert codes(await warnings_of(hub, **{"from": rfc3339(t + timedelta(seconds=1))})) == [
        "point:R1/WL-9",
        "point:R1/SM-1",
    ]
    assert codes(await warnings_of(hub, to=rfc3339(t + timedelta(seconds=1)))) == ["point:R1/WL-1"]
    assert_error(await hub.get("/api/v1/warnings", status="open"), 400, "1001")
    assert_error(await hub.get("/api/v1/warnings", level_max=5), 400, "1001")
    assert_error(await hub.get("/api/v1/warnings", **{"from": "2026-11-01T00:00:00"}), 400, "1001")
    assert_error(await hub.get("/api/v1/warnings", platform_code="NO-SUCH"), 404, "3002")


async def test_the_list_is_scoped(hub: Hub, app: FastAPI) -> None:
    await two_platforms_with_warnings(hub, app)
    regulator = await hub.create_client("regulator", regions=["440100"])
    provider = await hub.create_client("provider", platforms=[SZ])
    reader = await hub.create_client("integrator", platforms=[GZ], kinds=["indicators"])
    alarms_only = await hub.create_client("integrator", regions=["440000"], kinds=["alarms"])

    assert {w["platform_code"] for w in await warnings_of(hub, regulator)} == {GZ}
    assert {w["platform_code"] for w in await warnings_of(hub, provider)} == {SZ}
    assert {w["platform_code"] for w in await warnings_of(hub, reader)} == {GZ}
    assert_error(await hub.get("/api/v1/warnings", alarms_only), 403, "2006")
    for key in (regulator, reader):
        assert_error(await hub.get("/api/v1/warnings", key, platform_code=SZ), 403, "2006")
        assert_error(await hub.get("/api/v1/warnings", key, region_code="440300"), 403, "2006")
        # an unregistered platform is refused the same way (existence does not leak)
        assert_error(await hub.get("/api/v1/warnings", key, platform_code="NO-SUCH"), 403, "2006")
    assert {w["platform_code"] for w in await warnings_of(hub, regulator, region_code="4401")} == {GZ}
