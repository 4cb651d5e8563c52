"""Wire models of the data the hub judges by (§6.6 thresholds, §7 indicator policy) and of §7."""

from __future__ import annotations

import itertools
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas.enums import PointType
from app.schemas.types import JsonSafe, NameCheck, PlatformCode, TextCheck

_BOUNDS = ("lower_critical", "lower_caution", "upper_caution", "upper_critical")


class ThresholdRowIn(BaseModel):
    """One threshold row; an empty bound means "no bound"."""

    model_config = ConfigDict(extra="forbid")

    point_type: PointType
    lower_critical: float | None = Field(default=None, allow_inf_nan=False, description="下限紧急")
    lower_caution: float | None = Field(default=None, allow_inf_nan=False, description="下限预警")
    upper_caution: float | None = Field(default=None, allow_inf_nan=False, description="上限预警")
    upper_critical: float | None = Field(default=None, allow_inf_nan=False, description="上限紧急")
    dwell_s: int = Field(default=0, ge=0, le=86_400, description="越过紧急限值持续多久才算超限 (s)")
    source: Annotated[str, TextCheck] = Field(
        min_length=1, max_length=200, description="依据（标准条款、厂商规格、监管决定）"
    )

    @model_validator(mode="after")
    def _ordered(self) -> ThresholdRowIn:
        given = [(b, getattr(self, b)) for b in _BOUNDS if getattr(self, b) is not None]
        for (a, x), (b, y) in itertools.pairwise(given):
            if x > y:
                raise ValueError(f"限值须递增：{a} ({x}) > {b} ({y}) (bounds must not decrease)")
        return self


class ThresholdOverrideIn(ThresholdRowIn):
    platform_code: PlatformCode
    room_code: Annotated[str, NameCheck] | None = Field(
        default=None, min_length=1, max_length=128, description="机房；空=整个云平台"
    )


class ThresholdsPut(BaseModel):
    """``defaults`` replace the named point types' rows; ``overrides``, when given, become the whole
    set of per-platform / per-room rows."""

    model_config = ConfigDict(extra="forbid")

    defaults: list[ThresholdRowIn] | None = None
    overrides: list[ThresholdOverrideIn] | None = None

    @model_validator(mode="after")
    def _unique(self) -> ThresholdsPut:
        if self.defaults is not None:
            names = [d.point_type for d in self.defaults]
            if len(set(names)) != len(names):
                raise ValueError("defaults 中测点类型重复 (a point type is given twice)")
        if self.overrides is not None:
            keys = [(o.platform_code, o.room_code or "", o.point_type) for o in self.overrides]
            if len(set(keys)) != len(keys):
                raise ValueError("overrides 中同一云平台/机房/测点类型重复 (an override is given twice)")
        return self


class IndicatorPolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, NameCheck] = Field(min_length=1, max_length=32)
    params: Annotated[dict[str, Any], JsonSafe]
    source: Annotated[str, TextCheck] | None = Field(default=None, max_length=300)


class IndicatorPolicyPut(BaseModel):
    """Each named indicator's parameters are replaced; the rest keep theirs."""

    model_config = ConfigDict(extra="forbid")

    policies: list[IndicatorPolicyIn]
