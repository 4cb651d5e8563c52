"""§7 indicators and §6.6 thresholds through the API: parameters, scope, no_data, threshold
administration and re-evaluation (the reference dataset is in test_indicators_reference.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.services.environment_states import magnus_dew_point, reevaluate_marked
from tests.api.test_query_lists import ago, assert_error, data_of, push_ok, room
from tests.helpers import Hub, batch, rfc3339

GZ, SZ = "GD-GZ-01", "GD-SZ-01"
CODES = [
    "availability",
    "domestic_rate",
    "storage_bandwidth",
    "pue",
    "env_compliance",
    "utilisation",
    "freshness",
]


def env(point: str, point_type: str, at: Any, value: float, **fields: Any) -> dict[str, Any]:
    return {
        "room_code": "R1",
        "point_code": point,
        "point_type": point_type,
        "ts": rfc3339(at),
        "value": value,
        "interval_s": 60,
        **fields,
    }


async def indicators(hub: Hub, key: str | None = None, **params: Any) -> dict[str, Any]:
    return data_of(await hub.get("/api/v1/indicators", key, **params))


async def states(hub: Hub, point: str) -> list[str | None]:
    response = await hub.get(
        "/api/v1/environment/series",
        platform_code=GZ,
        room_code="R1",
        point_code=point,
        step="raw",
        **{"from": rfc3339(ago(hours=3)), "to": rfc3339(ago(minutes=-1))},
    )
    return [p["state"] for p in data_of(response)["points"]]


async def test_a_platform_without_data_answers_no_data_for_every_indicator(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    data = await indicators(hub, platform_code=GZ)
    assert [i["code"] for i in data["items"]] == CODES
    assert {i["status"] for i in data["items"]} == {"no_data"}
    assert data["closed"] is False and data["platforms"] == [GZ] and data["period"]
    for item in data["items"]:
        assert {
            "value",
            "unit",
            "numerator",
            "denominator",
            "target",
            "basis",
            "coverage",
            "components",
        } <= set(item)


async def test_parameters_and_scope(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    await hub.create_platform(SZ, "440300")
    assert_error(await hub.get("/api/v1/indicators", platform_code=GZ, region_code="44"), 400, "1001")
    assert_error(await hub.get("/api/v1/indicators", period="2026-13"), 400, "1001")
    assert_error(await hub.get("/api/v1/indicators", period="2026-10", to=rfc3339(ago(hours=1))), 400, "1001")
    assert_error(await hub.get("/api/v1/indicators", **{"from": rfc3339(ago(hours=1))}), 400, "1001")
    october = await indicators(hub, region_code="44", period="2026-10")
    assert october["from"].startswith("2026-10-01T00:00:00+08:00") and october["to"].startswith(
        "2026-11-01T00:00"
    )
    assert october["platforms"] == [GZ, SZ]
    regulator = await hub.create_client("regulator", regions=["440300"])
    assert (await indicators(hub, regulator))["platforms"] == [SZ]
    assert_error(await hub.get("/api/v1/indicators", regulator, platform_code=GZ), 403, "2006")
    outsider = await hub.create_client("integrator", regions=["44"], kinds=["assets"])
    assert_error(await hub.get("/api/v1/indicators", outsider), 403, "2006")


async def test_states_spike_and_excursion_and_a_threshold_override(hub: Hub, app: Any) -> None:
    await hub.create_platform(GZ, "440100")
    await push_ok(hub, "rooms", batch(GZ, "r-1", [room("R1")]))
    t0 = ago(hours=2).replace(second=0, microsecond=0)
    temps = [22.0] * 10 + [27.5, 27.6] + [22.0] * 5 + [28.0] * 10 + [22.0] * 3
    await push_ok(
        hub,
        "environment",
        batch(
            GZ,
            "e-1",
            [env("T1", "cold_aisle_temp", t0 + timedelta(minutes=i), v) for i, v in enumerate(temps)],
        ),
    )
    got = await states(hub, "T1")
    assert got == ["normal"] * 10 + ["caution"] * 2 + ["normal"] * 5 + ["critical"] * 10 + ["normal"] * 3
    window = {"from": rfc3339(t0), "to": rfc3339(t0 + timedelta(minutes=30))}
    compliance = next(
        i
        for i in (await indicators(hub, platform_code=GZ, **window))["items"]
        if i["code"] == "env_compliance"
    )
    excursions = [c for c in compliance["components"] if c["code"] == "excursion"]
    assert len(excursions) == 1 and excursions[0]["peak_value"] == 28.0
    assert excursions[0]["duration_s"] == 600
    assert compliance["denominator"] == pytest.approx(30 * 60)
    assert compliance["value"] == pytest.approx(100 * (1 - 600 / 1800))
    assert compliance["status"] == "fail"

    # a room override raising the bound to 29 ℃ turns the excursion back into normal samples
    body = {
        "overrides": [
            {
                "platform_code": GZ,
                "room_code": "R1",
                "point_type": "cold_aisle_temp",
                "lower_critical": 18,
                "lower_caution": 19,
                "upper_caution": 28.5,
                "upper_critical": 29,
                "dwell_s": 300,
                "source": "厂商规格 (vendor spec)",
            }
        ]
    }
    response = await hub.http.put("/api/v1/admin/thresholds", json=body, headers=hub.auth(hub.admin))
    assert response.status_code == 200, response.text
    overrides = await hub.items("/api/v1/admin/thresholds", applies_to="platform,room")
    assert [(o["applies_to"], o["room_code"]) for o in overrides] == [("room", "R1")]
    await reevaluate_marked(app.state.sessionmaker)
    assert await states(hub, "T1") == ["normal"] * 30
    compliance = next(
        i
        for i in (await indicators(hub, platform_code=GZ, **window))["items"]
        if i["code"] == "env_compliance"
    )
    assert [c for c in compliance["components"] if c["code"] == "excursion"] == []
    assert compliance["value"] == 100.0


async def test_dew_point_is_derived_from_temperature_and_humidity(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    await push_ok(hub, "rooms", batch(GZ, "r-1", [room("R1")]))
    t0 = ago(hours=1).replace(second=0, microsecond=0)
    place = {"rack_code": "A01", "position": "cold_aisle"}
    await push_ok(
        hub,
        "environment",
        batch(
            GZ,
            "e-1",
            [
                env("T1", "cold_aisle_temp", t0, 24.0, **place),
                env("H1", "cold_aisle_rh", t0 + timedelta(seconds=10), 50.0, **place),
            ],
        ),
    )
    rooms = data_of(await hub.get("/api/v1/rooms", platform_code=GZ))["items"]
    points = {p["point_code"]: p for p in rooms[0]["points"]}
    assert points["dp~H1"]["point_type"] == "cold_aisle_dew_point"
    assert points["dp~H1"]["value"] == pytest.approx(magnus_dew_point(24.0, 50.0), abs=1e-3)
    assert points["dp~H1"]["value"] == pytest.approx(12.94, abs=0.01)
    assert points["dp~H1"]["state"] == "normal"


async def test_threshold_administration_is_validated(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    put = hub.http.put
    bad_order = {
        "defaults": [{"point_type": "ups_load", "upper_caution": 95, "upper_critical": 90, "source": "x"}]
    }
    assert_error(
        await put("/api/v1/admin/thresholds", json=bad_order, headers=hub.auth(hub.admin)), 422, "1002"
    )
    no_room = {
        "overrides": [{"platform_code": GZ, "room_code": "NOPE", "point_type": "ups_load", "source": "x"}]
    }
    assert_error(
        await put("/api/v1/admin/thresholds", json=no_room, headers=hub.auth(hub.admin)), 422, "1002"
    )
    regulator = await hub.create_client("regulator", regions=["44"])
    assert_error(await hub.get("/api/v1/admin/thresholds", regulator), 403, "2006")
    ok = {
        "defaults": [
            {
                "point_type": "ups_load",
                "upper_caution": 70,
                "upper_critical": 85,
                "dwell_s": 120,
                "source": "运维决定 2026-11",
            }
        ]
    }
    response = await put("/api/v1/admin/thresholds", json=ok, headers=hub.auth(hub.admin))
    assert response.status_code == 200, response.text
    catalog = data_of(await hub.get("/api/v1/catalog"))
    ups = next(p for p in catalog["point_types"] if p["point_type"] == "ups_load")
    # the catalogue shows the deployment's defaults, with the reason given
    assert (ups["thresholds"]["upper_caution"], ups["thresholds"]["upper_critical"], ups["source"]) == (
        70,
        85,
        "运维决定 2026-11",
    )
    listed = await hub.items("/api/v1/admin/thresholds", applies_to="default")
    rows = {d["point_type"]: d for d in listed}
    assert (
        rows["ups_load"]["upper_caution"],
        rows["ups_load"]["upper_critical"],
        rows["ups_load"]["dwell_s"],
    ) == (70, 85, 120)
    policy = {"policies": [{"code": "pue", "params": {"fail_above": 1.4}}]}
    response = await put("/api/v1/admin/indicator-policy", json=policy, headers=hub.auth(hub.admin))
    assert response.status_code == 200, response.text
    assert next(p for p in data_of(response) if p["code"] == "pue")["params"]["fail_above"] == 1.4
    # a policy an indicator could not compute with is refused now, naming the parameter
    for params, loc in [
        ({"fail_above": None}, "policies[0].params.fail_above"),
        ({"fail_above": "1.4"}, "policies[0].params.fail_above"),
        ({"datacenters": {"DC1": {"fail_above": "x"}}}, "policies[0].params.datacenters"),
        ({"datacenters": {"DC1": {"fail_abve": 1.2}}}, "policies[0].params.datacenters"),
    ]:
        response = await put(
            "/api/v1/admin/indicator-policy",
            json={"policies": [{"code": "pue", "params": params}]},
            headers=hub.auth(hub.admin),
        )
        assert_error(response, 422, "1002")
        assert [e["loc"] for e in response.json()["errors"]] == [loc], response.text
    bad_types = {"policies": [{"code": "env_compliance", "params": {"point_types": ["cold_aisle_tmp"]}}]}
    response = await put("/api/v1/admin/indicator-policy", json=bad_types, headers=hub.auth(hub.admin))
    assert_error(response, 422, "1002")
    hub_node = {"policies": [{"code": "pue", "params": {"datacenters": {"DC1": {"fail_above": 1.25}}}}]}
    response = await put("/api/v1/admin/indicator-policy", json=hub_node, headers=hub.auth(hub.admin))
    assert response.status_code == 200, response.text
    assert (await indicators(hub, platform_code=GZ))["items"][3]["code"] == "pue"  # still computes
    unknown = {"policies": [{"code": "pue", "params": {"fail_abve": 1.4}}]}
    assert_error(
        await put("/api/v1/admin/indicator-policy", json=unknown, headers=hub.auth(hub.admin)), 422, "1002"
    )


async def test_a_single_sample_is_never_an_excursion_with_a_dwell(hub: Hub) -> None:
    """mains_voltage: dwell 60 s, sampled every 60 s — one sample past 418 V stands 60 s, yet a
    spike is never an excursion (§6.6); two in a row are."""
    await hub.create_platform(GZ, "440100")
    await push_ok(hub, "rooms", batch(GZ, "r-1", [room("R1")]))
    t0 = ago(hours=1).replace(second=0, microsecond=0)
    volts = [380.0, 420.0, 380.0, 380.0, 420.0, 421.0, 380.0]
    samples = [env("V1", "mains_voltage", t0 + timedelta(minutes=i), v) for i, v in enumerate(volts)]
    await push_ok(hub, "environment", batch(GZ, "e-1", samples))
    assert await states(hub, "V1") == [
        "normal",
        "caution",
        "normal",
        "normal",
        "critical",
        "critical",
        "normal",
    ]


async def test_a_reporter_cannot_write_into_a_derived_point(hub: Hub) -> None:
    await hub.create_platform(GZ, "440100")
    await push_ok(hub, "rooms", batch(GZ, "r-1", [room("R1")]))
    at = ago(minutes=5)
    response = await hub.push(
        "environment",
        batch(
            GZ, "e-1", [env("dp~H1", "cold_aisle_dew_point", at, 9.0), env("T1", "cold_aisle_temp", at, 22.0)]
        ),
    )
    assert response.status_code == 200, response.text
    receipt = response.json()["data"]
    assert (receipt["accepted"], receipt["rejected"]) == (1, 1)
    assert receipt["errors"][0]["index"] == 0 and receipt["errors"][0]["loc"].endswith(".point_code")
