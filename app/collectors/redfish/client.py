"""One Redfish service for one run: authentication, cached GETs, links resolved, sessions closed.

Authentication (DMTF DSP0266 §13): credentials go with HTTP Basic; when the service root links a
SessionService, a session is created instead (``POST`` to ``Links.Sessions`` with ``UserName`` /
``Password``, answered with ``X-Auth-Token`` and the session's ``Location``), its token sent with
every request, and the session ``DELETE``\\ d when the run ends — successful or not, because a
BMC allows only a handful of sessions and one left open blocks the next run until it times out.
If the session cannot be created the run goes on with Basic. A 401 on a session (BMC session
timeouts can be shorter than a run) logs in once more and repeats the request.

Every request goes through the run's :class:`~app.collectors.http.SourceHTTP` (timeouts, retries
on transport errors / 429 / 503, redirects followed — sushy-emulator answers a chassis asked by
name with 307 to its UUID).

The service is an untrusted peer (§8): the password and the session token go only to the origin
(scheme, host, port) of ``base_url``. An ``@odata.id`` or ``Members@odata.nextLink`` naming
another origin is not followed (:class:`SourceDataError`: a detail resource is skipped, a
snapshot resource fails the run), a ``Links.Sessions`` elsewhere is not logged in to (Basic to
the BMC instead), and a session ``Location`` elsewhere is not deleted with the token.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from app.collectors.errors import SourceDataError, SourceError, SourceHTTPError
from app.collectors.http import SourceHTTP, origin_of, parse_json
from app.collectors.redfish.mapping import link, links, norm_path

log = logging.getLogger(__name__)

SERVICE_ROOT = "/redfish/v1/"
#: a collection longer than this many pages is a loop in ``Members@odata.nextLink``
MAX_PAGES = 1000
#: logins (first one included) a run may make before a 401 fails it
MAX_LOGINS = 3
CLOSE_TIMEOUT_S = 20.0


def redfish_credentials(credentials: Mapping[str, str]) -> tuple[str, str] | None:
    """``{"username", "password"}`` or nothing; anything else is a configuration error."""
    if not credentials:
        return None
    username, password = credentials.get("username"), credentials.get("password")
    if not username or password is None or set(credentials) - {"username", "password"}:
        raise SourceError(
            "redfish 凭据须为 {username, password} (credentials must be a username and a password)"
        )
    return username, password


class RedfishClient:
    """GETs of Redfish resources with the run's authentication; each URL is fetched once per run."""

    def __init__(
        self,
        http: SourceHTTP,
        credentials: tuple[str, str] | None,
        *,
        use_session: bool = True,
        concurrency: int = 4,
    ) -> None:
        self.http = http
        parts = urlsplit(http.base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        path = parts.path.rstrip("/")
        # a base URL may be the BMC (http://bmc) or its service root (http://bmc/redfish/v1)
        self.root_url = (
            f"{self.origin}{path}/" if path.endswith("/redfish/v1") else f"{self.origin}{path}{SERVICE_ROOT}"
        )
        self.credentials = credentials
        self.use_session = use_session
        self.token: str | None = None
        #: sessions this run created, as (URI, token), deleted by :meth:`close`
        self.sessions: list[tuple[str, str]] = []
        #: why the run uses Basic although the service offers sessions (for the log)
        self.session_note: str | None = None
        self.logins = 0
        self._sessions_url: str | None = None
        self._cache: dict[str, dict[str, Any]] = {}
        self._limit = asyncio.Semaphore(max(1, concurrency))
        self._login_lock = asyncio.Lock()

    # --- addresses ---------------------------------------------------------------------------
    def url(self, ref: str) -> str:
        """An absolute URL for an ``@odata.id`` (or a path), without its fragment."""
        return urljoin(self.origin + "/", ref.split("#", 1)[0])

    def own(self, url: str) -> bool:
        """Whether ``url`` is on the BMC's own origin, the only one credentials are sent to."""
        return origin_of(url) == origin_of(self.origin)

    def _own_url(self, ref: str) -> str:
        """:meth:`url`, refusing a link to another origin before anything is sent there."""
        url = self.url(ref)
        if not self.own(url):
            raise SourceDataError(
                f"链接 {norm_path(url)} 指向其他源 {urlsplit(url).netloc.rpartition('@')[2]}，不跟随"
                " (a link names another origin: not followed with the credentials)"
            )
        return url

    def _auth(self) -> dict[str, Any]:
        if self.token is not None:
            return {"headers": {"X-Auth-Token": self.token}}
        if self.credentials is not None:
            return {"auth": httpx.BasicAuth(*self.credentials)}
        return {}

    # --- session -----------------------------------------------------------------------------
    async def open(self) -> dict[str, Any]:
        """Read the service root and, where it links a SessionService, log in."""
        root = await self.get(self.root_url)
        if self.credentials is not None and self.use_session:
            sessions = link(root.get("Links"), "Sessions")
            service = link(root, "SessionService")
            if sessions is None and service is not None:
                sessions = service.rstrip("/") + "/Sessions"
            if sessions is not None and not self.own(self.url(sessions)):
                self.session_note = (
                    "会话服务位于其他源，改用 Basic 认证 (Links.Sessions names another origin)"
                )
                log.warning("redfish %s: %s", self.origin, self.session_note)
            elif sessions is not None:
                self._sessions_url = self.url(sessions)
                await self._login()
        return root

    async def _login(self) -> None:
        """Create a session; on any failure keep (or fall back to) Basic."""
        assert self.credentials is not None
        assert self._sessions_url is not None
        self.logins += 1
        self.token = None
        username, password = self.credentials
        try:
            response = await self.http.request(
                "POST", self._sessions_url, json={"UserName": username, "Password": password}
            )
        except SourceError as exc:
            self.session_note = f"创建会话失败，改用 Basic 认证 (session login failed, using Basic): {exc}"
            log.warning("redfish %s: %s", self.origin, self.session_note)
            return
        token = response.headers.get("X-Auth-Token")
        if not token:
            self.session_note = f"创建会话未返回 X-Auth-Token（HTTP {response.status_code}），改用 Basic 认证"
            log.warning("redfish %s: %s", self.origin, self.session_note)
            return
        location = response.headers.get("Location")
        if not location:
            try:
                body = parse_json(response, "POST")
            except SourceDataError:
                body = None
            location = body.get("@odata.id") if isinstance(body, dict) else None
        self.token = token
        uri = urljoin(str(response.url), location) if isinstance(location, str) and location else None
        if uri is not None and self.own(uri):
            self.sessions.append((uri, token))
        elif uri is not None:
            log.warning(
                "redfish %s: the session's Location names another origin, it is not deleted there",
                self.origin,
            )
        else:
            log.warning("redfish %s: session without a Location, it cannot be deleted", self.origin)

    async def close(self) -> None:
        """Delete the sessions of this run (failures are logged: the BMC times them out anyway)."""
        sessions, self.sessions = self.sessions, []
        self.token = None
        for uri, token in sessions:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await self.http.request(
                        "DELETE", uri, headers={"X-Auth-Token": token}, expect=frozenset({401, 404})
                    )
            except (SourceError, TimeoutError) as exc:
                log.warning("redfish %s: could not delete session %s: %s", self.origin, norm_path(uri), exc)

    # --- reading -----------------------------------------------------------------------------
    async def _get_response(self, url: str) -> httpx.Response:
        token = self.token
        expect = frozenset({401}) if token is not None else frozenset()
        async with self._limit:
            response = await self.http.request("GET", url, expect=expect, **self._auth())
        if response.status_code != 401:
            return response
        # the session expired (or was dropped by the BMC): log in again, once per expiry
        async with self._login_lock:
            if self.token == token:
                if self.logins >= MAX_LOGINS:
                    raise SourceHTTPError(
                        f"GET {norm_path(url)} → HTTP 401（会话反复失效 session keeps expiring）", 401
                    )
                await self._login()
        async with self._limit:
            return await self.http.request("GET", url, **self._auth())

    async def get(self, ref: str) -> dict[str, Any]:
        """A resource as a JSON object; anything else is :class:`SourceDataError`."""
        url = self._own_url(ref)
        cached = self._cache.get(url)
        if cached is not None:
            return cached
        try:
            response = await self._get_response(url)
        except SourceHTTPError as exc:
            if exc.status_code in (401, 403):
                raise SourceHTTPError(
                    f"认证失败，请检查凭据 (authentication failed, check the credentials): {exc}",
                    exc.status_code,
                ) from None
            raise
        body = parse_json(response, "GET")
        if not isinstance(body, dict):
            raise SourceDataError(f"GET {norm_path(url)}: 应答不是 JSON 对象 (answer is not a JSON object)")
        self._cache[url] = body
        return body

    async def members(self, ref: str) -> list[str]:
        """The ``@odata.id`` of every member of a collection, following ``Members@odata.nextLink``."""
        found: list[str] = []
        seen: set[str] = set()
        next_ref: str | None = ref
        while next_ref is not None and len(seen) < MAX_PAGES:
            url = self.url(next_ref)
            if url in seen:
                break
            seen.add(url)
            page = await self.get(url)
            raw = page.get("Members", [])
            if not isinstance(raw, list) or len(links(raw)) != len(raw):
                raise SourceDataError(
                    f"GET {norm_path(url)}: Members 不是引用数组 (Members is not a list of references)"
                )
            found += links(raw)
            nxt = page.get("Members@odata.nextLink")
            next_ref = nxt if isinstance(nxt, str) and nxt else None
        return found
