"""A query parameter the endpoint does not know is 400 ``1001`` naming it (§2.2), on every route.

Before, a misspelt filter (``platfrom_code=``) was silently ignored and the caller received every
row as if they had asked for no filter at all.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.guards import OPEN_PATHS
from tests.helpers import Hub, batch, new_key, signed_push, signed_request, vm

P = "GD-GZ-ZWY-01"
OTHER = "GD-SZ-ZWY-02"
BOGUS = "bogus_param_zz"


def assert_unknown(answer: httpx.Response, *names: str) -> dict[str, Any]:
    """A 400 ``1001`` whose message names the first unknown parameter, and ``errors[]`` each of them."""
    assert answer.status_code == 400, answer.text
    body: dict[str, Any] = answer.json()
    assert body["code"] == "1001", body
    assert names[0] in body["message"], body
    assert "(unknown query parameter" in body["message"], body
    assert body["message"].index("未知") < body["message"].index("(unknown"), body  # zh-CN first
    assert [e["loc"] for e in body["errors"]] == list(names), body
    return body


async def _two_platforms(hub: Hub) -> None:
    for code, region in ((P, "440100"), (OTHER, "440300")):
        await hub.create_platform(code, region)
        pushed = await hub.push("assets", batch(code, f"b-{code}", [vm(f"vm-{code}")]))
        assert pushed.status_code == 200, pushed.text


async def test_a_misspelt_filter_on_a_list_is_refused_not_ignored(hub: Hub) -> None:
    await _two_platforms(hub)
    spelt = await hub.get("/api/v1/assets", platform_code=P)
    assert [a["platform_code"] for a in spelt.json()["data"]["items"]] == [P]
    assert_unknown(await hub.get("/api/v1/assets", platfrom_code=P), "platfrom_code")
    # with known parameters around it, and the paging ones themselves known
    answer = await hub.get("/api/v1/assets", limit=5, with_total="true", platfrom_code=P, cursor_="x")
    assert_unknown(answer, "platfrom_code", "cursor_")
    paged = await hub.get("/api/v1/assets", limit=1, with_total="true")
    assert paged.status_code == 200, paged.text
    cursor = paged.json()["data"]["next_cursor"]
    assert (await hub.get("/api/v1/assets", limit=1, with_total="true", cursor=cursor)).status_code == 200


async def test_an_unknown_parameter_on_an_item_an_admin_list_and_an_export_is_refused(hub: Hub) -> None:
    await _two_platforms(hub)
    asset_uid = (await hub.get("/api/v1/assets", platform_code=P)).json()["data"]["items"][0]["asset_uid"]
    assert (await hub.get(f"/api/v1/assets/{asset_uid}")).status_code == 200
    assert_unknown(await hub.get(f"/api/v1/assets/{asset_uid}", fields="name"), "fields")
    assert_unknown(await hub.get(f"/api/v1/platforms/{P}", verbose="1"), "verbose")

    assert (await hub.get("/api/v1/admin/platforms")).status_code == 200
    assert_unknown(await hub.get("/api/v1/admin/platforms", region="44"), "region")
    assert_unknown(await hub.get("/api/v1/admin/clients", rol="admin"), "rol")

    exported = await hub.get("/api/v1/export/assets", format="ndjson", platform_code=P)
    assert exported.status_code == 200, exported.text
    assert exported.text.count("\n") == 1
    assert_unknown(await hub.get("/api/v1/export/assets", format="ndjson", platfrom_code=P), "platfrom_code")


async def test_an_unknown_parameter_on_a_push_is_refused_and_nothing_is_stored(hub: Hub) -> None:
    await hub.create_platform(P)
    body = batch(P, "b-1", [vm("vm-1")])
    refused = await hub.http.post("/api/v1/reports/assets?dry_run=1", json=body, headers=hub.auth(hub.admin))
    assert_unknown(refused, "dry_run")
    assert await hub.assets() == []
    # the same batch without it is accepted: the batch id was not taken by the refusal
    assert (await hub.push("assets", body)).status_code == 200

    # signed: the signature covers the query, and the parameter is refused all the same
    provider = await new_key(hub, "provider", platforms=[P], require_signature=True)
    signed = await signed_push(
        hub,
        "assets",
        batch(P, "b-2", [vm("vm-2")]),
        app_key=provider["app_key"],
        secret=provider["secret"],
        query="dry_run=1",
    )
    assert_unknown(signed, "dry_run")
    answer = await signed_request(
        hub,
        "GET",
        "/api/v1/assets",
        app_key=provider["app_key"],
        secret=provider["secret"],
        query="platfrom_code=x",
    )
    assert_unknown(answer, "platfrom_code")
    assert [a["asset_id"] for a in await hub.assets()] == ["vm-1"]


async def test_odd_spellings_of_a_parameter_name_are_unknown_ones(hub: Hub) -> None:
    for query, name in (
        ("platform_code%20=x", "platform_code "),
        ("Platform_Code=x", "Platform_Code"),
        ("platform_code+=x", "platform_code+"),  # a literal plus (§3), not a space
        ("%E5%B9%B3%E5%8F%B0=x", "平台"),
    ):
        answer = await hub.http.get(f"/api/v1/assets?{query}", headers=hub.auth(hub.admin))
        assert_unknown(answer, name)
    # an empty query, or empty pieces of one, name nothing
    for query in ("", "&", "limit=5&&"):
        assert (await hub.http.get(f"/api/v1/assets?{query}", headers=hub.auth(hub.admin))).status_code == 200


async def test_the_probes_and_the_docs_ignore_query_parameters(hub: Hub) -> None:
    """Probes and load balancers may add cache-busting parameters; the docs take none that matter."""
    for path in (*sorted(OPEN_PATHS), "/docs", "/redoc", "/openapi.json"):
        assert (await hub.get(path, _="1700000000")).status_code == 200, path


# --- every route ---------------------------------------------------------------------------------


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _api_routes(app: FastAPI) -> list[tuple[str, str, set[str]]]:
    """``(method, path, declared query parameters)`` of every route the app serves, as included
    (prefix and the app's and routers' dependencies with it)."""
    served: list[tuple[str, str, set[str]]] = []
    for context in iter_route_contexts(app.routes):
        if not isinstance(context.original_route, APIRoute):
            continue
        declared = _query_names(context.dependant)
        for method in sorted(context.methods or ()):
            if method not in {"HEAD", "OPTIONS"}:
                served.append((method, str(context.path), declared))
    return served


def _concrete(path: str) -> str:
    """The path with each ``{parameter}`` filled in (a value no route needs to find)."""
    return path.replace("{kind}", "assets").replace("{", "x-").replace("}", "")


async def test_every_route_refuses_an_unknown_parameter_and_accepts_its_own(hub: Hub, app: Any) -> None:
    """A new route cannot forget it: the check follows what each route declares, for every route."""
    routes = _api_routes(app)
    assert len(routes) > 50
    checked = 0
    for method, path, declared in routes:
        if path in OPEN_PATHS:
            continue
        # every parameter the route declares, with one it does not: only that one is named
        query = "&".join([*(f"{name}=" for name in sorted(declared)), f"{BOGUS}=1"])
        answer = await hub.http.request(
            method, f"{_concrete(path)}?{query}", headers=hub.auth(hub.admin), content=b"{}"
        )
        assert answer.status_code == 400, (method, path, answer.text)
        body = answer.json()
        assert body["code"] == "1001" and BOGUS in body["message"], (method, path, body)
        assert [e["loc"] for e in body["errors"]] == [BOGUS], (method, path, body)
        checked += 1
    assert checked == len(routes) - len(OPEN_PATHS)
    # and nothing was changed by the refused writes and deletes
    assert (await hub.get("/api/v1/platforms")).json()["data"]["items"] == []


async def test_an_unknown_parameter_without_a_key_is_still_401(hub: Hub) -> None:
    """The key is checked first: a caller without one learns nothing about a route's parameters."""
    for path in ("/api/v1/assets", "/api/v1/admin/platforms", "/api/v1/catalog"):
        answer = await hub.http.get(f"{path}?{BOGUS}=1")
        assert answer.status_code == 401, answer.text
