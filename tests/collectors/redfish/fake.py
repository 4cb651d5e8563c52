"""A Redfish service for ``httpx.MockTransport``: recorded resources, optional sessions, faults.

It serves a directory in the DMTF mockup layout (``<path>/index.json``, the public rack-mount
server of ``../shared/fixtures/redfish``) or a JSON case file (``{path: body}``, see ``cases/``),
checks credentials the way a BMC does (Basic, or the ``X-Auth-Token`` of a session it created),
and keeps every request so a test can say what the collector sent. ``faults`` replace the answer
of one path (a status, a body, an exception, or a function of the request and the attempt).
"""

from __future__ import annotations

import base64
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import orjson

REPO = Path(__file__).resolve().parents[3]
#: the DMTF public-rackmount1 mockup, copied in with its licence (BSD-3, tests/fixtures/redfish/)
MOCKUP = REPO / "tests" / "fixtures" / "redfish" / "public-rackmount1"
CASES = Path(__file__).resolve().parent / "cases"
SESSIONS = "/redfish/v1/SessionService/Sessions"

Fault = int | bytes | Exception | Callable[[httpx.Request, int], httpx.Response | None]


@functools.cache
def _read_tree(directory: Path) -> bytes:
    tree: dict[str, Any] = {}
    for file in sorted(directory.rglob("index.json")):
        relative = file.parent.relative_to(directory).as_posix()
        path = "/redfish/v1/" if relative == "." else f"/redfish/v1/{relative}"
        tree[path] = orjson.loads(file.read_bytes())
    return orjson.dumps(tree)


def load_tree(directory: Path) -> dict[str, Any]:
    """A mockup directory as ``{path: body}`` (``/redfish/v1/`` for the root), a fresh copy."""
    tree: dict[str, Any] = orjson.loads(_read_tree(directory))
    return tree


def load_case(name: str) -> dict[str, Any]:
    tree: dict[str, Any] = orjson.loads((CASES / name).read_bytes())["resources"]
    return tree


@dataclass
class FakeBMC:
    tree: dict[str, Any]
    username: str = "admin"
    password: str = "secret"
    #: offer a SessionService (the root links it) and require the session's token
    sessions: bool = False
    faults: dict[tuple[str, str], Fault] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # token → session path
    deleted: list[str] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _attempts: dict[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        root = dict(self.tree["/redfish/v1/"])
        if self.sessions:
            root["SessionService"] = {"@odata.id": "/redfish/v1/SessionService"}
            root["Links"] = {"Sessions": {"@odata.id": SESSIONS}}
        else:
            root.pop("SessionService", None)
            root.pop("Links", None)
        self.tree["/redfish/v1/"] = root

    @classmethod
    def mockup(cls, **kwargs: Any) -> FakeBMC:
        return cls(load_tree(MOCKUP), **kwargs)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def fail(self, method: str, path: str, fault: Fault) -> None:
        self.faults[(method, path)] = fault

    def expire(self) -> None:
        """Every session the BMC holds times out."""
        self.tokens.clear()

    def paths(self, method: str = "GET") -> list[str]:
        return [r.url.path for r in self.requests if r.method == method]

    # --- the service -------------------------------------------------------------------------
    def _basic_ok(self, request: httpx.Request) -> bool:
        expected = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return bool(request.headers.get("Authorization") == f"Basic {expected}")

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        method, path = request.method, request.url.path
        key = (method, path)
        attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
        fault = self.faults.get(key)
        if fault is not None:
            answer = self._fault(fault, request, attempt)
            if answer is not None:
                return answer
        if method == "POST" and path == SESSIONS and self.sessions:
            body = orjson.loads(request.content)
            if (body.get("UserName"), body.get("Password")) != (self.username, self.password):
                return httpx.Response(401, json={"error": {"message": "bad credentials"}})
            number = next(self._ids)
            token, location = f"token-{number}", f"{SESSIONS}/{number}"
            self.tokens[token] = location
            return httpx.Response(
                201,
                json={"@odata.id": location, "Id": str(number), "UserName": self.username},
                headers={"X-Auth-Token": token, "Location": location},
            )
        if path != "/redfish/v1/" and not self._authorised(request):
            return httpx.Response(401, json={"error": {"message": "unauthorised"}})
        if method == "DELETE" and path.startswith(SESSIONS + "/"):
            self.deleted.append(path)
            token = request.headers.get("X-Auth-Token", "")
            self.tokens.pop(token, None)
            return httpx.Response(204)
        if method != "GET":
            return httpx.Response(405)
        query = unquote(request.url.query.decode())
        found = self.tree.get(f"{path}?{query}" if query else path) or self.tree.get(path.rstrip("/"))
        if found is None:
            return httpx.Response(404, json={"error": {"message": "not found"}})
        return httpx.Response(200, json=found)

    def _authorised(self, request: httpx.Request) -> bool:
        if self.sessions and request.headers.get("X-Auth-Token") in self.tokens:
            return True
        return self._basic_ok(request)

    @staticmethod
    def _fault(fault: Fault, request: httpx.Request, attempt: int) -> httpx.Response | None:
        if isinstance(fault, int):
            return httpx.Response(fault, json={"error": {"message": f"HTTP {fault}"}})
        if isinstance(fault, bytes):
            return httpx.Response(200, content=fault, headers={"Content-Type": "application/json"})
        if isinstance(fault, Exception):
            raise fault
        return fault(request, attempt)


def routed(bmcs: dict[str, FakeBMC]) -> httpx.MockTransport:
    """One transport for several BMCs, by host (a test can run several sources on one hub)."""
    return httpx.MockTransport(lambda request: bmcs[request.url.host].handle(request))
