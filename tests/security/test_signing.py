"""Signed requests (§3): SM3, the canonical query, the string to sign and the published vectors.

Pure functions only: no database, no application, no conftest fixtures.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from starlette.datastructures import QueryParams

from app.api.guards import literal_plus
from app.security import sm3 as sm3_module
from app.security.signing import (
    NONCE_PATTERN,
    NONCE_TTL_S,
    SIGN_METHODS,
    TIMESTAMP_WINDOW_S,
    canonical_query,
    content_digest,
    is_valid_nonce,
    new_nonce,
    parse_sign_method,
    sign,
    signed_headers,
    string_to_sign,
    timestamp_in_window,
    verify_content_digest,
    verify_signature,
)
from app.security.sm3 import PureSM3, _sm3_pure, hmac_sm3, new_sm3, sm3, sm3_hex

VECTORS_PATH = Path(__file__).resolve().parents[2] / "docs" / "signing-vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))

# GB/T 32905-2016, appendix A.
SM3_ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
SM3_ABCD16 = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
SM3_EMPTY = "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"

needs_openssl_sm3 = pytest.mark.skipif(not sm3_module.OPENSSL_SM3, reason="this OpenSSL build has no SM3")


# --- SM3 -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [(b"abc", SM3_ABC), (b"abcd" * 16, SM3_ABCD16), (b"", SM3_EMPTY)],
)
def test_sm3_standard_vectors_pure(message: bytes, expected: str) -> None:
    assert _sm3_pure(message).hex() == expected
    assert PureSM3(message).hexdigest() == expected


@needs_openssl_sm3
@pytest.mark.parametrize(
    ("message", "expected"),
    [(b"abc", SM3_ABC), (b"abcd" * 16, SM3_ABCD16), (b"", SM3_EMPTY)],
)
def test_sm3_standard_vectors_openssl(message: bytes, expected: str) -> None:
    assert hashlib.new("sm3", message).hexdigest() == expected
    assert sm3_hex(message) == expected
    assert sm3(message) == bytes.fromhex(expected)


@needs_openssl_sm3
@pytest.mark.parametrize("length", [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000])
def test_pure_sm3_matches_openssl_around_block_boundaries(length: int) -> None:
    data = bytes(range(256)) * 4
    assert _sm3_pure(data[:length]) == hashlib.new("sm3", data[:length]).digest()


def test_pure_sm3_streams_and_copies() -> None:
    data = b"supervision-hub " * 20
    h = PureSM3()
    for i in range(0, len(data), 7):
        h.update(data[i : i + 7])
    fork = h.copy()
    fork.update(b"more")
    assert h.digest() == _sm3_pure(data)
    assert fork.digest() == _sm3_pure(data + b"more")
    assert h.digest() == _sm3_pure(data)  # digest() does not consume the state


def test_new_sm3_is_hashlib_like() -> None:
    h = new_sm3()
    h.update(b"ab")
    c = h.copy()
    c.update(b"c")
    assert c.hexdigest() == SM3_ABC
    assert (h.name, h.digest_size, h.block_size) == ("sm3", 32, 64)


@needs_openssl_sm3
@pytest.mark.parametrize("key_length", [0, 16, 64, 65, 200])
def test_hmac_sm3_pure_matches_openssl(key_length: int) -> None:
    key = bytes(range(key_length % 256)) * (key_length // 256 + 1)
    key = key[:key_length]
    msg = b"the string to sign"
    assert hmac.new(key, msg, PureSM3).digest() == hmac.new(key, msg, "sm3").digest()
    assert hmac_sm3(key, msg) == hmac.new(key, msg, "sm3").digest()


def _load_sm3_without_openssl(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A private copy of the sm3 module, imported as if OpenSSL lacked SM3."""
    monkeypatch.setattr(hashlib, "algorithms_available", hashlib.algorithms_available - {"sm3"})
    spec = importlib.util.spec_from_file_location("_sm3_no_openssl", sm3_module.__file__)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "_sm3_no_openssl", module)
    spec.loader.exec_module(module)
    return module


def test_fallback_is_used_without_openssl_sm3(monkeypatch: pytest.MonkeyPatch) -> None:
    fallback = _load_sm3_without_openssl(monkeypatch)
    assert fallback.OPENSSL_SM3 is False
    assert fallback.sm3_hex(b"abc") == SM3_ABC
    assert isinstance(fallback.new_sm3(), fallback.PureSM3)
    assert fallback.hmac_sm3(b"key", b"msg") == hmac_sm3(b"key", b"msg")


# --- the published vectors -----------------------------------------------------------------

EDGE_CASES = {
    "hmac-sm3",
    "hmac-sha256",
    "repeated-keys",
    "empty-values",
    "literal-plus",
    "non-ascii",
    "encoded-path",
    "empty-body",
    "gzip-body",
}


def test_vectors_cover_every_edge_case() -> None:
    assert {v["name"] for v in VECTORS} >= EDGE_CASES
    assert {v["sign_method"] for v in VECTORS} == set(SIGN_METHODS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    body = bytes.fromhex(vector["body_hex"])
    expected = vector["expected"]
    method = vector["sign_method"]

    assert canonical_query(vector["query"]) == expected["canonical_query"]
    assert content_digest(body, method) == expected["content_digest"]
    to_sign = string_to_sign(
        vector["method"],
        vector["path"],
        vector["query"],
        vector["app_key"],
        vector["timestamp"],
        vector["nonce"],
        expected["content_digest"],
    )
    assert to_sign == expected["string_to_sign"]
    assert sign(vector["secret"], to_sign, method) == expected["signature"]
    assert verify_signature(vector["secret"], to_sign, expected["signature"], method)

    headers = signed_headers(
        app_key=vector["app_key"],
        secret=vector["secret"],
        method=vector["method"],
        path=vector["path"],
        query=vector["query"],
        body=body,
        sign_method=method,
        timestamp_ms=int(vector["timestamp"]),
        nonce=vector["nonce"],
    )
    assert headers == {
        "X-App-Key": vector["app_key"],
        "X-Timestamp": vector["timestamp"],
        "X-Nonce": vector["nonce"],
        "X-Sign-Method": method,
        "X-Content-Digest": expected["content_digest"],
        "X-Signature": expected["signature"],
    }


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_independently(vector: dict[str, Any]) -> None:
    """Digest and HMAC recomputed with hashlib / hmac directly (and the pure SM3)."""
    body = bytes.fromhex(vector["body_hex"])
    expected = vector["expected"]
    message = expected["string_to_sign"].encode("utf-8")
    key = vector["secret"].encode("utf-8")
    if vector["sign_method"] == "HMAC-SHA256":
        digest = hashlib.sha256(body).hexdigest()
        mac = hmac.new(key, message, hashlib.sha256).digest()
    else:
        digest = _sm3_pure(body).hex()
        mac = hmac.new(key, message, PureSM3).digest()
    assert digest == expected["content_digest"]
    assert base64.b64encode(mac).decode() == expected["signature"]
    assert len(expected["string_to_sign"].split("\n")) == 7


def test_gzip_vector_digest_is_over_compressed_bytes() -> None:
    vector = next(v for v in VECTORS if v["name"] == "gzip-body")
    sent = bytes.fromhex(vector["body_hex"])
    assert gzip.decompress(sent).decode() == vector["body_decompressed_text"]
    assert vector["expected"]["content_digest"] == content_digest(sent, "HMAC-SM3")
    assert vector["expected"]["content_digest"] != content_digest(gzip.decompress(sent))


# --- canonical query -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("", ""),
        ("b=2&a=1", "a=1&b=2"),
        # repeated keys are kept, sorted by value
        ("tag=b&tag=a&tag=b", "tag=a&tag=b&tag=b"),
        # (key, value) order, not joined-text order: "." and "-" sort before "="
        ("k.x=1&k=2", "k=2&k.x=1"),
        ("tag-x=1&tag=z", "tag=z&tag-x=1"),
        # empty values, keys without "=", empty pieces
        ("flag&empty=&limit=10", "empty=&flag=&limit=10"),
        ("a=1&&b=2&", "a=1&b=2"),
        ("&", ""),
        ("=", "="),
        ("=v", "=v"),
        ("a=b=c", "a=b%3Dc"),
        # "+" is a literal plus; the space is %20
        ("q=a+b", "q=a%2Bb"),
        ("q=a%2Bb", "q=a%2Bb"),
        ("q=a%20b", "q=a%20b"),
        ("q+x=1", "q%2Bx=1"),
        # unreserved characters decoded, everything else upper-case %XX
        ("n=%7e%41-._~", "n=~A-._~"),
        ("n=!*'();:@$,/?", "n=%21%2A%27%28%29%3B%3A%40%24%2C%2F%3F"),
        ("n=%2f%3a", "n=%2F%3A"),
        # non-ASCII: raw UTF-8 and percent-encoded agree; lower-case hex is normalised
        ("city=北京", "city=%E5%8C%97%E4%BA%AC"),
        ("city=%e5%8c%97%e4%ba%ac", "city=%E5%8C%97%E4%BA%AC"),
        ("%E5%9F%8E%E5%B8%82=1", "%E5%9F%8E%E5%B8%82=1"),
        # invalid UTF-8 and malformed escapes still have exactly one canonical form
        ("x=%FF%fe", "x=%FF%FE"),
        ("x=%zz&y=%4&z=%", "x=%25zz&y=%254&z=%25"),
        ("x=%25zz", "x=%25zz"),
    ],
)
def test_canonical_query_edge_cases(raw: str, canonical: str) -> None:
    assert canonical_query(raw) == canonical


def test_canonical_query_accepts_asgi_bytes() -> None:
    assert canonical_query(b"city=\xe5\x8c\x97&b=%ff") == "b=%FF&city=%E5%8C%97"
    assert canonical_query("city=北京".encode()) == canonical_query("city=北京")


# Tokens rather than characters, so escapes (valid, invalid, non-ASCII) appear often.
_QUERY_TOKENS = [*"aZ09-._~+%=/:*! é北京", "%20", "%2B", "%2b", "%E4%BA%AC", "%zz", "%ff"]
_query_text = st.lists(st.sampled_from(_QUERY_TOKENS), max_size=12).map("".join)


@settings(database=None)
@given(st.lists(_query_text.filter(lambda piece: "&" not in piece), max_size=8), st.data())
def test_canonical_query_ignores_pair_order(pieces: list[str], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(pieces))
    assert canonical_query("&".join(shuffled)) == canonical_query("&".join(pieces))


@settings(database=None)
@given(st.lists(st.tuples(_query_text, _query_text), max_size=6))
def test_canonical_query_is_idempotent_and_ascii(pairs: list[tuple[str, str]]) -> None:
    raw = "&".join(f"{k}={v}" for k, v in pairs)
    once = canonical_query(raw)
    assert canonical_query(once) == once
    assert once.isascii()
    assert " " not in once
    assert "+" not in once


@settings(database=None)
@given(st.lists(st.tuples(_query_text, _query_text), min_size=1, max_size=6))
def test_the_hub_reads_the_query_as_the_canonical_query_decodes_it(pairs: list[tuple[str, str]]) -> None:
    """The hub rewrites ``+`` to ``%2B`` before routing (app/api/guards.py): the signature does not
    change, and the framework's parser then reads every key and value exactly as the canonicaliser
    decodes them — ``+`` a literal plus, never a space (issue 13 item 10)."""
    raw = "&".join(f"{k}={v}" for k, v in pairs).encode()
    rewritten = literal_plus(raw)
    assert canonical_query(rewritten) == canonical_query(raw)
    framework = QueryParams(rewritten).multi_items()
    decoded = [
        tuple(unquote_to_bytes(part).decode("utf-8", "replace") for part in piece.partition(b"=")[::2])
        for piece in raw.split(b"&")
        if piece
    ]
    assert framework == decoded


# --- string to sign and signatures ----------------------------------------------------------

_BASE_FIELDS = (
    "POST",
    "/api/v1/reports/assets",
    "a=1",
    "ak_test0001",
    "1763683200000",
    "nonce-0123456789abcdef",
    "0" * 64,
)
_field_text = st.text(
    alphabet=st.characters(exclude_characters="\n", exclude_categories=["Cs"]),
    max_size=24,
)


def test_string_to_sign_layout() -> None:
    text = string_to_sign("post", "/p%2Fq", "b=2&a=1", "ak", 1763683200000, "n" * 16, "d")
    assert text == "POST\n/p%2Fq\na=1&b=2\nak\n1763683200000\nnnnnnnnnnnnnnnnn\nd"
    assert not text.endswith("\n")


@settings(database=None)
@given(st.integers(min_value=0, max_value=6), _field_text, st.sampled_from(SIGN_METHODS))
def test_sign_changes_when_any_field_changes(index: int, new_value: str, method: str) -> None:
    fields = list(_BASE_FIELDS)
    before = string_to_sign(*fields)
    fields[index] = new_value
    after = string_to_sign(*fields)
    # Upper-casing the method and canonicalising the query may map a new value to the same
    # field; only a change of the string to sign must change the signature.
    assume(after != before)
    secret = "s3cr3t-Example-Only"
    assert sign(secret, after, method) != sign(secret, before, method)
    assert not verify_signature(secret, after, sign(secret, before, method), method)


def test_sign_depends_on_secret_and_method() -> None:
    text = string_to_sign(*_BASE_FIELDS)
    assert sign("secret-a", text) != sign("secret-b", text)
    assert sign("s", text, "HMAC-SM3") != sign("s", text, "HMAC-SHA256")
    assert sign("s", text) == sign("s", text, "HMAC-SM3")


def test_signature_is_padded_standard_base64() -> None:
    signature = sign("s3cr3t-Example-Only", string_to_sign(*_BASE_FIELDS))
    assert len(signature) == 44
    assert signature.endswith("=")
    assert base64.b64decode(signature, validate=True)


def test_sign_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match="sign method"):
        sign("s", "x", "HMAC-MD5")
    with pytest.raises(ValueError, match="sign method"):
        content_digest(b"", "SM3")


@pytest.mark.parametrize(
    "bad",
    ["", "not base64", "Q2/J7qHKms8JKtkObj7RNX4da6gP5+pxVPFjqpwWTAg", "签名", "\udcff"],
)
def test_verify_signature_never_raises_on_client_input(bad: str) -> None:
    assert not verify_signature("s", "x", bad, "HMAC-SM3")


def test_verify_signature_unknown_method_is_false() -> None:
    assert not verify_signature("s", "x", sign("s", "x"), "HMAC-MD5")


def test_verify_content_digest() -> None:
    digest = content_digest(b"{}", "HMAC-SHA256")
    assert verify_content_digest(b"{}", "HMAC-SHA256", digest)
    assert not verify_content_digest(b"{}", "HMAC-SHA256", digest.upper())
    assert not verify_content_digest(b"{ }", "HMAC-SHA256", digest)
    assert not verify_content_digest(b"{}", "HMAC-SM3", digest)
    assert not verify_content_digest(b"{}", "nope", digest)
    assert content_digest(b"") == SM3_EMPTY


# --- headers helpers ------------------------------------------------------------------------


def test_constants() -> None:
    assert SIGN_METHODS == ("HMAC-SM3", "HMAC-SHA256")
    assert (TIMESTAMP_WINDOW_S, NONCE_TTL_S) == (300, 600)
    assert NONCE_PATTERN.pattern == "^[A-Za-z0-9_-]{16,64}$"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "HMAC-SM3"),
        ("", "HMAC-SM3"),
        ("HMAC-SM3", "HMAC-SM3"),
        ("hmac-sha256", "HMAC-SHA256"),
        ("HMAC-MD5", None),
        ("SM3", None),
    ],
)
def test_parse_sign_method(header: str | None, expected: str | None) -> None:
    assert parse_sign_method(header) == expected


@pytest.mark.parametrize(
    ("nonce", "valid"),
    [
        ("a" * 16, True),
        ("A-z_0" * 12 + "abcd", True),
        ("a" * 15, False),
        ("a" * 65, False),
        ("a" * 16 + "\n", False),
        ("a" * 15 + "=", False),
        ("a" * 15 + "é", False),
    ],
)
def test_nonce_validation(nonce: str, valid: bool) -> None:
    assert is_valid_nonce(nonce) is valid


def test_new_nonce_is_valid_and_fresh() -> None:
    nonces = {new_nonce() for _ in range(50)}
    assert len(nonces) == 50
    assert all(is_valid_nonce(n) for n in nonces)


@pytest.mark.parametrize(
    ("header", "inside"),
    [
        ("1763683200000", True),
        ("1763683500000", True),  # +300 s, inclusive
        ("1763682900000", True),  # -300 s, inclusive
        ("1763683500001", False),
        ("1763682899999", False),
        ("1763683200", False),  # seconds, not milliseconds
        ("-1763683200000", False),
        ("1763683200000\n", False),
        (" 1763683200000", False),
        ("1.7636832e12", False),
        ("١٧٦٣٦٨٣٢٠٠٠٠٠", False),  # non-ASCII digits
        ("", False),
    ],
)
def test_timestamp_window(header: str, inside: bool) -> None:
    assert timestamp_in_window(header, now_ms=1763683200000) is inside


def test_signed_headers_defaults_and_path_with_query() -> None:
    headers = signed_headers(app_key="ak_test0001", secret="s", method="get", path="/api/v1/assets?b=2&a=1")
    assert set(headers) == {
        "X-App-Key",
        "X-Timestamp",
        "X-Nonce",
        "X-Sign-Method",
        "X-Content-Digest",
        "X-Signature",
    }
    assert headers["X-Sign-Method"] == "HMAC-SM3"
    assert headers["X-Content-Digest"] == SM3_EMPTY
    assert is_valid_nonce(headers["X-Nonce"])
    assert timestamp_in_window(headers["X-Timestamp"])
    expected = string_to_sign(
        "GET",
        "/api/v1/assets",
        "a=1&b=2",
        "ak_test0001",
        headers["X-Timestamp"],
        headers["X-Nonce"],
        SM3_EMPTY,
    )
    assert verify_signature("s", expected, headers["X-Signature"], "HMAC-SM3")


def test_signed_headers_rejects_bad_input() -> None:
    common: dict[str, Any] = {"app_key": "ak", "secret": "s", "method": "GET"}
    with pytest.raises(ValueError, match="query"):
        signed_headers(**common, path="/a?x=1", query="y=2")
    with pytest.raises(ValueError, match="nonce"):
        signed_headers(**common, path="/a", nonce="short")
    with pytest.raises(ValueError, match="sign method"):
        signed_headers(**common, path="/a", sign_method="HMAC-MD5")
    with pytest.raises(ValueError, match="timestamp"):
        signed_headers(**common, path="/a", timestamp_ms=-1)


def test_signing_md_shows_the_same_vectors() -> None:
    """docs/signing.md is generated from the JSON; a hand edit of either shows up here."""
    text = (VECTORS_PATH.parent / "signing.md").read_text(encoding="utf-8")
    for vector in VECTORS:
        expected = vector["expected"]
        assert f"`{expected['signature']}`" in text, vector["name"]
        assert f"`{expected['content_digest']}`" in text, vector["name"]
        if expected["canonical_query"]:
            assert f"`{expected['canonical_query']}`" in text, vector["name"]
        shown = "\\n\n".join(expected["string_to_sign"].split("\n"))
        assert f"```\n{shown}\n```" in text, vector["name"]
