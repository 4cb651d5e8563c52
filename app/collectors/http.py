"""The HTTP client of one collector run: explicit timeouts, retries with back-off, clean errors (§8).

Transport errors (connection refused, timeouts, a peer that hangs), 429 and 503 are retried with
exponential back-off and full jitter, honouring ``Retry-After`` (seconds or an HTTP date, capped);
when every attempt fails the run fails with :class:`SourceUnavailable`. Other non-2xx answers raise
:class:`SourceHTTPError` at once unless the caller asks to see them (a 401 that should refresh a
token). Messages name the method and the URL without its query string, never a credential.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from app.collectors.errors import SourceDataError, SourceError, SourceHTTPError, SourceUnavailable

RETRY_STATUS = frozenset({429, 503})
#: the host the collector asked for, to tell a redirect elsewhere from the request itself
_INTENDED_HOST: ContextVar[str | None] = ContextVar("suphub_intended_host", default=None)
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)


def _where(method: str, url: httpx.URL | str) -> str:
    parts = urlsplit(str(url))
    return f"{method} {urlunsplit((parts.scheme, parts.netloc.rpartition('@')[2], parts.path, '', ''))}"


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class SourceHTTP:
    """One ``httpx.AsyncClient`` for a run, with the hub's retry policy around every request."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        allowed_hosts: frozenset[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.allowed_hosts = allowed_hosts
        self._sleep = sleep
        self.requests = 0
        self.waited_s = 0.0
        self._client = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            follow_redirects=True,
            verify=verify,
            event_hooks={"request": [self._on_request]},
        )

    async def __aenter__(self) -> SourceHTTP:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return f"{self.base_url}/{path_or_url.lstrip('/')}"

    async def _on_request(self, request: httpx.Request) -> None:
        """Every request, redirects included: an allowed host; a redirect to another host loses the
        session token (httpx itself only drops ``Authorization``)."""
        self._check_host(str(request.url))
        intended = _INTENDED_HOST.get()
        if intended is not None and request.url.host.lower() != intended:
            request.headers.pop("X-Auth-Token", None)

    def _check_host(self, url: str) -> None:
        if self.allowed_hosts is None:
            return
        host = (urlsplit(url).hostname or "").lower()
        if host not in self.allowed_hosts:
            raise SourceError(f"主机 {host} 不在 SUPHUB_SOURCE_ALLOWED_HOSTS 中 (host not allowed)")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))

    async def request(
        self, method: str, path_or_url: str, *, expect: frozenset[int] = frozenset(), **kwargs: Any
    ) -> httpx.Response:
        """Send with retries; a 2xx answer, or one whose status is in ``expect``, is returned."""
        url = self.url(path_or_url)
        self._check_host(url)
        _INTENDED_HOST.set((urlsplit(url).hostname or "").lower())
        where = _where(method, url)
        last = ""
        for attempt in range(self.attempts):
            retry_after: float | None = None
            try:
                self.requests += 1
                response = await self._client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                last = f"{where}: {type(exc).__name__}"
            else:
                if response.status_code in expect or response.is_success:
                    return response
                if response.status_code not in RETRY_STATUS:
                    raise SourceHTTPError(f"{where} → HTTP {response.status_code}", response.status_code)
                last = f"{where} → HTTP {response.status_code}"
                retry_after = retry_after_s(response.headers.get("Retry-After"))
            if attempt + 1 < self.attempts:
                delay = self._delay(attempt, retry_after)
                self.waited_s += delay
                await self._sleep(delay)
        raise SourceUnavailable(f"{last}（已重试 {self.attempts} 次 after {self.attempts} attempts）")

    async def get_json(self, path_or_url: str, **kwargs: Any) -> Any:
        """GET and parse JSON; an answer that is not JSON is :class:`SourceDataError`."""
        response = await self.request("GET", path_or_url, **kwargs)
        return parse_json(response, "GET")

    async def post_json(self, path_or_url: str, body: Any, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", path_or_url, json=body, **kwargs)


def parse_json(response: httpx.Response, method: str = "GET") -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise SourceDataError(
            f"{_where(method, response.request.url)}: 应答不是 JSON (answer is not JSON)"
        ) from None
