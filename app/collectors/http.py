"""The HTTP client of one collector run: explicit timeouts, retries with back-off, clean errors, and
the §8 rules for a peer that is not trusted.

Transport errors (connection refused, timeouts, a peer that hangs), 429 and 503 are retried with
exponential back-off and full jitter, honouring ``Retry-After`` (seconds or an HTTP date, capped);
when every attempt fails the run fails with :class:`SourceUnavailable`. Other non-2xx answers raise
:class:`SourceHTTPError` at once unless the caller asks to see them (a 401 that should refresh a
token). Messages name the method and the URL without its query string, never a credential.

A source is an untrusted peer (§8, "Sources are untrusted peers"):

* **Addresses.** Every TCP connection — redirects included — goes through :class:`GuardedBackend`,
  which resolves the host once, checks every address (:func:`address_refusal`) and connects to
  exactly the addresses it checked, so a resolver that answers differently the second time (DNS
  rebinding) cannot slip in another one. TLS still verifies the host name (httpcore starts TLS on
  the returned stream with the URL's host as SNI).
* **Credentials.** ``auth=`` and the credential headers (:data:`CREDENTIAL_HEADERS`) go only to
  the origins (scheme, host, port) the client trusts: ``base_url``'s, and those a collector adds
  with :meth:`SourceHTTP.trust` (OpenStack's catalogue). A redirect elsewhere is followed without
  them; redirects are followed here, hop by hop, so no redirect body is ever read.
* **Size.** Every answer is streamed and given up beyond ``max_response_bytes`` (decoded bytes, so
  a compressed answer cannot grow past it either): :class:`SourceTooLarge`, the rest unread.
* **TLS.** :func:`source_tls` builds the run's context from the options: ``ca_file`` (a PEM bundle
  that replaces the public CAs for this source) and ``tls_verify`` (``false`` only outside
  production). A certificate the context refuses fails the run at once, saying so
  (:class:`SourceCertificateError`): retrying cannot make it valid.
* **Saving.** :func:`base_url_refusal` judges a ``base_url`` written as an address with the same
  :func:`address_refusal` the connections use, so it is refused before it is stored.

A ``transport`` given by tests (``httpx.MockTransport``) replaces the network, so the address
check does not apply to it; everything else does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import socket
import ssl
import stat
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import certifi
import httpcore
import httpx
import orjson

from app.collectors.errors import (
    SourceDataError,
    SourceError,
    SourceHTTPError,
    SourceRefused,
    SourceTooLarge,
    SourceUnavailable,
)

RETRY_STATUS = frozenset({429, 503})
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
MAX_REDIRECTS = 10
#: headers that carry a credential: sent only to a trusted origin
CREDENTIAL_HEADERS = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-auth-token",
    "x-subject-token",
    "vmware-api-session-id",
)
Origin = tuple[str, str, int]
#: a CA bundle larger than this is not a CA bundle (certifi's, every public CA, is under 300 KiB)
CA_FILE_MAX_BYTES = 1024 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _where(method: str, url: httpx.URL | str) -> str:
    parts = urlsplit(str(url))
    return f"{method} {urlunsplit((parts.scheme, parts.netloc.rpartition('@')[2], parts.path, '', ''))}"


def host_key(host: str) -> str:
    """A host as the allow-list compares it: lower case, an IPv6 literal without brackets."""
    return host.strip().lower().removeprefix("[").removesuffix("]")


def origin_of(url: httpx.URL | str) -> Origin:
    """``(scheme, host, port)`` with the scheme's default port filled in."""
    parts = httpx.URL(str(url))
    scheme = parts.scheme.lower()
    return scheme, host_key(parts.host), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def has_userinfo(url: str) -> bool:
    """Whether ``url`` carries a user or a password (``http://user:pw@host``)."""
    parts = urlsplit(url)
    return "@" in parts.netloc or parts.username is not None or parts.password is not None


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


# --- addresses (§8) -------------------------------------------------------------------------------
def address_refusal(address: str, host: str, allowed_hosts: frozenset[str] | None) -> str | None:
    """Why the §8 policy refuses a connection to ``address`` for ``host``; ``None`` if it allows it.

    Link-local (every cloud metadata address), unspecified, multicast and broadcast are always
    refused; loopback only when ``host`` is on the allow-list; private ranges are allowed. An
    IPv4 address inside IPv6 (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::a.b.c.d``) is judged as IPv4.
    """
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip in _NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.is_link_local:
        return "链路本地地址 (link-local address)"
    if ip.is_unspecified or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK):
        return "未指定地址 (unspecified address)"
    if ip.is_multicast:
        return "组播地址 (multicast address)"
    if ip == _BROADCAST:
        return "广播地址 (broadcast address)"
    if ip.is_loopback and host_key(host) not in (allowed_hosts or frozenset()):
        return "回环地址，且主机不在 SUPHUB_SOURCE_ALLOWED_HOSTS 中 (loopback, host not listed)"
    return None


def literal_address(host: str) -> str | None:
    """The address ``host`` is written as, or ``None`` for a name.

    Besides IPv4 and IPv6 literals, the forms the resolver reads as IPv4 count (``2130706433``,
    ``0x7f.1``, ``127.1``): a URL host is an address whenever the system would connect to it
    without asking DNS.
    """
    key = host_key(host)
    try:
        return str(ipaddress.ip_address(key))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(key))
    except (OSError, ValueError):
        return None


def base_url_refusal(url: str, allowed_hosts: frozenset[str] | None) -> str | None:
    """Why the §8 policy will refuse every connection to ``url`` (its host written as an address
    the policy refuses), so it can be refused when the source is saved; ``None`` otherwise.

    Names are not resolved here: what a name stands for is checked when the run connects.
    """
    host = urlsplit(url).hostname or ""
    address = literal_address(host)
    if address is None:
        return None
    allowed = frozenset(host_key(h) for h in allowed_hosts) if allowed_hosts is not None else None
    return address_refusal(address, host, allowed)


async def resolve(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the system resolver (tests replace this to play a hostile DNS)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def checked_addresses(
    host: str, port: int, allowed_hosts: frozenset[str] | None, within_s: float | None = None
) -> list[str]:
    """Resolve ``host`` once and check every address; one refused address refuses the host."""
    if allowed_hosts is not None and host_key(host) not in allowed_hosts:
        raise SourceRefused(f"主机 {host} 不在 SUPHUB_SOURCE_ALLOWED_HOSTS 中 (host not allowed)")
    try:
        async with asyncio.timeout(within_s):
            addresses = await resolve(host, port)
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"解析 {host} 超时 (name resolution timed out)") from None
    except OSError as exc:
        raise httpcore.ConnectError(f"无法解析主机 {host} (cannot resolve): {exc}") from None
    if not addresses:
        raise httpcore.ConnectError(f"主机 {host} 没有地址 (no address)")
    for address in addresses:
        why = address_refusal(address, host, allowed_hosts)
        if why is not None:
            raise SourceRefused(f"拒绝连接 {host}（{address}）：{why} (address refused by the §8 policy)")
    return addresses


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting only to addresses :func:`checked_addresses` passed."""

    def __init__(self, allowed_hosts: frozenset[str] | None) -> None:
        self.allowed_hosts = allowed_hosts
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await checked_addresses(host, port, self.allowed_hosts, timeout):
            try:
                # the checked address itself: nothing resolves the name again
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise SourceRefused("采集源不能使用 Unix 套接字 (no Unix sockets for sources)")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class SourceOptionRefused(SourceError):
    """A TLS option this hub will not use; ``loc`` names it (``options.ca_file``) for a 422."""

    def __init__(self, loc: str, message: str) -> None:
        super().__init__(f"{loc}: {message}")
        self.loc = loc


class SourceCertificateError(SourceError):
    """The source's certificate was refused (unknown CA, wrong name, expired): not retried."""


def _trusting(pem: str) -> ssl.SSLContext:
    """A verifying client context that trusts exactly the certificates in ``pem`` (not
    ``create_default_context``, which would add the system's CAs to an empty bundle)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
    context.load_verify_locations(cadata=pem)
    return context


def _ca_bundle(value: object) -> str:
    """The certificates of ``options.ca_file``, read once (blocking: call it in a thread).

    Only an absolute path to a regular file of at most :data:`CA_FILE_MAX_BYTES` holding PEM
    certificates and no private key is used: opened without following it into a FIFO or a device
    (``O_NONBLOCK``, then checked on the open file), so a path cannot hang a worker or stream
    without end. Messages say what is wrong, never what the file holds.
    """
    loc = "options.ca_file"
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise SourceOptionRefused(
            loc, "须为 CA 证书文件的绝对路径 (must be the absolute path of a CA bundle)"
        )
    if not os.path.isabs(value):
        raise SourceOptionRefused(loc, f"须为绝对路径：{value} (must be an absolute path)")
    try:
        fd = os.open(value, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise SourceOptionRefused(
            loc, f"无法读取 {value}：{exc.strerror} (cannot be read: {exc.strerror})"
        ) from None
    too_large = f"{value} 超过 {CA_FILE_MAX_BYTES} 字节 (larger than {CA_FILE_MAX_BYTES} bytes)"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SourceOptionRefused(loc, f"{value} 不是普通文件 (not a regular file)")
        if info.st_size > CA_FILE_MAX_BYTES:
            raise SourceOptionRefused(loc, too_large)
        chunks: list[bytes] = []
        size = 0
        while size <= CA_FILE_MAX_BYTES and (chunk := os.read(fd, CA_FILE_MAX_BYTES + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise SourceOptionRefused(
            loc, f"无法读取 {value}：{exc.strerror} (cannot be read: {exc.strerror})"
        ) from None
    finally:
        os.close(fd)
    content = b"".join(chunks)
    if len(content) > CA_FILE_MAX_BYTES:  # grew since fstat
        raise SourceOptionRefused(loc, too_large)
    if b"PRIVATE KEY-----" in content:
        raise SourceOptionRefused(
            loc,
            f"{value} 含私钥，CA 证书文件只应含证书 "
            "(holds a private key: a CA bundle holds certificates only)",
        )
    not_pem = f"{value} 不是 PEM 格式的 CA 证书 (not a PEM bundle of CA certificates)"
    try:
        text = content.decode("ascii")
        loaded = _trusting(text)  # parses every certificate, or refuses
    except (UnicodeDecodeError, ssl.SSLError, ValueError):
        raise SourceOptionRefused(loc, not_pem) from None
    if not loaded.cert_store_stats()["x509"]:
        raise SourceOptionRefused(loc, not_pem)
    return text


def tls_verify_option(options: Mapping[str, Any], *, production: bool) -> bool:
    """``options.tls_verify`` (default ``true``): a boolean, and ``false`` only outside production."""
    value = options.get("tls_verify", True)
    if not isinstance(value, bool):
        raise SourceOptionRefused("options.tls_verify", "须为 true 或 false (must be true or false)")
    if not value and production:
        raise SourceOptionRefused(
            "options.tls_verify",
            "生产环境不允许关闭证书校验，请用 options.ca_file 指定 CA 证书 "
            "(tls_verify: false is refused in production: name the CA with options.ca_file)",
        )
    return value


def source_tls(options: Mapping[str, Any], *, production: bool) -> ssl.SSLContext:
    """The TLS context of a source's run (§8), or :class:`SourceOptionRefused` naming the option.

    ``ca_file`` replaces the public CAs for this source (a private CA vouches for its hosts only,
    and the public ones vouch for none of them); it is checked even when ``tls_verify`` is off,
    so what is saved is usable once verification is switched on. Reads a file: call it in a thread.
    """
    verify = tls_verify_option(options, production=production)
    ca_file = options.get("ca_file")
    if ca_file is None:
        return ssl_context(verify)
    context = _trusting(_ca_bundle(ca_file))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def certificate_failure(exc: BaseException) -> str | None:
    """Why TLS refused the peer's certificate, when that is what ``exc`` (a transport error)
    came from; ``None`` for any other failure."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return str(current.verify_message or current.reason or "certificate verify failed")
        current = current.__cause__ or current.__context__
    return None


def ssl_context(verify: bool | ssl.SSLContext) -> ssl.SSLContext:
    """httpx's default context (certifi's CAs), or one that checks nothing (``tls_verify: false``)."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    context = ssl.create_default_context(cafile=certifi.where())
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a pool whose every connection goes through :class:`GuardedBackend`.

    No proxy from the environment: a proxy would connect for us, past the address check.
    """

    def __init__(self, *, verify: bool | ssl.SSLContext, allowed_hosts: frozenset[str] | None) -> None:
        context = ssl_context(verify)
        super().__init__(verify=context, trust_env=False)
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allowed_hosts),
        )


# --- the client of one run ------------------------------------------------------------------------
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: bool | ssl.SSLContext = True,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.allowed_hosts = (
            frozenset(host_key(h) for h in allowed_hosts) if allowed_hosts is not None else None
        )
        self.max_response_bytes = max_response_bytes
        self._sleep = sleep
        self.requests = 0
        self.waited_s = 0.0
        #: origins that may receive credentials: ``base_url``'s, and those :meth:`trust` adds
        self.origins: set[Origin] = {origin_of(self.base_url)}
        self._client = httpx.AsyncClient(
            timeout=timeout,
            transport=transport or GuardedTransport(verify=verify, allowed_hosts=self.allowed_hosts),
            follow_redirects=False,  # followed in :meth:`_send`, hop by hop
            trust_env=False,  # no .netrc credentials, no proxy past the address check
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

    def trusted(self, url: httpx.URL | str) -> bool:
        """Whether credentials may go to ``url`` (its origin is ``base_url``'s or one trusted)."""
        return origin_of(url) in self.origins

    def trust(self, url: str) -> None:
        """Let ``url``'s origin receive credentials (an endpoint the authenticated service named)."""
        self.origins.add(origin_of(url))

    async def _on_request(self, request: httpx.Request) -> None:
        """Every request, redirects included: an allowed host, and no credential for an untrusted
        origin (httpx itself drops only ``Authorization``, and only when the host changes)."""
        self._check_host(str(request.url))
        if not self.trusted(request.url):
            for name in CREDENTIAL_HEADERS:
                request.headers.pop(name, None)

    def _check_host(self, url: str) -> None:
        if has_userinfo(url):
            raise SourceRefused(f"{_where('GET', url)}: 地址含用户名或密码 (URL with userinfo refused)")
        if self.allowed_hosts is None:
            return
        host = host_key(urlsplit(url).hostname or "")
        if host not in self.allowed_hosts:
            raise SourceRefused(f"主机 {host} 不在 SUPHUB_SOURCE_ALLOWED_HOSTS 中 (host not allowed)")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff_s)
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2**attempt))

    async def _read(self, response: httpx.Response, where: str) -> None:
        """The body, decoded, at most ``max_response_bytes``; beyond that the rest is never read."""
        limit = self.max_response_bytes
        too_large = (
            f"{where}: 应答超过 {limit} 字节上限 "
            f"(answer larger than SUPHUB_SOURCE_MAX_RESPONSE_BYTES = {limit})"
        )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise SourceTooLarge(too_large)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise SourceTooLarge(too_large)
            chunks.append(chunk)
        # what ``aread`` would have stored: ``content``, ``json()`` and ``text`` work as usual
        response._content = b"".join(chunks)

    async def _send(
        self, method: str, url: str, auth: httpx.Auth | None, kwargs: dict[str, Any]
    ) -> httpx.Response:
        """One attempt: the request and its redirects, each hop checked, its answer read capped."""
        where = _where(method, url)
        request = self._client.build_request(method, url, **kwargs)
        for _ in range(MAX_REDIRECTS + 1):
            response = await self._client.send(
                request, auth=auth if self.trusted(request.url) else None, stream=True
            )
            try:
                if response.next_request is None:
                    await self._read(response, where)
                    return response
            finally:
                await response.aclose()
            request = response.next_request
            if request.method not in ("GET", "HEAD") and not self.trusted(request.url):
                # a 307 / 308 keeps the body: a login's password would follow it elsewhere
                raise SourceRefused(
                    f"{where}: 不跟随到其他源的 {request.method} 重定向 "
                    f"(a {request.method} redirect to another origin is not followed)"
                )
        raise SourceError(f"{where}: 重定向超过 {MAX_REDIRECTS} 次 (too many redirects)")

    async def request(
        self, method: str, path_or_url: str, *, expect: frozenset[int] = frozenset(), **kwargs: Any
    ) -> httpx.Response:
        """Send with retries; a 2xx answer, or one whose status is in ``expect``, is returned."""
        url = self.url(path_or_url)
        self._check_host(url)
        auth: httpx.Auth | None = kwargs.pop("auth", None)
        where = _where(method, url)
        last = ""
        for attempt in range(self.attempts):
            retry_after: float | None = None
            try:
                self.requests += 1
                response = await self._send(method, url, auth, kwargs)
            except httpx.TransportError as exc:
                refused = certificate_failure(exc)
                if refused is not None:
                    raise SourceCertificateError(
                        f"{where}: TLS 证书校验失败：{refused}（私有 CA 请用 options.ca_file 指定）"
                        f"(certificate verify failed: {refused}; name a private CA with options.ca_file)"
                    ) from None
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
