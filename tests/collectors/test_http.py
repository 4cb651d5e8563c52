"""The collectors' HTTP client (§8): retries, Retry-After, redirects, and the peer as untrusted.

The §8 address policy is tested on real connections to a small HTTP server on loopback; the
name resolution the guard uses is replaced by a stub playing a hostile DNS (rebinding), never the
network itself. What a user sees — the run's recorded error — is read back through the API.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from app.collectors import http as source_http
from app.collectors.errors import (
    SourceError,
    SourceHTTPError,
    SourceRefused,
    SourceTooLarge,
    SourceUnavailable,
)
from app.collectors.http import SourceCertificateError, SourceHTTP, address_refusal, retry_after_s
from app.collectors.runner import CollectorRunner
from app.config import Settings
from app.db import create_sessionmaker
from app.main import create_app
from app.models import Source
from app.schemas.common import ClientCreate
from app.security.keys import load_server_key
from app.services.clients import create_client
from tests.conftest import _empty_tables
from tests.helpers import Hub

MiB = 1024 * 1024
P = "GD-GZ-ZWY-01"
PROM_EMPTY = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'


async def _no_wait(_: float) -> None:
    return None


# --- retries and Retry-After ----------------------------------------------------------------------


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


# --- credentials go only to the origin of base_url ------------------------------------------------


async def test_a_redirect_to_another_origin_is_followed_without_any_credential() -> None:
    seen: dict[str, set[tuple[str | None, str | None]]] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        origin = f"{request.url.host}:{request.url.port or 80}"
        seen.setdefault(origin, set()).add(
            (request.headers.get("X-Auth-Token"), request.headers.get("Authorization"))
        )
        if origin == "bmc.example:80" and request.url.path == "/redfish/v1":
            return httpx.Response(307, headers={"Location": "http://bmc.example:8443/redfish/v1"})
        if origin == "bmc.example:8443":  # same host, another port: another origin
            return httpx.Response(302, headers={"Location": "http://elsewhere.example/redfish/v1"})
        return httpx.Response(200, json={})

    async with SourceHTTP("http://bmc.example", transport=httpx.MockTransport(handler)) as http:
        await http.get_json("/redfish/v1", headers={"X-Auth-Token": "session-token"})
        await http.get_json("/redfish/v1", auth=httpx.BasicAuth("admin", "bmc-password"))
    basic = httpx.BasicAuth("admin", "bmc-password")._auth_header
    assert seen["bmc.example:80"] == {("session-token", None), (None, basic)}  # the BMC itself
    assert seen["bmc.example:8443"] == {(None, None)}
    assert seen["elsewhere.example:80"] == {(None, None)}

    allowed = frozenset({"bmc.example"})
    async with SourceHTTP(
        "http://bmc.example", transport=httpx.MockTransport(handler), allowed_hosts=allowed
    ) as http:
        with pytest.raises(SourceError, match=r"elsewhere\.example"):
            await http.get_json("/redfish/v1")


async def test_a_login_redirected_to_another_origin_is_not_followed_with_its_body() -> None:
    """A 307 keeps the method and the body: the password would go with it."""
    bodies: dict[str, bytes] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        bodies[request.url.host] = request.content
        if request.url.host == "keystone.example":
            return httpx.Response(307, headers={"Location": "http://evil.example/v3/auth/tokens"})
        return httpx.Response(201, json={})

    async with SourceHTTP("http://keystone.example", transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(SourceRefused, match="redirect to another origin"):
            await http.post_json("/v3/auth/tokens", {"password": "keystone-password"})
    assert list(bodies) == ["keystone.example"]


# --- answers are streamed with a byte limit -------------------------------------------------------


@dataclass
class Flood:
    """A body of ``total`` bytes produced only as it is read, counting what was taken."""

    total: int
    chunk: int = MiB
    produced: int = 0

    async def stream(self) -> AsyncIterator[bytes]:
        block = b"[" + b"0," * (self.chunk // 2 - 1) + b"0"
        while self.produced < self.total:
            self.produced += len(block)
            yield block


async def test_an_answer_beyond_the_limit_fails_without_reading_the_rest() -> None:
    flood = Flood(total=200 * MiB)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=flood.stream()))
    async with SourceHTTP("http://prom.example", transport=transport, max_response_bytes=4 * MiB) as http:
        with pytest.raises(SourceTooLarge, match="SUPHUB_SOURCE_MAX_RESPONSE_BYTES"):
            await http.get_json("/api/v1/query_range")
    assert flood.produced <= 5 * MiB  # the limit and one chunk, not 200 MiB

    # a declared length beyond the limit is refused before any of the body is read
    declared = Flood(total=200 * MiB)
    big = httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=declared.stream(), headers={"Content-Length": str(200 * MiB)}
        )
    )
    async with SourceHTTP("http://prom.example", transport=big, max_response_bytes=4 * MiB) as http:
        with pytest.raises(SourceTooLarge):
            await http.get_json("/api/v1/query_range")
    assert declared.produced == 0

    # the limit counts decoded bytes: 20 MiB of zeros gzip to 20 KiB and are still refused
    bomb = gzip.compress(b"0" * 20 * MiB)
    gzipped = httpx.MockTransport(
        lambda request: httpx.Response(200, content=bomb, headers={"Content-Encoding": "gzip"})
    )
    async with SourceHTTP("http://prom.example", transport=gzipped, max_response_bytes=4 * MiB) as http:
        with pytest.raises(SourceTooLarge):
            await http.get_json("/api/v1/query_range")


async def test_a_redirect_body_is_never_read() -> None:
    flood = Flood(total=200 * MiB)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/old":
            return httpx.Response(307, headers={"Location": "/new"}, content=flood.stream())
        return httpx.Response(200, json=[1])

    transport = httpx.MockTransport(handler)
    async with SourceHTTP("http://prom.example", transport=transport, max_response_bytes=4 * MiB) as http:
        assert await http.get_json("/old") == [1]
    assert flood.produced <= MiB


# --- addresses: real connections, a stub resolver -------------------------------------------------


@dataclass
class LocalPeer:
    """An HTTP/1.1 server on 127.0.0.1 answering by path (a Prometheus with no series by default)."""

    port: int = 0
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            target = head[0].split(" ")[1]
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:] if line)
            }
            if int(headers.get("content-length", "0")):
                await reader.readexactly(int(headers["content-length"]))
            self.seen.append((urlsplit(target).path, headers))
            status, extra, body = self.routes.get(urlsplit(target).path, (200, {}, PROM_EMPTY))
            lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def peer() -> AsyncIterator[LocalPeer]:
    found = LocalPeer()
    server = await asyncio.start_server(found.serve, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    yield found
    server.close()
    await server.wait_closed()


@dataclass
class HostileDNS:
    """Answers per name, in turn (the last answer repeats): a rebinding resolver."""

    answers: dict[str, list[list[str]]]
    asked: list[str] = field(default_factory=list)

    async def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        queue = self.answers[host]
        return queue.pop(0) if len(queue) > 1 else queue[0]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> HostileDNS:
    """The guard's resolver replaced; literal addresses resolve to themselves."""
    stub = HostileDNS({})
    real = source_http.resolve

    async def resolve(host: str, port: int) -> list[str]:
        if host in stub.answers:
            return await stub.resolve(host, port)
        return await real(host, port)

    monkeypatch.setattr(source_http, "resolve", resolve)
    return stub


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
    ],
)
def test_the_address_policy_refuses_what_section_8_names(address: str, why: str) -> None:
    refusal = address_refusal(address, "peer.example", None)
    assert refusal is not None and why in refusal


def test_private_ranges_are_allowed_and_loopback_only_for_a_listed_host() -> None:
    for address in ("10.20.7.20", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::2", "203.0.113.5"):
        assert address_refusal(address, "bmc.example", None) is None
    assert address_refusal("127.0.0.1", "127.0.0.1", frozenset({"127.0.0.1"})) is None
    assert address_refusal("::1", "[::1]", frozenset({"::1"})) is None
    assert address_refusal("127.0.0.1", "other.example", frozenset({"127.0.0.1"})) is not None
    # a listed host does not make a metadata address acceptable
    assert address_refusal("169.254.169.254", "meta.example", frozenset({"meta.example"})) is not None


async def test_loopback_is_refused_without_connecting_unless_its_host_is_listed(peer: LocalPeer) -> None:
    async with SourceHTTP(peer.url, sleep=_no_wait) as http:
        with pytest.raises(SourceRefused, match="loopback"):
            await http.get_json("/api/v1/query_range")
    assert peer.seen == []
    async with SourceHTTP(peer.url, allowed_hosts=frozenset({"127.0.0.1"})) as http:
        assert (await http.get_json("/api/v1/query_range"))["status"] == "success"
    assert [path for path, _ in peer.seen] == ["/api/v1/query_range"]


async def test_a_rebinding_name_connects_to_the_address_checked_and_is_then_refused(
    peer: LocalPeer, dns: HostileDNS
) -> None:
    # first the listed loopback peer, then the metadata service (every connection is new here)
    dns.answers["rebind.test"] = [["127.0.0.1"], ["169.254.169.254"]]
    url = f"http://rebind.test:{peer.port}"
    async with SourceHTTP(url, allowed_hosts=frozenset({"rebind.test"})) as http:
        # the system resolver does not know rebind.test: this answer proves the connection went to
        # the address the guard checked, not to a second resolution of the name
        assert (await http.get_json("/first"))["status"] == "success"
        with pytest.raises(SourceRefused, match=r"169\.254\.169\.254.*link-local"):
            await http.get_json("/second")
    assert [path for path, _ in peer.seen] == ["/first"]
    assert dns.asked == ["rebind.test", "rebind.test"]


async def test_a_redirect_to_the_metadata_service_or_loopback_is_refused(
    peer: LocalPeer, dns: HostileDNS
) -> None:
    dns.answers["peer.test"] = [["127.0.0.1"]]
    dns.answers["meta.test"] = [["169.254.169.254"]]
    peer.routes["/to-metadata"] = (302, {"Location": "http://meta.test/latest/meta-data/"}, b"")
    peer.routes["/to-loopback"] = (307, {"Location": f"http://127.0.0.1:{peer.port}/admin"}, b"")
    base = f"http://peer.test:{peer.port}"
    # meta.test is even listed: the address policy still refuses it
    async with SourceHTTP(base, allowed_hosts=frozenset({"peer.test", "meta.test"})) as http:
        with pytest.raises(SourceRefused, match="link-local"):
            await http.get_json("/to-metadata")
        with pytest.raises(SourceRefused, match=r"127\.0\.0\.1"):
            await http.get_json("/to-loopback")
    assert [path for path, _ in peer.seen] == ["/to-metadata", "/to-loopback"]  # never /admin


def _certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a self-signed certificate for ``name``, and a client trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    return server, client


async def test_tls_checks_the_host_name_while_connecting_to_the_checked_address(
    tmp_path: Path, dns: HostileDNS
) -> None:
    server_context, client_context = _certificate(tmp_path, "bmc.test")
    found = LocalPeer()
    server = await asyncio.start_server(found.serve, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    dns.answers["bmc.test"] = dns.answers["other.test"] = [["127.0.0.1"]]
    listed = frozenset({"bmc.test", "other.test"})
    try:
        async with SourceHTTP(
            f"https://bmc.test:{port}", allowed_hosts=listed, verify=client_context
        ) as http:
            assert (await http.get_json("/redfish/v1/"))["status"] == "success"
        # the same address under a name the certificate does not carry: refused by TLS, saying
        # so, and at once (a retry cannot make a certificate valid)
        async with SourceHTTP(
            f"https://other.test:{port}", allowed_hosts=listed, verify=client_context, sleep=_no_wait
        ) as http:
            with pytest.raises(SourceCertificateError, match=r"certificate verify failed.*other\.test"):
                await http.get_json("/redfish/v1/")
            assert http.requests == 1
    finally:
        server.close()
        await server.wait_closed()
    assert [path for path, _ in found.seen] == ["/redfish/v1/"]


# --- the same, as an administrator sees it: the run's recorded error ------------------------------


@pytest.fixture
async def guarded(settings: Settings, engine: AsyncEngine) -> AsyncIterator[tuple[Hub, Any]]:
    """A hub with no allow-list and a 4 MiB answer limit."""
    await _empty_tables(engine, settings)
    changed = settings.model_copy(update={"source_max_response_bytes": 4 * MiB, "collector_backoff_s": 0.001})
    application = create_app(changed)
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        async with create_sessionmaker(application.state.engine)() as session:
            created = await create_client(
                session, load_server_key(changed), ClientCreate(name="root", role="admin")
            )
            await session.commit()
        yield Hub(client, created["bearer"], changed), application
    await application.state.audit_writer.close()
    await application.state.rate_limiter.close()
    await application.state.engine.dispose()


async def _prometheus_run(hub: Hub, app: Any, base_url: str, stored: str | None = None) -> dict[str, Any]:
    """Save a Prometheus source and run it; ``stored`` rewrites its ``base_url`` in the database
    first (a source saved before a save-time check existed)."""
    await hub.create_platform(P)
    body = {
        "source_id": "gz-prom",
        "platform_code": P,
        "type": "prometheus",
        "base_url": base_url,
        "interval_s": 60,
        "kinds": ["metrics"],
        "options": {"asset_label": "instance", "queries": {"cpu.util": "up"}},
        "enabled": False,
    }
    created = await hub.http.post("/api/v1/admin/sources", json=body, headers=hub.auth(hub.admin))
    assert created.status_code == 201, created.text
    if stored is not None:
        async with create_sessionmaker(app.state.engine)() as session:
            await session.execute(update(Source).values(base_url=stored))
            await session.commit()
    started = await hub.http.post("/api/v1/admin/sources/gz-prom/run", headers=hub.auth(hub.admin))
    assert started.status_code == 202, started.text
    await app.state.collector_runner.wait_idle()
    answer = await hub.get(f"/api/v1/admin/sources/gz-prom/runs/{started.json()['data']['run_id']}")
    return dict(answer.json()["data"])


@pytest.mark.parametrize(
    ("address", "why"),
    [("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("0.0.0.0", "unspecified")],
)
async def test_a_source_whose_name_resolves_to_a_metadata_or_unspecified_address_fails_its_run_clearly(
    guarded: tuple[Hub, Any], dns: HostileDNS, address: str, why: str
) -> None:
    """A name is judged on what it resolves to when the run connects (a literal address is
    already refused when the source is saved: tests/api/test_sources.py)."""
    hub, app = guarded
    dns.answers["prom.test"] = [[address]]
    done = await _prometheus_run(hub, app, "http://prom.test:9090")
    assert done["status"] == "failed"
    assert "§8" in done["error"] and why in done["error"] and address in done["error"]


async def test_a_source_stored_at_a_metadata_address_before_it_was_refused_still_fails_its_run(
    guarded: tuple[Hub, Any],
) -> None:
    """Saved before the save-time check existed (or written to the database directly): the
    connection policy still holds."""
    hub, app = guarded
    done = await _prometheus_run(hub, app, "http://prom.example:9090", stored="http://169.254.169.254")
    assert done["status"] == "failed" and "link-local" in done["error"], done["error"]


async def test_a_source_on_loopback_fails_its_run_unless_listed(
    guarded: tuple[Hub, Any], peer: LocalPeer, dns: HostileDNS
) -> None:
    hub, app = guarded
    dns.answers["prom.test"] = [["127.0.0.1"]]
    done = await _prometheus_run(hub, app, f"http://prom.test:{peer.port}")
    assert done["status"] == "failed" and "loopback" in done["error"], done["error"]
    assert peer.seen == []  # refused before connecting


async def test_a_200_mib_answer_fails_the_run_after_the_limit_without_reading_the_rest(
    guarded: tuple[Hub, Any], settings: Settings
) -> None:
    hub, app = guarded
    flood = Flood(total=200 * MiB)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=flood.stream()))
    app.state.collector_runner = CollectorRunner(
        app.state.sessionmaker, app.state.settings, load_server_key(settings), transport=transport
    )
    done = await _prometheus_run(hub, app, "http://10.0.0.9:9090")
    assert done["status"] == "failed"
    assert "SUPHUB_SOURCE_MAX_RESPONSE_BYTES" in done["error"] and str(4 * MiB) in done["error"]
    assert flood.produced <= 5 * MiB
