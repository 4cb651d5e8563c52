"""The §2.1 envelope and the wire models of administration and reading endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, model_validator

from app.schemas.enums import DataKind, NetworkZone, PlatformLevel, ReportKind, Role, Virtualization
from app.schemas.types import (
    NameCheck,
    PlatformCode,
    RegionCode,
    RegionPrefix,
    TextCheck,
    Uscc,
)

#: a name (§14: no control characters)
Name = Annotated[str, NameCheck]
#: free text (§14: tab, CR and LF only)
Text = Annotated[str, TextCheck]
#: an expected reporting interval (s): at least a second, at most a leap year
IntervalS = Annotated[int, Strict(), Field(ge=1, le=366 * 86_400)]

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    """成功应答的统一信封 (§2.1)."""

    code: str = Field("0", description="结果码，0 表示成功")
    message: str = Field("ok", description="结果说明")
    request_id: str = Field(description="请求编号，排查问题时请提供")
    data: T


class ErrorEnvelope(BaseModel):
    """错误应答 (§2.1)."""

    code: str = Field(description="错误码，见 §2.1")
    message: str = Field(description="错误说明（中文在前，英文在括号内）")
    request_id: str = Field(description="请求编号")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="出错位置列表 {index, loc, message}"
    )


class Page(BaseModel, Generic[T]):
    items: list[T] = Field(description="本页数据")
    next_cursor: str | None = Field(description="下一页游标，最后一页为 null")
    total: int | None = Field(default=None, description="总数（with_total=true 时返回）")


# --- platforms ------------------------------------------------------------------------------
class PlatformCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform_code: PlatformCode = Field(description="监管方分配的云平台编码")
    name: Name = Field(min_length=1, max_length=200, description="云平台名称")
    region_code: RegionCode = Field(description="所在行政区划代码（GB/T 2260，6 位）")
    network_zone: NetworkZone = Field(description="默认网络区域")
    provider_name: Name | None = Field(default=None, max_length=200, description="云服务提供方名称")
    provider_uscc: Uscc | None = Field(default=None, description="云服务提供方统一社会信用代码")
    level: PlatformLevel = Field(description="平台级别：province 省级 / city 市级 / county 县级")
    virtualization: list[Virtualization] = Field(default_factory=list, description="虚拟化类型")
    protection_level: int | None = Field(default=None, ge=1, le=4, description="等级保护级别 1–4")
    availability_target: float = Field(default=99.99, gt=0, le=100, description="可用性目标（%）")
    storage_bw_target_gbps: float = Field(default=10.0, gt=0, description="存储带宽目标（Gbit/s）")
    expected_intervals: dict[ReportKind, IntervalS] = Field(
        default_factory=dict, description='各类数据的预期上报间隔（秒，1–31622400），如 {"metrics": 300}'
    )


class PlatformUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(default=None, min_length=1, max_length=200, description="云平台名称")
    region_code: RegionCode | None = Field(default=None, description="行政区划代码")
    network_zone: NetworkZone | None = Field(default=None, description="默认网络区域")
    provider_name: Name | None = Field(default=None, max_length=200, description="云服务提供方名称")
    provider_uscc: Uscc | None = Field(default=None, description="统一社会信用代码")
    level: PlatformLevel | None = Field(default=None, description="平台级别")
    virtualization: list[Virtualization] | None = Field(default=None, description="虚拟化类型")
    protection_level: int | None = Field(default=None, ge=1, le=4, description="等级保护级别")
    availability_target: float | None = Field(default=None, gt=0, le=100, description="可用性目标（%）")
    storage_bw_target_gbps: float | None = Field(default=None, gt=0, description="存储带宽目标")
    expected_intervals: dict[ReportKind, IntervalS] | None = Field(
        default=None, description="预期上报间隔（秒，1–31622400）"
    )
    status: str | None = Field(
        default=None,
        pattern="^(active|decommissioned)$",
        description="active 运行 / decommissioned 停用（停用后拒收推送，数据保留）",
    )


class PlatformOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    platform_code: str = Field(description="云平台编码")
    name: str = Field(description="云平台名称")
    region_code: str = Field(description="行政区划代码")
    network_zone: str = Field(description="默认网络区域")
    provider_name: str | None = Field(description="云服务提供方名称")
    provider_uscc: str | None = Field(description="统一社会信用代码")
    level: str = Field(description="平台级别")
    virtualization: list[str] = Field(description="虚拟化类型")
    protection_level: int | None = Field(description="等级保护级别")
    availability_target: float = Field(description="可用性目标（%）")
    storage_bw_target_gbps: float = Field(description="存储带宽目标（Gbit/s）")
    expected_intervals: dict[str, Any] = Field(description="预期上报间隔（秒）")
    status: str = Field(description="状态")
    created_at: datetime = Field(description="创建时间")
    updated_at: datetime = Field(description="更新时间")


# --- clients --------------------------------------------------------------------------------
class ClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(min_length=1, max_length=200, description="客户端名称")
    role: Role = Field(description="角色：admin / regulator / provider / integrator")
    platforms: list[PlatformCode] = Field(default_factory=list, description="绑定的云平台编码")
    regions: list[RegionPrefix] = Field(default_factory=list, description="授权的行政区划代码")
    kinds: list[DataKind] = Field(default_factory=list, description="第三方系统可读的数据类别")
    require_signature: bool | None = Field(
        default=None, description="是否要求签名请求；默认 provider 为 true，其余为 false"
    )


class ClientUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(default=None, min_length=1, max_length=200, description="名称")
    platforms: list[PlatformCode] | None = Field(default=None, description="绑定的云平台")
    regions: list[RegionPrefix] | None = Field(default=None, description="授权的行政区划")
    kinds: list[DataKind] | None = Field(default=None, description="可读的数据类别")
    require_signature: bool | None = Field(default=None, description="是否要求签名")
    status: str | None = Field(
        default=None, pattern="^(active|disabled)$", description="active 启用 / disabled 停用"
    )


class ClientOut(BaseModel):
    app_key: str = Field(description="密钥编号")
    name: str = Field(description="名称")
    role: str = Field(description="角色")
    platforms: list[str] = Field(description="绑定的云平台")
    regions: list[str] = Field(description="授权的行政区划（已去除末尾 00）")
    kinds: list[str] = Field(description="可读的数据类别")
    require_signature: bool = Field(description="是否要求签名请求")
    status: str = Field(description="active / disabled / revoked")
    created_at: datetime = Field(description="创建时间")
    updated_at: datetime = Field(description="更新时间")


class ClientCreated(ClientOut):
    secret: str = Field(description="密钥，仅在创建时显示一次，请妥善保存")
    bearer: str = Field(description="Bearer 令牌 <app_key>.<secret>（仅在创建时显示）")


class ClientRotated(ClientCreated):
    previous_valid_until: datetime = Field(description="旧密钥在此时间之前仍然有效")


# --- the data the hub judges by (§10) ---------------------------------------------------------
class MetricDefinitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$", max_length=64, description="指标编码，如 cpu.util"
    )
    name_zh: Name = Field(min_length=1, max_length=200, description="中文名称")
    unit: Name = Field(min_length=1, max_length=32, description="单位，如 %、MiB、bit/s")
    kind: Literal["gauge", "counter"] = Field(default="gauge", description="gauge 瞬时值 / counter 累计值")
    description: Text | None = Field(default=None, max_length=2000, description="说明")
    default_interval_s: int = Field(default=60, ge=1, le=86400, description="默认采集间隔（秒）")
    enabled: bool = Field(default=True, description="是否启用；停用的编码不再接收")


class MetricCatalogPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: list[MetricDefinitionIn] = Field(min_length=1, max_length=10_000, description="完整的指标目录")


class DomesticEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry: Name = Field(min_length=1, max_length=100, description="名录条目，如 海光 Hygon")
    aliases: list[Annotated[str, StringConstraints(min_length=1, max_length=100), NameCheck]] = Field(
        default_factory=list, max_length=50, description="匹配用的别名（不区分大小写；英文按字母边界匹配）"
    )


class DomesticListsPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lists: dict[
        Literal["cpu_vendor", "os", "database", "middleware", "manufacturer"], list[DomesticEntryIn]
    ] = Field(description="要替换的名录：cpu_vendor / os / database / middleware / manufacturer")

    @model_validator(mode="after")
    def _entries_unique(self) -> DomesticListsPut:
        for list_code, entries in self.lists.items():
            names = [e.entry for e in entries]
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(
                    f"名录 {list_code} 中条目重复 (duplicate entries in {list_code}): {', '.join(duplicates)}"
                )
        return self
