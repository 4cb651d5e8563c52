"""Trust boundaries before the application (§14, §3, §2.2): credentials before any body is read,
capped bodies, a body read time limit, unknown paths and the docs behind a key, and the query read
with the signature's own rules.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, get_args, get_origin

import httpx
import orjson

from app.config import Settings
from app.main import create_app
from app.security.signing import signed_headers
from tests.helpers import Hub, batch, new_key, signed_request, vm

P = "GD-GZ-ZWY-01"
MIB = 1024 * 1024
UNKNOWN_KEY = "ak_" + "0" * 20


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["request_id"] and response.headers["x-request-id"] == body["request_id"]
    return body


class StreamedBody:
    """A request body sent in chunks that records how much of it the hub pulled."""

    def __init__(self, total: int, chunk: int = 64 * 1024, *, stall_after: int | None = None) -> None:
        self.total = total
        self.chunk = chunk
        self.stall_after = stall_after
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            if self.stall_after is not None and self.pulled >= self.stall_after:
                await asyncio.Event().wait()  # a client that never sends the rest
            size = min(self.chunk, self.total - self.pulled)
            self.pulled += size
            yield b" " * size


@asynccontextmanager
async def variant(hub: Hub, **update: Any) -> AsyncIterator[Hub]:
    """The same database served by an app with other settings (the admin key still works)."""
    application = create_app(hub.settings.model_copy(update=update))
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield Hub(client, hub.admin, application.state.settings)
    finally:
        await application.state.audit_writer.close()
        await application.state.rate_limiter.close()
        await application.state.engine.dispose()


# --- item 7: no body before the key, every body capped -------------------------------------------


async def test_an_admin_body_without_a_valid_key_is_refused_before_it_is_read(hub: Hub) -> None:
    for headers, code in (
        ({}, "2001"),
        ({"Authorization": f"Bearer {UNKNOWN_KEY}.not-the-secret"}, "2002"),
        ({"Authorization": f"Bearer {hub.admin.split('.')[0]}.not-the-secret"}, "2002"),
    ):
        body = StreamedBody(64 * MIB)
        answer = await hub.http.post(
            "/api/v1/admin/platforms", content=body, headers={"Content-Type": "application/json", **headers}
        )
        assert_error(answer, 401, code)
        assert body.pulled == 0, f"{body.pulled} bytes read before the key was checked"


async def test_a_signed_request_with_an_unknown_key_id_is_refused_before_its_body_is_read(hub: Hub) -> None:
    signed = signed_headers(app_key=UNKNOWN_KEY, secret="s", method="POST", path="/api/v1/reports/assets")
    body = StreamedBody(32 * MIB)
    answer = await hub.http.post("/api/v1/reports/assets", content=body, headers=signed)
    assert_error(answer, 401, "2002")
    assert body.pulled == 0

    # headers missing: 2001, nothing read either
    body = StreamedBody(32 * MIB)
    answer = await hub.http.post("/api/v1/reports/assets", content=body, headers={"X-App-Key": UNKNOWN_KEY})
    assert_error(answer, 401, "2001")
    assert body.pulled == 0


async def test_an_admin_body_over_one_mib_is_413_1003_however_it_is_sent(hub: Hub) -> None:
    big = {"platform_code": P, "name": "平台", "region_code": "440100", "description": "x" * (2 * MIB)}
    answer = await hub.http.post("/api/v1/admin/platforms", json=big, headers=hub.auth(hub.admin))
    assert_error(answer, 413, "1003")

    # without a length, and with a length that lies: counted while reading, not read much further
    for extra in ({}, {"Content-Length": "100"}):
        body = StreamedBody(8 * MIB)
        headers = {**hub.auth(hub.admin), "Content-Type": "application/json", **extra}
        answer = await hub.http.post("/api/v1/admin/platforms", content=body, headers=headers)
        assert_error(answer, 413, "1003")
        assert body.pulled <= hub.settings.admin_max_body_bytes + body.chunk

    # a push is capped by max_body_bytes, not by the admin cap
    records = [vm(f"vm-{n}", description="d" * 1000) for n in range(1500)]
    await hub.create_platform(P)
    pushed = await hub.push("assets", batch(P, "big-1", records))
    assert pushed.status_code == 200, pushed.text
    assert pushed.json()["data"]["accepted"] == 1500


async def test_a_push_body_is_capped_while_it_is_read(small_hub: Hub) -> None:
    body = StreamedBody(4 * MIB, chunk=1000)
    headers = {**small_hub.auth(small_hub.admin), "Content-Type": "application/json", "Content-Length": "10"}
    answer = await small_hub.http.post("/api/v1/reports/assets", content=body, headers=headers)
    assert_error(answer, 413, "1003")
    assert body.pulled <= small_hub.settings.max_body_bytes + body.chunk


# --- item 15 (the body side): a body that stops arriving --------------------------------------------


async def test_a_body_that_stops_arriving_is_answered_408_and_the_connection_closed(hub: Hub) -> None:
    async with variant(hub, request_read_timeout_s=0.3) as slow:
        body = StreamedBody(MIB // 2, chunk=1000, stall_after=3000)
        headers = {**slow.auth(slow.admin), "Content-Type": "application/json"}
        answer = await asyncio.wait_for(
            slow.http.post("/api/v1/admin/platforms", content=body, headers=headers), timeout=20
        )
    assert answer.status_code == 408, answer.text
    assert answer.json()["code"] == "1001"
    assert answer.headers["connection"] == "close"
    assert body.pulled == 3000


# --- item 11: unknown paths and the docs --------------------------------------------------------------


async def test_an_unknown_path_without_a_key_is_401_and_with_one_404(hub: Hub) -> None:
    for path in ("/api/v1/no-such-thing", "/api/v2/assets", "/nope", "/"):
        assert_error(await hub.http.get(path), 401, "2001")
        assert_error(await hub.http.get(path, headers=hub.auth("ak_00000000000000000000.x")), 401, "2002")
        assert_error(await hub.get(path), 404, "3002")
    body = StreamedBody(8 * MIB)
    assert_error(await hub.http.post("/api/v1/no-such-thing", content=body), 401, "2001")
    assert body.pulled == 0


DOCS = ("/docs", "/redoc", "/openapi.json")


async def test_the_docs_need_a_key_in_production(hub: Hub) -> None:
    async with variant(hub, env="production") as production:
        for path in DOCS:
            assert_error(await production.http.get(path), 401, "2001")
            assert (await production.get(path)).status_code == 200
        spec = (await production.get("/openapi.json")).json()
        assert "/api/v1/reports/{kind}" in spec["paths"]
        assert (await production.http.get("/healthz")).status_code == 200
    async with variant(hub, env="production", docs_public=True) as opened:
        for path in DOCS:
            assert (await opened.http.get(path)).status_code == 200


async def test_the_docs_are_open_in_development(hub: Hub) -> None:
    for path in DOCS:
        assert (await hub.http.get(path)).status_code == 200, path


# --- item 10: the query as the signature reads it ------------------------------------------------------


async def _assets_by_business_system(hub: Hub) -> None:
    await hub.create_platform(P)
    records = [vm("plus", business_system="a+b"), vm("space", business_system="a b")]
    assert (await hub.push("assets", batch(P, "b-1", records))).status_code == 200


def _ids(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [a["asset_id"] for a in answer.json()["data"]["items"]]


async def test_a_plus_in_the_query_is_a_literal_plus_for_bearer_and_signed_requests(hub: Hub) -> None:
    await _assets_by_business_system(hub)
    provider = await new_key(hub, "provider", platforms=[P], require_signature=True)
    for query, expected in (
        ("business_system=a+b", ["plus"]),
        ("business_system=a%2Bb", ["plus"]),
        ("business_system=a%20b", ["space"]),
        ("business_system%2B=x", None),  # an unknown key (§2.2), not a known one with a space
    ):
        bearer = await hub.http.get(f"/api/v1/assets?{query}", headers=hub.auth(hub.admin))
        signed = await signed_request(
            hub, "GET", "/api/v1/assets", app_key=provider["app_key"], secret=provider["secret"], query=query
        )
        if expected is None:
            assert "business_system+" in assert_error(bearer, 400, "1001")["message"]
            assert "business_system+" in assert_error(signed, 400, "1001")["message"]
            continue
        assert _ids(bearer) == expected, query
        assert _ids(signed) == expected, query
    # a signature over one spelling verifies the other: both now read the same value
    signed = await signed_request(
        hub,
        "GET",
        "/api/v1/assets",
        app_key=provider["app_key"],
        secret=provider["secret"],
        query="business_system=a+b",
        signed_query="business_system=a%2Bb",
    )
    assert _ids(signed) == ["plus"]


async def test_a_query_parameter_given_twice_is_400_1001_naming_it(hub: Hub) -> None:
    await _assets_by_business_system(hub)
    provider = await new_key(hub, "provider", platforms=[P], require_signature=True)
    for query, name in (
        ("business_system=a+b&business_system=a%20b", "business_system"),
        ("limit=1&limit=2", "limit"),
        ("limit=1&%6Cimit=2", "limit"),  # the same key, spelled another way
        ("limit&limit=5", "limit"),
    ):
        bearer = await hub.http.get(f"/api/v1/assets?{query}", headers=hub.auth(hub.admin))
        assert name in assert_error(bearer, 400, "1001")["message"]
        signed = await signed_request(
            hub, "GET", "/api/v1/assets", app_key=provider["app_key"], secret=provider["secret"], query=query
        )
        assert name in assert_error(signed, 400, "1001")["message"]
    # reordered repeated keys still verify (§3 sorts them) but are refused, not read as the last one
    reordered = await signed_request(
        hub,
        "GET",
        "/api/v1/assets",
        app_key=provider["app_key"],
        secret=provider["secret"],
        query="business_system=a%20b&business_system=a+b",
        signed_query="business_system=a+b&business_system=a%20b",
    )
    assert "business_system" in assert_error(reordered, 400, "1001")["message"]
    # the same name in the path and the query is no repetition; one parameter of each name is fine
    once = await hub.http.get("/api/v1/assets?business_system=a%20b&limit=5", headers=hub.auth(hub.admin))
    assert _ids(once) == ["space"]


async def test_a_refused_request_is_still_audited(hub: Hub, app: Any) -> None:
    await hub.http.post("/api/v1/admin/platforms", content=orjson.dumps({"x": 1}))
    await hub.http.get("/api/v1/no-such-thing")
    await app.state.audit_writer.flush()
    events = (await hub.get("/api/v1/admin/audit")).json()["data"]["items"]
    seen = {(e["method"], e["path"], e["status"]) for e in events}
    assert ("POST", "/api/v1/admin/platforms", 401) in seen
    assert ("GET", "/api/v1/no-such-thing", 401) in seen


def _is_sequence(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple, set, frozenset):
        return True
    return any(_is_sequence(arg) for arg in get_args(annotation))


def _query_fields(dependant: Any) -> list[Any]:
    fields = list(dependant.query_params)
    for sub in dependant.dependencies:
        fields += _query_fields(sub)
    return fields


def test_no_endpoint_takes_a_query_parameter_meant_to_repeat(settings: Settings) -> None:
    """A parameter given twice is refused (§2.2), so no endpoint may declare one that repeats:
    lists are comma-separated values of one parameter (``status=running,stopped``)."""
    from fastapi.routing import APIRoute, iter_route_contexts

    app = create_app(settings)
    routes = [getattr(r, "original_route", r) for r in iter_route_contexts(app.routes)]
    api_routes = [r for r in routes if isinstance(r, APIRoute)]
    assert len(api_routes) > 40
    repeating = [
        (route.path, field.alias)
        for route in api_routes
        for field in _query_fields(route.dependant)
        if _is_sequence(field.field_info.annotation)
    ]
    assert repeating == []
