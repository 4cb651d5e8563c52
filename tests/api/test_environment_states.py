"""§6.6 environment states as a user reads them back: ``/environment/series?step=raw``,
``/environment/samples`` and ``/environment/latest`` after pushes, late and corrected samples and
threshold changes (contract: docs/indicators.md, "Environment states").

Default rows used here (§6.6): ``cold_aisle_temp`` 18 / 19 — 26 / 27 ℃, dwell 300 s;
``cold_aisle_rh`` — / 55 / 60 %RH; ``cold_aisle_dew_point`` 5.5 / 6.5 — 14 / 15 ℃; ``mains_voltage``
342 / 350 — 410 / 418 V, dwell 60 s; ``water_leak`` / ``smoke`` / ``ups_on_battery`` /
``breaker_trip`` critical above 0.5 at once (dwell 0). A sample stands until the next one, at most
2 × the point's interval; the newest stands one interval. Every expected state below is worked
out in this file from those rows and the values pushed.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest

from app.services.environment_states import reevaluate_marked
from tests.api.test_query_lists import data_of, room, sample
from tests.api.test_query_metrics import ENV_LATEST, ENV_SAMPLES, ENV_SERIES, hour_floor, pushed
from tests.helpers import Hub, now_utc, rfc3339

GZ, SZ = "GD-GZ-ST", "GD-SZ-ST"
THRESHOLDS = "/api/v1/admin/thresholds"


def magnus(temp: float, rh: float) -> float:
    gamma = math.log(rh / 100.0) + 17.62 * temp / (243.12 + temp)
    return 243.12 * gamma / (17.62 - gamma)


class Clock:
    def __init__(self) -> None:
        self.base = hour_floor(now_utc() - timedelta(days=1))

    def at(self, minutes: float) -> datetime:
        return self.base + timedelta(minutes=minutes)

    def window(self, hours: float = 2) -> dict[str, str]:
        return {"from": rfc3339(self.base), "to": rfc3339(self.base + timedelta(hours=hours))}


async def setup(hub: Hub, *rooms: str, platform: str = GZ, region: str = "440100") -> Clock:
    await hub.create_platform(platform, region)
    await pushed(hub, "rooms", platform, f"rooms-{platform}", [room(r) for r in rooms])
    return Clock()


def temps(
    clock: Clock, room_code: str, point: str, values: dict[int, float], **fields: Any
) -> list[dict[str, Any]]:
    return [
        sample(room_code, point, "cold_aisle_temp", clock.at(k), v, interval_s=60, **fields)
        for k, v in sorted(values.items())
    ]


async def raw(hub: Hub, clock: Clock, room_code: str, point: str, platform: str = GZ) -> list[dict[str, Any]]:
    answer = await hub.get(
        ENV_SERIES,
        platform_code=platform,
        room_code=room_code,
        point_code=point,
        step="raw",
        **clock.window(),
    )
    return data_of(answer)["points"]  # type: ignore[no-any-return]


async def states(
    hub: Hub, clock: Clock, room_code: str, point: str, platform: str = GZ
) -> dict[float, str | None]:
    """The state of every sample of one point by its minute offset, read from ``step=raw``."""
    return {
        (datetime.fromisoformat(p["ts"]) - clock.base).total_seconds() / 60: p["state"]
        for p in await raw(hub, clock, room_code, point, platform)
    }


async def sample_states(hub: Hub, clock: Clock, room_code: str, point: str) -> dict[int, str | None]:
    """The same read from ``/environment/samples`` (every item evaluated: ``evaluated_at`` set)."""
    items = data_of(
        await hub.get(
            ENV_SAMPLES, platform_code=GZ, room_code=room_code, point_code=point, limit=1000, **clock.window()
        )
    )["items"]
    assert all(item["evaluated_at"] for item in items), items
    return {
        int((datetime.fromisoformat(i["ts"]) - clock.base).total_seconds() // 60): i["state"] for i in items
    }


async def evaluated_at(hub: Hub, clock: Clock, room_code: str, point: str) -> list[datetime]:
    items = data_of(
        await hub.get(
            ENV_SAMPLES, platform_code=GZ, room_code=room_code, point_code=point, limit=1000, **clock.window()
        )
    )["items"]
    return [datetime.fromisoformat(i["evaluated_at"]) for i in items]


async def latest(hub: Hub, room_code: str, platform: str = GZ) -> dict[str, dict[str, Any]]:
    items = data_of(await hub.get(ENV_LATEST, platform_code=platform, room_code=room_code, limit=1000))[
        "items"
    ]
    return {i["point_code"]: i for i in items}


def expect(spec: list[tuple[range | list[int], str]]) -> dict[int, str]:
    return {k: state for ks, state in spec for k in ks}


async def excursions(hub: Hub, clock: Clock, platform: str = GZ) -> list[dict[str, Any]]:
    """The excursion components of ``env_compliance`` over the test's window."""
    data = data_of(await hub.get("/api/v1/indicators", platform_code=platform, **clock.window()))
    env = next(i for i in data["items"] if i["code"] == "env_compliance")
    return [c for c in env["components"] if c.get("code") == "excursion"]


def excursion_spans(found: list[dict[str, Any]], clock: Clock) -> list[tuple[str, float, float, float]]:
    """(point, start minute, end minute, peak) of each excursion, sorted."""
    return sorted(
        (
            e["point_code"],
            (datetime.fromisoformat(e["start"]) - clock.base).total_seconds() / 60,
            (datetime.fromisoformat(e["end"]) - clock.base).total_seconds() / 60,
            e["peak_value"],
        )
        for e in found
    )


async def run_evaluation_job(app: Any) -> None:
    """The evaluation job of the scheduler: re-judges every point a threshold change marked."""
    for _ in range(20):
        if await reevaluate_marked(app.state.sessionmaker) == 0:
            return
    raise AssertionError("the evaluation job did not finish")


# --- bands, dwell, runs --------------------------------------------------------------------------

#: minute → ℃ of one cold-aisle point sampled every minute (interval_s 60)
BANDS = {
    **dict.fromkeys(range(5), 22.0),
    5: 26.5,  # caution band (26 … 27)
    6: 26.5,
    7: 28.0,  # a 2-minute spike past 27: 120 s < 300 s dwell → caution, no excursion
    8: 28.0,
    **dict.fromkeys(range(9, 12), 22.0),
    **dict.fromkeys(range(12, 18), 27.5),  # 6 samples = 360 s ≥ 300 s → all critical
    18: 22.0,
    19: 22.0,
    **dict.fromkeys(range(20, 25), 18.5),  # lower caution band (18 … 19)
    25: 17.0,  # one sample below 18: 60 s → caution
    **dict.fromkeys(range(26, 30), 22.0),
    **dict.fromkeys(range(30, 35), 27.2),  # exactly 5 × 60 = 300 s: "at least the dwell" → critical
    35: 22.0,
    **dict.fromkeys(range(36, 40), 27.2),  # 240 s → caution
    **dict.fromkeys(range(40, 45), 22.0),
}
BANDS_STATES = expect(
    [
        ([0, 1, 2, 3, 4, 9, 10, 11, 18, 19, 26, 27, 28, 29, 35, 40, 41, 42, 43, 44], "normal"),
        ([5, 6, 7, 8, 20, 21, 22, 23, 24, 25, 36, 37, 38, 39], "caution"),
        ([*range(12, 18), *range(30, 35)], "critical"),
    ]
)


async def test_bands_spikes_and_runs_of_at_least_the_dwell(hub: Hub) -> None:
    clock = await setup(hub, "R1")
    await pushed(hub, "environment", GZ, "e-1", temps(clock, "R1", "T", BANDS))
    assert len(BANDS_STATES) == len(BANDS) == 45
    assert await states(hub, clock, "R1", "T") == BANDS_STATES
    assert await sample_states(hub, clock, "R1", "T") == BANDS_STATES
    newest = (await latest(hub, "R1"))["T"]
    assert (newest["value"], newest["state"]) == (22.0, "normal")
    assert newest["evaluated_at"] is not None
    # the two runs are excursions from their first sample until their last one stops standing;
    # the spike and the 240 s run are not
    assert excursion_spans(await excursions(hub, clock), clock) == [
        ("T", 12.0, 18.0, 27.5),
        ("T", 30.0, 35.0, 27.2),
    ]


async def test_zero_and_short_dwell_points_and_points_without_bounds(hub: Hub) -> None:
    clock = await setup(hub, "R1")
    records = [
        sample("R1", "W1", "water_leak", clock.at(k), v, interval_s=60)
        for k, v in {0: 0.0, 1: 1.0, 2: 0.0, 3: 0.0}.items()
    ]
    records += [
        sample("R1", "SM1", "smoke", clock.at(0), 1.0, interval_s=60),
        sample("R1", "UB1", "ups_on_battery", clock.at(0), 1.0, interval_s=60),
        sample("R1", "BT1", "breaker_trip", clock.at(0), 0.0, interval_s=60),
    ]
    # mains voltage every 30 s, dwell 60 s: one sample past 418 V stands 30 s → caution;
    # three in a row stand 90 s → critical; 345 V is in the lower caution band (342 … 350)
    volts = [380.0, 420.0, 380.0, 420.0, 420.0, 420.0, 380.0, 345.0, 380.0]
    records += [
        sample("R1", "V1", "mains_voltage", clock.at(i / 2), v, interval_s=30) for i, v in enumerate(volts)
    ]
    informational = [
        ("HA1", "hot_aisle_temp", 55.0),
        ("RO1", "rack_outlet_temp", 48.0),
        ("D1", "door_open", 1.0),
        ("P1", "it_power_kw", 300.0),
        ("P2", "facility_power_kw", 420.0),
        ("E1", "it_energy_kwh", 1000.0),
        ("E2", "facility_energy_kwh", 1400.0),
    ]
    for code, point_type, value in informational:
        records += [sample("R1", code, point_type, clock.at(k), value, interval_s=60) for k in range(3)]
    await pushed(hub, "environment", GZ, "e-1", records)

    assert await states(hub, clock, "R1", "W1") == {0: "normal", 1: "critical", 2: "normal", 3: "normal"}
    v1 = await states(hub, clock, "R1", "V1")
    assert [v1[k] for k in sorted(v1)] == [
        "normal",
        "caution",
        "normal",
        "critical",
        "critical",
        "critical",
        "normal",
        "caution",
        "normal",
    ]
    now = await latest(hub, "R1")
    assert {code: now[code]["state"] for code in ("SM1", "UB1", "BT1", "W1")} == {
        "SM1": "critical",
        "UB1": "critical",
        "BT1": "normal",
        "W1": "normal",
    }
    for code, _, _ in informational:
        assert now[code]["state"] is None, now[code]
        assert set((await states(hub, clock, "R1", code)).values()) == {None}


# --- samples arriving one by one --------------------------------------------------------------


async def test_a_run_turns_critical_from_its_first_sample_once_it_reaches_the_dwell(hub: Hub) -> None:
    clock = await setup(hub, "R1")
    values = {**dict.fromkeys(range(10), 22.0), **dict.fromkeys(range(10, 16), 28.0), 16: 22.0}
    seen: dict[int, dict[float, str | None]] = {}
    for k, v in values.items():  # one push a minute, as a collector sends them
        await pushed(hub, "environment", GZ, f"e-{k}", temps(clock, "R1", "T", {k: v}))
        seen[k] = await states(hub, clock, "R1", "T")
    # the newest sample stands one interval: after minute 13 the run is 4 × 60 s (caution), after
    # minute 14 it is 300 s — and the samples pushed earlier turn critical with it
    assert seen[13] == {k: "caution" if values[k] > 27 else "normal" for k in range(14)}
    assert seen[14] == {k: "critical" if values[k] > 27 else "normal" for k in range(15)}
    assert seen[16] == {k: "critical" if v > 27 else "normal" for k, v in values.items()}
    assert excursion_spans(await excursions(hub, clock), clock) == [("T", 10.0, 16.0, 28.0)]


# --- late and corrected samples, gaps ------------------------------------------------------------


async def test_a_late_sample_fills_a_run_and_a_correction_breaks_it(hub: Hub) -> None:
    clock = await setup(hub, "R1")
    hot = {10: 28.0, 11: 28.0, 14: 28.0, 15: 28.0}
    first = {**dict.fromkeys(range(10), 22.0), **hot, **dict.fromkeys(range(16, 26), 22.0)}
    # T2: the same shape with a gap of exactly 2 × 60 s (minute 12 only is missing): the gap does
    # not end the run; 60 + 120 + 60 + 60 = 300 s ≥ the dwell → critical
    second = {**dict.fromkeys(range(10), 22.0), 10: 28.0, 11: 28.0, 13: 28.0, 14: 28.0}
    second |= dict.fromkeys(range(15, 26), 22.0)
    await pushed(
        hub, "environment", GZ, "e-1", temps(clock, "R1", "T", first) + temps(clock, "R1", "T2", second)
    )

    # minutes 12 and 13 missing: minute 11 stands min(180, 120) s and the 180 s gap ends its run;
    # 60 + 120 = 180 s and 120 s are both short of 300 s (together they would reach it)
    normal = {k: "normal" for k in first if k not in hot}
    assert await states(hub, clock, "R1", "T") == normal | dict.fromkeys(hot, "caution")
    t2 = await states(hub, clock, "R1", "T2")
    assert {k: s for k, s in t2.items() if second[int(k)] > 27} == dict.fromkeys([10, 11, 13, 14], "critical")
    assert excursion_spans(await excursions(hub, clock), clock) == [("T2", 10.0, 15.0, 28.0)]

    # the late samples arrive: one run of 6 × 60 s, critical from its first sample
    await pushed(hub, "environment", GZ, "late", temps(clock, "R1", "T", {12: 28.0, 13: 28.0}))
    assert await states(hub, clock, "R1", "T") == normal | dict.fromkeys(range(10, 16), "critical")
    assert excursion_spans(await excursions(hub, clock), clock) == [
        ("T", 10.0, 16.0, 28.0),
        ("T2", 10.0, 15.0, 28.0),
    ]
    assert (await latest(hub, "R1"))["T"]["state"] == "normal"  # minute 25

    # a correction of minute 12 back to 22 ℃ splits the run: 120 s and 180 s, both caution again
    await pushed(hub, "environment", GZ, "fix", temps(clock, "R1", "T", {12: 22.0}))
    assert await states(hub, clock, "R1", "T") == normal | dict.fromkeys([10, 11, 13, 14, 15], "caution") | {
        12: "normal"
    }
    assert excursion_spans(await excursions(hub, clock), clock) == [("T2", 10.0, 15.0, 28.0)]


async def test_a_gap_longer_than_twice_the_interval_ends_a_run(hub: Hub) -> None:
    clock = await setup(hub, "R1")
    # 3 minutes past 27 ℃, a 7-minute hole, 3 more minutes. Minute 7 stands min(420, 120) = 120 s:
    # 60 + 60 + 120 = 240 s, then 180 s — each short of the 300 s dwell; joined across the hole
    # they would reach it
    values = {**dict.fromkeys(range(5), 22.0), **dict.fromkeys(range(5, 8), 28.0)}
    values |= {**dict.fromkeys(range(14, 17), 28.0), **dict.fromkeys(range(17, 22), 22.0)}
    await pushed(hub, "environment", GZ, "e-1", temps(clock, "R1", "T", values))
    assert await states(hub, clock, "R1", "T") == {
        k: "caution" if v > 27 else "normal" for k, v in values.items()
    }
    assert await excursions(hub, clock) == []


# --- thresholds per room and platform ------------------------------------------------------------


async def test_threshold_overrides_re_evaluate_stored_samples(hub: Hub, app: Any) -> None:
    clock = await setup(hub, "R1", "R2")
    await hub.create_platform(SZ, "440300")
    await pushed(hub, "rooms", SZ, "rooms-sz", [room("S1")])
    values = {**dict.fromkeys(range(10), 22.0), **dict.fromkeys(range(10, 18), 28.0), 18: 22.0, 19: 22.0}
    default = {k: "critical" if v > 27 else "normal" for k, v in values.items()}  # 480 s ≥ 300 s
    await pushed(
        hub, "environment", GZ, "e-1", temps(clock, "R1", "T", values) + temps(clock, "R2", "T", values)
    )
    await pushed(hub, "environment", SZ, "e-1", temps(clock, "S1", "T", values))
    # a humidity point of another rack (no dew point is derived from it and T)
    humid = [
        sample("R1", "H", "cold_aisle_rh", clock.at(k), 58.0, interval_s=60, rack_code="A07")
        for k in range(20)
    ]
    await pushed(hub, "environment", GZ, "e-2", humid)
    for r in ("R1", "R2"):
        assert await states(hub, clock, r, "T") == default
    assert await states(hub, clock, "S1", "T", SZ) == default

    room_row = {
        "platform_code": GZ,
        "room_code": "R1",
        "point_type": "cold_aisle_temp",
        "lower_critical": 15.0,
        "lower_caution": 16.0,
        "upper_caution": 27.5,
        "upper_critical": 29.0,
        "dwell_s": 300,
        "source": "设备厂商规格 (vendor specification)",
    }
    # the platform's row: no upper caution bound, critical above 27.9 ℃ held for 600 s
    platform_row = {
        "platform_code": GZ,
        "point_type": "cold_aisle_temp",
        "lower_critical": 18.0,
        "lower_caution": 19.0,
        "upper_caution": None,
        "upper_critical": 27.9,
        "dwell_s": 600,
        "source": "监管决定 (regulator's decision)",
    }
    judged_at = await evaluated_at(hub, clock, "R1", "T")
    answer = await hub.http.put(
        THRESHOLDS, json={"overrides": [room_row, platform_row]}, headers=hub.auth(hub.admin)
    )
    assert answer.status_code == 200, answer.text
    await run_evaluation_job(app)
    # "evaluated_at records each evaluation": every stored sample of the point was judged again
    again = await evaluated_at(hub, clock, "R1", "T")
    assert len(again) == len(judged_at) == 20
    assert all(b > a for a, b in zip(judged_at, again, strict=True))

    # R1 takes its room's row: 28 ℃ is between 27.5 and 29 → caution
    assert await states(hub, clock, "R1", "T") == {
        k: "caution" if v > 27 else "normal" for k, v in values.items()
    }
    # R2 takes the platform's row: past 27.9 for 480 s < 600 s → caution
    assert await states(hub, clock, "R2", "T") == {
        k: "caution" if v > 27 else "normal" for k, v in values.items()
    }
    # another platform and another point type keep the defaults
    assert await states(hub, clock, "S1", "T", SZ) == default
    assert set((await states(hub, clock, "R1", "H")).values()) == {"caution"}  # 55 < 58 < 60
    assert await excursions(hub, clock) == []
    assert len(await excursions(hub, clock, SZ)) == 1

    # the room's row without any upper bound: nothing above is judged any more
    no_upper = room_row | {"upper_caution": None, "upper_critical": None}
    answer = await hub.http.put(THRESHOLDS, json={"overrides": [no_upper]}, headers=hub.auth(hub.admin))
    assert answer.status_code == 200, answer.text
    await run_evaluation_job(app)
    assert set((await states(hub, clock, "R1", "T")).values()) == {"normal"}
    # the platform's row is gone (the overrides are the whole set): R2 is back on the default
    assert await states(hub, clock, "R2", "T") == default

    # no overrides at all: every room judged by the §6.6 default again
    answer = await hub.http.put(THRESHOLDS, json={"overrides": []}, headers=hub.auth(hub.admin))
    assert answer.status_code == 200, answer.text
    await run_evaluation_job(app)
    assert await states(hub, clock, "R1", "T") == default
    assert excursion_spans(await excursions(hub, clock), clock) == [("T", 10.0, 18.0, 28.0)] * 2


# --- dew point -----------------------------------------------------------------------------------


async def test_a_derived_dew_point_is_judged_like_a_sensor(hub: Hub) -> None:
    clock = await setup(hub, "R1", "R2")
    # temperature every minute at 25 ℃ (24 ℃ at minute 12); humidity 40 s past each minute, so the
    # temperature sample standing then is the one of the same minute (not the nearest, the next)
    t_values = {k: 24.0 if k == 12 else 25.0 for k in range(20)}
    rh_values = {k: 58.0 if 10 <= k <= 16 else 40.0 for k in range(20)}
    where = {"rack_code": "A01", "position": "cold_aisle"}
    records = temps(clock, "R1", "T", t_values, **where)
    records += [
        sample("R1", "H", "cold_aisle_rh", clock.at(k + 40 / 60), v, interval_s=60, **where)
        for k, v in rh_values.items()
    ]
    # another rack's humidity has no temperature point beside it: no dew point
    records += [
        sample(
            "R1",
            "H9",
            "cold_aisle_rh",
            clock.at(k),
            45.0,
            interval_s=60,
            rack_code="A09",
            position="cold_aisle",
        )
        for k in range(20)
    ]
    # R2 has its own dew-point sensor: nothing is derived there
    records += temps(clock, "R2", "T", t_values, **where)
    records += [
        sample("R2", "H", "cold_aisle_rh", clock.at(k), 58.0, interval_s=60, **where) for k in range(20)
    ]
    records += [
        sample("R2", "D", "cold_aisle_dew_point", clock.at(k), 10.0, interval_s=60, **where)
        for k in range(20)
    ]
    await pushed(hub, "environment", GZ, "e-1", records)

    want = {k: magnus(t_values[k], rh) for k, rh in rh_values.items()}
    # 58 %RH: about 16.2 ℃ (15.2 ℃ at 24 ℃) — past 15 for 7 × 60 s ≥ 300 s → critical
    assert all(want[k] > 15 for k in range(10, 17))
    assert all(6.5 < want[k] < 14 for k in (*range(10), *range(17, 20)))
    points = await raw(hub, clock, "R1", "dp~H")
    assert [datetime.fromisoformat(p["ts"]) for p in points] == [clock.at(k + 40 / 60) for k in range(20)]
    # the hub keeps derived values to 0.001 ℃ (a sensor's precision); the formula is the contract
    assert [p["value"] for p in points] == pytest.approx([want[k] for k in range(20)], abs=5e-4)
    assert [p["state"] for p in points] == ["critical" if 10 <= k <= 16 else "normal" for k in range(20)]

    r1 = await latest(hub, "R1")
    assert sorted(r1) == ["H", "H9", "T", "dp~H"]
    dew = r1["dp~H"]
    assert dew["point_type"] == "cold_aisle_dew_point"
    assert (dew["value"], dew["state"]) == (pytest.approx(want[19], abs=5e-4), "normal")
    assert (dew["rack_code"], dew["position"]) == ("A01", "cold_aisle")
    assert sorted(await latest(hub, "R2")) == ["D", "H", "T"]
    spans = excursion_spans(await excursions(hub, clock), clock)
    assert [span[:3] for span in spans] == [("dp~H", 10 + 40 / 60, 17 + 40 / 60)]
    assert spans[0][3] == pytest.approx(want[10], abs=5e-4)  # the highest: 58 %RH at 25 ℃
    # the derived point names what it is computed from (docs/indicators.md: "carries derived_from")
    assert sorted(dew.get("derived_from") or []) == ["H", "T"], dew
