"""Turn pydantic validation errors into §2.1 ``{index, loc, message}`` items, zh-CN first."""

from __future__ import annotations

import reprlib
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.errors import ErrorItem
from app.schemas.types import control_message

#: how a refused value is quoted back: bounded in length and in nesting (a value nested 1 000
#: deep made ``repr`` itself fail, a 500)
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 3, 80, 80

_ZH: dict[str, str] = {
    "missing": "缺少必填字段",
    "string_type": "应为字符串",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "float_type": "应为数值",
    "float_parsing": "应为数值",
    "bool_type": "应为布尔值 true/false",
    "list_type": "应为数组",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "model_attributes_type": "应为对象",
    "literal_error": "取值不在枚举范围内",
    "enum": "取值不在枚举范围内",
    "string_too_short": "字符串过短",
    "string_too_long": "字符串过长",
    "string_pattern_mismatch": "格式不正确",
    "too_short": "元素过少",
    "too_long": "元素过多",
    "greater_than_equal": "数值过小",
    "less_than_equal": "数值过大",
    "greater_than": "数值过小",
    "less_than": "数值过大",
    "finite_number": "不允许 NaN 或无穷大",
    "extra_forbidden": "不允许的字段",
    "null": "不能为 null",
}


def loc_to_str(loc: tuple[Any, ...] | list[Any], prefix: str = "") -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def describe(err: ErrorDetails) -> str:
    """One error in words a regulator can act on: Chinese first, pydantic's English after."""
    kind = err.get("type", "")
    english = str(err.get("msg", ""))
    if kind == "value_error":
        # our own validators already write "中文 (English)"
        return english.removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        control = control_message(str((err.get("ctx") or {}).get("pattern", "")), err.get("input"))
        if control is not None:
            return control
    zh = _ZH.get(kind, "取值无效")
    if kind == "missing":
        return f"{zh} (field required)"
    if kind == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        return f"{zh}，允许值 {expected}，收到 {_SHORT.repr(err.get('input'))} ({english})"
    return f"{zh} ({english})"


def errors_of(exc: ValidationError, *, index: int | None = None, prefix: str = "") -> list[ErrorItem]:
    return [
        ErrorItem.of(loc_to_str(tuple(err["loc"]), prefix), describe(err), index)
        for err in exc.errors(include_url=False)
    ]
