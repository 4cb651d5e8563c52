"""Opaque keyset cursors (§2.2): they carry the last key and a digest of the filters, signed."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

from app.errors import BadParameter
from app.security.keys import ServerKey


def _filters_digest(filters: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(filters, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:16]


def encode_cursor(key: ServerKey, resource: str, filters: dict[str, Any], last: list[Any]) -> str:
    payload = orjson.dumps({"r": resource, "f": _filters_digest(filters), "k": last}, default=str)
    mac = hmac.new(key.derive("cursor"), payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(payload + mac).decode().rstrip("=")


def decode_cursor(key: ServerKey, resource: str, filters: dict[str, Any], cursor: str) -> list[Any]:
    """The last key of the previous page; 1001 when forged or used with other filters."""
    bad = BadParameter("游标无效或与查询条件不符 (cursor is invalid or was made with other filters)")
    try:
        blob = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (ValueError, TypeError):
        raise bad from None
    payload, mac = blob[:-12], blob[-12:]
    expected = hmac.new(key.derive("cursor"), payload, hashlib.sha256).digest()[:12]
    if len(blob) < 13 or not hmac.compare_digest(mac, expected):
        raise bad
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise bad from None
    if doc.get("r") != resource or doc.get("f") != _filters_digest(filters):
        raise bad
    last = doc.get("k")
    if not isinstance(last, list):
        raise bad
    return last
