"""Authentication (§3), roles and scopes (§1) and client administration (§10), over HTTP.

What a user sees: which key may do what, which error code a refused request carries, that every
refusal is the §2.1 envelope, that lists contain only rows in scope and single objects outside
scope look absent, that secrets are shown once, and that list cursors cannot be reused or forged.
"""

from __future__ import annotations

import base64
import gzip
import re
import time
import uuid
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.security.signing import sign, signed_headers
from tests.helpers import Hub, batch, new_key, now_utc, rfc3339, signed_push, signed_request, vm

GZ, GZ_REGION = "GD-GZ-01", "440100"
SZ, SZ_REGION = "GD-SZ-01", "440300"
UNREGISTERED = "GD-XX-99"
ASSET_NS = uuid.UUID("014f5156-d3bb-4a1f-b52d-ec5938c65eae")
CJK = re.compile(r"[\u4e00-\u9fff]")
SIGNATURE_HEADERS = ("X-App-Key", "X-Timestamp", "X-Nonce", "X-Content-Digest", "X-Signature")


def asset_uid(platform_code: str, asset_id: str) -> str:
    return str(uuid.uuid5(ASSET_NS, f"{platform_code}|{asset_id}"))


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The §2.1 error envelope: status, code, a zh-CN message and the request id in body and header."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"].strip(), body
    assert CJK.search(body["message"]), f"message is not zh-CN first: {body['message']!r}"
    assert isinstance(body["request_id"], str) and body["request_id"], body
    assert response.headers.get("x-request-id") == body["request_id"]
    return body  # type: ignore[no-any-return]


def assert_ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == "0" and body["request_id"] == response.headers.get("x-request-id")
    return body["data"]


def asset_ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["asset_id"] for item in items]


async def two_cities(hub: Hub) -> None:
    """GD-GZ-01 in Guangzhou (440100) with gz-1, gz-2 and GD-SZ-01 in Shenzhen (440300) with sz-1."""
    await hub.create_platform(GZ, GZ_REGION)
    await hub.create_platform(SZ, SZ_REGION)
    assert_ok(await hub.push("assets", batch(GZ, "gz-assets-1", [vm("gz-1"), vm("gz-2")])))
    assert_ok(await hub.push("assets", batch(SZ, "sz-assets-1", [vm("sz-1")])))


def log_record(log_id: str) -> dict[str, Any]:
    return {
        "log_id": log_id,
        "category": "system",
        "type": "boot",
        "event_time": rfc3339(now_utc()),
        "severity": 6,
        "action": "boot",
        "outcome": "success",
        "message": "启动完成",
    }


# --- 1. credentials ----------------------------------------------------------------------------


async def test_a_request_without_credentials_is_2001(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    assert_error(await hub.http.get("/api/v1/assets"), 401, "2001")
    push = await hub.http.post("/api/v1/reports/assets", json=batch(GZ, "b-1", [vm("vm-1")]), headers={})
    assert_error(push, 401, "2001")
    assert_error(await hub.http.get("/api/v1/admin/clients"), 401, "2001")
    assert await hub.assets() == []  # nothing was stored by the refused push


async def test_basic_authorization_is_2001(hub: Hub) -> None:
    app_key, secret = hub.admin.split(".", 1)
    basic = base64.b64encode(f"{app_key}:{secret}".encode()).decode()
    answer = await hub.http.get("/api/v1/assets", headers={"Authorization": f"Basic {basic}"})
    assert_error(answer, 401, "2001")
    # an empty bearer token is missing credentials too
    assert_error(await hub.http.get("/api/v1/assets", headers={"Authorization": "Bearer "}), 401, "2001")


async def test_an_unknown_key_or_a_wrong_secret_is_2002(hub: Hub) -> None:
    app_key, secret = hub.admin.split(".", 1)
    unknown = await hub.get("/api/v1/assets", "AKnosuchkey000000." + secret)
    assert_error(unknown, 401, "2002")
    wrong = await hub.get("/api/v1/assets", f"{app_key}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}")
    assert_error(wrong, 401, "2002")
    assert_error(await hub.get("/api/v1/assets", app_key), 401, "2002")  # the key id without a secret
    assert_ok(await hub.get("/api/v1/assets"))  # the right secret still works


async def test_a_disabled_key_is_2002_until_it_is_enabled_again(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "regulator", regions=[GZ_REGION])
    assert_ok(await hub.get("/api/v1/assets", key["bearer"]))

    patch = await hub.http.patch(
        f"/api/v1/admin/clients/{key['app_key']}", json={"status": "disabled"}, headers=hub.auth(hub.admin)
    )
    assert assert_ok(patch)["status"] == "disabled"
    assert_error(await hub.get("/api/v1/assets", key["bearer"]), 401, "2002")
    signed = await signed_request(hub, "GET", "/api/v1/assets", app_key=key["app_key"], secret=key["secret"])
    assert_error(signed, 401, "2002")

    # reading of §10: "disable" (unlike "revoke") can be undone
    patch = await hub.http.patch(
        f"/api/v1/admin/clients/{key['app_key']}", json={"status": "active"}, headers=hub.auth(hub.admin)
    )
    assert assert_ok(patch)["status"] == "active"
    assert_ok(await hub.get("/api/v1/assets", key["bearer"]))


async def test_a_revoked_key_is_2002_for_good(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "regulator", regions=[GZ_REGION])
    assert_ok(await hub.get("/api/v1/assets", key["bearer"]))

    revoked = await hub.http.delete(f"/api/v1/admin/clients/{key['app_key']}", headers=hub.auth(hub.admin))
    assert assert_ok(revoked)["status"] == "revoked"
    for _ in range(3):
        assert_error(await hub.get("/api/v1/assets", key["bearer"]), 401, "2002")
    signed = await signed_request(hub, "GET", "/api/v1/assets", app_key=key["app_key"], secret=key["secret"])
    assert_error(signed, 401, "2002")

    # whatever the admin API answers, a revoked key is never brought back to life
    await hub.http.patch(
        f"/api/v1/admin/clients/{key['app_key']}", json={"status": "active"}, headers=hub.auth(hub.admin)
    )
    assert_error(await hub.get("/api/v1/assets", key["bearer"]), 401, "2002")
    listed = assert_ok(await hub.get("/api/v1/admin/clients"))["items"]
    assert {c["app_key"]: c["status"] for c in listed}[key["app_key"]] == "revoked"


async def test_health_endpoints_answer_without_credentials(hub: Hub) -> None:
    for path in ("/healthz", "/readyz"):
        answer = await hub.http.get(path)
        assert answer.status_code == 200, answer.text
        assert answer.json()["code"] == "0"
        assert answer.headers["x-request-id"] == answer.json()["request_id"]


async def test_an_unknown_path_is_404_3002_in_the_envelope(hub: Hub) -> None:
    assert_error(await hub.get("/api/v1/no-such-thing"), 404, "3002")
    assert_error(await hub.get("/api/v2/assets"), 404, "3002")


@pytest.mark.parametrize(
    ("method", "path"),
    [("DELETE", "/api/v1/assets"), ("PUT", "/api/v1/reports/assets"), ("POST", "/api/v1/logs/verify")],
)
async def test_a_wrong_method_answers_405_in_the_envelope_with_allow(
    hub: Hub, method: str, path: str
) -> None:
    """405 (what every HTTP client and scanner expects) with ``1001``, the closest §2.1 code;
    ``Allow`` names every method of the path (tests/api/test_admin_boundaries.py)."""
    answer = await hub.http.request(method, path, headers=hub.auth(hub.admin))
    assert_error(answer, 405, "1001")
    assert answer.headers["Allow"], answer.headers


# --- 2. signed requests ------------------------------------------------------------------------


async def test_a_provider_requires_signatures_by_default_and_bearer_is_2005(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    assert key["require_signature"] is True
    refused = await hub.push("assets", batch(GZ, "b-1", [vm("vm-1")]), key["bearer"])
    assert_error(refused, 401, "2005")
    assert await hub.assets() == []
    # the same key signing its request is accepted
    signed = await signed_push(
        hub, "assets", batch(GZ, "b-1", [vm("vm-1")]), app_key=key["app_key"], secret=key["secret"]
    )
    assert assert_ok(signed)["accepted"] == 1
    # other roles default to bearer
    regulator = await new_key(hub, "regulator", regions=[GZ_REGION])
    assert regulator["require_signature"] is False
    assert asset_ids(assert_ok(await hub.get("/api/v1/assets", regulator["bearer"]))["items"]) == ["vm-1"]


async def test_a_provider_created_without_signatures_may_push_with_bearer(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ], require_signature=False)
    assert key["require_signature"] is False
    data = assert_ok(await hub.push("assets", batch(GZ, "b-1", [vm("vm-1")]), key["bearer"]))
    assert data["status"] == "accepted"
    assert asset_ids(await hub.assets()) == ["vm-1"]


@pytest.mark.parametrize("sign_method", ["HMAC-SM3", "HMAC-SHA256"])
async def test_a_signed_push_is_accepted(hub: Hub, sign_method: str) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    answer = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1"), vm("vm-2")]),
        app_key=key["app_key"],
        secret=key["secret"],
        sign_method=sign_method,
    )
    data = assert_ok(answer)
    assert (data["status"], data["accepted"]) == ("accepted", 2)
    assert asset_ids(await hub.assets()) == ["vm-1", "vm-2"]


async def test_the_sign_method_header_defaults_to_sm3(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    answer = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1")]),
        app_key=key["app_key"],
        secret=key["secret"],
        drop=("X-Sign-Method",),
    )
    assert assert_ok(answer)["accepted"] == 1


async def test_a_signed_get_with_a_query_in_another_order_is_accepted(hub: Hub) -> None:
    await two_cities(hub)
    assert_ok(await hub.push("assets", batch(GZ, "gz-assets-2", [vm("gz-3", name="中心数据库主机")])))
    key = await new_key(hub, "regulator", regions=["440000"], require_signature=True)
    answer = await signed_request(
        hub,
        "GET",
        "/api/v1/assets",
        app_key=key["app_key"],
        secret=key["secret"],
        query=f"limit=5&platform_code={GZ}",
        signed_query=f"platform_code={GZ}&limit=5",
    )
    assert asset_ids(assert_ok(answer)["items"]) == ["gz-1", "gz-2", "gz-3"]

    # a percent-encoded, non-ASCII value is signed as sent
    answer = await signed_request(
        hub,
        "GET",
        "/api/v1/assets",
        app_key=key["app_key"],
        secret=key["secret"],
        query="q=%E4%B8%AD%E5%BF%83&limit=5",
        signed_query="limit=5&q=%e4%b8%ad%e5%bf%83",
        sign_method="HMAC-SHA256",
    )
    assert asset_ids(assert_ok(answer)["items"]) == ["gz-3"]

    # signing another query than the one sent is a signature mismatch
    answer = await signed_request(
        hub,
        "GET",
        "/api/v1/assets",
        app_key=key["app_key"],
        secret=key["secret"],
        query=f"limit=5&platform_code={SZ}",
        signed_query=f"platform_code={GZ}&limit=5",
    )
    assert_error(answer, 401, "2005")


async def test_a_tampered_body_is_2005_and_nothing_is_stored(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    sent = orjson.dumps(batch(GZ, "b-1", [vm("vm-evil")]))
    signed = orjson.dumps(batch(GZ, "b-1", [vm("vm-1")]))
    answer = await signed_request(
        hub,
        "POST",
        "/api/v1/reports/assets",
        app_key=key["app_key"],
        secret=key["secret"],
        body=sent,
        signed_body=signed,
        headers={"Content-Type": "application/json"},
    )
    assert_error(answer, 401, "2005")
    assert await hub.assets() == []


async def test_a_wrong_signature_is_2005(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    body = batch(GZ, "b-1", [vm("vm-1")])
    # a signature made with another secret, and a signature that is not even Base64
    for bad in (sign("not-the-secret", "anything"), "not base64!"):
        answer = await signed_push(
            hub, "assets", body, app_key=key["app_key"], secret=key["secret"], headers={"X-Signature": bad}
        )
        assert_error(answer, 401, "2005")
    # signed with the secret of another key
    other = await new_key(hub, "provider", platforms=[GZ])
    answer = await signed_push(hub, "assets", body, app_key=key["app_key"], secret=other["secret"])
    assert_error(answer, 401, "2005")
    assert await hub.assets() == []


@pytest.mark.parametrize("offset_s", [-301, 301])
async def test_a_timestamp_outside_300_s_is_2003(hub: Hub, offset_s: int) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    timestamp_ms = time.time_ns() // 1_000_000 + offset_s * 1000
    answer = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1")]),
        app_key=key["app_key"],
        secret=key["secret"],
        timestamp_ms=timestamp_ms,
    )
    assert_error(answer, 401, "2003")
    # 250 s off is inside the window
    timestamp_ms = time.time_ns() // 1_000_000 + (250 if offset_s > 0 else -250) * 1000
    answer = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1")]),
        app_key=key["app_key"],
        secret=key["secret"],
        timestamp_ms=timestamp_ms,
    )
    assert_ok(answer)


async def test_a_reused_nonce_is_2004_on_the_second_request(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    nonce = "nonce-0123456789-abcdef"
    first = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1")]),
        app_key=key["app_key"],
        secret=key["secret"],
        nonce=nonce,
    )
    assert_ok(first)
    second = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-2", [vm("vm-2")]),
        app_key=key["app_key"],
        secret=key["secret"],
        nonce=nonce,
    )
    assert_error(second, 401, "2004")
    # the exact same request replayed is refused as well
    replay = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1")]),
        app_key=key["app_key"],
        secret=key["secret"],
        nonce=nonce,
    )
    assert_error(replay, 401, "2004")
    assert asset_ids(await hub.assets()) == ["vm-1"]
    # nonces are per key: another key may use the same one
    other = await new_key(hub, "provider", platforms=[GZ])
    answer = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-3", [vm("vm-3")]),
        app_key=other["app_key"],
        secret=other["secret"],
        nonce=nonce,
    )
    assert_ok(answer)


@pytest.mark.parametrize("missing", SIGNATURE_HEADERS)
async def test_a_missing_signature_header_is_2001(hub: Hub, missing: str) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    answer = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1")]),
        app_key=key["app_key"],
        secret=key["secret"],
        drop=(missing,),
    )
    assert_error(answer, 401, "2001")
    # an empty header is as good as a missing one
    answer = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1")]),
        app_key=key["app_key"],
        secret=key["secret"],
        headers={missing: ""},
    )
    assert_error(answer, 401, "2001")
    assert await hub.assets() == []


async def test_a_signed_request_with_an_unknown_app_key_is_2002(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    answer = await signed_push(
        hub, "assets", batch(GZ, "b-1", [vm("vm-1")]), app_key="AKnosuchkey000000", secret=key["secret"]
    )
    assert_error(answer, 401, "2002")


async def test_a_gzip_body_is_signed_over_the_compressed_bytes(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    answer = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1")]),
        app_key=key["app_key"],
        secret=key["secret"],
        gzip_body=True,
    )
    assert assert_ok(answer)["accepted"] == 1
    assert asset_ids(await hub.assets()) == ["vm-1"]

    # a digest over the decompressed bytes is not the digest of the body as sent
    plain = orjson.dumps(batch(GZ, "b-2", [vm("vm-2")]))
    answer = await signed_request(
        hub,
        "POST",
        "/api/v1/reports/assets",
        app_key=key["app_key"],
        secret=key["secret"],
        body=gzip.compress(plain),
        signed_body=plain,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert_error(answer, 401, "2005")


async def test_the_timestamp_is_checked_before_the_signature(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    stale = time.time_ns() // 1_000_000 - 301_000
    answer = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1")]),
        app_key=key["app_key"],
        secret=key["secret"],
        timestamp_ms=stale,
        headers={"X-Signature": sign("wrong", "wrong")},
    )
    assert_error(answer, 401, "2003")
    # the key is checked before the timestamp, and missing headers before the key
    answer = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1")]),
        app_key="AKnosuchkey000000",
        secret="x",
        timestamp_ms=stale,
    )
    assert_error(answer, 401, "2002")
    answer = await signed_push(
        hub,
        "assets",
        batch(GZ, "b-1", [vm("vm-1")]),
        app_key="AKnosuchkey000000",
        secret="x",
        timestamp_ms=stale,
        drop=("X-Nonce",),
    )
    assert_error(answer, 401, "2001")


async def test_a_bad_signature_does_not_burn_the_nonce(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ])
    nonce = "burn-me-not-0123456789"
    body = batch(GZ, "b-1", [vm("vm-1")])
    forged = await signed_push(
        hub, "assets", body, app_key=key["app_key"], secret="guessed-secret", nonce=nonce
    )
    assert_error(forged, 401, "2005")
    tampered = await signed_push(
        hub,
        "assets",
        body,
        app_key=key["app_key"],
        secret=key["secret"],
        nonce=nonce,
        headers={"X-Content-Digest": "0" * 64},
    )
    assert_error(tampered, 401, "2005")
    stale = await signed_push(
        hub,
        "assets",
        body,
        app_key=key["app_key"],
        secret=key["secret"],
        nonce=nonce,
        timestamp_ms=time.time_ns() // 1_000_000 - 400_000,
    )
    assert_error(stale, 401, "2003")
    genuine = await signed_push(
        hub, "assets", body, app_key=key["app_key"], secret=key["secret"], nonce=nonce
    )
    assert assert_ok(genuine)["accepted"] == 1


# --- 3. roles ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["regulator", "integrator"])
async def test_read_only_roles_cannot_push(hub: Hub, role: str) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    scope: dict[str, Any] = (
        {"regions": [GZ_REGION]} if role == "regulator" else {"platforms": [GZ], "kinds": ["assets", "logs"]}
    )
    key = await new_key(hub, role, **scope)
    assert_error(await hub.push("assets", batch(GZ, "b-1", [vm("vm-1")]), key["bearer"]), 403, "2006")
    assert_error(await hub.push("logs", batch(GZ, "l-1", [log_record("L1")]), key["bearer"]), 403, "2006")
    assert await hub.assets() == []


@pytest.mark.parametrize("role", ["regulator", "provider", "integrator"])
async def test_only_admin_may_use_the_admin_api(hub: Hub, role: str) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    scope: dict[str, Any] = {
        "regulator": {"regions": ["440000"]},
        "provider": {"platforms": [GZ], "require_signature": False},
        "integrator": {"platforms": [GZ], "kinds": ["assets"]},
    }[role]
    key = await new_key(hub, role, **scope)
    auth = hub.auth(key["bearer"])
    admin_key = hub.admin.split(".", 1)[0]
    new_platform = {
        "platform_code": SZ,
        "name": "深圳",
        "region_code": SZ_REGION,
        "network_zone": "gov_extranet",
        "level": "city",
    }
    calls: list[tuple[str, str, Any]] = [
        ("GET", "/api/v1/admin/clients", None),
        ("POST", "/api/v1/admin/clients", {"name": "x", "role": "admin"}),
        ("PATCH", f"/api/v1/admin/clients/{admin_key}", {"status": "disabled"}),
        ("DELETE", f"/api/v1/admin/clients/{admin_key}", None),
        ("GET", "/api/v1/admin/platforms", None),
        ("GET", f"/api/v1/admin/platforms/{GZ}", None),
        ("PATCH", f"/api/v1/admin/platforms/{GZ}", {"name": "改名"}),
        ("POST", "/api/v1/admin/platforms", new_platform),
    ]
    for method, path, json_body in calls:
        answer = await hub.http.request(method, path, json=json_body, headers=auth)
        assert_error(answer, 403, "2006")
    # nothing was changed: the admin key still works, no platform was added or renamed
    platforms = assert_ok(await hub.get("/api/v1/admin/platforms"))["items"]
    assert [(p["platform_code"], p["name"]) for p in platforms] == [(GZ, f"平台 {GZ}")]
    clients = assert_ok(await hub.get("/api/v1/admin/clients"))["items"]
    assert len(clients) == 2 and all(c["status"] == "active" for c in clients)


async def test_a_provider_may_push_only_for_its_bound_platforms(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    await hub.create_platform(SZ, SZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ], require_signature=False)
    assert_ok(await hub.push("assets", batch(GZ, "b-1", [vm("gz-1")]), key["bearer"]))
    other = assert_error(await hub.push("assets", batch(SZ, "b-1", [vm("sz-1")]), key["bearer"]), 403, "2006")
    unregistered = assert_error(
        await hub.push("assets", batch(UNREGISTERED, "b-1", [vm("x-1")]), key["bearer"]), 403, "2006"
    )
    # the two refusals must not tell a registered platform from an unregistered one
    assert other["message"].replace(SZ, "P") == unregistered["message"].replace(UNREGISTERED, "P")
    # signed pushes are held to the same scope
    signed_key = await new_key(hub, "provider", platforms=[GZ])
    answer = await signed_push(
        hub,
        "assets",
        batch(SZ, "b-2", [vm("sz-2")]),
        app_key=signed_key["app_key"],
        secret=signed_key["secret"],
    )
    assert_error(answer, 403, "2006")
    assert asset_ids(await hub.assets()) == ["gz-1"]


async def test_admin_pushing_to_an_unregistered_platform_is_404(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    assert_error(await hub.push("assets", batch(UNREGISTERED, "b-1", [vm("x-1")])), 404, "3002")


async def test_a_decommissioned_platform_refuses_pushes_and_keeps_its_data(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ], require_signature=False)
    assert_ok(await hub.push("assets", batch(GZ, "b-1", [vm("vm-1")]), key["bearer"]))
    patch = await hub.http.patch(
        f"/api/v1/admin/platforms/{GZ}", json={"status": "decommissioned"}, headers=hub.auth(hub.admin)
    )
    assert assert_ok(patch)["status"] == "decommissioned"
    assert_error(await hub.push("assets", batch(GZ, "b-2", [vm("vm-2")]), key["bearer"]), 403, "2006")
    assert asset_ids(await hub.assets(key["bearer"])) == ["vm-1"]


# --- 4. scopes on reads ------------------------------------------------------------------------


async def test_a_city_regulator_sees_only_its_city(hub: Hub) -> None:
    await two_cities(hub)
    key = await new_key(hub, "regulator", regions=[GZ_REGION])
    assert key["regions"] == ["4401"]
    items = await hub.assets(key["bearer"])
    assert [(a["platform_code"], a["asset_id"]) for a in items] == [(GZ, "gz-1"), (GZ, "gz-2")]
    assert asset_ids(await hub.assets(key["bearer"], platform_code=GZ)) == ["gz-1", "gz-2"]
    assert_error(await hub.get("/api/v1/assets", key["bearer"], platform_code=SZ), 403, "2006")
    assert_error(await hub.get("/api/v1/assets", key["bearer"], platform_code=UNREGISTERED), 403, "2006")


async def test_a_province_regulator_sees_both_cities(hub: Hub) -> None:
    await two_cities(hub)
    key = await new_key(hub, "regulator", regions=["440000"])
    assert key["regions"] == ["44"]
    items = await hub.assets(key["bearer"])
    assert [(a["platform_code"], a["asset_id"]) for a in items] == [(GZ, "gz-1"), (GZ, "gz-2"), (SZ, "sz-1")]
    # another province sees nothing
    other = await new_key(hub, "regulator", regions=["450000"])
    assert await hub.assets(other["bearer"]) == []


async def test_the_asset_uid_is_the_uuid5_of_platform_and_asset_id(hub: Hub) -> None:
    await two_cities(hub)
    items = await hub.assets()
    assert {a["asset_id"]: a["asset_uid"] for a in items} == {
        "gz-1": asset_uid(GZ, "gz-1"),
        "gz-2": asset_uid(GZ, "gz-2"),
        "sz-1": asset_uid(SZ, "sz-1"),
    }
    one = assert_ok(await hub.get(f"/api/v1/assets/{asset_uid(SZ, 'sz-1')}"))
    assert (one["platform_code"], one["asset_id"], one["asset_uid"]) == (SZ, "sz-1", asset_uid(SZ, "sz-1"))


async def test_an_asset_outside_scope_looks_like_an_absent_one(hub: Hub) -> None:
    await two_cities(hub)
    key = await new_key(hub, "regulator", regions=[GZ_REGION])
    mine = assert_ok(await hub.get(f"/api/v1/assets/{asset_uid(GZ, 'gz-1')}", key["bearer"]))
    assert mine["asset_id"] == "gz-1"
    assert assert_ok(await hub.get(f"/api/v1/assets/{asset_uid(GZ, 'gz-1')}/history", key["bearer"]))["items"]

    hidden_uid = asset_uid(SZ, "sz-1")
    absent_uid = asset_uid(SZ, "sz-404")
    for suffix in ("", "/history"):
        hidden = assert_error(
            await hub.get(f"/api/v1/assets/{hidden_uid}{suffix}", key["bearer"]), 404, "3002"
        )
        absent = assert_error(
            await hub.get(f"/api/v1/assets/{absent_uid}{suffix}", key["bearer"]), 404, "3002"
        )
        assert hidden["message"].replace(hidden_uid, "U") == absent["message"].replace(absent_uid, "U")
        assert "sz-1" not in hidden["message"] and SZ not in hidden["message"]
    # the admin does see it
    assert assert_ok(await hub.get(f"/api/v1/assets/{hidden_uid}"))["asset_id"] == "sz-1"


async def test_a_provider_reads_only_its_own_platforms(hub: Hub) -> None:
    await two_cities(hub)
    key = await new_key(hub, "provider", platforms=[SZ], require_signature=False)
    assert asset_ids(await hub.assets(key["bearer"])) == ["sz-1"]
    assert_error(await hub.get("/api/v1/assets", key["bearer"], platform_code=GZ), 403, "2006")
    assert_error(await hub.get(f"/api/v1/assets/{asset_uid(GZ, 'gz-1')}", key["bearer"]), 404, "3002")
    assert (
        assert_ok(await hub.get(f"/api/v1/assets/{asset_uid(SZ, 'sz-1')}", key["bearer"]))["asset_id"]
        == "sz-1"
    )
    # a provider that signs its reads sees the same
    signed_key = await new_key(hub, "provider", platforms=[SZ])
    answer = await signed_request(
        hub, "GET", "/api/v1/assets", app_key=signed_key["app_key"], secret=signed_key["secret"]
    )
    assert asset_ids(assert_ok(answer)["items"]) == ["sz-1"]


async def test_an_integrator_reads_only_its_kinds(hub: Hub) -> None:
    await two_cities(hub)
    assert_ok(await hub.push("logs", batch(GZ, "l-1", [log_record("L1")])))
    key = await new_key(hub, "integrator", platforms=[GZ], kinds=["logs"])
    assert_error(await hub.get("/api/v1/assets", key["bearer"]), 403, "2006")
    assert_error(await hub.get("/api/v1/assets", key["bearer"], platform_code=GZ), 403, "2006")
    assert_error(await hub.get(f"/api/v1/assets/{asset_uid(GZ, 'gz-1')}", key["bearer"]), 403, "2006")
    verify = assert_ok(await hub.get("/api/v1/logs/verify", key["bearer"], platform_code=GZ))
    assert verify["ok"] is True and verify["checked"] == 1
    assert_error(await hub.get("/api/v1/logs/verify", key["bearer"], platform_code=SZ), 403, "2006")


async def test_an_integrator_with_a_region_sees_only_that_region(hub: Hub) -> None:
    await two_cities(hub)
    key = await new_key(hub, "integrator", regions=[SZ_REGION], kinds=["assets"])
    assert asset_ids(await hub.assets(key["bearer"])) == ["sz-1"]
    assert_error(await hub.get("/api/v1/assets", key["bearer"], platform_code=GZ), 403, "2006")
    assert_error(await hub.get(f"/api/v1/assets/{asset_uid(GZ, 'gz-1')}", key["bearer"]), 404, "3002")
    # the kind "logs" is not granted, even inside the region
    assert_error(await hub.get("/api/v1/logs/verify", key["bearer"], platform_code=SZ), 403, "2006")


async def test_an_integrator_scope_is_the_union_of_platforms_and_regions(hub: Hub) -> None:
    await two_cities(hub)
    key = await new_key(hub, "integrator", platforms=[GZ], regions=[SZ_REGION], kinds=["assets"])
    assert asset_ids(await hub.assets(key["bearer"])) == ["gz-1", "gz-2", "sz-1"]


async def test_log_verification_outside_scope_is_403(hub: Hub) -> None:
    await two_cities(hub)
    assert_ok(await hub.push("logs", batch(SZ, "l-1", [log_record("L1")])))
    regulator = await new_key(hub, "regulator", regions=[GZ_REGION])
    assert_error(await hub.get("/api/v1/logs/verify", regulator["bearer"], platform_code=SZ), 403, "2006")
    assert_error(
        await hub.get("/api/v1/logs/verify", regulator["bearer"], platform_code=UNREGISTERED), 403, "2006"
    )
    assert (
        assert_ok(await hub.get("/api/v1/logs/verify", regulator["bearer"], platform_code=GZ))["ok"] is True
    )
    provider = await new_key(hub, "provider", platforms=[GZ], require_signature=False)
    assert_error(await hub.get("/api/v1/logs/verify", provider["bearer"], platform_code=SZ), 403, "2006")
    province = await new_key(hub, "regulator", regions=["440000"])
    verify = assert_ok(await hub.get("/api/v1/logs/verify", province["bearer"], platform_code=SZ))
    assert verify["ok"] is True and verify["checked"] == 1


# --- 5. batch receipts -------------------------------------------------------------------------


async def test_batch_receipts_are_for_their_provider(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    await hub.create_platform(SZ, SZ_REGION)
    owner = await new_key(hub, "provider", platforms=[GZ], require_signature=False)
    records = [vm("vm-1"), vm("vm-2", status="exploded")]
    pushed = assert_ok(await hub.push("assets", batch(GZ, "mixed-1", records), owner["bearer"]))
    assert pushed["status"] == "partial"

    receipt = assert_ok(await hub.get("/api/v1/reports/batches/mixed-1", owner["bearer"]))
    assert (receipt["batch_id"], receipt["kind"], receipt["status"]) == ("mixed-1", "assets", "partial")
    assert (receipt["accepted"], receipt["rejected"]) == (1, 1)
    assert [(q["index"], q["record"]) for q in receipt["quarantined"]] == [(1, records[1])]

    stranger = await new_key(hub, "provider", platforms=[SZ], require_signature=False)
    hidden_answer = await hub.get("/api/v1/reports/batches/mixed-1", stranger["bearer"])
    hidden = assert_error(hidden_answer, 404, "3002")
    absent = assert_error(await hub.get("/api/v1/reports/batches/no-such", stranger["bearer"]), 404, "3002")
    assert hidden["message"].replace("mixed-1", "B") == absent["message"].replace("no-such", "B")
    assert "exploded" not in hidden_answer.text and "quarantined" not in hidden_answer.text

    regulator = await new_key(hub, "regulator", regions=["440000"])
    assert_error(await hub.get("/api/v1/reports/batches/mixed-1", regulator["bearer"]), 403, "2006")
    integrator = await new_key(hub, "integrator", platforms=[GZ], kinds=["assets", "logs"])
    assert_error(await hub.get("/api/v1/reports/batches/mixed-1", integrator["bearer"]), 403, "2006")
    # the admin reads it too
    assert assert_ok(await hub.get("/api/v1/reports/batches/mixed-1"))["batch_id"] == "mixed-1"


async def test_a_batch_id_used_under_two_kinds_needs_the_kind(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    owner = await new_key(hub, "provider", platforms=[GZ], require_signature=False)
    assert_ok(await hub.push("assets", batch(GZ, "same-id", [vm("vm-1")]), owner["bearer"]))
    assert_ok(
        await hub.push("logs", batch(GZ, "same-id", [log_record("L1"), log_record("L2")]), owner["bearer"])
    )
    assert_error(await hub.get("/api/v1/reports/batches/same-id", owner["bearer"]), 400, "1001")
    assets = assert_ok(await hub.get("/api/v1/reports/batches/same-id", owner["bearer"], kind="assets"))
    assert (assets["kind"], assets["received"]) == ("assets", 1)
    logs = assert_ok(await hub.get("/api/v1/reports/batches/same-id", owner["bearer"], kind="logs"))
    assert (logs["kind"], logs["received"]) == ("logs", 2)


# --- 6. client administration ------------------------------------------------------------------


async def test_a_secret_is_shown_once_and_never_listed(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    created = await hub.http.post(
        "/api/v1/admin/clients",
        json={"name": "广州监管", "role": "regulator", "regions": [GZ_REGION]},
        headers=hub.auth(hub.admin),
    )
    key = assert_ok(created, 201)
    secret = key["secret"]
    assert len(secret) >= 16 and key["bearer"] == f"{key['app_key']}.{secret}"
    assert (key["role"], key["regions"], key["status"]) == ("regulator", ["4401"], "active")
    assert_ok(await hub.get("/api/v1/assets", key["bearer"]))

    admin_secret = hub.admin.split(".", 1)[1]
    listing = await hub.get("/api/v1/admin/clients")
    clients = assert_ok(listing)["items"]
    assert {c["app_key"] for c in clients} == {key["app_key"], hub.admin.split(".", 1)[0]}
    for text in (listing.text,):
        assert secret not in text and admin_secret not in text
        assert '"secret"' not in text and '"bearer"' not in text
    changed = await hub.http.patch(
        f"/api/v1/admin/clients/{key['app_key']}", json={"name": "广州市监管"}, headers=hub.auth(hub.admin)
    )
    assert assert_ok(changed)["name"] == "广州市监管"
    revoked = await hub.http.delete(f"/api/v1/admin/clients/{key['app_key']}", headers=hub.auth(hub.admin))
    assert_ok(revoked)
    for answer in (changed, revoked, await hub.get("/api/v1/admin/clients")):
        assert secret not in answer.text and '"secret"' not in answer.text


async def test_changing_a_regulators_region_changes_what_it_sees(hub: Hub) -> None:
    await two_cities(hub)
    key = await new_key(hub, "regulator", regions=[GZ_REGION])
    assert asset_ids(await hub.assets(key["bearer"])) == ["gz-1", "gz-2"]
    patch = await hub.http.patch(
        f"/api/v1/admin/clients/{key['app_key']}", json={"regions": [SZ_REGION]}, headers=hub.auth(hub.admin)
    )
    assert assert_ok(patch)["regions"] == ["4403"]
    assert asset_ids(await hub.assets(key["bearer"])) == ["sz-1"]
    assert_error(await hub.get(f"/api/v1/assets/{asset_uid(GZ, 'gz-1')}", key["bearer"]), 404, "3002")
    assert_error(await hub.get("/api/v1/assets", key["bearer"], platform_code=GZ), 403, "2006")


async def test_changing_a_providers_platforms_changes_where_it_may_push(hub: Hub) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    await hub.create_platform(SZ, SZ_REGION)
    key = await new_key(hub, "provider", platforms=[GZ], require_signature=False)
    assert_error(await hub.push("assets", batch(SZ, "b-1", [vm("sz-1")]), key["bearer"]), 403, "2006")
    patch = await hub.http.patch(
        f"/api/v1/admin/clients/{key['app_key']}", json={"platforms": [SZ]}, headers=hub.auth(hub.admin)
    )
    assert assert_ok(patch)["platforms"] == [SZ]
    assert_ok(await hub.push("assets", batch(SZ, "b-1", [vm("sz-1")]), key["bearer"]))
    assert_error(await hub.push("assets", batch(GZ, "b-1", [vm("gz-1")]), key["bearer"]), 403, "2006")


async def test_moving_a_platform_to_another_region_moves_it_between_regulators(hub: Hub) -> None:
    await two_cities(hub)
    gz_regulator = await new_key(hub, "regulator", regions=[GZ_REGION])
    sz_regulator = await new_key(hub, "regulator", regions=[SZ_REGION])
    patch = await hub.http.patch(
        f"/api/v1/admin/platforms/{GZ}", json={"region_code": "440304"}, headers=hub.auth(hub.admin)
    )
    assert assert_ok(patch)["region_code"] == "440304"
    assert await hub.assets(gz_regulator["bearer"]) == []
    assert asset_ids(await hub.assets(sz_regulator["bearer"])) == ["gz-1", "gz-2", "sz-1"]
    assert_error(
        await hub.get(f"/api/v1/assets/{asset_uid(GZ, 'gz-1')}", gz_regulator["bearer"]), 404, "3002"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"role": "provider", "platforms": [UNREGISTERED]},
        {"role": "provider", "platforms": [GZ, UNREGISTERED]},
        {"role": "regulator"},
        {"role": "regulator", "regions": []},
        {"role": "integrator", "platforms": [UNREGISTERED], "kinds": ["assets"]},
    ],
    ids=[
        "provider-unregistered",
        "provider-one-unregistered",
        "regulator-no-regions",
        "regulator-empty",
        "integrator-unregistered",
    ],
)
async def test_a_client_with_an_impossible_scope_is_refused(hub: Hub, body: dict[str, Any]) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    answer = await hub.http.post(
        "/api/v1/admin/clients", json={"name": "bad", **body}, headers=hub.auth(hub.admin)
    )
    assert_error(answer, 400, "1001")
    assert len(assert_ok(await hub.get("/api/v1/admin/clients"))["items"]) == 1  # only the admin key


# --- 7. keyset paging --------------------------------------------------------------------------


async def _twenty_five_assets(hub: Hub) -> list[tuple[str, str]]:
    await hub.create_platform(GZ, GZ_REGION)
    await hub.create_platform(SZ, SZ_REGION)
    gz = [f"a{n:02d}" for n in range(13)]
    sz = [f"a{n:02d}" for n in range(12)]
    # pushed out of order
    assert_ok(await hub.push("assets", batch(SZ, "sz-1", [vm(a) for a in reversed(sz)])))
    assert_ok(await hub.push("assets", batch(GZ, "gz-1", [vm(a) for a in gz[7:]])))
    assert_ok(await hub.push("assets", batch(GZ, "gz-2", [vm(a) for a in reversed(gz[:7])])))
    return sorted([(GZ, a) for a in gz] + [(SZ, a) for a in sz])


async def test_assets_come_in_keyset_pages_each_exactly_once(hub: Hub) -> None:
    expected = await _twenty_five_assets(hub)
    seen: list[tuple[str, str]] = []
    sizes: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 10, **({"cursor": cursor} if cursor else {})}
        data = assert_ok(await hub.get("/api/v1/assets", **params))
        sizes.append(len(data["items"]))
        seen.extend((a["platform_code"], a["asset_id"]) for a in data["items"])
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert sizes == [10, 10, 5]
    assert seen == expected


async def test_a_cursor_is_bound_to_its_filters(hub: Hub) -> None:
    await _twenty_five_assets(hub)
    first = assert_ok(await hub.get("/api/v1/assets", limit=10))
    cursor = first["next_cursor"]
    assert cursor
    assert_ok(await hub.get("/api/v1/assets", limit=10, cursor=cursor))
    assert_error(await hub.get("/api/v1/assets", limit=10, cursor=cursor, q="vm"), 400, "1001")
    assert_error(await hub.get("/api/v1/assets", limit=10, cursor=cursor, platform_code=GZ), 400, "1001")
    assert_error(
        await hub.get("/api/v1/assets", limit=10, cursor=cursor, include_retired="true"), 400, "1001"
    )

    filtered = assert_ok(await hub.get("/api/v1/assets", limit=5, platform_code=GZ))
    assert_error(await hub.get("/api/v1/assets", limit=5, cursor=filtered["next_cursor"]), 400, "1001")
    assert_error(
        await hub.get("/api/v1/assets", limit=5, cursor=filtered["next_cursor"], platform_code=SZ),
        400,
        "1001",
    )
    following = assert_ok(
        await hub.get("/api/v1/assets", limit=5, cursor=filtered["next_cursor"], platform_code=GZ)
    )
    assert asset_ids(following["items"]) == ["a05", "a06", "a07", "a08", "a09"]


async def test_a_forged_cursor_is_1001(hub: Hub) -> None:
    await _twenty_five_assets(hub)
    cursor = assert_ok(await hub.get("/api/v1/assets", limit=10))["next_cursor"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for position in (0, len(cursor) // 3, len(cursor) // 2, len(cursor) - 5):
        original = cursor[position]
        replacement = (
            alphabet[(alphabet.index(original) + 1) % len(alphabet)] if original in alphabet else "A"
        )
        forged = cursor[:position] + replacement + cursor[position + 1 :]
        assert forged != cursor
        assert_error(await hub.get("/api/v1/assets", limit=10, cursor=forged), 400, "1001")
    for junk in ("x", "not-a-cursor", "%%%", "A" * 300):
        assert_error(await hub.get("/api/v1/assets", limit=10, cursor=junk), 400, "1001")


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "ten"])
async def test_a_limit_outside_1_to_1000_is_1001(hub: Hub, limit: str) -> None:
    await hub.create_platform(GZ, GZ_REGION)
    assert_error(await hub.get("/api/v1/assets", limit=limit), 400, "1001")


async def test_limits_1_and_1000_are_accepted(hub: Hub) -> None:
    await _twenty_five_assets(hub)
    assert len(assert_ok(await hub.get("/api/v1/assets", limit=1))["items"]) == 1
    page = assert_ok(await hub.get("/api/v1/assets", limit=1000))
    assert len(page["items"]) == 25 and page["next_cursor"] is None


# --- 8. property: no input to the authentication headers is a 500 -------------------------------

_header_text = st.one_of(
    st.just(""),
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=80),
    # very long, built by repetition so that it costs little entropy
    st.builds(
        lambda piece, times: (piece or "长") * times,
        st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=4),
        st.integers(min_value=1000, max_value=8000),
    ),
    st.sampled_from(
        [
            "Bearer",
            "Bearer ",
            "bearer x.y",
            "Bearer .",
            "Bearer a.",
            "Bearer .b",
            "Basic YTpi",
            "Bearer 中文.密钥",
            "HMAC-SM3",
            "hmac-sha256",
            "0",
            "-1",
            "9" * 40,
        ]
    ),
)


def _header_value(text: str) -> bytes:
    # header values travel as bytes; non-ASCII is sent as its UTF-8 bytes
    return text.encode("utf-8")


# mostly kept valid, so that the later checks (timestamp, digest, signature) are reached often
_MODES = st.sampled_from(["valid"] * 6 + ["random", "drop"])
_SIGNED_FIELDS = ("X-App-Key", "X-Timestamp", "X-Nonce", "X-Sign-Method", "X-Content-Digest")


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    authorization=st.one_of(st.none(), st.none(), st.none(), _header_text),
    bearer_of_real_key=st.booleans(),
    modes=st.fixed_dictionaries(dict.fromkeys(_SIGNED_FIELDS, _MODES)),
    randoms=st.fixed_dictionaries(dict.fromkeys(_SIGNED_FIELDS, _header_text)),
    signature=st.one_of(st.just("signed with another secret"), _header_text, st.none()),
    post=st.booleans(),
)
async def test_any_authentication_headers_get_a_2001_to_2005_envelope_never_a_500(
    hub: Hub,
    authorization: str | None,
    bearer_of_real_key: bool,
    modes: dict[str, str],
    randoms: dict[str, str],
    signature: str | None,
    post: bool,
) -> None:
    """Starting from a correctly signed request of a real key, each signature header is kept, replaced
    by random text (non-ASCII, empty, very long) or dropped, the signature is never right, and an
    ``Authorization`` header may be added: the answer is always a 401 envelope with 2001–2005."""
    app_key, secret = hub.admin.split(".", 1)
    body = b'{"batch_id": "b", "platform_code": "P", "collected_at": "x", "records": [1]}' if post else b""
    path = "/api/v1/reports/assets" if post else "/api/v1/assets"
    valid = signed_headers(
        app_key=app_key,
        secret=secret,
        method="POST" if post else "GET",
        path=path,
        query="limit=5",
        body=body,
    )
    sent: dict[str, str] = {}
    for name in _SIGNED_FIELDS:
        if modes[name] == "valid":
            sent[name] = valid[name]
        elif modes[name] == "random":
            sent[name] = randoms[name]
    if signature == "signed with another secret":
        sent["X-Signature"] = sign("another secret", "anything", "HMAC-SM3")
    elif signature is not None:
        sent["X-Signature"] = signature
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
    headers.extend((name.lower().encode(), _header_value(value)) for name, value in sent.items())
    if authorization is not None:
        value = f"Bearer {app_key}.{authorization}" if bearer_of_real_key and authorization else authorization
        headers.append((b"authorization", _header_value(value)))
    if post:
        answer = await hub.http.post(f"{path}?limit=5", content=body, headers=headers)
    else:
        answer = await hub.http.get(f"{path}?limit=5", headers=headers)
    assert answer.status_code == 401, answer.text
    body_out = answer.json()
    assert body_out["code"] in {"2001", "2002", "2003", "2004", "2005"}, body_out
    assert body_out["message"] and CJK.search(body_out["message"])
    assert body_out["request_id"] and answer.headers["x-request-id"] == body_out["request_id"]
