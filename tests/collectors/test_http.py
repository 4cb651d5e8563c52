"""The collectors' HTTP client (§8): retries, Retry-After, redirects and allowed hosts."""

from __future__ import annotations

import httpx
import pytest

from app.collectors.errors import SourceError, SourceHTTPError, SourceUnavailable
from app.collectors.http import SourceHTTP, retry_after_s


async def _no_wait(_: float) -> None:
    return None


async def test_a_redirect_to_another_host_loses_the_session_token_and_must_be_allowed() -> None:
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("X-Auth-Token")
        if request.url.host == "bmc.example":
            return httpx.Response(307, headers={"Location": "http://elsewhere.example/redfish/v1"})
        return httpx.Response(200, json={})

    async with SourceHTTP("http://bmc.example", transport=httpx.MockTransport(handler)) as http:
        await http.get_json("/redfish/v1", headers={"X-Auth-Token": "session-token"})
    assert seen == {"bmc.example": "session-token", "elsewhere.example": None}

    allowed = frozenset({"bmc.example"})
    async with SourceHTTP(
        "http://bmc.example", transport=httpx.MockTransport(handler), allowed_hosts=allowed
    ) as http:
        with pytest.raises(SourceError, match=r"elsewhere\.example"):
            await http.get_json("/redfish/v1")


async def test_429_and_503_are_retried_honouring_retry_after_then_the_run_fails() -> None:
    answers = iter(
        [
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(503),
            httpx.Response(200, json=[1]),
        ]
    )
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    transport = httpx.MockTransport(lambda request: next(answers))
    async with SourceHTTP("http://cmp.example", transport=transport, sleep=sleep, backoff_s=0.01) as http:
        assert await http.get_json("/x") == [1]
    assert waits[0] == 7 and 0 <= waits[1] <= 0.02

    always = httpx.MockTransport(lambda request: httpx.Response(503))
    async with SourceHTTP("http://cmp.example", transport=always, sleep=_no_wait, attempts=3) as http:
        with pytest.raises(SourceUnavailable, match="503"):
            await http.get_json("/x")
        assert http.requests == 3
    refused = httpx.MockTransport(lambda request: httpx.Response(404))
    async with SourceHTTP("http://cmp.example", transport=refused, sleep=_no_wait) as http:
        with pytest.raises(SourceHTTPError) as error:
            await http.get_json("/x?token=secret")
        assert error.value.status_code == 404 and "secret" not in str(error.value)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_s("120") == 120.0
    assert retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_s("soon") is None and retry_after_s(None) is None
