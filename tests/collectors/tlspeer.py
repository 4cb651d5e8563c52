"""A private certificate authority made in the test, and an HTTPS peer on 127.0.0.1 that presents a
certificate it signed — what a BMC or a private cloud with its own CA looks like to a source."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PROM_EMPTY = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class PrivateCA:
    """A CA (``ca.pem``) and a server certificate it signed for 127.0.0.1 (``server.pem``, key)."""

    ca_file: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        return context


def make_ca(folder: Path, name: str = "政务云测试 CA") -> PrivateCA:
    """A fresh CA and a server certificate for ``127.0.0.1`` under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    found = PrivateCA(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    found.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    found.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    found.server_key.write_bytes(_pem_key(server_key))
    return found


@dataclass
class TLSPeer:
    """An HTTPS/1.1 server on 127.0.0.1: a Prometheus with no series, counting handshakes."""

    context: ssl.SSLContext
    port: int = 0
    paths: list[str] = field(default_factory=list)
    #: TCP connections accepted, handshakes that then failed included
    connections: int = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            # TLS started here, not by the server, so a refused handshake is still counted
            await writer.start_tls(self.context)
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
            if int(headers.get("content-length", "0")):
                await reader.readexactly(int(headers["content-length"]))
            self.paths.append(urlsplit(head[0].split(" ")[1]).path)
            writer.write(
                f"HTTP/1.1 200 OK\r\nContent-Length: {len(PROM_EMPTY)}\r\nConnection: close\r\n"
                "Content-Type: application/json\r\n\r\n".encode()
                + PROM_EMPTY
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # a client that refused our certificate hangs up during the handshake
        finally:
            writer.close()


@asynccontextmanager
async def tls_peer(ca: PrivateCA) -> AsyncIterator[TLSPeer]:
    """A :class:`TLSPeer` presenting ``ca``'s server certificate, for the ``async with`` body."""
    peer = TLSPeer(ca.server_context())
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    peer.port = server.sockets[0].getsockname()[1]
    try:
        yield peer
    finally:
        server.close()
        await server.wait_closed()
