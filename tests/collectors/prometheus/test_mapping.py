"""The arithmetic and mapping of the prometheus source, without a hub or a server.

Range splitting and run windows decide "no request over 11 000 points, no gap, no duplicate";
the recorded answers under ``cases/`` (from Prometheus 2.42 scraping node_exporter 1.5) check
that real bodies are read as Prometheus writes them.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.collectors.base import SourceConfig, SourceDataError, SourceError, SourceHTTPError
from app.collectors.prometheus import PrometheusCollector
from app.collectors.prometheus.client import PrometheusQueryError, auth_kwargs, read_matrix
from app.collectors.prometheus.mapping import (
    MAX_LABEL_KEY,
    MAX_LABEL_VALUE,
    MAX_LABELS,
    MAX_POINTS_PER_SERIES,
    Series,
    SeriesMapping,
    Unmappable,
    Window,
    run_window,
    series_identity,
    series_records,
    split_range,
)
from app.schemas.ingest import MetricRecord

CASES = Path(__file__).parent / "cases"


def answer(case: str, status: int = 200) -> httpx.Response:
    request = httpx.Request("POST", "http://prom.test/api/v1/query_range")
    return httpx.Response(status, content=(CASES / case).read_bytes(), request=request)


def points(window: Window) -> list[int]:
    return list(range(window.start_ms, window.end_ms + 1, window.step_ms))


# --- splitting -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "pieces"), [(1, 1), (10_999, 1), (11_000, 1), (11_001, 2), (22_000, 2), (22_001, 3)]
)
def test_a_range_is_split_so_no_request_asks_more_than_11000_points(total: int, pieces: int) -> None:
    step = 15_000
    window = Window(1_000 * step, (1_000 + total - 1) * step, step)
    assert window.points == total
    parts = list(split_range(window))
    assert len(parts) == pieces
    assert all(1 <= p.points <= MAX_POINTS_PER_SERIES for p in parts)
    assert [t for p in parts for t in points(p)] == points(window)  # joined: no gap, no overlap


def test_random_windows_split_into_contiguous_pieces_under_the_limit() -> None:
    rng = random.Random(5)
    for _ in range(200):
        step = rng.choice([1, 500, 1_000, 15_000, 60_000])
        start = rng.randrange(0, 10**12, step)
        window = Window(start, start + rng.randrange(0, 40_000) * step, step)
        limit = rng.choice([97, 1_000, MAX_POINTS_PER_SERIES])
        parts = list(split_range(window, limit))
        assert all(p.points <= limit for p in parts)
        assert all(b.start_ms == a.end_ms + step for a, b in itertools.pairwise(parts))
        assert sum(p.points for p in parts) == window.points


def test_an_empty_window_asks_nothing() -> None:
    assert list(split_range(Window(2_000, 1_000, 1_000))) == []


# --- windows of consecutive runs -----------------------------------------------------------------


def test_the_first_run_covers_the_last_interval_and_the_next_continues_after_its_end() -> None:
    first = run_window(now_ms=1_000_123_456, step_ms=15_000, interval_ms=60_000, previous_end_ms=None)
    assert first.end_ms % 15_000 == 0 and first.end_ms <= 1_000_123_456 < first.end_ms + 15_000
    assert first.points == 4 and first.end_ms - first.start_ms == 45_000  # (end - 60 s, end]

    again = run_window(now_ms=1_000_123_999, step_ms=15_000, interval_ms=60_000, previous_end_ms=first.end_ms)
    assert again.points == 0  # within the same step: nothing new

    later = run_window(
        now_ms=1_000_123_456 + 95_000, step_ms=15_000, interval_ms=60_000, previous_end_ms=first.end_ms
    )
    assert (later.start_ms, later.end_ms) == (first.end_ms + 15_000, 1_000_215_000)
    assert later.points == 7


def test_a_changed_step_starts_on_its_own_grid_after_the_previous_end() -> None:
    window = run_window(now_ms=10_000_000, step_ms=60_000, interval_ms=60_000, previous_end_ms=9_015_000)
    assert window.start_ms == 9_060_000 and window.start_ms % 60_000 == 0


def test_a_catch_up_after_a_long_outage_is_bounded_per_run_and_continues() -> None:
    day, step = 86_400_000, 60_000
    now = 100 * day
    ends: list[int] = []
    previous: int | None = now - 3 * day
    while True:
        window = run_window(
            now_ms=now, step_ms=step, interval_ms=step, previous_end_ms=previous, max_window_ms=day
        )
        if window.points == 0:
            break
        assert window.points <= day // step
        if ends:
            assert window.start_ms == ends[-1] + step
        ends.append(window.end_ms)
        previous = window.end_ms
    assert len(ends) == 3 and ends[-1] == now


# --- series to records ---------------------------------------------------------------------------


def test_the_asset_label_becomes_the_mapped_asset_id_and_the_rest_labels() -> None:
    mapping = SeriesMapping(asset_label="instance", asset_map={"10.0.0.5:9100": "vm-5"})
    labels = {"__name__": "x", "instance": "10.0.0.5:9100", "job": "node", "device": "eth0"}
    assert series_identity(labels, mapping) == ("vm-5", {"device": "eth0", "job": "node"})
    # unmapped values are used as they are; a series without the label is platform level
    assert series_identity({"instance": "10.0.0.6:9100"}, mapping) == ("10.0.0.6:9100", {})
    assert series_identity({"job": "node"}, mapping) == (None, {"job": "node"})
    dropped = SeriesMapping(asset_label="instance", drop_labels=frozenset({"job"}))
    assert series_identity(labels, dropped) == ("10.0.0.5:9100", {"device": "eth0"})


def test_series_the_ingest_would_refuse_are_skipped_whole_never_cut() -> None:
    assert MetricRecord.model_json_schema()["properties"]["labels"]["anyOf"][0]["maxProperties"] == MAX_LABELS
    mapping = SeriesMapping(asset_label="instance")
    many = {f"l{i}": "v" for i in range(MAX_LABELS + 1)}
    with pytest.raises(Unmappable, match="超过 8 个"):
        series_identity(many, mapping)
    room = SeriesMapping(asset_label="instance", drop_labels=frozenset({"l0"}))
    assert series_identity({**many, "instance": "a"}, room)[0] == "a"  # 8 left once l0 is dropped
    with pytest.raises(Unmappable):
        series_identity({"k" * (MAX_LABEL_KEY + 1): "v"}, mapping)
    with pytest.raises(Unmappable):
        series_identity({"k": "v" * (MAX_LABEL_VALUE + 1)}, mapping)
    records, skipped = series_records("cpu.util", Series(many, [(1.0, "1"), (2.0, "2")]), mapping)
    assert records == [] and len(skipped) == 2 and skipped[0].startswith("cpu.util{")


def test_recorded_nan_and_inf_answers_are_skipped_point_by_point() -> None:
    mapping = SeriesMapping(asset_label="instance")
    for case, word in (("matrix_nan.json", "NaN"), ("matrix_inf.json", "+Inf")):
        (series,) = read_matrix(answer(case), "POST", "cpu.load1")
        records, skipped = series_records("cpu.load1", series, mapping)
        assert records == [] and len(skipped) == 3
        assert all("非有限数" in s and word in s for s in skipped)
    mixed = Series({"instance": "a"}, [(1795273194, "1.5"), (1795273195, "NaN"), (1795273196.5, "2e2")])
    records, skipped = series_records("cpu.load1", mixed, mapping)
    assert [(r["ts"], r["value"]) for r in records] == [
        ("2026-11-21T14:59:54+00:00", 1.5),
        ("2026-11-21T14:59:56.500000+00:00", 200.0),
    ]
    assert all(MetricRecord.model_validate(r).asset_id == "a" for r in records)
    assert len(skipped) == 1


def test_a_recorded_matrix_maps_to_records_the_ingest_accepts() -> None:
    (series,) = read_matrix(answer("matrix_network.json"), "POST", "net.rx.bits_per_s")
    mapping = SeriesMapping(asset_label="instance", asset_map={"127.0.0.1:19100": "host-01"})
    records, skipped = series_records("net.rx.bits_per_s", series, mapping)
    assert skipped == [] and len(records) == 3
    first = MetricRecord.model_validate(records[0])
    assert (first.asset_id, first.labels, first.value) == (
        "host-01",
        {"device": "eth0", "job": "node"},
        116409754.0,
    )


# --- answers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "status", "words"),
    [
        ("bad_data_400.json", 400, "bad_data: 1:77: parse error: unclosed left parenthesis"),
        ("execution_error_422.json", 422, "execution: found duplicate series"),
        ("too_many_points_400.json", 400, "exceeded maximum resolution of 11,000 points"),
    ],
)
def test_recorded_error_answers_fail_with_prometheus_s_own_message(
    case: str, status: int, words: str
) -> None:
    with pytest.raises(PrometheusQueryError, match=r"Prometheus 查询 cpu\.util 失败") as caught:
        read_matrix(answer(case, status), "POST", "cpu.util")
    assert words in str(caught.value)


@pytest.mark.parametrize(
    ("body", "error", "words"),
    [
        (b"<html>bad gateway</html>", SourceDataError, "不是 JSON"),
        (b"[]", SourceDataError, "不是 JSON 对象"),
        (b'{"status": "success"}', SourceDataError, "缺少 data"),
        (b'{"status": "ok", "data": {}}', SourceDataError, "status"),
        (b'{"status": "success", "data": {"resultType": "vector", "result": []}}', SourceDataError, "matrix"),
        (b'{"status": "success", "data": {"resultType": "matrix", "result": {}}}', SourceDataError, "数组"),
        (
            b'{"status":"success","data":{"resultType":"matrix","result":[{"values":[[1]]}]}}',
            SourceDataError,
            "values",
        ),
        (
            b'{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":1}}]}}',
            SourceDataError,
            "标签",
        ),
    ],
)
def test_malformed_answers_are_data_errors(body: bytes, error: type[Exception], words: str) -> None:
    request = httpx.Request("POST", "http://prom.test/api/v1/query_range")
    with pytest.raises(error, match=words):
        read_matrix(httpx.Response(200, content=body, request=request), "POST", "cpu.util")


def test_a_400_without_prometheus_s_body_is_an_http_error() -> None:
    request = httpx.Request("POST", "http://prom.test/api/v1/query_range")
    with pytest.raises(SourceHTTPError, match="HTTP 400"):
        read_matrix(httpx.Response(400, content=b"<html>no</html>", request=request), "POST", "cpu.util")


# --- options and credentials ---------------------------------------------------------------------


def config(options: dict[str, Any], credentials: dict[str, str] | None = None) -> SourceConfig:
    return SourceConfig(
        source_id="gz-prom",
        platform_code="GD-GZ-ZWY-01",
        type="prometheus",
        base_url="http://127.0.0.1:9090",
        interval_s=60,
        kinds=("metrics",),
        options=options,
        credentials=credentials or {},
    )


def test_options_default_to_the_interval_as_step_and_post() -> None:
    built = PrometheusCollector(config({"queries": {"cpu.util": "up"}})).options
    assert (built.step_ms, built.method, built.points_per_request) == (60_000, "POST", MAX_POINTS_PER_SERIES)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({}, "queries"),
        ({"queries": {}}, "queries"),
        ({"queries": {"cpu.util": ""}}, "queries"),
        ({"queries": {"cpu.util": "up"}, "step_s": 0}, "step_s"),
        ({"queries": {"cpu.util": "up"}, "step_s": "15s"}, "step_s"),
        ({"queries": {"cpu.util": "up"}, "points_per_request": 11_001}, "points_per_request"),
        ({"queries": {"cpu.util": "up"}, "asset_map": {"a": 1}}, "asset_map"),
        ({"queries": {"cpu.util": "up"}, "asset_label": ""}, "asset_label"),
        ({"queries": {"cpu.util": "up"}, "method": "PUT"}, "method"),
        ({"queries": {"cpu.util": "up"}, "drop_labels": "job"}, "drop_labels"),
    ],
)
def test_bad_options_fail_before_any_request(options: dict[str, Any], name: str) -> None:
    with pytest.raises(SourceError, match=f"选项 {name} 无效"):
        PrometheusCollector(config(options))


def test_credentials_are_a_bearer_token_or_basic_auth() -> None:
    assert auth_kwargs({}) == {}
    assert auth_kwargs({"token": "t0k"}) == {"headers": {"Authorization": "Bearer t0k"}}
    basic = auth_kwargs({"username": "u", "password": "p"})["auth"]
    request = next(basic.auth_flow(httpx.Request("GET", "http://prom.test/")))
    assert request.headers["Authorization"] == "Basic dTpw"
    with pytest.raises(SourceError, match="username"):
        PrometheusCollector(config({"queries": {"cpu.util": "up"}}, {"username": "u"}))
    with pytest.raises(SourceError, match="token"):
        auth_kwargs({"application_credential_id": "x"})
