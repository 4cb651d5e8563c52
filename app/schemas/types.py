"""Field types of the wire format (§2): strict JSON types, RFC 3339 times with offset, codes."""

from __future__ import annotations

import functools
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, Strict, StringConstraints

_RFC3339 = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


#: §14: times outside years 1970–2100 are refused (400 ``1001`` in a query, 422 ``1002`` in a body)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2101, 1, 1, tzinfo=UTC)
_OUT_OF_RANGE = "时间应在 1970 年至 2100 年之间 (time outside the years 1970–2100)"


def parse_rfc3339(value: Any) -> datetime:
    """An RFC 3339 time **with** offset within 1970–2100, returned in UTC; anything else is refused.

    The one parser of every time the hub is given (bodies, records and query parameters), so the
    range check here keeps day arithmetic and the database clear of year 1 and year 9999.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("时间缺少时区偏移 (time without offset)")
        try:
            parsed = value.astimezone(UTC)
        except OverflowError:
            raise ValueError(_OUT_OF_RANGE) from None
    elif isinstance(value, str):
        parsed = _parse_rfc3339_text(value)
    else:
        raise ValueError("应为 RFC 3339 时间字符串 (expected an RFC 3339 time string)")
    if not EARLIEST <= parsed < LATEST:
        raise ValueError(_OUT_OF_RANGE)
    return parsed


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
    except ValueError as exc:
        raise ValueError(f"时间无效 (invalid time: {exc})") from None
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset
        raise ValueError(_OUT_OF_RANGE) from None


def parse_date(value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE.match(value):
        raise ValueError("应为日期 YYYY-MM-DD (expected a date YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("日期无效 (invalid date)") from None


_REGION_SCOPE = re.compile(r"^[1-9]\d(?:\d\d){0,2}$")


def _region_scope(value: str) -> str:
    """A region scope (§1, §14): 2, 4 or 6 digits; 3 or 5 would match no level of GB/T 2260."""
    if not _REGION_SCOPE.fullmatch(value):
        raise ValueError(f"行政区划代码应为 2、4 或 6 位数字，收到 {value!r} (a region is 2, 4 or 6 digits)")
    return value


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


_C0 = re.compile(r"[\x00-\x1f]")
_C0_BUT_LAYOUT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _control_problem(value: str, pattern: re.Pattern[str], allowed: str) -> str:
    if pattern.search(value) is None:
        return value
    found = sorted({f"U+{ord(c):04X}" for c in pattern.findall(value)})
    raise ValueError(f"不能包含控制字符{allowed} {', '.join(found)} (control characters not allowed)")


def no_control(value: str) -> str:
    """Names and codes (§14): no C0 control character at all (they break spreadsheets and logs)."""
    return _control_problem(value, _C0, "")


def text_control(value: str) -> str:
    """Free text (§14: messages, descriptions): tab, CR and LF are layout; other C0 characters are not."""
    return _control_problem(value, _C0_BUT_LAYOUT, "（制表符、回车、换行除外）")


#: validators to put on a ``str`` field of an administration body: a name or code, or free text
#: (their messages reach the caller as written)
NameCheck = AfterValidator(no_control)
TextCheck = AfterValidator(text_control)

#: the same rules as patterns, checked in pydantic's core (a push validates millions of strings;
#: a Python validator per string made a record 2.6 times slower to validate); ``app.schemas.messages`` words
#: their errors
NO_CONTROL_PATTERN = r"^[^\x00-\x1f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
NoControl = StringConstraints(pattern=NO_CONTROL_PATTERN)
TextControl = StringConstraints(pattern=TEXT_PATTERN)


def control_message(pattern: str, value: Any) -> str | None:
    """The §2.1 message of a string refused by :data:`NoControl` / :data:`TextControl`."""
    check = {NO_CONTROL_PATTERN: no_control, TEXT_PATTERN: text_control}.get(pattern)
    if check is None or not isinstance(value, str):
        return None
    try:
        check(value)
    except ValueError as exc:
        return str(exc)
    return None


#: the integers a JSON document the hub stores may hold (orjson and the databases stop at 64 bits)
_INT64 = 2**63
#: nesting of a free-form JSON value the hub stores (orjson writes at most 254 levels)
MAX_JSON_DEPTH = 32


def json_safe(value: Any) -> Any:
    """A free-form JSON value (options, parameters) the hub can store and answer: 64-bit integers,
    bounded nesting. Python's JSON parser (FastAPI's) reads integers of any size; orjson cannot
    write them, so an unchecked one was a 500 when the row was stored."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"嵌套超过 {MAX_JSON_DEPTH} 层 (nested deeper than {MAX_JSON_DEPTH} levels)")
        if isinstance(item, int) and not isinstance(item, bool) and not -_INT64 <= item < _INT64:
            raise ValueError("整数超出 64 位范围 (integer beyond 64 bits)")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return value


JsonSafe = AfterValidator(json_safe)

Timestamp = Annotated[datetime, BeforeValidator(parse_rfc3339)]
Day = Annotated[date, BeforeValidator(parse_date)]
#: free text of any length (a log line's ``raw``: its cap is a setting)
StrictStr = Annotated[str, Strict(), TextControl]
#: a name or short value (no control characters)
Str = Annotated[str, Strict(), StringConstraints(max_length=256), NoControl]
LongText = Annotated[str, Strict(), StringConstraints(max_length=65536), TextControl]
RecordId = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=128), NoControl]
PlatformCode = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,63}$")]
BatchId = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
RegionCode = Annotated[str, Strict(), StringConstraints(pattern=r"^[1-9]\d{5}$")]
RegionPrefix = Annotated[str, Strict(), AfterValidator(_region_scope)]
Uscc = Annotated[str, Strict(), StringConstraints(min_length=18, max_length=18), AfterValidator(_uscc_ok)]
Int = Annotated[int, Strict(), Field(ge=-(2**53), le=2**53)]
NonNegInt = Annotated[int, Strict(), Field(ge=0, le=2**53)]
#: counts kept in 32-bit columns
Count = Annotated[int, Strict(), Field(ge=0, le=2**31 - 1)]
Float = Annotated[float, Strict(), Field(allow_inf_nan=False)]
NonNegFloat = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=0)]
Bool = Annotated[bool, Strict()]
