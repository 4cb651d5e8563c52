"""SM3 (GB/T 32905-2016) digests and HMAC-SM3 for signed requests (§3).

OpenSSL provides SM3 in most builds and is far faster, so it is used when present; some builds
(FIPS, trimmed distributions) lack it, and the hub must still verify ``HMAC-SM3`` there, hence
the pure-Python implementation below. Both give the same bytes: the tests check the standard
vectors against each.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = [
    "BLOCK_SIZE",
    "DIGEST_SIZE",
    "OPENSSL_SM3",
    "SM3_DIGESTMOD",
    "PureSM3",
    "Sm3Hash",
    "hmac_sm3",
    "new_sm3",
    "sm3",
    "sm3_hex",
]

DIGEST_SIZE = 32
BLOCK_SIZE = 64


class Sm3Hash(Protocol):
    """What callers may rely on from :func:`new_sm3`: the hashlib object interface."""

    @property
    def name(self) -> str: ...
    @property
    def digest_size(self) -> int: ...
    @property
    def block_size(self) -> int: ...
    def update(self, data: ReadableBuffer, /) -> None: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...
    def copy(self) -> Self: ...


# --- pure-Python SM3 -------------------------------------------------------------------------

_MASK = 0xFFFFFFFF
_IV = (
    0x7380166F, 0x4914B2B9, 0x172442D7, 0xDA8A0600,
    0xA96F30BC, 0x163138AA, 0xE38DEE4D, 0xB0FB0E4E,
)  # fmt: skip


def _rotl(x: int, n: int) -> int:
    n %= 32
    return ((x << n) | (x >> (32 - n))) & _MASK


# T_j <<< (j mod 32) is the same for every block: computed once.
_T_ROT = tuple(_rotl(0x79CC4519 if j < 16 else 0x7A879D8A, j) for j in range(64))


def _compress(v: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    """One SM3 compression step CF(V, B) over a 64-byte block (GB/T 32905 §5.3)."""
    w = list(struct.unpack(">16I", block))
    for j in range(16, 68):
        x = w[j - 16] ^ w[j - 9] ^ _rotl(w[j - 3], 15)
        p1 = x ^ _rotl(x, 15) ^ _rotl(x, 23)
        w.append(p1 ^ _rotl(w[j - 13], 7) ^ w[j - 6])
    a, b, c, d, e, f, g, h = v
    for j in range(64):
        a12 = _rotl(a, 12)
        ss1 = _rotl((a12 + e + _T_ROT[j]) & _MASK, 7)
        ss2 = ss1 ^ a12
        if j < 16:
            ff = a ^ b ^ c
            gg = e ^ f ^ g
        else:
            ff = (a & b) | (a & c) | (b & c)
            gg = (e & f) | (~e & g)
        tt1 = (ff + d + ss2 + (w[j] ^ w[j + 4])) & _MASK
        tt2 = (gg + h + ss1 + w[j]) & _MASK
        d, c, b, a = c, _rotl(b, 9), a, tt1
        h, g, f = g, _rotl(f, 19), e
        e = tt2 ^ _rotl(tt2, 9) ^ _rotl(tt2, 17)
    return tuple(x ^ y for x, y in zip(v, (a, b, c, d, e, f, g, h), strict=True))


class PureSM3:
    """A hashlib-like SM3 object, so streams and :mod:`hmac` work without OpenSSL's SM3."""

    name = "sm3"
    digest_size = DIGEST_SIZE
    block_size = BLOCK_SIZE

    def __init__(self, data: ReadableBuffer = b"") -> None:
        self._v: tuple[int, ...] = _IV
        self._buf = b""
        self._length = 0  # bytes hashed so far, for the padding
        self.update(data)

    def update(self, data: ReadableBuffer, /) -> None:
        chunk = bytes(data)
        self._length += len(chunk)
        buf = self._buf + chunk
        full = len(buf) - len(buf) % BLOCK_SIZE
        v = self._v
        for i in range(0, full, BLOCK_SIZE):
            v = _compress(v, buf[i : i + BLOCK_SIZE])
        self._v = v
        self._buf = buf[full:]

    def digest(self) -> bytes:
        bit_len = (self._length * 8) & 0xFFFFFFFFFFFFFFFF
        pad_len = (BLOCK_SIZE - 9 - len(self._buf)) % BLOCK_SIZE
        tail = self._buf + b"\x80" + b"\x00" * pad_len + struct.pack(">Q", bit_len)
        v = self._v
        for i in range(0, len(tail), BLOCK_SIZE):
            v = _compress(v, tail[i : i + BLOCK_SIZE])
        return struct.pack(">8I", *v)

    def hexdigest(self) -> str:
        return self.digest().hex()

    def copy(self) -> Self:
        other = type(self).__new__(type(self))
        other._v, other._buf, other._length = self._v, self._buf, self._length
        return other


def _sm3_pure(data: bytes) -> bytes:
    """SM3 of ``data`` without OpenSSL."""
    return PureSM3(data).digest()


# --- selection, once at import -----------------------------------------------------------------


def _openssl_has_sm3() -> bool:
    # Being listed is not enough on every build (a provider may be missing at run time), so
    # one known vector is hashed as well.
    if "sm3" not in hashlib.algorithms_available:
        return False
    try:
        got = hashlib.new("sm3", b"abc").hexdigest()
    except ValueError:
        return False
    return got == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


OPENSSL_SM3: bool = _openssl_has_sm3()
"""Whether OpenSSL's SM3 is used (else :class:`PureSM3`)."""


def new_sm3(data: bytes = b"") -> Sm3Hash:
    """A fresh SM3 hash object (OpenSSL's when available) for hashing streams."""
    if OPENSSL_SM3:
        return hashlib.new("sm3", data)
    return PureSM3(data)


def sm3(data: bytes) -> bytes:
    """The 32-byte SM3 digest of ``data``."""
    if OPENSSL_SM3:
        return hashlib.new("sm3", data).digest()
    return _sm3_pure(data)


def sm3_hex(data: bytes) -> str:
    """The SM3 digest of ``data`` as 64 lower-case hex characters."""
    return sm3(data).hex()


# ``hmac`` accepts a name (OpenSSL's fast path) or a constructor taking optional data.
SM3_DIGESTMOD: str | Callable[[], Sm3Hash] = "sm3" if OPENSSL_SM3 else PureSM3
"""The ``digestmod`` to pass to :func:`hmac.new` for SM3."""


def hmac_sm3(key: bytes, msg: bytes) -> bytes:
    """HMAC-SM3 (RFC 2104 with SM3: block size 64, digest size 32)."""
    return hmac.new(key, msg, SM3_DIGESTMOD).digest()
