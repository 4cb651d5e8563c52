"""Keystone token handling and paging of the OpenStack client, against the recorded cloud."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.collectors.errors import SourceError
from app.collectors.http import SourceHTTP
from app.collectors.openstack.client import OpenStackClient, auth_body, next_marker, tokens_url
from tests.collectors.openstack.fake import KEYSTONE, FakeOpenStack

CREDENTIAL = {"application_credential_id": "ac", "application_credential_secret": "secret"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _client(fake: FakeOpenStack, clock: Clock, **options: Any) -> tuple[SourceHTTP, OpenStackClient]:
    http = SourceHTTP(KEYSTONE, transport=httpx.MockTransport(fake.handler))
    return http, OpenStackClient(http, KEYSTONE, CREDENTIAL, options, clock=clock)


async def test_the_token_is_reused_until_shortly_before_it_expires() -> None:
    fake, clock = FakeOpenStack(), Clock()
    http, client = _client(fake, clock)
    async with http:
        for _ in range(3):
            await client.get_json("compute", "/os-hypervisors/detail")
        assert fake.keystone_calls == 1
        # the recorded token lives one hour (issued_at → expires_at): renewed 5 minutes before
        clock.now += 3600 - 300 - 1
        await client.get_json("compute", "/os-hypervisors/detail")
        assert fake.keystone_calls == 1
        clock.now += 2
        await client.get_json("compute", "/os-hypervisors/detail")
        assert fake.keystone_calls == 2 and client.authentications == 2


async def test_a_short_lived_token_is_renewed_after_four_fifths_of_its_life() -> None:
    fake, clock = FakeOpenStack(), Clock()
    fake.token_answer["token"]["expires_at"] = "2026-11-21T11:15:05.000000Z"  # one minute
    http, client = _client(fake, clock)
    async with http:
        await client.get_json("compute", "/os-hypervisors/detail")
        clock.now += 47
        await client.get_json("compute", "/os-hypervisors/detail")
        assert fake.keystone_calls == 1
        clock.now += 2
        await client.get_json("compute", "/os-hypervisors/detail")
        assert fake.keystone_calls == 2


async def test_endpoints_follow_interface_region_and_overrides() -> None:
    fake, clock = FakeOpenStack(), Clock()
    http, client = _client(fake, clock, interface="internal", endpoints={"placement": "http://p.test/"})
    async with http:
        token = await client.token()
        assert client.endpoint(token, "compute") == "http://nova.internal:8774/v2.1"
        assert client.endpoint(token, "volume").startswith("http://cinder.internal:8776/v3/")  # type: ignore[union-attr]
        assert client.endpoint(token, "placement") == "http://p.test"
    http, client = _client(fake, clock, region="RegionTwo")
    async with http:
        with pytest.raises(SourceError, match="RegionTwo"):
            await client.require_endpoint("compute")


def test_auth_bodies() -> None:
    assert auth_body(CREDENTIAL, {"project_name": "ignored"}) == {
        "auth": {
            "identity": {
                "methods": ["application_credential"],
                "application_credential": {"id": "ac", "secret": "secret"},
            }
        }
    }
    named = auth_body(
        {"application_credential_name": "hub", "application_credential_secret": "s", "username": "u"}, {}
    )
    assert named["auth"]["identity"]["application_credential"] == {
        "name": "hub",
        "secret": "s",
        "user": {"name": "u", "domain": {"name": "Default"}},
    }
    password = auth_body(
        {"user_id": "u1", "password": "p"}, {"project_id": "p1", "user_domain_name": "ignored for ids"}
    )
    assert password == {
        "auth": {
            "identity": {"methods": ["password"], "password": {"user": {"id": "u1", "password": "p"}}},
            "scope": {"project": {"id": "p1"}},
        }
    }
    with pytest.raises(SourceError, match="凭据"):
        auth_body({"token": "t"}, {})


def test_token_urls_and_next_markers() -> None:
    assert tokens_url("https://keystone.gz:5000/v3/") == "https://keystone.gz:5000/v3/auth/tokens"
    assert tokens_url("https://cloud.gz/identity") == "https://cloud.gz/identity/v3/auth/tokens"
    # the link's host (often Nova's internal address behind a proxy) is not followed, only its marker
    links = [{"rel": "next", "href": "http://10.0.0.5:8774/v2.1/servers/detail?limit=2&marker=abc"}]
    assert next_marker(links, []) == "abc"
    assert next_marker([{"rel": "next", "href": "http://x/servers/detail"}], [{"id": "last"}]) == "last"
    assert next_marker([{"rel": "self", "href": "http://x/?marker=abc"}], []) is None
    assert next_marker(None, []) is None
