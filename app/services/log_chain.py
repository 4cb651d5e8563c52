"""The SM3 chain of a platform's logs (§4.3): canonical form, hashing and verification.

canonical record = the stored §4.3 fields of the log plus ``platform_code`` and ``seq``, as
JSON with sorted keys, no spaces, UTF-8, null fields omitted, times in UTC as
``YYYY-MM-DDTHH:MM:SS.ffffffZ``. ``hash = SM3(prev_hash ‖ canonical)`` where ``prev_hash`` is
the previous link's lower-case hex (64 ``0`` for the first) taken as ASCII bytes.
See docs/log-chain.md.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from app.security.sm3 import sm3_hex

GENESIS_HASH = "0" * 64

#: the record fields that enter the canonical form, in no particular order (keys are sorted)
CHAIN_FIELDS = (
    "log_id",
    "category",
    "type",
    "event_time",
    "severity",
    "actor",
    "actor_type",
    "source_ip",
    "action",
    "object_type",
    "object_id",
    "outcome",
    "message",
    "asset_id",
    "raw",
    "origin_hash",
)


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def content_of(fields: dict[str, Any]) -> dict[str, Any]:
    """The record's own fields, normalised (no nulls, UTC times) — what "same content" means."""
    out: dict[str, Any] = {}
    for name in CHAIN_FIELDS:
        value = fields.get(name)
        if value is None:
            continue
        out[name] = _time(value) if isinstance(value, datetime) else value
    return out


def canonical_bytes(doc: dict[str, Any]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def content_sha256(fields: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(content_of(fields))).hexdigest()


def link_hash(prev_hash: str, platform_code: str, seq: int, fields: dict[str, Any]) -> str:
    doc = content_of(fields)
    doc["platform_code"] = platform_code
    doc["seq"] = seq
    return sm3_hex(prev_hash.encode("ascii") + canonical_bytes(doc))
