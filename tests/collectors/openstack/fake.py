"""A recorded OpenStack cloud behind ``httpx.MockTransport``: Keystone, Nova, Cinder, Placement.

The answers are the JSON files under ``cases/`` (shaped like the OpenStack API reference
samples), replayed as recorded: ``/servers/detail`` pages by marker, the others whole. A test
changes what the cloud holds (``removed`` servers, a ``changes-since`` answer) and injects faults
(a status, a body, or a transport exception for matching requests, a number of times).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

CASES = Path(__file__).parent / "cases"
KEYSTONE = "http://openstack.test:5000/v3"
COMPUTE = "http://openstack.test:8774/v2.1"
PROJECT = "6f70656e737461636b20342065766572"
PROJECT2 = "b5ee0f4a5c8d4b2f9b9d6a1e3c7f2a10"
VOLUME = f"http://openstack.test:8776/v3/{PROJECT}"
PLACEMENT = "http://openstack.test:8778"

SERVERS = (
    "9168b536-cd40-4630-b43f-b259807c6e87",  # gov-portal-web-01  ACTIVE   compute-01
    "3c1b9e2a-4f5d-4e6a-8b7c-9d0e1f2a3b4c",  # gov-portal-db-01   SHUTOFF  compute-01
    "a7d2e4f6-1b3c-4d5e-9f8a-7b6c5d4e3f2a",  # ocr-worker-01      ERROR    compute-02
    "e5f6a7b8-c9d0-4e1f-a2b3-c4d5e6f7a8b9",  # report-batch-01    PAUSED   compute-02
    "0d1e2f3a-4b5c-4d6e-8f9a-0b1c2d3e4f5a",  # new-vm-building    BUILD    (no host yet)
)
HOSTS = ("compute-01.gz.example", "compute-02.gz.example")
VOLUMES = (
    "f0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d",  # in-use, attached to the first server
    "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",  # available
    "6e7f8a9b-0c1d-4e2f-8a3b-4c5d6e7f8a9b",  # error, no name
)


def case(name: str) -> Any:
    return orjson.loads((CASES / name).read_bytes())


@dataclass
class Fault:
    """Answer (or raise) instead of the cloud for requests ``when`` matches, ``times`` times."""

    when: Callable[[httpx.Request], bool]
    status: int = 500
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    raises: type[httpx.TransportError] | None = None
    times: int = 1
    hits: int = 0


def is_servers_page(page: int) -> Callable[[httpx.Request], bool]:
    """The request for the ``page``-th recorded servers page (1-based) of a full listing."""
    marker = {1: None, 2: SERVERS[1], 3: SERVERS[3]}[page]

    def when(request: httpx.Request) -> bool:
        return request.url.path.endswith("/servers/detail") and request.url.params.get("marker") == marker

    return when


def _ids(servers: list[Any]) -> list[str]:
    return [s["id"] for s in servers if isinstance(s, dict) and "id" in s]


def path_ends(suffix: str) -> Callable[[httpx.Request], bool]:
    return lambda request: request.url.path.endswith(suffix)


class FakeOpenStack:
    def __init__(self) -> None:
        self.token_answer = case("keystone-token.json")
        self.pages = [case(f"servers-detail-page{n}.json") for n in (1, 2, 3)]
        self.changes = case("servers-detail-changes-since.json")
        self.hypervisors = case("hypervisors-detail.json")
        self.volumes = case("volumes-detail.json")
        self.providers = case("resource-providers.json")
        self.requests: list[httpx.Request] = []
        self.auth_bodies: list[dict[str, Any]] = []
        self.valid_tokens: set[str] = set()
        self.removed: set[str] = set()
        self.faults: list[Fault] = []
        #: token values handed out by Keystone, in order
        self.issued: list[str] = []

    # --- what a test changes ----------------------------------------------------------------
    def fault(self, when: Callable[[httpx.Request], bool], **answer: Any) -> Fault:
        fault = Fault(when=when, **answer)
        self.faults.append(fault)
        return fault

    def revoke_tokens(self) -> None:
        self.valid_tokens.clear()

    def without_catalog_entry(self, service_type: str) -> None:
        catalog = self.token_answer["token"]["catalog"]
        self.token_answer["token"]["catalog"] = [c for c in catalog if c["type"] != service_type]

    # --- what a test reads ------------------------------------------------------------------
    def service_requests(self, suffix: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith(suffix)]

    @property
    def keystone_calls(self) -> int:
        return len(self.service_requests("/v3/auth/tokens"))

    # --- the cloud --------------------------------------------------------------------------
    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for fault in self.faults:
            if fault.times > 0 and fault.when(request):
                fault.times -= 1
                fault.hits += 1
                if fault.raises is not None:
                    raise fault.raises("recorded fault", request=request)
                return httpx.Response(fault.status, content=fault.body, headers=fault.headers)
        url = str(request.url.copy_with(query=None))
        if request.method == "POST" and url == f"{KEYSTONE}/auth/tokens":
            return self._issue(request)
        if request.method != "GET":
            return self._json(405, {"error": {"code": 405, "title": "Method Not Allowed"}})
        if request.headers.get("X-Auth-Token") not in self.valid_tokens:
            return self._json(401, case("keystone-unauthorized.json"))
        if url == f"{COMPUTE}/servers/detail":
            return self._servers(request)
        if url == f"{COMPUTE}/os-hypervisors/detail":
            return self._json(200, self.hypervisors)
        if url == f"{VOLUME}/volumes/detail":
            return self._json(200, self.volumes)
        if url == f"{PLACEMENT}/resource_providers":
            return self._json(200, self.providers)
        prefix = f"{PLACEMENT}/resource_providers/"
        if url.startswith(prefix):
            uuid, _, what = url.removeprefix(prefix).partition("/")
            if what in ("inventories", "usages") and (CASES / f"{what}-{uuid}.json").exists():
                return self._json(200, case(f"{what}-{uuid}.json"))
        return self._json(404, {"itemNotFound": {"code": 404, "message": "not found"}})

    def _issue(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        self.auth_bodies.append(body)
        value = f"gAAAAABhub-token-{len(self.issued) + 1}"
        self.issued.append(value)
        self.valid_tokens.add(value)
        return self._json(201, self.token_answer, headers={"X-Subject-Token": value})

    def _servers(self, request: httpx.Request) -> httpx.Response:
        if "changes-since" in request.url.params:
            return self._json(200, self.changes)
        marker = request.url.params.get("marker")
        index = 0
        if marker is not None:
            found = [i for i, page in enumerate(self.pages) if marker in _ids(page["servers"])[-1:]]
            if not found:
                return self._json(
                    400, {"badRequest": {"code": 400, "message": f"marker [{marker}] not found"}}
                )
            index = found[0] + 1
        page = copy.deepcopy(self.pages[index])
        page["servers"] = [
            s for s in page["servers"] if not isinstance(s, dict) or s.get("id") not in self.removed
        ]
        return self._json(200, page)

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.Response(
            status,
            content=orjson.dumps(body),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
