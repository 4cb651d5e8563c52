"""What every request passes before the application sees it (§14, §3, §2.2).

FastAPI reads and parses a JSON body before any dependency runs, so authentication in a dependency
came too late: an unauthenticated 256 MB body was read whole. :class:`RequestGuardMiddleware` runs
before the router and

* has the framework read the query as the canonical query of §3 does (``+`` a literal plus,
  unescaped bytes as UTF-8), and refuses a parameter given twice (400 ``1001``, §2.2);
  :func:`known_query_only`, an app-wide dependency, refuses one the route does not declare;
* checks the key before a byte of the body is read: a bearer token completely, a signed request's
  headers, key id and timestamp (2001 → 2002 → 2003); an unknown path without a key is 401, and
  the docs need a key unless ``SUPHUB_DOCS_PUBLIC`` opens them; a key outside the admin role is
  refused on ``/api/v1/admin/…`` (403 ``2006``, :func:`admin_only`) before its body or query is read;
* reads the body itself, capped while reading (pushes at ``SUPHUB_MAX_BODY_BYTES``, everything else
  at ``SUPHUB_ADMIN_MAX_BODY_BYTES``: 413 ``1003``, a lying ``Content-Length`` included), each
  piece within ``SUPHUB_REQUEST_READ_TIMEOUT_S`` and the whole at no less than
  ``SUPHUB_REQUEST_MIN_RATE_BPS`` after that (408 and the connection closed, :func:`read_body`),
  a client that goes away logged as one line;
* finishes a signed request's checks over the body as sent (2005, 2004), and hands the app the
  caller (``scope["state"]["principal"]``) and the body (``scope["state"]["raw_body"]``).

uvicorn has no time limit on request headers either: :func:`http_protocol` is its HTTP protocol
with one (``supervision-hub serve`` uses it).
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import params
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from app.api.body import too_large
from app.api.middleware import send_error
from app.config import Settings
from app.errors import (
    AppError,
    BadParameter,
    ErrorItem,
    RequestTimeout,
    ServerKeyError,
    StorageUnavailable,
    describe_storage_error,
    storage_error,
)
from app.security.auth import authenticate_bearer, check_signed_headers, verify_signed
from app.security.keys import server_key_for
from app.security.principal import Principal

log = logging.getLogger(__name__)

#: answered without a key: liveness and readiness probes
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
PUSH_PREFIX = "/api/v1/reports/"


class ClientGone(Exception):
    """The client closed the connection before it had sent its whole body."""


#: bytes of a query the framework would read otherwise than the canonical query of §3 does
_MISREAD = re.compile(rb"[+\x80-\xff]")


def literal_plus(query: bytes) -> bytes:
    """The query spelled so the framework reads what the canonical query of §3 reads.

    ``+`` becomes ``%2B``: a literal plus, where the framework would read a space — ``q=a+b`` and
    ``q=a%2Bb``, one signature, would otherwise be two values. Bytes beyond ASCII sent unescaped
    become ``%XX``: the framework would decode them as Latin-1, the canonical query as UTF-8. The
    canonical query (and so the signature) of the result is that of ``query``.
    """
    return _MISREAD.sub(lambda m: b"%%%02X" % m.group()[0], query)


def repeated_parameter(query: bytes) -> str | None:
    """The first query parameter given more than once (keys compared percent-decoded), if any."""
    seen: set[bytes] = set()
    for piece in query.split(b"&"):
        if not piece:
            continue
        key = unquote_to_bytes(piece.partition(b"=")[0])
        if key in seen:
            return key.decode("utf-8", "replace")
        seen.add(key)
    return None


#: unknown parameters listed in ``errors[]`` at most (a query may hold thousands)
_MAX_NAMED = 20


def declared_query_parameters(route: APIRoute) -> frozenset[str]:
    """The query parameters ``route`` reads: its own and its dependencies', as OpenAPI lists them."""
    fields = get_flat_params(route.dependant)
    return frozenset(f.alias for f in fields if isinstance(f.field_info, params.Query))


async def known_query_only(request: Request) -> None:
    """Refuses a query parameter the route does not declare: 400 ``1001`` naming it (§2.2).

    The framework ignores a parameter nobody asked for, so a misspelt filter (``platfrom_code=``)
    answered every row as if no filter had been given. Installed on the app (``create_app``), so
    every route has it, and it reads what the matched route declares, so no list is kept by
    hand. It runs before the route's other dependencies: nothing is read or written for a
    request that will be refused. The probes (:data:`OPEN_PATHS`) ignore parameters, as load
    balancers may add cache-busting ones; the docs are not routes of the API and ignore them too.
    """
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or _route_path(request.scope) in OPEN_PATHS:
        return
    # worked out once per route of this app (routes are not hashable; they live as long as the app)
    cache: dict[int, frozenset[str]] | None = getattr(request.app.state, "declared_query", None)
    if cache is None:
        cache = request.app.state.declared_query = {}
    declared = cache.get(id(route))
    if declared is None:
        declared = cache[id(route)] = declared_query_parameters(route)
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in declared]
    if unknown:
        raise _unknown(unknown)


def _unknown(names: list[str]) -> BadParameter:
    first = _shown(names[0])
    return BadParameter(
        f"未知的查询参数 {first} (unknown query parameter {first})",
        errors=[ErrorItem.of(_shown(name), "未知参数 (unknown parameter)") for name in names[:_MAX_NAMED]],
    )


def _shown(name: str, limit: int = 100) -> str:
    """A client's parameter name as an answer repeats it: bounded, and visible when empty."""
    if not name:
        return '""'
    return name if len(name) <= limit else name[:limit] + "…"


def _docs_paths(app: Any) -> frozenset[str]:
    """The docs: FastAPI's own, and the pages and vendored assets ``app/api/docs.py`` serves."""
    urls = (app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url)
    served: frozenset[str] = getattr(app.state, "docs_paths", frozenset())
    return frozenset(u for u in urls if u) | served


class RequestGuardMiddleware:
    """The key before the body, capped and timed bodies, and the query as signed (module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        hub = scope["app"]
        settings: Settings = hub.state.settings
        state = scope.setdefault("state", {})
        scope["query_string"] = literal_plus(bytes(scope.get("query_string", b"")))
        try:
            body = await self._admit(scope, receive, hub, settings)
        except ClientGone as gone:
            log.info(
                "client went away before sending the whole body of %s %r (%s bytes received)",
                scope.get("method"),
                str(scope.get("path", ""))[:200],
                gone,
            )
            return
        except Exception as exc:  # every refusal is answered here, outside the app's handlers
            error = _refusal(exc)
            if error is None:
                raise
            if "raw_body" not in state and _announces_body(scope):
                # the unread rest of the body is not left for the next request to wade through
                error.headers = {**error.headers, "Connection": "close"}
            await send_error(send, error, str(state.get("request_id", "")))
            return
        state["raw_body"] = body
        await self.app(scope, _replay(body, receive), send)

    async def _admit(self, scope: Scope, receive: Receive, hub: Any, settings: Settings) -> bytes:
        """The body as sent, once the caller may send one; raises the refusal otherwise."""
        headers = Headers(scope=scope)
        path = _route_path(scope)
        state = scope["state"]
        public = path in OPEN_PATHS or (settings.docs_are_public and path in _docs_paths(hub))
        signed_client = None  # a signed request's key, its signature still to check over the body
        if not public and "authorization" in headers:
            principal: Principal = await authenticate_bearer(headers, hub.state.sessionmaker)
            state["principal"] = principal
            admin_only(path, principal)
        elif not public:  # an unknown path included: 401 without a key, 404 with one
            signed_client = await check_signed_headers(headers, hub.state.sessionmaker)
        repeated = repeated_parameter(bytes(scope["query_string"]))
        if repeated is not None and signed_client is None:
            raise _repeated(repeated)
        is_push = scope.get("method") == "POST" and path.startswith(PUSH_PREFIX)
        limit = settings.max_body_bytes if is_push else settings.admin_max_body_bytes
        body = await read_body(
            scope, receive, limit, settings.request_read_timeout_s, settings.request_min_rate_bps
        )
        if signed_client is not None:
            state["raw_body"] = body
            state["principal"] = await verify_signed(
                scope, signed_client, body, hub.state.sessionmaker, server_key_for(hub.state), settings
            )
            admin_only(path, state["principal"])
            if repeated is not None:
                raise _repeated(repeated)
        return body


#: the administration (§10): the admin role's alone, every route under it
ADMIN_PREFIX = "/api/v1/admin"


def admin_only(path: str, principal: Principal) -> None:
    """A key outside the admin role is refused on an administration path, 403 ``2006`` (§1),
    before its body, query or method is looked at: FastAPI validates a body (and the app its
    query) before a route's own role check runs, so a regulator's bad body was told the admin
    route's rules (422 naming each field) instead of that the route is not theirs."""
    if path == ADMIN_PREFIX or path.startswith(f"{ADMIN_PREFIX}/"):
        principal.require_role("admin")


def _repeated(name: str) -> BadParameter:
    return BadParameter(
        f"查询参数 {name} 重复出现 (query parameter {name} given more than once)",
        errors=[ErrorItem.of(name, "参数重复 (given more than once)")],
    )


def _refusal(exc: Exception) -> AppError | None:
    """The answer to what the guard raised, or None for a bug (left to the app's last resort)."""
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, ServerKeyError):
        log.error("server key problem: %s", exc)
        return StorageUnavailable(str(exc), retry_after_s=60)
    error = storage_error(exc)  # the key lookup or the nonce: the store cannot answer (§13)
    if error is not None:
        log.warning("%s while authenticating: %s", error.code, describe_storage_error(exc))
    return error


def _route_path(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    root = str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def _announces_body(scope: Scope) -> bool:
    headers = Headers(scope=scope)
    return "transfer-encoding" in headers or headers.get("content-length", "0").strip() not in {"", "0"}


async def read_body(
    scope: Scope, receive: Receive, limit: int, timeout_s: float, min_rate_bps: float
) -> bytes:
    """The whole body, refused past ``limit`` bytes (however it is announced), when a piece of it
    does not arrive within ``timeout_s`` seconds, or when it arrives slower than ``min_rate_bps``.

    A limit between pieces alone let a client send one byte every ``timeout_s - 1`` seconds and
    hold the request for ever. The whole body must therefore be in by ``timeout_s`` plus one
    second per ``min_rate_bps`` bytes received (Apache's ``RequestReadTimeout … MinRate``): the
    allowance grows with what actually arrives — not with the ``Content-Length`` a client
    claims — so a large body on a slow but honest link (``min_rate_bps`` or better) is read
    however long it takes, while a trickle runs out of time soon after ``timeout_s``. A fixed
    whole-request deadline could not do both: short enough to stop a trickle, it would cut off a
    32 MiB push on a slow line; long enough for that push, it would let every trickle hold a
    request that long. However sent, a body is in within ``timeout_s + limit / min_rate_bps``
    seconds or refused.
    """
    declared = Headers(scope=scope).get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    loop = asyncio.get_running_loop()
    started = loop.time()
    parts: list[bytes] = []
    size = 0
    while True:
        allowance = started + timeout_s + size / min_rate_bps - loop.time()
        try:
            message = await asyncio.wait_for(receive(), max(0.0, min(timeout_s, allowance)))
        except TimeoutError:
            raise RequestTimeout() from None
        if message["type"] == "http.disconnect":
            raise ClientGone(size)
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        if chunk:
            parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives the app the body already read, then the connection's own events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# --- the server: a time limit on request headers ------------------------------------------------


class _HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete in time.

    uvicorn only limits the idle time between requests (``timeout_keep_alive``, reset by every byte),
    so a client sending one header byte per second held a connection for ever. The clock starts
    when the connection opens and again when a response is complete, and stops when the next
    request's headers are in (uvicorn then starts a new request cycle).
    """

    header_timeout_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._waiting_after: object = None  # the request cycle the awaited headers follow

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._disarm_if_headers_arrived()

    def on_response_complete(self) -> None:
        before = self.cycle
        super().on_response_complete()
        if self.cycle is before and not self.transport.is_closing():
            self._arm_header_timer()  # (a pipelined request whose headers are already in is not)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._disarm()
        self._waiting_after = self.cycle
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _disarm_if_headers_arrived(self) -> None:
        if self._header_timer is not None and self.cycle is not self._waiting_after:
            self._disarm()

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.cycle is self._waiting_after and not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
            log.info(
                "closing the connection from %s: request headers not complete in %ss",
                client,
                self.header_timeout_s,
            )
            self.transport.close()


def http_protocol(header_timeout_s: float) -> type[asyncio.Protocol]:
    """uvicorn's ``http=`` protocol class with a time limit on request headers."""

    class HeaderTimeoutProtocol(_HeaderTimeoutProtocol):
        pass

    HeaderTimeoutProtocol.header_timeout_s = header_timeout_s
    return HeaderTimeoutProtocol
