"""The edges of the administration endpoints, as schemathesis found them (§1, §2.1, §10).

* A method a path does not answer is 405 with ``Allow`` naming *every* method of the path (the
  router named only the first route's, as 400 ``1001``: ``Allow: POST`` on ``/admin/platforms``,
  which has GET too, sent clients to the wrong method).
* ``PUT /admin/thresholds`` and ``PUT /admin/metric-catalog`` took bodies their published schema
  refuses: numbers as strings, ``1.5`` seconds, ``"yes"`` for a boolean — 422 ``1002`` naming the
  field now, as the schema says.
* A key outside the admin role sending a body to an admin route got 422 telling it the body's rules
  (or 400 naming an unknown query parameter): the role is checked first now, 403 ``2006`` whatever
  the body or the query, so nobody outside the role learns what an admin route takes.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from tests.helpers import Hub, new_key, signed_request

JSON = {"Content-Type": "application/json"}
P = "GD-GZ-ZWY-01"
ADMIN_PREFIX = "/api/v1/admin"
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def assert_error(answer: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The §2.1 envelope of a refusal: ``code``, a zh-CN message, the request id."""
    assert answer.status_code == status, (answer.request.method, answer.request.url, answer.text)
    body: dict[str, Any] = answer.json()
    assert body["code"] == code, body
    assert body["request_id"], body
    assert re.search(r"[\u4e00-\u9fff]", body["message"].split("(")[0]), body  # zh-CN first
    return body


def _served(app: FastAPI) -> dict[str, set[str]]:
    """Path template → every method the app answers there, from its own route table."""
    paths: dict[str, set[str]] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path and context.methods:
            paths.setdefault(context.path, set()).update(context.methods)
    return paths


def _filled(template: str) -> str:
    """A path of ``template`` with its parameters filled (``zz9`` matches no literal segment)."""
    return re.sub(r"\{[^}]+\}", "zz9", template)


# --- 1. a method the path lacks ------------------------------------------------------------------


def assert_method_not_allowed(answer: httpx.Response, method: str, allow: str) -> None:
    assert answer.status_code == 405, (method, answer.request.url, answer.status_code, answer.text)
    assert answer.headers["Allow"] == allow, (method, answer.request.url, answer.headers)
    if method == "HEAD":  # no body to read
        return
    body = assert_error(answer, 405, "1001")
    assert method in body["message"] and allow in body["message"], body
    assert body["message"].index("不支持") < body["message"].index("(method not allowed"), body


async def test_a_method_a_path_lacks_is_405_naming_every_method_of_the_path(hub: Hub) -> None:
    await hub.create_platform(P)
    for method, path, allow in (
        ("DELETE", "/api/v1/admin/platforms", "GET, POST"),
        ("PUT", "/api/v1/admin/platforms", "GET, POST"),
        ("HEAD", "/api/v1/admin/platforms", "GET, POST"),
        ("POST", f"/api/v1/admin/platforms/{P}", "GET, PATCH"),
        ("DELETE", f"/api/v1/admin/platforms/{P}", "GET, PATCH"),
        ("PATCH", "/api/v1/admin/clients", "GET, POST"),
        ("PUT", "/api/v1/admin/clients/ak_zz9", "DELETE, PATCH"),
        ("GET", "/api/v1/admin/clients/ak_zz9/rotate", "POST"),
        ("POST", "/api/v1/admin/thresholds", "GET, PUT"),
        ("PATCH", "/api/v1/admin/metric-catalog", "GET, PUT"),
        ("PUT", "/api/v1/admin/sources/zz9", "DELETE, GET, PATCH"),
        ("POST", "/api/v1/assets", "GET"),
        ("OPTIONS", "/api/v1/assets", "GET"),
        ("GET", "/api/v1/reports/assets", "POST"),
    ):
        answer = await hub.http.request(method, path, headers=hub.auth(hub.admin))
        assert_method_not_allowed(answer, method, allow)
    # a path nobody serves is still 404, whatever the method
    assert_error(await hub.http.put("/api/v1/admin/nothing-here", headers=hub.auth(hub.admin)), 404, "3002")


async def test_every_path_of_the_route_table_allows_exactly_its_methods(app: FastAPI, hub: Hub) -> None:
    """Each path the app serves, asked with a method it lacks, names all of its methods."""
    served = _served(app)
    assert len(served) > 30
    for template, methods in sorted(served.items()):
        path = _filled(template)
        missing = next(m for m in ("PUT", "PATCH", "DELETE", "POST", "GET") if m not in methods)
        answer = await hub.http.request(missing, path, headers=hub.auth(hub.admin))
        assert_method_not_allowed(answer, missing, ", ".join(sorted(methods)))


# --- 3. the role before the body -----------------------------------------------------------------


def _admin_writes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every write route under ``/api/v1/admin``, parameters filled."""
    writes = [
        (method, _filled(template))
        for template, methods in _served(app).items()
        if template.startswith(ADMIN_PREFIX)
        for method in sorted(methods)
        if method in WRITE_METHODS
    ]
    assert len(writes) >= 15, writes
    return writes


#: bodies that break every admin route's schema: wrong types, unknown fields, not JSON at all
BAD_BODIES = (b'{"zz_unknown": [1, 2, {"x": null}]}', b"[]", b'{"metrics": "x"', b"\xff\xfe")


async def test_a_non_admin_key_is_refused_before_its_body_is_looked_at(app: FastAPI, hub: Hub) -> None:
    await hub.create_platform(P)
    keys = {
        "regulator": await hub.create_client("regulator", regions=["440100"]),
        "integrator": await hub.create_client("integrator", platforms=[P], kinds=["assets"]),
        "provider": await hub.create_client("provider", platforms=[P]),
    }
    for method, path in _admin_writes(app):
        for body in BAD_BODIES:
            # the admin learns what is wrong with the body (or that the object does not exist) ...
            answer = await hub.http.request(method, path, content=body, headers=hub.auth(hub.admin) | JSON)
            assert answer.status_code in {400, 404, 422}, (method, path, body, answer.text)
            # ... nobody else learns anything but that the route is not theirs
            for role, key in keys.items():
                answer = await hub.http.request(method, path, content=body, headers=hub.auth(key) | JSON)
                assert_error(answer, 403, "2006")
                assert "zz_unknown" not in answer.text and "metrics" not in answer.text, (role, answer.text)


async def test_a_non_admin_key_is_refused_before_its_query_or_method_is_looked_at(hub: Hub) -> None:
    regulator = await hub.create_client("regulator", regions=["440100"])
    for method, path in (
        ("GET", "/api/v1/admin/audit?zz_unknown=1"),  # not "unknown query parameter zz_unknown"
        ("GET", "/api/v1/admin/platforms?limit=abc"),
        ("DELETE", "/api/v1/admin/platforms"),  # not 405 listing the admin's methods
        ("PUT", "/api/v1/admin/thresholds?zz_unknown=1"),
    ):
        answer = await hub.http.request(method, path, content=b"{}", headers=hub.auth(regulator) | JSON)
        assert_error(answer, 403, "2006")
        assert "zz_unknown" not in answer.text and "Allow" not in answer.headers, answer.text


async def test_a_signed_non_admin_request_to_an_admin_route_is_refused_by_role(hub: Hub) -> None:
    await hub.create_platform(P)
    provider = await new_key(hub, "provider", platforms=[P], require_signature=True)
    answer = await signed_request(
        hub,
        "PUT",
        "/api/v1/admin/thresholds",
        app_key=provider["app_key"],
        secret=provider["secret"],
        body=b'{"defaults": "not a list"}',
        headers=JSON,
    )
    assert_error(answer, 403, "2006")
    # a bad signature is still told apart first: the role of a key is only believed once it is proved
    forged = await signed_request(
        hub,
        "PUT",
        "/api/v1/admin/thresholds",
        app_key=provider["app_key"],
        secret=provider["secret"],
        body=b'{"defaults": []}',
        signed_body=b'{"defaults": null}',
        headers=JSON,
    )
    assert_error(forged, 401, "2005")


async def test_the_admin_still_gets_the_validation_errors(hub: Hub) -> None:
    answer = await hub.http.put(
        "/api/v1/admin/thresholds", content=b'{"defaults": "x"}', headers=hub.auth(hub.admin) | JSON
    )
    body = assert_error(answer, 422, "1002")
    assert [e["loc"] for e in body["errors"]] == ["defaults"], body


# --- 2. bodies the published schema refuses ------------------------------------------------------


def _row(**fields: Any) -> dict[str, Any]:
    return {
        "point_type": "cold_aisle_temp",
        "upper_caution": 27,
        "upper_critical": 32.5,
        "source": "GB 50174",
        **fields,
    }


#: (field, a value of the wrong JSON type that lax parsing took): the bounds are numbers, dwell_s
#: an integer (schemathesis sent ``false``; ``"60"``, ``1.5`` and ``1.0`` were read as numbers too)
WRONG_THRESHOLD_TYPES = (
    ("lower_critical", False),
    ("lower_caution", True),
    ("upper_caution", "27"),
    ("upper_critical", "32.5"),
    ("dwell_s", False),
    ("dwell_s", "60"),
    ("dwell_s", 1.5),
    ("dwell_s", 60.0),
)


async def _thresholds(hub: Hub) -> list[dict[str, Any]]:
    """Every threshold row, defaults first (§2.2 pages)."""
    return await hub.items("/api/v1/admin/thresholds")


async def test_threshold_rows_of_the_wrong_json_type_are_refused_naming_the_field(hub: Hub) -> None:
    await hub.create_platform(P)
    before = await _thresholds(hub)
    for field, value in WRONG_THRESHOLD_TYPES:
        for body, loc in (
            ({"defaults": [_row(**{field: value})]}, f"defaults[0].{field}"),
            (
                {
                    "overrides": [
                        _row(platform_code=P),
                        _row(platform_code=P, point_type="rack_inlet_temp", **{field: value}),
                    ]
                },
                f"overrides[1].{field}",
            ),
        ):
            answer = await hub.http.put("/api/v1/admin/thresholds", json=body, headers=hub.auth(hub.admin))
            errors = assert_error(answer, 422, "1002")["errors"]
            assert [e["loc"] for e in errors] == [loc], (field, value, errors)
    assert await _thresholds(hub) == before  # nothing was changed by a refused body
    # what the schema says is taken still is: integers and decimals as bounds, whole seconds
    accepted = await hub.http.put(
        "/api/v1/admin/thresholds",
        json={
            "defaults": [_row(lower_critical=10, dwell_s=60)],
            "overrides": [_row(platform_code=P, upper_caution=26.5)],
        },
        headers=hub.auth(hub.admin),
    )
    assert accepted.status_code == 200, accepted.text
    after = await _thresholds(hub)
    row = next(d for d in after if d["applies_to"] == "default" and d["point_type"] == "cold_aisle_temp")
    assert (row["lower_critical"], row["upper_caution"], row["dwell_s"]) == (10, 27, 60)
    overrides = [o for o in after if o["applies_to"] != "default"]
    assert [(o["platform_code"], o["upper_caution"]) for o in overrides] == [(P, 26.5)]


async def test_metric_definitions_of_the_wrong_json_type_are_refused_naming_the_field(hub: Hub) -> None:
    catalog = (await hub.get("/api/v1/admin/metric-catalog")).json()["data"]
    assert catalog, "the catalogue is seeded"
    good = {"code": "zz.probe", "name_zh": "探针", "unit": "%", "default_interval_s": 60, "enabled": True}
    for field, value in (
        ("enabled", 0),  # schemathesis: 0 was stored as "disabled"
        ("enabled", 1),
        ("enabled", "true"),
        ("default_interval_s", True),
        ("default_interval_s", "60"),
        ("default_interval_s", 60.0),
    ):
        metrics = [*catalog, {**good, field: value}]
        answer = await hub.http.put(
            "/api/v1/admin/metric-catalog", json={"metrics": metrics}, headers=hub.auth(hub.admin)
        )
        errors = assert_error(answer, 422, "1002")["errors"]
        assert [e["loc"] for e in errors] == [f"metrics[{len(catalog)}].{field}"], (field, value, errors)
    assert (await hub.get("/api/v1/admin/metric-catalog")).json()["data"] == catalog
    accepted = await hub.http.put(
        "/api/v1/admin/metric-catalog", json={"metrics": [*catalog, good]}, headers=hub.auth(hub.admin)
    )
    assert accepted.status_code == 200, accepted.text
    assert any(m["code"] == "zz.probe" and m["enabled"] is True for m in accepted.json()["data"])


async def test_a_body_over_the_admin_cap_is_413_as_the_published_schema_says(app: FastAPI, hub: Hub) -> None:
    """A catalogue within ``maxItems`` but over ``SUPHUB_ADMIN_MAX_BODY_BYTES`` is refused by size."""
    metric = {"code": "zz.big", "name_zh": "大" * 150, "unit": "%", "description": "说明" * 200}
    body = {"metrics": [{**metric, "code": f"zz.big{i}"} for i in range(1000)]}
    answer = await hub.http.put("/api/v1/admin/metric-catalog", json=body, headers=hub.auth(hub.admin))
    assert_error(answer, 413, "1003")
    responses = app.openapi()["paths"]["/api/v1/admin/metric-catalog"]["put"]["responses"]
    assert "413" in responses, responses
