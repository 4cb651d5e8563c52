"""Field types of the wire format (§2): strict JSON types, RFC 3339 times with offset, codes."""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict, StringConstraints

_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_rfc3339(value: Any) -> datetime:
    """An RFC 3339 time **with** offset, returned in UTC; anything else is refused."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("时间缺少时区偏移 (time without offset)")
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("时间超出范围 (time out of range)") from None
    if not isinstance(value, str):
        raise ValueError("应为 RFC 3339 时间字符串 (expected an RFC 3339 time string)")
    return _parse_rfc3339_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_rfc3339_text(value: str) -> datetime:
    """The text form, cached: a batch carries the same few collection times thousands of times.

    A refused text raises every time (exceptions are not cached); datetimes are immutable.
    """
    match = _RFC3339.match(value)
    if match is None:
        if re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", value):
            raise ValueError("时间缺少时区偏移，应如 2026-11-21T08:00:00+08:00 (time without offset)")
        raise ValueError("不是 RFC 3339 时间，应如 2026-11-21T08:00:00+08:00 (not an RFC 3339 time)")
    fraction = match.group(7) or ""
    text = value[: match.start(7)] if fraction else value[: match.start(8)]
    text = text.replace("t", "T").replace(" ", "T")
    micro = (fraction[1:] + "000000")[:6] if fraction else ""
    offset = match.group(8)
    offset = "+00:00" if offset in {"Z", "z"} else offset
    try:
        parsed = datetime.fromisoformat(f"{text}{'.' + micro if micro else ''}{offset}")
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"时间无效 (invalid time: {exc})") from None


def parse_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError("应为日期 YYYY-MM-DD (expected a date YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("日期无效 (invalid date)") from None


def _uscc_ok(value: str) -> str:
    if not uscc_is_valid(value):
        raise ValueError("统一社会信用代码校验失败 (unified social credit code check failed)")
    return value


_USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc_is_valid(code: str) -> bool:
    """GB 32100-2015: 18 characters, the last a mod-31 check character."""
    if len(code) != 18 or any(c not in _USCC_ALPHABET for c in code):
        return False
    total = sum(_USCC_ALPHABET.index(c) * w for c, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    check = (31 - total % 31) % 31
    return _USCC_ALPHABET[check] == code[17]


def normalise_region(code: str) -> str:
    """GB/T 2260 code without trailing ``00`` pairs: ``440000`` → ``44``, ``440100`` → ``4401``."""
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


Timestamp = Annotated[datetime, BeforeValidator(parse_rfc3339)]
Day = Annotated[date, BeforeValidator(parse_date)]
StrictStr = Annotated[str, Strict()]
Str = Annotated[str, Strict(), StringConstraints(max_length=256)]
LongText = Annotated[str, Strict(), StringConstraints(max_length=65536)]
RecordId = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=128)]
PlatformCode = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")]
BatchId = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
RegionCode = Annotated[str, Strict(), StringConstraints(pattern=r"^[1-9]\d{5}$")]
RegionPrefix = Annotated[str, Strict(), StringConstraints(pattern=r"^[1-9]\d{1,5}$")]
Uscc = Annotated[str, Strict(), StringConstraints(min_length=18, max_length=18), AfterValidator(_uscc_ok)]
Int = Annotated[int, Strict(), Field(ge=-(2**53), le=2**53)]
NonNegInt = Annotated[int, Strict(), Field(ge=0, le=2**53)]
#: counts kept in 32-bit columns
Count = Annotated[int, Strict(), Field(ge=0, le=2**31 - 1)]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
NonNegFloat = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0)]
Bool = Annotated[bool, Strict()]
