"""Every route × every role (§1): nothing of a platform outside a key's scope is read or written.

The routes come from the application's own route table. ``CALLS`` says, for every (method, path
template), how to call that route *at a target* — a platform and its objects: path parameters
filled with the target's asset uids, batch ids, platform code or a client key bound to it, query
parameters naming it, bodies writing into it. ``test_every_route_has_an_entry_in_calls`` fails for a
route without an entry (and for an entry without a route), so a new endpoint joins the matrix
with its first commit.

The world: platform A (Guangzhou, 440100) and platform B (Shenzhen, 440300), each with a room,
two assets, logs, metrics, environment samples, alarms and a batch receipt per kind, pushed by the
admin. Every non-admin key is scoped to A. Each role walks every route three times:

* at **B** — outside its scope: the answer is 403 ``2006``, 404 ``3002``, 401 (a key that requires
  signatures, presented as bearer) or a 200 list silently filtered; never 5xx, never 2xx for a
  write; and it contains nothing of B the caller did not send itself;
* at **GHOST**, a platform that was never registered — the answer must be the same as at B (after
  swapping the identifiers), so a refusal does not tell an existing object from an absent one;
* at **A** — inside its scope: keys that may read A get A's data (the matrix cannot pass by
  refusing everything); keys that may not (role, kind) get 403 ``2006``.

Afterwards B is unchanged, in the database and as the admin sees it through every read route.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote, unquote, urlencode

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select
from starlette.routing import Mount

from app.config import Settings
from app.db import create_sessionmaker
from app.main import create_app
from app.models import Base
from app.schemas.common import ClientCreate
from app.schemas.types import normalise_region
from app.security.keys import load_server_key
from app.services.clients import create_client
from tests.helpers import Hub, batch, new_key, now_utc, rfc3339, signed_request, vm

ASSET_NS = uuid.UUID("014f5156-d3bb-4a1f-b52d-ec5938c65eae")
KINDS = ("rooms", "assets", "logs", "metrics", "environment", "alarms")
READ_KINDS = ("assets", "logs", "metrics", "environment", "alarms", "indicators")
SHARED_BATCH = "shared-9qx-batch"  # one batch id pushed for logs to both A and B
DOCS_ROUTES = {"/openapi.json", "/docs", "/redoc"}
#: the vendored Swagger UI / ReDoc files the docs pages load (tests/test_offline_docs.py)
DOCS_STATIC_PREFIX = "/docs-static/"
READ_METHODS = {"GET"}


# --- the world -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A platform and its objects. Every identifier of it contains ``p`` (a rare string)."""

    code: str
    region: str
    p: str
    ip: str
    victim_key: str = ""  # a provider key bound to this platform: the object of the client routes

    def asset_id(self, n: int | str) -> str:
        return f"{self.p}-asset-{n}"

    def asset_name(self, n: int | str) -> str:
        return f"vm {self.asset_id(n)}"

    def uid(self, n: int | str) -> str:
        return str(uuid.uuid5(ASSET_NS, f"{self.code}|{self.asset_id(n)}"))

    def batch_id(self, kind: str) -> str:
        return f"{self.p}-batch-{kind}"

    @property
    def room(self) -> str:
        return f"{self.p}-room-1"

    @property
    def markers(self) -> list[str]:
        """What must not show up in an answer to a caller outside this target's scope."""
        return [self.p, self.ip, self.uid(1), self.uid(2), self.victim_key]

    @property
    def idents(self) -> dict[str, str]:
        """Identifiers by role, to compare the answers at two targets."""
        names = {
            "victim": self.victim_key,
            "uid1": self.uid(1),
            "uid2": self.uid(2),
            "code": self.code,
            "region": self.region,
            "region_prefix": normalise_region(self.region),  # what a region filter echoes back
            "ip": self.ip,
            "p": self.p,
        }
        return {k: v.lower() for k, v in names.items() if v}


A = Target("GZ9QX-PLAT-A", "440100", "gz9qx", "10.231.1.17")
B = Target("SZ9QX-PLAT-B", "440300", "sz9qx", "10.232.2.27")
GHOST = Target("ST9QX-PLAT-G", "440500", "st9qx", "10.233.3.37", victim_key="ak_59a0c0ffee0000000000")


def seed_records(t: Target, kind: str) -> list[dict[str, Any]]:
    """What the admin pushed for ``t`` (and would have pushed for GHOST)."""
    ts = rfc3339(now_utc())
    return {
        "rooms": [
            {
                "room_code": t.room,
                "name": f"{t.p} 机房",
                "datacenter_code": f"{t.p}-dc",
                "datacenter_name": f"{t.p} 数据中心",
                "region_code": t.region,
                "gb50174_class": "A",
                "aisle_containment": True,
            }
        ],
        "assets": [
            vm(t.asset_id(1), ip_addresses=[{"ip": t.ip, "kind": "business"}], business_system=f"{t.p} 系统"),
            vm(t.asset_id(2), using_unit=f"{t.p} 单位"),
            # rejected (unknown status): kept raw in the quarantine of the receipt
            vm(t.asset_id("bad"), status="exploded", name=f"{t.p} quarantined"),
        ],
        "logs": [
            {
                "log_id": f"{t.p}-log-{n}",
                "category": "operation",
                "type": "login",
                "event_time": ts,
                "severity": 6,
                "actor": f"{t.p}-alice",
                "action": "login",
                "outcome": "success",
                "message": f"{t.p} 登录成功 {n}",
                "asset_id": t.asset_id(1),
            }
            for n in (1, 2)
        ],
        "metrics": [
            {"metric": "cpu.util", "ts": ts, "value": 12.5, "asset_id": t.asset_id(1)},
            {"metric": "net.rx.bits_per_s", "ts": ts, "value": 1e6, "labels": {"device": f"{t.p}-eth0"}},
        ],
        "environment": [
            {
                "room_code": t.room,
                "point_code": f"{t.p}-point-1",
                "point_type": "cold_aisle_temp",
                "ts": ts,
                "value": 23.4,
            }
        ],
        "alarms": [
            {
                "alarm_id": f"{t.p}-alarm-1",
                "level": 2,
                "status": "active",
                "title": f"{t.p} 告警",
                "first_at": ts,
                "asset_id": t.asset_id(1),
            }
        ],
    }[kind]


def hijack_records(t: Target, kind: str) -> list[dict[str, Any]]:
    """A write into ``t``: new objects and changes of its existing ones."""
    ts = rfc3339(now_utc())
    return {
        "rooms": [{**seed_records(t, "rooms")[0], "name": "hijacked"}],
        "assets": [vm(t.asset_id(1), name="hijacked", status="stopped"), vm(t.asset_id("new"))],
        "logs": [{**seed_records(t, "logs")[0], "log_id": f"{t.p}-log-new", "message": "hijacked"}],
        "metrics": [{"metric": "cpu.util", "ts": ts, "value": 99.0, "asset_id": t.asset_id(1)}],
        "environment": [{**seed_records(t, "environment")[0], "ts": ts, "value": 40.0}],
        "alarms": [{**seed_records(t, "alarms")[0], "status": "cleared", "last_at": ts, "cleared_at": ts}],
    }[kind]


def shared_log(t: Target) -> list[dict[str, Any]]:
    return [{**seed_records(t, "logs")[0], "log_id": f"{t.p}-log-shared"}]


@dataclass(frozen=True)
class Role:
    name: str
    role: str
    scope: dict[str, Any]
    signed: bool = False  # every request signed (§3) instead of bearer
    bearer_refused: bool = False  # a key that requires signatures, presented as bearer: 401 2005

    def may(self, access: str) -> bool:
        """Whether the role (and, for integrators, the kinds) opens a route of this access class."""
        if access in {"public", "any"}:
            return True
        if access == "admin":
            return self.role == "admin"
        if access in {"push", "receipts"}:
            return self.role in {"admin", "provider"}
        assert access in READ_KINDS, access
        return self.role != "integrator" or access in self.scope["kinds"]


ROLES = {
    r.name: r
    for r in (
        Role("regulator", "regulator", {"regions": [A.region]}),
        Role("provider", "provider", {"platforms": [A.code], "require_signature": False}),
        Role("provider_signed", "provider", {"platforms": [A.code]}, signed=True),
        Role("provider_bearer_refused", "provider", {"platforms": [A.code]}, bearer_refused=True),
        Role("integrator", "integrator", {"platforms": [A.code], "kinds": list(READ_KINDS)}),
        Role("integrator_logs", "integrator", {"regions": [A.region], "kinds": ["logs"]}),
    )
}
ADMIN = Role("admin", "admin", {})


@dataclass
class World:
    hub: Hub
    app: FastAPI
    a: Target
    b: Target
    ghost: Target
    bodies: dict[tuple[str, str], bytes]  # (platform, kind) → the exact bytes of the seed batch
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # role name → the created key


async def build_world(hub: Hub, app: FastAPI) -> World:
    """A and B with data of every kind, victims for the client routes, and a key per role."""
    for t in (A, B):
        await hub.create_platform(t.code, t.region)
    bodies = {
        (t.code, kind): orjson.dumps(batch(t.code, t.batch_id(kind), seed_records(t, kind)))
        for t in (A, B, GHOST)
        for kind in KINDS
    }
    for t in (A, B):
        for kind in KINDS:
            answer = await hub.push(kind, None, raw=bodies[(t.code, kind)])
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"]["status"] == ("partial" if kind == "assets" else "accepted")
        shared = await hub.push("logs", batch(t.code, SHARED_BATCH, shared_log(t)))
        assert shared.status_code == 200, shared.text
    a = replace(A, victim_key=(await new_key(hub, "provider", platforms=[A.code]))["app_key"])
    b = replace(B, victim_key=(await new_key(hub, "provider", platforms=[B.code]))["app_key"])
    world = World(hub, app, a, b, GHOST, bodies)
    for role in ROLES.values():
        world.keys[role.name] = await new_key(hub, role.role, **role.scope)
    return world


# --- how to call each route at a target ----------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request at a target.

    ``access``: which roles the route is for — ``public`` (no authentication), ``any``
    (authenticated), ``admin``, ``push``, ``receipts`` (admin and providers) or a readable kind.
    ``scope``: the answer to a key that has the access but not the target in its scope —
    ``list`` (200, silently filtered), ``filter`` (403 2006: a filter names the target), ``object``
    (404 3002), ``write`` (403 2006) or ``none`` (not scoped).
    """

    method: str
    path: str
    access: str
    scope: str
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    raw: bytes | None = None
    admin_status: int = 200  # what the admin gets for this read at B
    shows_target: bool = True  # a 200 answer at a target names it
    volatile: bool = False  # answers differ between two identical calls (left out of before/after)

    @property
    def write(self) -> bool:
        return self.method not in READ_METHODS

    @property
    def body(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return b"" if self.json is None else orjson.dumps(self.json)

    @property
    def url(self) -> str:
        return f"{self.path}?{self.query}" if self.params else self.path

    @property
    def query(self) -> str:
        return urlencode(self.params, quote_via=quote)

    def sent_strings(self) -> set[str]:
        """Every string the caller itself sent: an answer may echo these back."""
        sent = {unquote(s) for s in self.path.split("/") if s}
        sent |= set(self.params) | set(self.params.values())

        def leaves(value: Any) -> None:
            if isinstance(value, str):
                sent.add(value)
            elif isinstance(value, dict):
                for k, v in value.items():
                    sent.add(k)
                    leaves(v)
            elif isinstance(value, list):
                for v in value:
                    leaves(v)

        if self.body:
            leaves(orjson.loads(self.body))
        return {s.lower() for s in sent if len(s) >= 3}

    def __str__(self) -> str:
        body = f" {self.body[:80]!r}" if self.body else ""
        return f"{self.method} {self.url}{body}"


Factory = Callable[[World, Target], list[Call]]


def _health(path: str) -> Factory:
    return lambda w, t: [Call("GET", path, "public", "none", shows_target=False)]


def _push(w: World, t: Target) -> list[Call]:
    calls = []
    for kind in KINDS:
        path = f"/api/v1/reports/{kind}"
        calls += [
            # the exact bytes of the target's batch: an admin gets the replayed receipt
            Call("POST", path, "push", "write", raw=w.bodies[(t.code, kind)]),
            # the target's batch id with another body: 409 for the admin
            Call(
                "POST", path, "push", "write", json=batch(t.code, t.batch_id(kind), hijack_records(t, kind))
            ),
            # a new batch changing the target's objects
            Call(
                "POST",
                path,
                "push",
                "write",
                json=batch(t.code, f"{t.p}-fresh-{kind}", hijack_records(t, kind)),
            ),
        ]
    # the target's platform named only inside a snapshot push of assets
    calls.append(
        Call(
            "POST",
            "/api/v1/reports/assets",
            "push",
            "write",
            json=batch(
                t.code,
                f"{t.p}-snap-1",
                [vm(t.asset_id(1))],
                snapshot={"id": f"{t.p}-snap", "seq": 1, "last": True, "asset_types": ["vm"]},
            ),
        )
    )
    return calls


def _batch_receipt(w: World, t: Target) -> list[Call]:
    path = "/api/v1/reports/batches/{}".format
    calls = [Call("GET", path(t.batch_id(kind)), "receipts", "object") for kind in KINDS]
    calls += [
        Call("GET", path(t.batch_id("assets")), "receipts", "object", params={"kind": "assets"}),
        Call(
            "GET",
            path(t.batch_id("logs")),
            "receipts",
            "object",
            params={"platform_code": w.a.code},
            admin_status=404,  # B's batch id under A: there is no such batch, for the admin too
        ),
        Call("GET", path(t.batch_id("assets")), "receipts", "filter", params={"platform_code": t.code}),
        Call(
            "GET",
            path(t.batch_id("assets")),
            "receipts",
            "filter",
            params={"platform_code": t.code, "kind": "assets"},
        ),
        # one id, pushed for A and for B: inside A's scope it is not ambiguous (no 400 that
        # would tell that B has a batch of that id); the admin must say which one
        Call("GET", path(SHARED_BATCH), "receipts", "list", admin_status=400, shows_target=False),
    ]
    return calls


def _assets(w: World, t: Target) -> list[Call]:
    c = "/api/v1/assets"
    return [
        Call("GET", c, "assets", "list"),
        Call("GET", c, "assets", "list", params={"include_retired": "true"}),
        Call("GET", c, "assets", "list", params={"limit": "1000", "with_total": "true"}),
        Call("GET", c, "assets", "list", params={"updated_since": "2000-01-01T00:00:00Z"}),
        Call("GET", c, "assets", "list", params={"q": t.asset_name(1)}),
        Call("GET", c, "assets", "list", params={"q": t.ip}),
        Call("GET", c, "assets", "list", params={"q": t.p}),
        Call("GET", c, "assets", "list", params={"business_system": f"{t.p} 系统"}),
        Call("GET", c, "assets", "filter", params={"platform_code": t.code}),
        Call("GET", c, "assets", "filter", params={"platform_code": t.code, "include_retired": "true"}),
        Call("GET", c, "assets", "filter", params={"region_code": t.region}),
        Call("GET", c, "assets", "filter", params={"region_code": t.region[:4]}),
    ]


def _export_assets(w: World, t: Target) -> list[Call]:
    c = "/api/v1/export/assets"
    return [
        Call("GET", c, "assets", "list", params={"format": fmt}, volatile=True) for fmt in ("csv", "ndjson")
    ] + [
        Call("GET", c, "assets", "list", params={"format": "csv", "include_retired": "true"}, volatile=True),
        Call("GET", c, "assets", "filter", params={"platform_code": t.code, "format": "ndjson"}),
        Call("GET", c, "assets", "filter", params={"region_code": t.region, "format": "csv"}),
    ]


def _asset(suffix: str) -> Factory:
    def calls(w: World, t: Target) -> list[Call]:
        return [
            Call("GET", f"/api/v1/assets/{t.uid(1)}{suffix}", "assets", "object"),
            Call("GET", f"/api/v1/assets/{t.uid(2)}{suffix}", "assets", "object"),
            Call("GET", f"/api/v1/assets/{t.uid(1).upper()}{suffix}", "assets", "object"),
        ]

    return calls


def _scoped_list(
    path: str, access: str, *, volatile: bool = False, paged: bool = True, **extra: dict[str, str]
) -> Factory:
    """A northbound list: silently filtered, and 403 for a platform or region filter naming B.

    ``volatile``: the list echoes a default time window ending now, so two identical calls differ.
    """

    def calls(w: World, t: Target) -> list[Call]:
        out = [Call("GET", path, access, "list", volatile=volatile)]
        out += [
            Call("GET", path, access, "list", params=params, volatile=volatile) for params in extra.values()
        ]
        filters: list[dict[str, str]] = [
            {"platform_code": t.code},
            {"region_code": t.region},
            {"region_code": t.region[:4], **({"with_total": "true"} if paged else {})},
        ]
        declared = declared_query_params(w.app, "GET", path)  # another is 400 1001 (§2.2)
        out += [Call("GET", path, access, "filter", params=p) for p in filters if set(p) <= declared]
        return out

    return calls


def _verify_logs(w: World, t: Target) -> list[Call]:
    return [
        Call("GET", "/api/v1/logs/verify", "logs", "filter", params={"platform_code": t.code}),
        Call(
            "GET",
            "/api/v1/logs/verify",
            "logs",
            "filter",
            params={"platform_code": t.code, "from_seq": "1", "to_seq": "2"},
        ),
    ]


def _platform_spec(t: Target) -> dict[str, Any]:
    return {
        "platform_code": t.code,
        "name": f"{t.p} 平台",
        "region_code": t.region,
        "network_zone": "gov_extranet",
        "level": "city",
    }


CALLS: dict[tuple[str, str], Factory] = {
    ("GET", "/healthz"): _health("/healthz"),
    ("GET", "/readyz"): _health("/readyz"),
    ("POST", "/api/v1/reports/{kind}"): _push,
    ("GET", "/api/v1/reports/batches/{batch_id}"): _batch_receipt,
    ("GET", "/api/v1/assets"): _assets,
    ("GET", "/api/v1/assets/{asset_uid}"): _asset(""),
    ("GET", "/api/v1/assets/{asset_uid}/history"): _asset("/history"),
    ("GET", "/api/v1/logs/verify"): _verify_logs,
    # the catalogue names no platform: every authenticated key reads the same answer
    ("GET", "/api/v1/export/assets"): _export_assets,
    ("GET", "/api/v1/export/logs"): _scoped_list(
        "/api/v1/export/logs", "logs", volatile=True, paged=False, csv={"format": "csv"}
    ),
    ("GET", "/api/v1/export/alarms"): _scoped_list(
        "/api/v1/export/alarms", "alarms", volatile=True, paged=False, nd={"format": "ndjson"}
    ),
    ("GET", "/api/v1/export/metrics"): _scoped_list(
        "/api/v1/export/metrics", "metrics", volatile=True, paged=False
    ),
    ("GET", "/api/v1/export/environment"): _scoped_list(
        "/api/v1/export/environment", "environment", volatile=True, paged=False, nd={"format": "ndjson"}
    ),
    ("GET", "/api/v1/metrics/samples"): _scoped_list(
        "/api/v1/metrics/samples", "metrics", volatile=True, cpu={"metric": "cpu.util"}
    ),
    ("GET", "/api/v1/metrics/latest"): lambda w, t: [
        Call("GET", "/api/v1/metrics/latest", "metrics", "list", params={"metric": "cpu.util"}),
        Call(
            "GET",
            "/api/v1/metrics/latest",
            "metrics",
            "list",
            params={"metric": "net.rx.bits_per_s", "order": "asc"},
        ),
        Call(
            "GET",
            "/api/v1/metrics/latest",
            "metrics",
            "filter",
            params={"metric": "cpu.util", "platform_code": t.code},
        ),
        Call(
            "GET",
            "/api/v1/metrics/latest",
            "metrics",
            "filter",
            params={"metric": "cpu.util", "region_code": t.region},
        ),
    ],
    ("GET", "/api/v1/metrics/series"): lambda w, t: [
        Call(
            "GET",
            "/api/v1/metrics/series",
            "metrics",
            "filter",
            params={"metric": "cpu.util", "platform_code": t.code},
        ),
        Call(
            "GET",
            "/api/v1/metrics/series",
            "metrics",
            "filter",
            params={"metric": "cpu.util", "platform_code": t.code, "asset_id": t.asset_id(1), "step": "raw"},
        ),
        Call(
            "GET",
            "/api/v1/metrics/series",
            "metrics",
            "object",
            params={"metric": "cpu.util", "asset_uid": t.uid(1)},
        ),
    ],
    ("GET", "/api/v1/environment/samples"): _scoped_list(
        "/api/v1/environment/samples", "environment", volatile=True
    ),
    ("GET", "/api/v1/environment/latest"): _scoped_list("/api/v1/environment/latest", "environment"),
    ("GET", "/api/v1/environment/series"): lambda w, t: [
        Call(
            "GET",
            "/api/v1/environment/series",
            "environment",
            "filter",
            params={"platform_code": t.code, "room_code": t.room, "point_code": f"{t.p}-point-1"},
        ),
    ],
    ("GET", "/api/v1/platforms"): _scoped_list("/api/v1/platforms", "any", total={"with_total": "true"}),
    ("GET", "/api/v1/platforms/{code}"): lambda w, t: [
        Call("GET", f"/api/v1/platforms/{t.code}", "any", "object")
    ],
    ("GET", "/api/v1/rooms"): _scoped_list("/api/v1/rooms", "environment", total={"with_total": "true"}),
    ("GET", "/api/v1/alarms"): _scoped_list(
        "/api/v1/alarms",
        "alarms",
        active={"status": "active"},
        severe={"level_max": "4"},
        since={"from": "2000-01-01T00:00:00+08:00"},
        synced={"updated_since": "2000-01-01T00:00:00Z"},
    ),
    ("GET", "/api/v1/logs"): _scoped_list(
        "/api/v1/logs",
        "logs",
        volatile=True,
        wide={"from": "2000-01-01T00:00:00Z"},
        audit={"category": "operation,audit"},
        synced={"updated_since": "2000-01-01T00:00:00Z"},
    ),
    ("GET", "/api/v1/admin/metric-catalog"): lambda w, t: [
        Call("GET", "/api/v1/admin/metric-catalog", "admin", "none", shows_target=False)
    ],
    ("PUT", "/api/v1/admin/metric-catalog"): lambda w, t: [
        Call(
            "PUT",
            "/api/v1/admin/metric-catalog",
            "admin",
            "write",
            shows_target=False,
            json={"metrics": [{"code": "x.hijack", "name_zh": "x", "unit": "1"}]},
        )
    ],
    ("GET", "/api/v1/admin/domestic-lists"): lambda w, t: [
        Call("GET", "/api/v1/admin/domestic-lists", "admin", "none", shows_target=False)
    ],
    ("PUT", "/api/v1/admin/domestic-lists"): lambda w, t: [
        Call(
            "PUT",
            "/api/v1/admin/domestic-lists",
            "admin",
            "write",
            shows_target=False,
            json={"lists": {"os": []}},
        )
    ],
    ("GET", "/api/v1/catalog"): lambda w, t: [
        Call("GET", "/api/v1/catalog", "any", "none", shows_target=False)
    ],
    # §6.6 / §7: thresholds and indicator policy (the admin only), indicators (kind indicators)
    # figures computed at the time of the call (feed ages): every call is volatile
    ("GET", "/api/v1/indicators"): lambda w, t: [
        replace(c, volatile=True)
        for c in _scoped_list("/api/v1/indicators", "indicators", volatile=True, paged=False)(w, t)
    ],
    ("GET", "/api/v1/admin/thresholds"): lambda w, t: [
        Call("GET", "/api/v1/admin/thresholds", "admin", "none", shows_target=False)
    ],
    ("PUT", "/api/v1/admin/thresholds"): lambda w, t: [
        Call(
            "PUT",
            "/api/v1/admin/thresholds",
            "admin",
            "write",
            shows_target=False,
            json={"defaults": [{"point_type": "ups_load", "upper_critical": 95, "source": "x"}]},
        )
    ],
    ("GET", "/api/v1/admin/indicator-policy"): lambda w, t: [
        Call("GET", "/api/v1/admin/indicator-policy", "admin", "none", shows_target=False)
    ],
    ("PUT", "/api/v1/admin/indicator-policy"): lambda w, t: [
        Call(
            "PUT",
            "/api/v1/admin/indicator-policy",
            "admin",
            "write",
            shows_target=False,
            json={"policies": [{"code": "pue", "params": {"fail_above": 1.6}}]},
        )
    ],
    # §7.8 warnings and the overview (kind indicators); the matrix world raises no warning
    ("GET", "/api/v1/warnings"): lambda w, t: [
        Call("GET", "/api/v1/warnings", "indicators", "list", shows_target=False),
        Call(
            "GET",
            "/api/v1/warnings",
            "indicators",
            "list",
            params={"status": "active,cleared", "level_max": "4", "rule_code": "point_critical"},
            shows_target=False,
        ),
        *(
            Call("GET", "/api/v1/warnings", "indicators", "filter", params=params, shows_target=False)
            for params in (
                {"platform_code": t.code},
                {"region_code": t.region},
                {"region_code": t.region[:4], "with_total": "true"},
            )
        ),
    ],
    ("GET", "/api/v1/overview"): lambda w, t: [
        Call("GET", "/api/v1/overview", "indicators", "list", volatile=True),
        *(
            Call("GET", "/api/v1/overview", "indicators", "filter", params={"region_code": r}, volatile=True)
            for r in (t.region, t.region[:4])
        ),
    ],
    ("GET", "/api/v1/admin/warning-rules"): lambda w, t: [
        Call("GET", "/api/v1/admin/warning-rules", "admin", "none", shows_target=False)
    ],
    ("PUT", "/api/v1/admin/warning-rules"): lambda w, t: [
        Call(
            "PUT",
            "/api/v1/admin/warning-rules",
            "admin",
            "write",
            shows_target=False,
            json={
                "rules": [
                    {
                        "rule_code": f"{t.p}_hijack",
                        "name_zh": "x",
                        "subject": "point_type",
                        "target": "*",
                        "condition": {"state_in": ["normal"]},
                        "level": 1,
                        "hold_s": 0,
                        "clear_s": 0,
                    }
                ]
            },
        )
    ],
    # §7.9: a new version of a past month's figures (the admin only)
    ("POST", "/api/v1/admin/indicators/recompute"): lambda w, t: [
        Call(
            "POST",
            "/api/v1/admin/indicators/recompute",
            "admin",
            "write",
            json={"period": "2025-12", "platform_code": t.code, "note": "hijack"},
        ),
        Call(
            "POST",
            "/api/v1/admin/indicators/recompute",
            "admin",
            "write",
            json={"period": "2025-12", "region_code": t.region},
        ),
    ],
    # --- administration: the admin only ---
    ("GET", "/api/v1/admin/platforms"): lambda w, t: [
        Call("GET", "/api/v1/admin/platforms", "admin", "none")
    ],
    ("POST", "/api/v1/admin/platforms"): lambda w, t: [
        Call("POST", "/api/v1/admin/platforms", "admin", "write", json=_platform_spec(t)),
        Call(
            "POST",
            "/api/v1/admin/platforms",
            "admin",
            "write",
            json=_platform_spec(replace(t, code=f"{t.p}-NEW")),
        ),
    ],
    ("GET", "/api/v1/admin/platforms/{code}"): lambda w, t: [
        Call("GET", f"/api/v1/admin/platforms/{t.code}", "admin", "object")
    ],
    ("PATCH", "/api/v1/admin/platforms/{code}"): lambda w, t: [
        Call(
            "PATCH",
            f"/api/v1/admin/platforms/{t.code}",
            "admin",
            "write",
            json={"status": "decommissioned", "name": "hijacked", "region_code": w.a.region},
        )
    ],
    # collector sources (§8): the admin only; the world has none, so reads of one are 404
    ("GET", "/api/v1/admin/sources"): lambda w, t: [
        Call("GET", "/api/v1/admin/sources", "admin", "none", shows_target=False),
        Call(
            "GET",
            "/api/v1/admin/sources",
            "admin",
            "none",
            params={"platform_code": t.code},
            shows_target=False,
        ),
    ],
    ("POST", "/api/v1/admin/sources"): lambda w, t: [
        Call(
            "POST",
            "/api/v1/admin/sources",
            "admin",
            "write",
            json={
                "source_id": f"{t.p}-src",
                "platform_code": t.code,
                "type": "no-such-type",
                "base_url": "http://cmp.example",
                "kinds": ["assets"],
            },
        )
    ],
    ("GET", "/api/v1/admin/sources/{source_id}"): lambda w, t: [
        Call("GET", f"/api/v1/admin/sources/{t.p}-src", "admin", "none", admin_status=404, shows_target=False)
    ],
    ("PATCH", "/api/v1/admin/sources/{source_id}"): lambda w, t: [
        Call("PATCH", f"/api/v1/admin/sources/{t.p}-src", "admin", "write", json={"enabled": False})
    ],
    ("DELETE", "/api/v1/admin/sources/{source_id}"): lambda w, t: [
        Call("DELETE", f"/api/v1/admin/sources/{t.p}-src", "admin", "write")
    ],
    ("POST", "/api/v1/admin/sources/{source_id}/run"): lambda w, t: [
        Call("POST", f"/api/v1/admin/sources/{t.p}-src/run", "admin", "write")
    ],
    ("GET", "/api/v1/admin/sources/{source_id}/runs"): lambda w, t: [
        Call(
            "GET",
            f"/api/v1/admin/sources/{t.p}-src/runs",
            "admin",
            "none",
            admin_status=404,
            shows_target=False,
        )
    ],
    ("GET", "/api/v1/admin/sources/{source_id}/runs/{run_id}"): lambda w, t: [
        Call(
            "GET",
            f"/api/v1/admin/sources/{t.p}-src/runs/01M7Z9TN01RCHDMCGAT9N8WFR9",
            "admin",
            "none",
            admin_status=404,
            shows_target=False,
        )
    ],
    ("GET", "/api/v1/admin/clients"): lambda w, t: [Call("GET", "/api/v1/admin/clients", "admin", "none")],
    ("POST", "/api/v1/admin/clients"): lambda w, t: [
        Call(
            "POST",
            "/api/v1/admin/clients",
            "admin",
            "write",
            json={
                "name": f"{t.p} hijack",
                "role": "provider",
                "platforms": [t.code],
                "require_signature": False,
            },
        ),
        Call(
            "POST",
            "/api/v1/admin/clients",
            "admin",
            "write",
            json={"name": f"{t.p} hijack admin", "role": "admin"},
        ),
    ],
    ("PATCH", "/api/v1/admin/clients/{app_key}"): lambda w, t: [
        Call(
            "PATCH",
            f"/api/v1/admin/clients/{t.victim_key}",
            "admin",
            "write",
            json={"status": "disabled", "platforms": [t.code, w.a.code]},
        )
    ],
    ("POST", "/api/v1/admin/clients/{app_key}/rotate"): lambda w, t: [
        Call("POST", f"/api/v1/admin/clients/{t.victim_key}/rotate", "admin", "write")
    ],
    ("DELETE", "/api/v1/admin/clients/{app_key}"): lambda w, t: [
        Call("DELETE", f"/api/v1/admin/clients/{t.victim_key}", "admin", "write")
    ],
    # the audit log (§9): every request adds events, so its answers are volatile
    ("GET", "/api/v1/admin/audit"): lambda w, t: [
        Call("GET", "/api/v1/admin/audit", "admin", "none", volatile=True, shows_target=False),
        Call(
            "GET",
            "/api/v1/admin/audit",
            "admin",
            "none",
            params={"app_key": t.victim_key},
            volatile=True,
            shows_target=False,
        ),
        Call(
            "GET",
            "/api/v1/admin/audit",
            "admin",
            "none",
            params={"path": f"/api/v1/assets/{t.uid(1)}"},
            volatile=True,
            shows_target=False,
        ),
    ],
    ("GET", "/api/v1/admin/audit/verify"): lambda w, t: [
        Call("GET", "/api/v1/admin/audit/verify", "admin", "none", volatile=True, shows_target=False)
    ],
}


# --- the route table ----------------------------------------------------------------------------


def served_routes(app: FastAPI) -> list[Any]:
    """Every route as served, routers included (FastAPI ≥ 0.16x keeps included routers lazy)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are copied into app.routes
        return list(app.routes)
    return list(iter_route_contexts(app.routes))


def route_keys(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path template) of every route the application serves, docs left out."""
    keys: set[tuple[str, str]] = set()
    for route in served_routes(app):
        path = getattr(route, "path", None) or ""
        if path in DOCS_ROUTES or path.startswith(DOCS_STATIC_PREFIX):
            continue
        if isinstance(getattr(route, "original_route", route), Mount):
            keys.add(("MOUNT", path))  # a mounted sub-application is described as a whole
            continue
        methods = getattr(route, "methods", None) or {"WEBSOCKET"}
        keys |= {(m, path) for m in methods if m not in {"HEAD", "OPTIONS"}}
    return keys


def declared_query_params(app: FastAPI, method: str, template: str) -> set[str]:
    for route in served_routes(app):
        if not isinstance(getattr(route, "original_route", route), APIRoute):
            continue
        if getattr(route, "path", None) == template and method in (route.methods or ()):
            return _query_params(route.dependant)
    return set()


def _query_params(dependant: Any) -> set[str]:
    """The query parameters a route declares, its dependencies' included (shared filter sets)."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_params(sub)
    return names


def calls_at(world: World, target: Target) -> list[tuple[tuple[str, str], Call]]:
    """Every call of every route at ``target``: reads first, then writes (ordered by route)."""
    keys = sorted(route_keys(world.app))
    missing = [key for key in keys if key not in CALLS]
    assert not missing, f"routes without an entry in CALLS: {missing}"
    out = [(key, c) for key in keys for c in CALLS[key](world, target)]
    return sorted(out, key=lambda kc: kc[1].write)


# --- requests and checks ------------------------------------------------------------------------


async def send(world: World, role: Role, call: Call) -> httpx.Response:
    body = call.body
    headers = {"Content-Type": "application/json"} if body else {}
    if role.signed:
        key = world.keys[role.name]
        return await signed_request(
            world.hub,
            call.method,
            call.path,
            app_key=key["app_key"],
            secret=key["secret"],
            query=call.query,
            body=body,
            headers=headers,
        )
    bearer = world.hub.admin if role is ADMIN else world.keys[role.name]["bearer"]
    headers |= Hub.auth(bearer)
    return await world.hub.http.request(call.method, call.url, content=body or None, headers=headers)


def envelope_of(response: httpx.Response) -> dict[str, Any]:
    """The §2.1 envelope; a file (an export) answered with 200 counts as ``code`` 0."""
    if response.status_code == 200 and not response.headers.get("content-type", "").startswith(
        "application/json"
    ):
        return {"code": "0"}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def answer_text(response: httpx.Response) -> str:
    """The answer as text, lower-cased, without its request id (random: it could hold anything)."""
    text = response.text
    request_id = response.headers.get("x-request-id")
    if request_id:
        text = text.replace(request_id, "")
    headers = " ".join(f"{k}: {v}" for k, v in response.headers.items() if k not in {"x-request-id", "date"})
    return f"{text}\n{headers}".lower()


def leaked(response: httpx.Response, call: Call, target: Target) -> list[str]:
    """``target``'s identifiers in the answer that the caller did not send itself."""
    text = answer_text(response)
    for sent in sorted(call.sent_strings(), key=len, reverse=True):
        text = text.replace(sent, " ")
    return [m for m in target.markers if m and m.lower() in text]


def shape(response: httpx.Response, target: Target) -> tuple[int, str, str]:
    """The answer with ``target``'s identifiers replaced by their role: comparable across targets."""
    body = envelope_of(response)
    body.pop("request_id", None)
    if isinstance(body.get("data"), dict):
        # a default time window is resolved at the time of the call: not part of the answer's shape
        body["data"] = {k: v for k, v in body["data"].items() if k not in {"from", "to"}}
    body = _without_call_times(body)
    text = orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode().lower()
    for name, value in sorted(target.idents.items(), key=lambda kv: len(kv[1]), reverse=True):
        # whole tokens only: a hash or a uuid in the answer may contain "4403" by chance
        text = re.sub(rf"(?<![0-9a-z]){re.escape(value)}(?![0-9a-z])", f"<{name}>", text)
    return response.status_code, str(body.get("code")), text


#: figures computed at the time of the call say so (``computed_at``, a domestic rate's
#: ``inventory_at``): that time is not part of an answer's shape either
CALL_TIME_KEYS = frozenset({"computed_at", "inventory_at"})


def _without_call_times(value: Any) -> Any:
    if isinstance(value, dict):
        # a feed's age (freshness, unit "s") is measured at the time of the call as well
        ages = {"value"} if value.get("unit") == "s" else set()
        return {k: _without_call_times(v) for k, v in value.items() if k not in CALL_TIME_KEYS | ages}
    if isinstance(value, list):
        return [_without_call_times(v) for v in value]
    return value


def outcome(response: httpx.Response) -> str:
    return f"{response.status_code} {envelope_of(response).get('code')}: {response.text[:300]}"


def expected_out_of_scope(world: World, role: Role, key: tuple[str, str], call: Call) -> tuple[int, str]:
    """(status, code) a non-admin key gets for ``call`` at a target outside its scope."""
    if call.access == "public":
        return 200, "0"
    if role.bearer_refused:
        return 401, "2005"
    if not role.may(call.access):
        return 403, "2006"
    scope = call.scope
    if not set(call.params) <= declared_query_params(world.app, *key):
        return 400, "1001"  # a parameter the route does not declare is refused (§2.2)
    return {
        "list": (200, "0"),
        "none": (200, "0"),
        "filter": (403, "2006"),
        "object": (404, "3002"),
        "write": (403, "2006"),
    }[scope]


async def b_state(world: World) -> dict[str, Any]:
    """Everything of B: its rows in every table that has a platform, and every client key."""
    state: dict[str, Any] = {}
    async with world.app.state.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name.startswith("audit"):
                continue
            if "platform_code" in table.c:
                stmt = select(table).where(table.c.platform_code == world.b.code)
            elif table.name == "client":
                stmt = select(table)
            else:
                continue
            rows = (await conn.execute(stmt)).all()
            state[table.name] = sorted(repr(tuple(r)) for r in rows)
    return state


async def admin_view_of_b(world: World) -> dict[str, Any]:
    """What the admin reads at B through every read route (volatile ones left out)."""
    view: dict[str, Any] = {}
    for _, call in calls_at(world, world.b):
        if call.write or call.volatile:
            continue
        response = await send(world, ADMIN, call)
        view[str(call)] = shape(response, world.b)
    return view


# --- the hub under test --------------------------------------------------------------------------


@pytest.fixture
async def unlimited(app: FastAPI, settings: Settings) -> AsyncIterator[tuple[Hub, FastAPI]]:
    """The hub as the ``hub`` fixture makes it (on the database ``app`` has just emptied), with
    rate limits off: a role walks some two hundred requests in a second or two, and a 429 would
    say nothing about scopes."""
    relaxed = settings.model_copy(update={"rate_limit_enabled": False})
    application = create_app(relaxed)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        async with create_sessionmaker(application.state.engine)() as session:
            created = await create_client(
                session, load_server_key(relaxed), ClientCreate(name="root", role="admin")
            )
            await session.commit()
        yield Hub(client, created["bearer"], relaxed), application
    for name in ("audit_writer", "rate_limiter"):  # what the app fixture closes, if this hub has it
        worker = getattr(application.state, name, None)
        if worker is not None:
            await worker.close()
    await application.state.engine.dispose()


# --- the tests ----------------------------------------------------------------------------------


async def test_every_route_has_an_entry_in_calls(app: FastAPI) -> None:
    served = route_keys(app)
    missing = sorted(served - CALLS.keys())
    stale = sorted(CALLS.keys() - served)
    assert not missing, f"routes without an entry in CALLS (say how to call them at platform B): {missing}"
    assert not stale, f"CALLS entries for routes the application does not serve: {stale}"
    # the routes of the included routers are in the table (not only the app's own docs routes)
    assert {("POST", "/api/v1/reports/{kind}"), ("GET", "/api/v1/assets")} <= served


@pytest.mark.parametrize("role_name", list(ROLES))
async def test_no_role_reads_or_writes_outside_its_scope(
    unlimited: tuple[Hub, FastAPI], role_name: str
) -> None:
    role = ROLES[role_name]
    world = await build_world(*unlimited)
    state_before = await b_state(world)
    view_before = await admin_view_of_b(world)
    problems: list[str] = []

    # --- at B (outside the scope) and at GHOST (nowhere): the same refusal, nothing of B
    ghost_calls = calls_at(world, world.ghost)
    b_calls = calls_at(world, world.b)
    assert len(ghost_calls) == len(b_calls)
    for (key, call), (ghost_key, ghost_call) in zip(b_calls, ghost_calls, strict=True):
        assert key == ghost_key
        answer = await send(world, role, call)
        where = f"[{role.name}] {call}"
        want = expected_out_of_scope(world, role, key, call)
        got = (answer.status_code, str(envelope_of(answer).get("code")))
        if answer.status_code >= 500:
            problems.append(f"{where}: server error {outcome(answer)}")
        elif call.write and answer.is_success:
            problems.append(f"{where}: a write outside the scope succeeded: {outcome(answer)}")
        elif got != want:
            problems.append(f"{where}: expected {want[0]} {want[1]}, got {outcome(answer)}")
        if leaks := leaked(answer, call, world.b):
            problems.append(f"{where}: the answer shows B's {leaks}: {outcome(answer)}")
        ghost_answer = await send(world, role, ghost_call)
        if shape(answer, world.b) != shape(ghost_answer, world.ghost):
            problems.append(
                f"{where}: B and an unregistered platform get different answers "
                f"(existence leaks): B → {outcome(answer)} / GHOST → {outcome(ghost_answer)}"
            )

    # --- at A (inside the scope): the keys that may read get A's data; the others 403 2006
    for _, call in calls_at(world, world.a):
        if call.write:
            continue
        answer = await send(world, role, call)
        where = f"[{role.name}] at A: {call}"
        if call.access == "public":
            want = (200, "0")
        elif role.bearer_refused:
            want = (401, "2005")
        else:
            want = (200, "0") if role.may(call.access) else (403, "2006")
        got = (answer.status_code, str(envelope_of(answer).get("code")))
        if got != want:
            problems.append(f"{where}: expected {want[0]} {want[1]}, got {outcome(answer)}")
        elif want[0] == 200 and call.shows_target and world.a.p not in answer_text(answer):
            problems.append(f"{where}: A's data is missing: {outcome(answer)}")
        if leaks := leaked(answer, call, world.b):
            problems.append(f"{where}: the answer shows B's {leaks}: {outcome(answer)}")

    # --- B is unchanged: in the database, and as the admin reads it through every route
    if await b_state(world) != state_before:
        after = await b_state(world)
        changed = {
            t: (state_before.get(t), after.get(t)) for t in after if state_before.get(t) != after.get(t)
        }
        problems.append(f"[{role.name}] B was changed by writes outside the scope: {changed}")
    view_after = await admin_view_of_b(world)
    for call_name, seen in view_before.items():
        if view_after.get(call_name) != seen:
            problems.append(f"[{role.name}] the admin's view of B changed: {call_name}")

    assert not problems, "\n".join(problems)


async def test_the_admin_reaches_every_route_at_b_without_a_server_error(
    unlimited: tuple[Hub, FastAPI],
) -> None:
    world = await build_world(*unlimited)
    problems: list[str] = []
    for _, call in calls_at(world, world.b):
        answer = await send(world, ADMIN, call)
        where = f"[admin] {call}"
        body = envelope_of(answer)
        if answer.status_code >= 500:
            problems.append(f"{where}: server error {outcome(answer)}")
            continue
        if answer.status_code >= 400 and body.get("code") in {None, "0"}:
            problems.append(f"{where}: not an error envelope: {outcome(answer)}")
        if call.write:
            continue  # writes: 2xx, or 4xx for a conflict / bad input
        want = 200 if call.access == "public" else call.admin_status
        if answer.status_code != want:
            problems.append(f"{where}: expected {want}, got {outcome(answer)}")
        elif want == 200 and call.shows_target and world.b.p not in answer_text(answer):
            problems.append(f"{where}: the admin does not see B's data: {outcome(answer)}")
    assert not problems, "\n".join(problems)


async def test_lists_show_a_to_the_keys_that_may_read_it(hub: Hub, app: FastAPI) -> None:
    """The explicit sanity check (on the ``hub`` fixture as it is): the matrix cannot pass by
    refusing everything."""
    world = await build_world(hub, app)
    for name in ("regulator", "provider", "integrator"):
        items = await world.hub.assets(world.keys[name]["bearer"])
        assert [(a["platform_code"], a["asset_id"]) for a in items] == [
            (A.code, A.asset_id(1)),
            (A.code, A.asset_id(2)),
        ], name
    refused = await world.hub.get("/api/v1/assets", world.keys["integrator_logs"]["bearer"])
    assert refused.status_code == 403 and refused.json()["code"] == "2006"
    admin_items = await world.hub.assets()
    assert {a["platform_code"] for a in admin_items} == {A.code, B.code}
