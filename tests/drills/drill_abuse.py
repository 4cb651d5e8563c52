"""Abuse: slow clients, a gzip bomb, deep nesting, oversize bodies — no 500, bounded memory.

Against ``supervision-hub serve`` on a throw-away SQLite file (``SUPHUB_REQUEST_READ_TIMEOUT_S``
set to 10 s so the drill is short), each case sent over a raw socket so that the drill, not an
HTTP library, decides how slowly and how much it sends, and stops sending as soon as the server
answers:

- slow clients: request headers one byte per second; a body trickled one byte per second (to the
  push path with a key, and to an admin endpoint without one) — cut off by the server (answered
  or disconnected)? how soon?
  (goal: every one within the read timeout + 5 s); meanwhile ``/healthz`` must still answer;
- a gzip bomb: 1 GiB of zeros gzip-compressed (≈ 1 MiB on the wire), pushed signed, as admin and
  without a key;
- JSON nested 100 000 deep (as the body, and as one record), and one record nested 300 deep;
- oversize bodies: a declared ``Content-Length`` beyond the limit, and an undeclared (chunked)
  one that just keeps coming, to the push path and to an admin endpoint without a key;

For each request the server's peak RSS growth is read from ``/proc/<pid>/status`` while it runs.
Figures: answers 500 (goal 0), the largest RSS growth of one request (goal ≤ 64 MiB), slow
connections cut off in time (goal: all), tracebacks in the server's log (reported).

    .venv/bin/python -m tests.drills.drill_abuse [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import select
import socket
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from app.security.signing import signed_headers
from tests.drills.common import (
    MIB,
    Admin,
    HubServer,
    PeakRSS,
    Provider,
    batch_body,
    cli_create_client,
    count_tracebacks,
    emit,
    exit_on_sigterm,
    hub_env,
    log,
    log_record,
    running,
    throwaway_database,
)

READ_TIMEOUT_S = 10.0
PUSH = "/api/v1/reports/logs"
ADMIN_PATH = "/api/v1/admin/clients"
PLATFORM = "DRILL-AB-01"


@dataclass
class Answer:
    """What the server did with one raw request."""

    status: int | None  # None: the connection ended (or the drill gave up) without an answer
    sent: int  # body bytes the server took before it answered or closed
    seconds: float
    closed: bool  # the server closed the connection (with or without an answer)
    body: bytes = b""


def _status_of(data: bytes) -> int | None:
    line = data.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else None


def _read_answer(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """Everything the server sends until it closes, until the answer's body is complete, or until
    ``deadline``; and whether it closed the connection."""
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], min(1.0, max(0.0, deadline - time.monotonic())))
        if not ready:
            continue
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = next(
                (
                    int(v)
                    for k, _, v in (h.partition(b":") for h in head.split(b"\r\n")[1:])
                    if k.strip().lower() == b"content-length" and v.strip().isdigit()
                ),
                None,
            )
            if length is not None and len(rest) >= length:
                return data, False
    return data, False


def raw_request(
    port: int, head: bytes, body: Iterable[bytes], *, pause: float = 0.0, give_up_s: float = 30.0
) -> Answer:
    """Send ``head`` then the pieces of ``body`` (``pause`` seconds apart), stopping as soon as the
    server answers or closes; then wait for the answer (at most ``give_up_s`` in all)."""
    started = time.monotonic()
    deadline = started + give_up_s
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 256 * 1024)

        def answered() -> bool:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable)

        try:
            pieces = iter([head])
            for is_head, piece in _chain_marked(pieces, body):
                if time.monotonic() > deadline or answered():
                    break
                _send_all(sock, piece, deadline)
                if not is_head:
                    sent += len(piece)
                if pause:
                    time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        data, closed = _read_answer(sock, deadline)
    return Answer(_status_of(data), sent, round(time.monotonic() - started, 2), closed, data[:4000])


def _chain_marked(head: Iterator[bytes], body: Iterable[bytes]) -> Iterator[tuple[bool, bytes]]:
    for piece in head:
        yield True, piece
    for piece in body:
        yield False, piece


def _send_all(sock: socket.socket, data: bytes, deadline: float) -> None:
    """``sendall`` that gives up at ``deadline`` (a server that stopped reading blocks it)."""
    view = memoryview(data)
    while view:
        _, writable, _ = select.select([], [sock], [], min(1.0, max(0.0, deadline - time.monotonic())))
        if time.monotonic() > deadline:
            raise TimeoutError
        if writable:
            view = view[sock.send(view) :]


def head_of(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def filler(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """``total`` bytes of JSON-ish filler, never held whole."""
    block = b" " * size
    for _ in range(total // size):
        yield block


def chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """HTTP/1.1 chunked framing: no length declared, the body keeps coming until the server stops
    it (or, if it never does, ends after the last piece so that the server answers at all)."""
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def gzip_bomb(size: int) -> bytes:
    """``size`` bytes of zeros, gzip-compressed without holding them (≈ size / 1000 bytes)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * MIB
    out = [deflate.compress(block) for _ in range(size // MIB)]
    out.append(deflate.flush())
    return b"".join(out)


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@dataclass
class Case:
    name: str
    answer: Answer
    rss_mib: float


def slow_case(
    port: int, name: str, head: bytes, body: bytes, pause: float, give_up_s: float
) -> tuple[str, Answer]:
    """One slow client: ``head`` (and ``body``) one byte every ``pause`` seconds."""
    if body:
        return name, raw_request(port, head, chunks(body, 1), pause=pause, give_up_s=give_up_s)
    first, rest = head[:40], head[40:]
    return name, raw_request(port, first, chunks(rest, 1), pause=pause, give_up_s=give_up_s)


def run_slow_clients(
    server: HubServer, admin: str, provider: Provider, count: int
) -> tuple[list[tuple[str, Answer]], list[float]]:
    """``count`` slow clients of each sort at once, and /healthz timed while they hang on."""
    give_up = READ_TIMEOUT_S + 15
    body = b'{"name": "slow"}' * 64
    sorts: list[tuple[str, bytes, bytes]] = [
        (
            "slow headers",
            head_of("GET", "/api/v1/platforms", {"Authorization": f"Bearer {admin}", "X-Pad": "a" * 200}),
            b"",
        ),
        (
            "slow push body",
            head_of(
                "POST",
                PUSH,
                {
                    "Authorization": f"Bearer {admin}",
                    "Content-Type": "application/json",
                    "Content-Length": str(len(body)),
                },
            ),
            body,
        ),
        (
            "slow admin body, no key",
            head_of(
                "POST", ADMIN_PATH, {"Content-Type": "application/json", "Content-Length": str(len(body))}
            ),
            body,
        ),
    ]
    results: list[tuple[str, Answer]] = []
    lock = threading.Lock()

    def one(name: str, head: bytes, payload: bytes) -> None:
        outcome = slow_case(server.port, name, head, payload, 1.0, give_up)
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=one, args=sort, daemon=True) for sort in sorts for _ in range(count)]
    for thread in threads:
        thread.start()
    healthz_ms: list[float] = []
    with httpx.Client(base_url=server.base, timeout=10) as http:
        while any(t.is_alive() for t in threads):
            started = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                http.get("/healthz")
            healthz_ms.append((time.monotonic() - started) * 1000)
            time.sleep(1)
    for thread in threads:
        thread.join(give_up + 10)
    return results, healthz_ms


def cases(
    admin: str, provider: Provider, big: int, collected: str
) -> list[tuple[str, Callable[[int], Answer]]]:
    """Every fast abuse case: a name and how to send it to a port."""
    bearer = {"Authorization": f"Bearer {admin}", "Content-Type": "application/json"}
    bomb = gzip_bomb(1024 * MIB)
    log(f"  gzip bomb: 1 GiB of zeros in {len(bomb) / MIB:.1f} MiB")
    deep_body = deep(100_000)
    deep_record = batch_body(PLATFORM, "abuse-deep-record", [], collected).replace(
        b'"records":[]', b'"records":[' + deep(100_000) + b"]"
    )
    # a log record wrapped 300 objects deep (written by hand: orjson writes at most 255 levels)
    inner = orjson.dumps(log_record("abuse-300", "deep", collected))
    deep300 = batch_body(PLATFORM, "abuse-300-deep", [], collected).replace(
        b'"records":[]', b'"records":[' + b'{"x":' * 300 + inner + b"}" * 300 + b"]"
    )
    unknown = signed_headers(
        app_key="drill-no-such-key", secret="x" * 32, method="POST", path=PUSH, body=b"{}"
    )

    def signed(body: bytes, **extra: str) -> dict[str, str]:
        return {**provider.headers(PUSH, body), **extra, "Content-Length": str(len(body))}

    def plain(path: str, headers: dict[str, str], body: bytes) -> Callable[[int], Answer]:
        return lambda port: raw_request(
            port, head_of("POST", path, {**headers, "Content-Length": str(len(body))}), chunks(body)
        )

    return [
        (
            "gzip bomb signed",
            lambda port: raw_request(
                port, head_of("POST", PUSH, signed(bomb, **{"Content-Encoding": "gzip"})), chunks(bomb)
            ),
        ),
        ("gzip bomb admin", plain(PUSH, {**bearer, "Content-Encoding": "gzip"}, bomb)),
        (
            "gzip bomb no key",
            plain(PUSH, {"Content-Type": "application/json", "Content-Encoding": "gzip"}, bomb),
        ),
        (
            "gzip bomb admin endpoint",
            plain("/api/v1/admin/platforms", {**bearer, "Content-Encoding": "gzip"}, bomb),
        ),
        ("deep 100000 push", plain(PUSH, bearer, deep_body)),
        (
            "deep 100000 signed",
            lambda port: raw_request(port, head_of("POST", PUSH, signed(deep_body)), chunks(deep_body)),
        ),
        ("deep 100000 record", plain(PUSH, bearer, deep_record)),
        ("deep 300 record", plain(PUSH, bearer, deep300)),
        ("deep 100000 admin", plain("/api/v1/admin/platforms", bearer, deep_body)),
        ("deep 100000 no key", plain(ADMIN_PATH, {"Content-Type": "application/json"}, deep_body)),
        (
            "oversize declared push",
            lambda port: raw_request(
                port, head_of("POST", PUSH, {**bearer, "Content-Length": str(big)}), filler(big)
            ),
        ),
        (
            "oversize chunked push",
            lambda port: raw_request(
                port, head_of("POST", PUSH, {**bearer, "Transfer-Encoding": "chunked"}), chunked(filler(big))
            ),
        ),
        (
            "oversize declared admin",
            lambda port: raw_request(
                port,
                head_of("POST", "/api/v1/admin/platforms", {**bearer, "Content-Length": str(big)}),
                filler(big),
            ),
        ),
        (
            "oversize declared no key",
            lambda port: raw_request(
                port,
                head_of("POST", ADMIN_PATH, {"Content-Type": "application/json", "Content-Length": str(big)}),
                filler(big),
            ),
        ),
        (
            "oversize chunked no key",
            lambda port: raw_request(
                port,
                head_of(
                    "POST", ADMIN_PATH, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
                ),
                chunked(filler(big)),
            ),
        ),
        (
            "oversize chunked unknown key",
            lambda port: raw_request(
                port,
                head_of(
                    "POST",
                    PUSH,
                    {**unknown, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
                ),
                chunked(filler(big)),
            ),
        ),
    ]


async def drill(quick: bool) -> bool:
    big = (128 if quick else 256) * MIB
    slow_count = 2 if quick else 10
    with tempfile.TemporaryDirectory(prefix="suphub-drill-abuse-") as tmp_name:
        tmp = Path(tmp_name)
        async with throwaway_database("sqlite", tmp) as url:
            env = hub_env(url, tmp / "data", SUPHUB_REQUEST_READ_TIMEOUT_S=str(READ_TIMEOUT_S))
            server = HubServer(env, tmp / "hub.log")
            with running(server):
                admin_key = await asyncio.to_thread(cli_create_client, env, "drill admin", "admin")
                admin = Admin(server.base, admin_key["bearer"])
                try:
                    await admin.platform(PLATFORM)
                    provider = await admin.provider(PLATFORM)
                finally:
                    await admin.close()
                collected = datetime.now(UTC).replace(microsecond=0).isoformat()
                done: list[Case] = []
                for name, send in cases(admin_key["bearer"], provider, big, collected):
                    with PeakRSS(server.pid) as rss:
                        answer = await asyncio.to_thread(send, server.port)
                    done.append(Case(name, answer, rss.growth_mib))
                    log(
                        f"  {name:<32} status={answer.status} sent={answer.sent / MIB:.1f} MiB "
                        f"in {answer.seconds:.1f} s rss+{rss.growth_mib} MiB"
                    )
                    if answer.status == 500:
                        log(f"    500 body: {answer.body[-600:]!r}")
                log(
                    f"  {slow_count} slow clients of each sort, one byte a second "
                    f"(read timeout {READ_TIMEOUT_S:.0f} s)"
                )
                with PeakRSS(server.pid) as rss:
                    slow, healthz_ms = await asyncio.to_thread(
                        run_slow_clients, server, admin_key["bearer"], provider, slow_count
                    )
                for name, answer in slow:
                    log(
                        f"  {name:<32} status={answer.status} closed={answer.closed} "
                        f"after {answer.seconds:.1f} s"
                    )
                async with httpx.AsyncClient(base_url=server.base, timeout=10) as http:
                    alive = (await http.get("/healthz")).status_code == 200
            tracebacks = count_tracebacks(server.keep_log("abuse"))
    answers_500 = sum(c.answer.status == 500 for c in done) + sum(a.status == 500 for _, a in slow)
    no_answer = [c.name for c in done if c.answer.status is None]
    worst = max(done, key=lambda c: c.rss_mib)
    # cut off: answered (e.g. 401 before the body, 408) or disconnected, within the timeout + 5 s
    closed_in_time = sum(
        (a.closed or a.status is not None) and a.seconds <= READ_TIMEOUT_S + 5 for _, a in slow
    )
    ok = answers_500 == 0 and worst.rss_mib <= 64 and closed_in_time == len(slow) and alive
    emit(
        "abuse",
        {
            "requests": len(done) + len(slow),
            "answers_500": answers_500,
            "no_answer": len(no_answer),
            "max_rss_growth_mib": worst.rss_mib,
            "worst": f"'{worst.name}'",
            "slow_cut_off": f"{closed_in_time}/{len(slow)}",
            "slow_longest_s": max((a.seconds for _, a in slow), default=0),
            "healthz_during_slow_ms": round(max(healthz_ms, default=0)),
            "tracebacks": tracebacks,
            "alive": "yes" if alive else "no",
        },
        ok,
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer slow clients, smaller oversize bodies")
    args = parser.parse_args(argv)
    exit_on_sigterm()
    return 0 if asyncio.run(drill(args.quick)) else 1


if __name__ == "__main__":
    sys.exit(main())
