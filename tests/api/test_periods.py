"""Closed periods (§7.9): a month's indicators frozen after the grace time, never changed by later
data, and recomputed only by an explicit admin action that adds a version.

The hub here keeps raw samples for 400 days, so last month's data can be pushed whatever today is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from app.config import Settings
from app.db import create_sessionmaker
from app.main import create_app
from app.models import IndicatorPolicy, IndicatorSnapshot
from app.schemas.common import ClientCreate
from app.security.keys import load_server_key
from app.services import periods
from app.services.clients import create_client
from app.services.indicators import Window, month_window
from app.services.periods import closed_snapshot, freeze_closed_periods
from tests.helpers import Hub, batch, rfc3339

TZ = ZoneInfo("Asia/Shanghai")
P1, P2 = "GD-GZ-PER-01", "GD-SZ-PER-01"
RECOMPUTE = "/api/v1/admin/indicators/recompute"


@pytest.fixture
async def long_hub(app: FastAPI, settings: Settings) -> AsyncIterator[tuple[Hub, FastAPI]]:
    """The hub (on the database ``app`` has just emptied) keeping raw samples for 400 days."""
    relaxed = settings.model_copy(update={"retention_metrics_days": 400, "retention_environment_days": 400})
    application = create_app(relaxed)
    async with application.state.engine.begin() as conn:
        # the ``periods`` policy as the migration seeds it (a test may change it through §10)
        seeded = await conn.execute(select(IndicatorPolicy.code).where(IndicatorPolicy.code == "periods"))
        if seeded.first() is None:
            await conn.execute(
                IndicatorPolicy.__table__.insert(),
                [
                    {
                        "code": "periods",
                        "name_zh": "统计周期",
                        "params": {"grace_days": 5},
                        "source": "§7.9",
                        "updated_at": datetime.now(UTC),
                    }
                ],
            )
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        async with create_sessionmaker(application.state.engine)() as session:
            created = await create_client(
                session, load_server_key(relaxed), ClientCreate(name="root", role="admin")
            )
            await session.commit()
        yield Hub(client, created["bearer"], relaxed), application
    await application.state.audit_writer.close()
    await application.state.rate_limiter.close()
    await application.state.engine.dispose()


def data_of(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == "0"
    return body["data"]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    return response.json()  # type: ignore[no-any-return]


def last_month() -> Window:
    now = datetime.now(UTC)
    this = month_window(None, TZ, now)
    return month_window(None, TZ, this.start - timedelta(seconds=1))


_batches = 0


async def availability(hub: Hub, platform: str, start: datetime, value: float, minutes: int = 120) -> None:
    """``service.availability`` every 5 minutes for ``minutes`` from ``start``."""
    global _batches
    _batches += 1
    records = [
        {"metric": "service.availability", "ts": rfc3339(start + timedelta(minutes=m)), "value": value}
        for m in range(0, minutes, 5)
    ]
    response = await hub.push("metrics", batch(platform, f"avail-{_batches}", records))
    assert response.status_code == 200 and response.json()["data"]["rejected"] == 0, response.text


async def freeze(app: FastAPI, now: datetime) -> int:
    async with app.state.sessionmaker() as session:
        stored = await freeze_closed_periods(session, now=now, reporting_tz="Asia/Shanghai")
        await session.commit()
    return stored


def figure(data: dict[str, Any], code: str) -> dict[str, Any]:
    return next(item for item in data["items"] if item["code"] == code)


async def indicators(hub: Hub, key: str | None = None, **params: Any) -> dict[str, Any]:
    return data_of(await hub.get("/api/v1/indicators", key, **params))  # type: ignore[no-any-return]


async def test_a_closed_month_is_frozen_and_later_data_does_not_change_it(
    long_hub: tuple[Hub, FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, app = long_hub
    monkeypatch.setattr(periods, "HISTORY_MONTHS", 2)  # last month and the one before: enough here
    month = last_month()
    await hub.create_platform(P1, "440106")
    await hub.create_platform(P2, "440300")
    day = month.start + timedelta(days=3)
    await availability(hub, P1, day, 100.0)
    await availability(hub, P2, day, 99.0)

    # every platform and every region prefix among them
    scopes = {("platform", P1), ("platform", P2), ("region", "44"), ("region", "4401"), ("region", "440106")}
    scopes |= {("region", "4403")}
    # last month is still inside the grace time (5 days after it ended): only the month before it
    assert await freeze(app, month.end + timedelta(days=4)) == len(scopes)
    live = await indicators(hub, platform_code=P1, period=month.period)
    assert live["closed"] is False and live["version"] is None

    # after the grace time
    frozen_at = max(datetime.now(UTC), month.end + timedelta(days=5, hours=1))
    assert await freeze(app, frozen_at) == len(scopes)
    for scope, code in scopes:
        async with app.state.sessionmaker() as session:
            snapshot = await closed_snapshot(session, scope, code, month.period or "")
        assert snapshot is not None, (scope, code)
        assert (snapshot.version, snapshot.reason, snapshot.requested_by) == (1, "grace", None)
        assert (snapshot.from_ts, snapshot.to_ts) == (month.start, month.end)
    assert await freeze(app, frozen_at + timedelta(hours=1)) == 0  # once only

    first = await indicators(hub, platform_code=P1, period=month.period)
    assert (first["closed"], first["version"]) == (True, 1)
    assert datetime.fromisoformat(first["frozen_at"]) == frozen_at
    assert figure(first, "availability")["value"] == pytest.approx(100.0)
    region = await indicators(hub, region_code="440000", period=month.period)
    assert (region["closed"], region["version"]) == (True, 1)
    assert figure(region, "availability")["value"] == pytest.approx(99.5)

    # an outage reported afterwards, inside the closed month: the published figure stays
    await availability(hub, P1, day + timedelta(days=1), 0.0)
    again = await indicators(hub, platform_code=P1, period=month.period)
    assert again["items"] == first["items"] and again["version"] == 1
    assert (await indicators(hub, region_code="440000", period=month.period))["items"] == region["items"]
    assert await freeze(app, frozen_at + timedelta(hours=2)) == 0

    # an explicit recompute: a new version from the data stored now, the old one kept
    admin_key = hub.admin.split(".")[0]
    created = data_of(
        await hub.http.post(
            RECOMPUTE,
            json={"period": month.period, "platform_code": P1, "note": "补报故障时段"},
            headers=hub.auth(hub.admin),
        ),
        201,
    )
    assert (created["scope"], created["scope_code"], created["period"], created["version"]) == (
        "platform",
        P1,
        month.period,
        2,
    )
    assert (created["reason"], created["requested_by"], created["note"]) == (
        "recompute",
        admin_key,
        "补报故障时段",
    )
    recomputed = await indicators(hub, platform_code=P1, period=month.period)
    assert (recomputed["closed"], recomputed["version"]) == (True, 2)
    # 100 % for 125 min (its last sample now stands until the cap, 2 × 5 min), 0 % for 120 min
    assert figure(recomputed, "availability")["value"] == pytest.approx(100.0 * 125 / 245)
    assert recomputed["items"] == created["items"]
    # the region is recomputed on its own request only
    assert (await indicators(hub, region_code="440000", period=month.period))["version"] == 1
    region2 = data_of(
        await hub.http.post(
            RECOMPUTE, json={"period": month.period, "region_code": "440000"}, headers=hub.auth(hub.admin)
        ),
        201,
    )
    assert (region2["scope"], region2["scope_code"], region2["version"]) == ("region", "44", 2)
    # pooled over the platforms' sample time: P1 as above, P2 99 % for 120 min
    assert figure(region2, "availability")["value"] == pytest.approx((100.0 * 125 + 99.0 * 120) / 365)
    async with app.state.sessionmaker() as session:
        versions = (
            await session.execute(
                select(IndicatorSnapshot.version)
                .where(IndicatorSnapshot.scope == "platform", IndicatorSnapshot.scope_code == P1)
                .where(IndicatorSnapshot.period == month.period)
                .order_by(IndicatorSnapshot.version)
            )
        ).scalars()
        assert list(versions) == [1, 2]


async def test_the_grace_time_is_the_policy_s(
    long_hub: tuple[Hub, FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub, app = long_hub
    monkeypatch.setattr(periods, "HISTORY_MONTHS", 1)
    month = last_month()
    await hub.create_platform(P1, "440106")
    assert await freeze(app, month.end + timedelta(days=2, hours=1)) == 0
    response = await hub.http.put(
        "/api/v1/admin/indicator-policy",
        json={"policies": [{"code": "periods", "params": {"grace_days": 2}}]},
        headers=hub.auth(hub.admin),
    )
    assert response.status_code == 200, response.text
    assert await freeze(app, month.end + timedelta(days=2, hours=1)) == 4  # P1, 44, 4401, 440106


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"platform_code": P1}, 422, "1002"),  # no period
        ({"period": "2026-13", "platform_code": P1}, 422, "1002"),
        ({"period": "202610", "platform_code": P1}, 422, "1002"),
        ({"period": "PAST"}, 422, "1002"),  # neither platform nor region
        ({"period": "PAST", "platform_code": P1, "region_code": "440100"}, 422, "1002"),
        ({"period": "PAST", "region_code": "4401000"}, 422, "1002"),
        ({"period": "PAST", "platform_code": P1, "extra": 1}, 422, "1002"),
        ({"period": "THIS", "platform_code": P1}, 400, "1001"),  # not ended yet
        ({"period": "PAST", "platform_code": "NO-SUCH"}, 404, "3002"),
        ({"period": "PAST", "region_code": "110000"}, 404, "3002"),  # no platform there
    ],
)
async def test_a_recompute_is_validated(hub: Hub, body: dict[str, Any], status: int, code: str) -> None:
    await hub.create_platform(P1, "440106")
    periods_by_name = {"PAST": last_month().period, "THIS": month_window(None, TZ, datetime.now(UTC)).period}
    if body.get("period") in periods_by_name:
        body = {**body, "period": periods_by_name[body["period"]]}
    answer = assert_error(
        await hub.http.post(RECOMPUTE, json=body, headers=hub.auth(hub.admin)), status, code
    )
    if status == 422:
        assert answer["errors"] and all(e["message"] for e in answer["errors"])


async def test_only_the_admin_recomputes(hub: Hub) -> None:
    await hub.create_platform(P1, "440106")
    body = {"period": last_month().period, "platform_code": P1}
    for role, scope in (
        ("regulator", {"regions": ["440000"]}),
        ("provider", {"platforms": [P1]}),
        ("integrator", {"platforms": [P1], "kinds": ["indicators"]}),
    ):
        key = await hub.create_client(role, **scope)
        assert_error(await hub.http.post(RECOMPUTE, json=body, headers=hub.auth(key)), 403, "2006")


def _codes_in(value: Any) -> set[str]:
    """Every ``platform_code`` anywhere in an answer (items, components, series)."""
    if isinstance(value, dict):
        found = {str(value["platform_code"])} if value.get("platform_code") else set()
        return found.union(*(_codes_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_codes_in(v) for v in value))
    return set()


async def test_a_closed_region_answers_a_platform_bound_caller_only_its_own_platforms(
    long_hub: tuple[Hub, FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """§7.9 last sentences: scope holds for frozen figures as for live ones."""
    hub, app = long_hub
    monkeypatch.setattr(periods, "HISTORY_MONTHS", 1)
    month = last_month()
    mine, theirs = "GD-GZ-PER-A", "GD-GZ-PER-B"
    await hub.create_platform(mine, "440106")
    await hub.create_platform(theirs, "440111")
    day = month.start + timedelta(days=3)
    await availability(hub, mine, day, 100.0)
    await availability(hub, theirs, day, 90.0)
    assert await freeze(app, max(datetime.now(UTC), month.end + timedelta(days=5, hours=1))) > 0

    provider = await hub.create_client("provider", platforms=[mine])
    integrator = await hub.create_client("integrator", platforms=[mine], kinds=["indicators"])
    own_frozen = await indicators(hub, provider, platform_code=mine, period=month.period)
    assert own_frozen["closed"] is True
    live_shape = await indicators(hub, provider, region_code="4401")  # this month: the live path
    assert live_shape["platforms"] == [mine]
    for key in (provider, integrator):
        for region in ("4401", "440000"):
            answer = await indicators(hub, key, region_code=region, period=month.period)
            assert answer["platforms"] == [mine], answer
            assert theirs not in str(answer), answer
            assert _codes_in(answer) <= {mine}
            assert set(answer) == set(live_shape)
            assert (answer["region_code"], answer["closed"], answer["version"]) == (region, True, 1)
            # the pooled figures of its own platforms in the region: here, its one platform's
            assert answer["items"] == own_frozen["items"]
            assert figure(answer, "availability")["value"] == pytest.approx(100.0)

    regulator = await hub.create_client("regulator", regions=["4401"])
    pooled = await indicators(hub, regulator, region_code="4401", period=month.period)
    assert pooled["platforms"] == [mine, theirs] and (pooled["closed"], pooled["version"]) == (True, 1)
    assert figure(pooled, "availability")["value"] == pytest.approx(95.0)
    assert _codes_in(figure(pooled, "availability")["components"]) == {mine, theirs}
    # a regulator of another region is refused the region, frozen or not
    elsewhere = await hub.create_client("regulator", regions=["4403"])
    refused = await hub.get("/api/v1/indicators", elsewhere, region_code="4401", period=month.period)
    assert_error(refused, 403, "2006")


async def test_a_provider_of_several_platforms_in_a_closed_region_sees_only_their_pool(
    long_hub: tuple[Hub, FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several own platforms among others: their pooled figures, never the third platform's."""
    hub, app = long_hub
    monkeypatch.setattr(periods, "HISTORY_MONTHS", 1)
    month = last_month()
    first, second, other = "GD-GZ-PER-A", "GD-GZ-PER-C", "GD-GZ-PER-B"
    for code in (first, second, other):
        await hub.create_platform(code, "440106")
    day = month.start + timedelta(days=3)
    for code, value in ((first, 100.0), (second, 98.0), (other, 50.0)):
        await availability(hub, code, day, value)
    assert await freeze(app, max(datetime.now(UTC), month.end + timedelta(days=5, hours=1))) > 0

    provider = await hub.create_client("provider", platforms=[first, second])
    answer = await indicators(hub, provider, region_code="4401", period=month.period)
    assert answer["platforms"] == [first, second]
    assert other not in str(answer) and _codes_in(answer) <= {first, second}
    assert figure(answer, "availability")["value"] == pytest.approx(99.0)
    # no frozen version pools exactly these two: their figures come from the data stored now
    assert (answer["closed"], answer["version"]) == (False, None)

    # owning every platform of the region: the region's frozen snapshot is theirs to see
    everything = await hub.create_client("provider", platforms=[first, second, other])
    whole = await indicators(hub, everything, region_code="4401", period=month.period)
    admin = await indicators(hub, region_code="4401", period=month.period)
    assert (whole["closed"], whole["version"], whole["items"]) == (True, 1, admin["items"])
