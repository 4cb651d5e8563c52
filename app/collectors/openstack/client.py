"""Keystone v3 authentication and the service calls of one OpenStack run.

Keystone answers ``POST /v3/auth/tokens`` with the token in the ``X-Subject-Token`` header and
the service catalogue in the body; every later call sends it as ``X-Auth-Token`` to an endpoint
taken from that catalogue.

Where the token may go (§8): the password only to ``base_url`` (a redirect of the login to another
origin is not followed); the token to ``base_url`` and to the origins of the endpoints the run
uses — ``options.endpoints`` or the catalogue Keystone returned for this token. The catalogue
names other hosts by design (Nova, Cinder, Placement), the token was issued for exactly those
services, and a Keystone able to name a hostile endpoint already held the password. What a
catalogue cannot do is steer the hub anywhere: every connection still passes the address policy
(no link-local / metadata, no loopback unless listed) and ``SUPHUB_SOURCE_ALLOWED_HOSTS``. A
``next`` link's host is never followed (only its marker is taken).

A password token costs Keystone a bcrypt round (about 0.3 s), so the
token is kept for the whole run and renewed shortly before it expires — measured on the hub's
monotonic clock from Keystone's own ``issued_at`` → ``expires_at`` lifetime, so a skewed clock on
either side does not matter. A 401 from a service (token revoked, Keystone restarted with new
fernet keys) forces one re-authentication and one retry; a second 401 fails the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from app.collectors.errors import SourceDataError, SourceError, SourceHTTPError
from app.collectors.http import SourceHTTP, parse_json

#: renew this long before the token expires (at most; a fifth of the lifetime for short tokens)
RENEW_BEFORE_S = 300.0
#: a token whose answer has no usable ``expires_at`` is kept this long (then renewed, or on a 401)
UNKNOWN_LIFETIME_S = 600.0

#: catalogue service types per service, in order of preference
SERVICE_TYPES: dict[str, tuple[str, ...]] = {
    "compute": ("compute",),
    "volume": ("block-storage", "volumev3", "volume"),
    "placement": ("placement",),
}
SERVICE_NAMES_ZH = {"compute": "计算 (Nova)", "volume": "块存储 (Cinder)", "placement": "Placement"}


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _lifetime_s(token: dict[str, Any]) -> float:
    """Seconds the token lives, by Keystone's clock (``expires_at − issued_at``)."""
    expires, issued = _parse_time(token.get("expires_at")), _parse_time(token.get("issued_at"))
    if expires is None or issued is None or (expires.tzinfo is None) != (issued.tzinfo is None):
        return UNKNOWN_LIFETIME_S
    return max(0.0, (expires - issued).total_seconds())


@dataclass(frozen=True)
class Token:
    value: str
    catalog: list[dict[str, Any]]
    #: on the hub's monotonic clock
    renew_at: float


def auth_body(credentials: dict[str, str], options: dict[str, Any]) -> dict[str, Any]:
    """The ``POST /v3/auth/tokens`` body: an application credential if given, else a password.

    Identity and scope names (``username``, ``user_domain_name``, ``project_name``…) may sit in
    the credentials or in the options; the secrets only in the credentials.
    """

    def pick(name: str) -> str | None:
        value = credentials.get(name) or options.get(name)
        return str(value) if value else None

    def domain(prefix: str) -> dict[str, str]:
        if pick(f"{prefix}_domain_id"):
            return {"id": str(pick(f"{prefix}_domain_id"))}
        return {"name": pick(f"{prefix}_domain_name") or "Default"}

    def user() -> dict[str, Any]:
        if pick("user_id"):
            return {"id": pick("user_id")}
        return {"name": pick("username"), "domain": domain("user")}

    secret = credentials.get("application_credential_secret")
    if secret:
        credential: dict[str, Any] = {"secret": secret}
        if pick("application_credential_id"):
            credential["id"] = pick("application_credential_id")
        elif pick("application_credential_name") and (pick("user_id") or pick("username")):
            credential["name"] = pick("application_credential_name")
            credential["user"] = user()
        else:
            raise SourceError(
                "应用凭据需要 application_credential_id，或 application_credential_name 与 username "
                "(an application credential needs its id, or its name and the user)"
            )
        # an application credential carries its own scope: Keystone refuses an explicit one
        return {
            "auth": {
                "identity": {"methods": ["application_credential"], "application_credential": credential}
            }
        }
    password = credentials.get("password")
    if password and (pick("user_id") or pick("username")):
        identity = {"methods": ["password"], "password": {"user": {**user(), "password": password}}}
        body: dict[str, Any] = {"auth": {"identity": identity}}
        if pick("project_id"):
            body["auth"]["scope"] = {"project": {"id": pick("project_id")}}
        elif pick("project_name"):
            body["auth"]["scope"] = {"project": {"name": pick("project_name"), "domain": domain("project")}}
        return body
    raise SourceError(
        "openstack 采集源需要凭据 application_credential_id + application_credential_secret，"
        "或 username + password (credentials: an application credential, or a user and password)"
    )


def tokens_url(base_url: str) -> str:
    """Keystone's token URL from the source's ``base_url`` (``…/v3`` or the bare identity root)."""
    base = base_url.rstrip("/")
    return f"{base}/auth/tokens" if base.endswith("/v3") else f"{base}/v3/auth/tokens"


def next_marker(links: Any, items: list[Any]) -> str | None:
    """The marker of the ``rel: next`` link, or ``None`` on the last page.

    The link's host and scheme are not followed: behind a TLS proxy Nova often writes its own
    internal address there. Only its ``marker`` is taken (the last item's id if it has none).
    """
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("rel") == "next" and isinstance(link.get("href"), str):
            markers = parse_qs(urlsplit(link["href"]).query).get("marker")
            if markers and markers[0]:
                return markers[0]
            last = items[-1] if items else None
            if isinstance(last, dict) and isinstance(last.get("id"), str | int):
                return str(last["id"])
            return None
    return None


class OpenStackClient:
    """Keystone token and catalogue for one run; GETs to services with the token and microversions."""

    def __init__(
        self,
        http: SourceHTTP,
        base_url: str,
        credentials: dict[str, str],
        options: dict[str, Any],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.credentials = credentials
        self.options = options
        self.interface = str(options.get("interface") or "public")
        self.region = str(options["region"]) if options.get("region") else None
        overrides = options.get("endpoints")
        self.overrides: dict[str, str] = {
            str(k): str(v).rstrip("/")
            for k, v in (overrides.items() if isinstance(overrides, dict) else ())
            if k in SERVICE_TYPES and isinstance(v, str)
        }
        compute = str(options.get("compute_microversion") or "2.53")
        volume = options.get("volume_microversion")
        placement = str(options.get("placement_microversion") or "1.14")
        #: microversion headers per service (Nova also reads the legacy header)
        self.headers: dict[str, dict[str, str]] = {
            "compute": {
                "OpenStack-API-Version": f"compute {compute}",
                "X-OpenStack-Nova-API-Version": compute,
            },
            "volume": {"OpenStack-API-Version": f"volume {volume}"} if volume else {},
            "placement": {"OpenStack-API-Version": f"placement {placement}"},
        }
        self._clock = clock
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        #: how many times Keystone issued a token in this run
        self.authentications = 0

    # --- Keystone -----------------------------------------------------------------------------
    async def authenticate(self) -> Token:
        """A new token (and catalogue) from Keystone."""
        body = auth_body(self.credentials, self.options)
        url = tokens_url(self.base_url)
        response = await self.http.request(
            "POST", url, json=body, expect=frozenset({401, 403}), headers={"Accept": "application/json"}
        )
        if response.status_code in (401, 403):
            raise SourceError(f"Keystone 拒绝了凭据 (credentials refused, HTTP {response.status_code})")
        value = response.headers.get("X-Subject-Token")
        answer = parse_json(response, "POST")
        token = answer.get("token") if isinstance(answer, dict) else None
        if not value or not isinstance(token, dict):
            raise SourceDataError(
                "Keystone 应答缺少 X-Subject-Token 或 token (no X-Subject-Token / token in the answer)"
            )
        catalog = token.get("catalog")
        lifetime = _lifetime_s(token)
        self.authentications += 1
        self._token = Token(
            value=value,
            catalog=[c for c in catalog if isinstance(c, dict)] if isinstance(catalog, list) else [],
            renew_at=self._clock() + lifetime - min(RENEW_BEFORE_S, lifetime / 5),
        )
        return self._token

    async def token(self) -> Token:
        """The cached token, renewed once it is close to expiry."""
        async with self._lock:  # concurrent Placement reads share one authentication
            if self._token is None or self._clock() >= self._token.renew_at:
                return await self.authenticate()
            return self._token

    async def renew(self, refused: Token) -> Token:
        """A new token after a service refused ``refused`` (unless a concurrent call already renewed it)."""
        async with self._lock:
            if self._token is None or self._token is refused:
                return await self.authenticate()
            return self._token

    def endpoint(self, token: Token, service: str) -> str | None:
        """The service's URL: ``options.endpoints`` first, else the catalogue entry for the interface."""
        if service in self.overrides:
            return self.overrides[service]
        for service_type in SERVICE_TYPES[service]:
            for entry in token.catalog:
                if entry.get("type") != service_type or not isinstance(entry.get("endpoints"), list):
                    continue
                for endpoint in entry["endpoints"]:
                    if not isinstance(endpoint, dict) or endpoint.get("interface") != self.interface:
                        continue
                    region = endpoint.get("region_id") or endpoint.get("region")
                    if self.region is not None and region != self.region:
                        continue
                    if isinstance(endpoint.get("url"), str):
                        return str(endpoint["url"]).rstrip("/")
        return None

    async def require_endpoint(self, service: str) -> str:
        url = self.endpoint(await self.token(), service)
        if url is None:
            where = f"接口 {self.interface}" + (f"、区域 {self.region}" if self.region else "")
            raise SourceError(
                f"Keystone 目录中没有{SERVICE_NAMES_ZH[service]}服务的端点（{where}）"
                f" (no {service} endpoint in the catalogue for interface {self.interface})"
            )
        return url

    # --- services -----------------------------------------------------------------------------
    async def _get(
        self, token: Token, service: str, path: str, params: dict[str, str] | None, *, expect: frozenset[int]
    ) -> httpx.Response:
        base = self.endpoint(token, service) or await self.require_endpoint(service)
        # the token goes to the endpoints Keystone (or the admin) named for it, on other hosts too
        self.http.trust(base)
        headers = {"Accept": "application/json", "X-Auth-Token": token.value, **self.headers[service]}
        return await self.http.request(
            "GET", f"{base}/{path.lstrip('/')}", params=params, headers=headers, expect=expect
        )

    async def get_json(self, service: str, path: str, params: dict[str, str] | None = None) -> Any:
        """GET ``path`` of a service with the token; a 401 re-authenticates once and retries."""
        token = await self.token()
        response = await self._get(token, service, path, params, expect=frozenset({401}))
        if response.status_code == 401:
            token = await self.renew(token)
            try:
                response = await self._get(token, service, path, params, expect=frozenset())
            except SourceHTTPError as exc:
                if exc.status_code != 401:
                    raise
                raise SourceError(
                    f"{exc}：新令牌仍被拒绝，请检查该用户的角色 (a fresh token is refused too)"
                ) from None
        return parse_json(response)

    async def pages(
        self, service: str, path: str, key: str, params: dict[str, str] | None = None
    ) -> AsyncGenerator[list[Any], None]:
        """Every page of a marker-paged list (``{key}`` items, ``{key}_links`` with ``rel: next``).

        The next page is requested as soon as this one is read, so the source's latency overlaps
        the ingestion of this page (at most two pages in memory). Use it under
        ``contextlib.aclosing`` so a consumer that stops early also stops the read ahead.
        """
        query = dict(params or {})
        seen: set[str] = set()
        ahead: asyncio.Task[Any] | None = None
        try:
            body = await self.get_json(service, path, query)
            while True:
                items = body.get(key) if isinstance(body, dict) else None
                if not isinstance(items, list):
                    raise SourceDataError(f"GET {path}: 应答缺少 {key} 列表 (no {key} list in the answer)")
                marker = next_marker(body.get(f"{key}_links"), items)
                if marker is not None and items:
                    if marker in seen:
                        raise SourceDataError(
                            f"GET {path}: 分页标记 {marker} 重复出现 (a next link repeats a marker)"
                        )
                    seen.add(marker)
                    query["marker"] = marker
                    ahead = asyncio.create_task(self.get_json(service, path, dict(query)))
                yield items
                if ahead is None:
                    return
                body, ahead = await ahead, None
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead
