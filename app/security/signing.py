"""Signed requests (§3): the reference signer and the verifier's pure helpers.

Everything here is a pure function of its arguments (no database, no web framework), so the
same code signs in providers' clients, in ``supervision-hub sign`` and in the test vectors of
``docs/signing.md``, and verifies in the hub: the two sides cannot drift apart.

A signature covers seven fields, one per line (joined by ``\\n``, no trailing newline)::

    METHOD
    path-as-sent
    canonical-query
    app_key
    timestamp
    nonce
    content-digest

The verifier checks, in this order: headers present (2001), key (2002), timestamp window (2003),
content digest then signature (2005), nonce unused (2004) — the nonce is recorded only once the
signature is valid, so nobody can burn another key's nonces.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import time
from typing import Final
from urllib.parse import quote_from_bytes, unquote_to_bytes

from app.security.sm3 import SM3_DIGESTMOD, sm3_hex

__all__ = [
    "DEFAULT_SIGN_METHOD",
    "NONCE_PATTERN",
    "NONCE_TTL_S",
    "SIGN_METHODS",
    "TIMESTAMP_WINDOW_S",
    "canonical_query",
    "content_digest",
    "is_valid_nonce",
    "new_nonce",
    "parse_sign_method",
    "sign",
    "signed_headers",
    "string_to_sign",
    "timestamp_in_window",
    "verify_content_digest",
    "verify_signature",
]

SIGN_METHODS: Final = ("HMAC-SM3", "HMAC-SHA256")
DEFAULT_SIGN_METHOD: Final = "HMAC-SM3"
NONCE_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
"""Use with ``fullmatch`` (or :func:`is_valid_nonce`): ``match`` accepts a trailing newline."""
TIMESTAMP_WINDOW_S: Final = 300
"""``X-Timestamp`` is accepted within ± this many seconds of the hub's clock."""
NONCE_TTL_S: Final = 600
"""A nonce may not be reused by the same key within this many seconds."""

_NONCE_ALPHABET: Final = frozenset(string.ascii_letters + string.digits + "_-")
# ``$`` would also match before a trailing newline; ``\Z`` does not.
_TIMESTAMP_RE: Final = re.compile(r"[0-9]{1,16}\Z")


def _check_method(method: str) -> None:
    if method not in SIGN_METHODS:
        raise ValueError(f"unknown sign method {method!r}; expected one of {SIGN_METHODS}")


def parse_sign_method(header: str | None) -> str | None:
    """The sign method named by an ``X-Sign-Method`` header, or ``None`` when unsupported.

    The header is optional (absent or empty → ``HMAC-SM3``, the default) and compared without
    regard to case, since it is not part of the string to sign.
    """
    if header is None or not header.strip():
        return DEFAULT_SIGN_METHOD
    wanted = header.strip().upper()
    return wanted if wanted in SIGN_METHODS else None


def content_digest(body: bytes, method: str = DEFAULT_SIGN_METHOD) -> str:
    """Lower-case hex SM3 / SHA-256 of the body bytes as sent (gzip bodies stay compressed)."""
    _check_method(method)
    if method == "HMAC-SM3":
        return sm3_hex(body)
    return hashlib.sha256(body).hexdigest()


def verify_content_digest(body: bytes, method: str, header: str) -> bool:
    """Whether ``X-Content-Digest`` is the digest of ``body``; exact lower-case hex, as §3 says."""
    if method not in SIGN_METHODS:
        return False
    expected = content_digest(body, method).encode("ascii")
    return hmac.compare_digest(expected, header.encode("utf-8", "replace"))


def _rfc3986(raw: bytes) -> str:
    # ``quote_from_bytes`` with ``safe=""`` keeps exactly the RFC 3986 unreserved set
    # (A-Z a-z 0-9 - . _ ~) and writes upper-case hex for every other byte.
    return quote_from_bytes(raw, safe="")


def canonical_query(raw_query: str | bytes) -> str:
    """The canonical query of §3 item 3.

    ``raw_query`` is the query as sent, without the ``?`` (``str``, or the ``bytes`` of an ASGI
    ``scope["query_string"]``; a ``str`` is taken as its UTF-8 bytes). Decisions beyond §3:

    - empty pieces (``a=1&&b=2``, a leading or trailing ``&``) are skipped, so ``a=1&&b=2``
      canonicalises as ``a=1&b=2``; a piece ``=`` is kept (empty key, empty value);
    - ``k`` and ``k=`` are the same pair (``k=``);
    - decoding works on bytes: ``%XX`` becomes that byte even when the result is not valid
      UTF-8, and a ``%`` not followed by two hex digits stays a literal ``%`` (re-encoded
      ``%25``), so every input has exactly one canonical form and nothing raises;
    - pairs sort by (key, value), not by the joined ``k=v`` string (``tag=a`` sorts before
      ``tag-x=1`` although ``-`` < ``=``).
    """
    raw = raw_query.encode("utf-8") if isinstance(raw_query, str) else bytes(raw_query)
    pairs: list[tuple[str, str]] = []
    for piece in raw.split(b"&"):
        if not piece:
            continue
        key, _, value = piece.partition(b"=")
        pairs.append((_rfc3986(unquote_to_bytes(key)), _rfc3986(unquote_to_bytes(value))))
    pairs.sort()  # the encoded strings are ASCII, so code-point order is byte order
    return "&".join(f"{k}={v}" for k, v in pairs)


def string_to_sign(
    method: str,
    path: str,
    raw_query: str | bytes,
    app_key: str,
    timestamp: str | int,
    nonce: str,
    digest: str,
) -> str:
    """The seven fields of §3 joined by ``\\n`` (no trailing newline).

    ``path`` is used exactly as sent in the request line (still percent-encoded, no query);
    ``raw_query`` is canonicalised here; ``timestamp`` is the header text as sent.
    """
    return "\n".join(
        (
            method.upper(),
            path,
            canonical_query(raw_query),
            app_key,
            str(timestamp),
            nonce,
            digest,
        )
    )


def sign(secret: str, string_to_sign: str, method: str = DEFAULT_SIGN_METHOD) -> str:
    """Standard Base64 (with padding) of HMAC(UTF-8 secret, UTF-8 string to sign)."""
    _check_method(method)
    digestmod = SM3_DIGESTMOD if method == "HMAC-SM3" else "sha256"
    mac = hmac.new(secret.encode("utf-8"), string_to_sign.encode("utf-8"), digestmod)
    return base64.b64encode(mac.digest()).decode("ascii")


def verify_signature(secret: str, string_to_sign: str, signature: str, method: str) -> bool:
    """Whether ``signature`` is right, in constant time; never raises on what a client sent."""
    if method not in SIGN_METHODS:
        return False
    expected = sign(secret, string_to_sign, method).encode("ascii")
    return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))


def timestamp_in_window(header: str, now_ms: int | None = None, window_s: int = TIMESTAMP_WINDOW_S) -> bool:
    """Whether ``X-Timestamp`` (unix ms, ASCII digits only) is within ± ``window_s`` of now.

    Anything that is not plain digits (sign, spaces, decimals, seconds in exponent form) is
    outside the window; the bounds are inclusive.
    """
    if not _TIMESTAMP_RE.match(header):
        return False
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    return abs(int(header) - now) <= window_s * 1000


def is_valid_nonce(nonce: str) -> bool:
    """Whether ``nonce`` is 16-64 characters of ``[A-Za-z0-9_-]`` (a trailing newline is not)."""
    return NONCE_PATTERN.fullmatch(nonce) is not None


def new_nonce() -> str:
    """A fresh random nonce of 32 characters from ``[A-Za-z0-9_-]``."""
    while True:
        # token_urlsafe is already in the allowed alphabet; filtering guards that assumption.
        nonce = "".join(c for c in secrets.token_urlsafe(24) if c in _NONCE_ALPHABET)[:64]
        if is_valid_nonce(nonce):
            return nonce


def signed_headers(
    *,
    app_key: str,
    secret: str,
    method: str,
    path: str,
    query: str = "",
    body: bytes = b"",
    sign_method: str = DEFAULT_SIGN_METHOD,
    timestamp_ms: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The reference signer: the six ``X-*`` headers for one request.

    ``path`` is what goes in the request line, percent-encoded as it will be sent; it may carry
    ``?query`` when ``query`` is not given. ``query`` must be the raw query exactly as sent
    (any form with the same canonical query verifies). ``body`` is the bytes as sent — after
    gzip when the request has ``Content-Encoding: gzip``. Fresh timestamp and nonce by default.
    """
    _check_method(sign_method)
    if "?" in path:
        if query:
            raise ValueError("the query is given both in path and in query")
        path, _, query = path.partition("?")
    if timestamp_ms is None:
        timestamp_ms = time.time_ns() // 1_000_000
    if timestamp_ms < 0:
        raise ValueError("timestamp_ms must not be negative")
    if nonce is None:
        nonce = new_nonce()
    elif not is_valid_nonce(nonce):
        raise ValueError("nonce must be 16-64 characters of [A-Za-z0-9_-]")
    digest = content_digest(body, sign_method)
    timestamp = str(timestamp_ms)
    to_sign = string_to_sign(method, path, query, app_key, timestamp, nonce, digest)
    return {
        "X-App-Key": app_key,
        "X-Timestamp": timestamp,
        "X-Nonce": nonce,
        "X-Sign-Method": sign_method,
        "X-Content-Digest": digest,
        "X-Signature": sign(secret, to_sign, sign_method),
    }
