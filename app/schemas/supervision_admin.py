"""Wire models of the §10 administration of warnings (§7.8) and closed periods (§7.9).

Messages of the checks below are zh-CN first: they reach the caller as ``errors[].message`` of a
422 ``1002`` answer, with ``loc`` naming the field (``rules[2].level``).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

from app.schemas.common import MetricCatalogPut, MetricDefinitionIn
from app.schemas.enums import DataKind, PointType
from app.schemas.supervision import ThresholdOverrideIn, ThresholdRowIn, ThresholdsPut
from app.schemas.types import JsonSafe, NameCheck, PlatformCode, TextCheck, normalise_region

#: what a rule can watch (``warning_rule.subject``)
RULE_SUBJECTS = ("indicator", "point_type", "freshness")
#: the §7 indicator codes a rule may name
INDICATOR_CODES = (
    "availability",
    "domestic_rate",
    "storage_bandwidth",
    "pue",
    "env_compliance",
    "utilisation",
    "freshness",
)
INDICATOR_STATUSES = ("pass", "caution", "fail", "no_data")
POINT_STATES = ("normal", "caution", "critical")
#: the kinds whose freshness is judged (§7.7)
FEED_KINDS = tuple(k for k in get_args(DataKind) if k != "indicators")
#: per subject: the targets it may name (besides ``*``) and the one key its condition holds
SUBJECT_TARGETS: dict[str, tuple[str, ...]] = {
    "indicator": INDICATOR_CODES,
    "point_type": get_args(PointType),
    "freshness": FEED_KINDS,
}
_RULE_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: a month of the years 1970–2100 (§14)
_PERIOD = re.compile(r"^(19[7-9]\d|20\d\d|2100)-(0[1-9]|1[0-2])$")
_REGION = re.compile(r"^[1-9]\d(\d\d){0,2}$")


def _rule_code(value: str) -> str:
    if not _RULE_CODE.match(value):
        raise ValueError(
            "规则编码应为小写字母开头的 1–64 位小写字母、数字或下划线 "
            "(rule_code: 1–64 lower-case letters, digits or _, starting with a letter)"
        )
    return value


def _level(value: int) -> int:
    if not 1 <= value <= 4:
        raise ValueError("级别应为 1–4（1 紧急 2 重要 3 次要 4 提示）(level must be 1–4)")
    return value


def _seconds(value: int) -> int:
    if not 0 <= value <= 31 * 86_400:
        raise ValueError("时长应为 0–2678400 秒 (seconds must be 0–2678400, at most 31 days)")
    return value


def _text(limit: int) -> Any:
    def check(value: str) -> str:
        if not value.strip() or len(value) > limit:
            raise ValueError(f"应为 1–{limit} 个字符的非空文本 (1–{limit} characters, not blank)")
        return value

    return AfterValidator(check)


def condition_problem(subject: str, condition: dict[str, Any]) -> str | None:
    """Why ``condition`` does not fit ``subject`` (zh-CN first), or None when it does."""
    allowed: tuple[str, ...]
    if subject == "indicator":
        allowed, key = INDICATOR_STATUSES, "status_in"
    elif subject == "point_type":
        allowed, key = POINT_STATES, "state_in"
    else:
        if set(condition) != {"stale"} or condition["stale"] is not True:
            return 'freshness 规则的条件应为 {"stale": true} (a freshness condition is {"stale": true})'
        return None
    values = condition.get(key)
    if set(condition) != {key} or not isinstance(values, list) or not values:
        return (
            f'{subject} 规则的条件应为 {{"{key}": [...]}}，取值 {", ".join(allowed)} '
            f'(a {subject} condition is {{"{key}": [...]}})'
        )
    unknown = [v for v in values if v not in allowed]
    if unknown:
        return f"条件 {key} 含未知取值 {unknown!r}，允许 {', '.join(allowed)} (unknown {key} values)"
    return None


class WarningRuleIn(BaseModel):
    """一条预警规则 (§7.8)：监测对象、条件、级别、持续时间与解除回差。"""

    model_config = ConfigDict(extra="forbid")

    rule_code: Annotated[str, AfterValidator(_rule_code)] = Field(description="规则编码，如 point_critical")
    name_zh: Annotated[str, _text(200), NameCheck] = Field(description="规则名称（预警标题的前半部分）")
    subject: str = Field(
        description="监测对象：indicator 监管指标状态 / point_type 测点状态 / freshness 数据上报中断"
    )
    target: str = Field(
        max_length=64,
        description="指标编码（indicator）、测点类型（point_type）或数据类别（freshness）；* 表示全部",
    )
    condition: Annotated[dict[str, Any], JsonSafe] = Field(
        description='条件：indicator {"status_in": ["fail"]}；point_type {"state_in": ["critical"]}；'
        'freshness {"stale": true}'
    )
    level: Annotated[StrictInt, AfterValidator(_level)] = Field(
        description="级别 1 紧急 2 重要 3 次要 4 提示"
    )
    hold_s: Annotated[StrictInt, AfterValidator(_seconds)] = Field(
        description="条件须持续多少秒才产生预警（0 立即）"
    )
    clear_s: Annotated[StrictInt, AfterValidator(_seconds)] = Field(
        description="条件消失多少秒后预警才解除（回差，0 立即）"
    )
    enabled: StrictBool = Field(default=True, description="是否启用；停用规则的预警按解除回差解除")
    description: Annotated[str, TextCheck] | None = Field(default=None, max_length=2000, description="说明")

    @model_validator(mode="after")
    def _fits_subject(self) -> WarningRuleIn:
        if self.subject not in RULE_SUBJECTS:
            raise ValueError(
                f"subject 应为 {' / '.join(RULE_SUBJECTS)}，收到 {self.subject!r} "
                "(subject must be indicator, point_type or freshness)"
            )
        targets = SUBJECT_TARGETS[self.subject]
        if self.target != "*" and self.target not in targets:
            raise ValueError(
                f"{self.subject} 规则的 target 应为 * 或 {', '.join(targets)}，收到 {self.target!r} "
                f"(unknown target for subject {self.subject})"
            )
        problem = condition_problem(self.subject, self.condition)
        if problem:
            raise ValueError(problem)
        return self


class WarningRulesPut(BaseModel):
    """要新建或替换的预警规则；未列出的规则保持不变。"""

    model_config = ConfigDict(extra="forbid")

    rules: list[WarningRuleIn] = Field(
        min_length=1, max_length=500, description="规则列表（按 rule_code 整条替换）"
    )

    @model_validator(mode="after")
    def _codes_unique(self) -> WarningRulesPut:
        codes = [r.rule_code for r in self.rules]
        duplicates = sorted({c for c in codes if codes.count(c) > 1})
        if duplicates:
            raise ValueError(f"规则编码重复 (duplicate rule_code): {', '.join(duplicates)}")
        return self


def _period(value: str) -> str:
    if not _PERIOD.match(value):
        raise ValueError(
            "period 应为 1970–2100 年间的 YYYY-MM，如 2026-10 (period must be YYYY-MM within 1970–2100)"
        )
    return value


def _region(value: str) -> str:
    if not _REGION.match(value):
        raise ValueError("region_code 应为 2、4 或 6 位行政区划代码 (region_code must be 2, 4 or 6 digits)")
    return normalise_region(value)


class RecomputeIn(BaseModel):
    """重新计算已关闭统计周期的指标，生成新版本 (§7.9)。"""

    model_config = ConfigDict(extra="forbid")

    period: Annotated[str, AfterValidator(_period)] = Field(description="统计周期 YYYY-MM（须已结束）")
    platform_code: PlatformCode | None = Field(
        default=None, description="云平台编码（与 region_code 二选一）"
    )
    region_code: Annotated[str, AfterValidator(_region)] | None = Field(
        default=None, description="行政区划代码 2/4/6 位（与 platform_code 二选一）"
    )
    note: Annotated[str, TextCheck] | None = Field(
        default=None, max_length=2000, description="重新计算的原因"
    )

    @model_validator(mode="after")
    def _one_scope(self) -> RecomputeIn:
        if (self.platform_code is None) == (self.region_code is None):
            raise ValueError(
                "platform_code 与 region_code 须且只能给出一个 "
                "(give exactly one of platform_code and region_code)"
            )
        return self


# --- the data the hub judges by, as the PUTs of §10 take it ------------------------------------
#: JSON types as the published schema states them: a bound is a JSON number, seconds an integer and
#: a switch ``true``/``false``. Lax parsing took ``false`` as the bound 0, ``"5"`` or ``1.0`` as
#: 5 seconds and ``0`` as "disabled" — bodies the schema refuses (schemathesis
#: ``negative_data_rejection``), so a client's mistake became a threshold of 0.
_STRICT_JSON = ConfigDict(extra="forbid", strict=True)


class ThresholdRowPut(ThresholdRowIn):
    """一条默认阈值：限值为数字，持续时间为整数秒（不接受 true/false 或字符串）。"""

    model_config = _STRICT_JSON


class ThresholdOverridePut(ThresholdOverrideIn):
    """一条云平台或机房的阈值：限值为数字，持续时间为整数秒（不接受 true/false 或字符串）。"""

    model_config = _STRICT_JSON


class ThresholdsChange(ThresholdsPut):
    """``defaults`` 替换所列测点类型的默认阈值；给出 ``overrides`` 时，它成为全部云平台/机房阈值。"""

    model_config = _STRICT_JSON

    # narrowed to the strict rows (read only, so the invariance of list does not matter)
    defaults: list[ThresholdRowPut] | None = None  # type: ignore[assignment]
    overrides: list[ThresholdOverridePut] | None = None  # type: ignore[assignment]


class MetricDefinitionPut(MetricDefinitionIn):
    """一个指标编码：间隔为整数秒，enabled 为 true/false（不接受 0/1 或字符串）。"""

    model_config = _STRICT_JSON


class MetricCatalogChange(MetricCatalogPut):
    """完整的指标目录；未列出的编码被停用。"""

    model_config = _STRICT_JSON

    metrics: list[MetricDefinitionPut] = Field(  # type: ignore[assignment]  # narrowed, as above
        min_length=1, max_length=10_000, description="完整的指标目录"
    )


# --- what the administrative lists answer (§2.2: ``data.items`` + ``data.next_cursor``) --------


class WarningRuleOut(BaseModel):
    """一条预警规则（列表与修改应答）；去掉 ``updated_at`` 即可原样 PUT 回去。"""

    rule_code: str = Field(description="规则编码")
    name_zh: str = Field(description="规则名称")
    subject: str = Field(description="监测对象：indicator / point_type / freshness")
    target: str = Field(description="指标编码、测点类型或数据类别；* 表示全部")
    condition: dict[str, Any] = Field(description="条件")
    level: int = Field(description="级别 1 紧急 2 重要 3 次要 4 提示")
    hold_s: int = Field(description="条件须持续的秒数")
    clear_s: int = Field(description="解除回差秒数")
    enabled: bool = Field(description="是否启用")
    description: str | None = Field(description="说明")
    updated_at: datetime = Field(description="最后修改时间")


#: which PUT list a threshold row belongs to: ``default`` → ``defaults``, else ``overrides``
ThresholdAppliesTo = Literal["default", "platform", "room"]


class ThresholdRowOut(BaseModel):
    """一行阈值：测点类型的默认值（applies_to=default，PUT 的 ``defaults``），或某云平台 / 机房的
    阈值（platform / room，PUT 的 ``overrides``）。PUT 所需字段同名。"""

    applies_to: ThresholdAppliesTo = Field(description="default 默认 / platform 云平台 / room 机房")
    platform_code: str | None = Field(description="云平台编码（默认行为 null）")
    room_code: str | None = Field(description="机房编码（默认行与整个云平台的行为 null）")
    point_type: str = Field(description="测点类型")
    lower_critical: float | None = Field(description="下限紧急")
    lower_caution: float | None = Field(description="下限预警")
    upper_caution: float | None = Field(description="上限预警")
    upper_critical: float | None = Field(description="上限紧急")
    dwell_s: int = Field(description="越过紧急限值持续多久才算超限 (s)，0 为立即")
    source: str | None = Field(description="依据（没有依据的默认行不可原样 PUT：须给出依据）")
    name_zh: str | None = Field(description="测点类型名称（默认行）")
    unit: str | None = Field(description="单位（默认行）")
    role: str | None = Field(description="threshold 有阈值 / informational 仅展示（默认行）")
    updated_at: datetime | None = Field(description="修改时间（云平台 / 机房行）")
