"""Wire models of collector sources and runs (§8, §10 ``/api/v1/admin/sources``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.schemas.enums import ReportKind
from app.schemas.types import JsonSafe, NameCheck, PlatformCode

SourceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
BaseUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s/?#]+[^\s]*$", max_length=500)]


class EnvReference(BaseModel):
    """A credential read from the hub's environment at run time (``SUPHUB_SOURCE_`` variables only)."""

    model_config = ConfigDict(extra="forbid")

    env: Annotated[str, StringConstraints(pattern=r"^SUPHUB_SOURCE_[A-Z0-9_]{1,100}$")] = Field(
        description="环境变量名，须以 SUPHUB_SOURCE_ 开头"
    )


CredentialValue = Annotated[str, StringConstraints(min_length=1, max_length=4000)] | EnvReference
Credentials = dict[Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,64}$")], CredentialValue]


def _known_keys(value: Credentials | None) -> Credentials | None:
    if value is not None and len(value) > 10:
        raise ValueError("凭据最多 10 项 (at most 10 credential fields)")
    return value


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_id: SourceId = Field(description="采集源编号（字母、数字、_ . -，最长 64）")
    platform_code: PlatformCode | None = Field(
        default=None, description="数据所属云平台编码（hub 类型可省略：其云平台自动登记）"
    )
    type: Annotated[str, NameCheck] = Field(
        max_length=32, description="采集源类型：hub / openstack / prometheus / redfish"
    )
    base_url: BaseUrl = Field(description="采集源地址，http(s)://…")
    credentials: Credentials | None = Field(
        default=None,
        description=(
            '凭据对象：{"username","password"} / {"token"} / '
            '{"application_credential_id","application_credential_secret"}；任一值可写作 '
            '{"env": "SUPHUB_SOURCE_…"} 以在运行时读取环境变量。加密保存，永不返回'
        ),
    )
    interval_s: int = Field(default=300, ge=10, le=86_400, description="采集间隔（秒）")
    kinds: list[ReportKind] = Field(min_length=1, description="采集的数据类别")
    options: Annotated[dict[str, Any], JsonSafe] = Field(
        default_factory=dict, description="类型相关的选项（见各类型说明）"
    )
    enabled: bool = Field(default=True, description="是否启用定时采集")

    _credentials = field_validator("credentials")(_known_keys)


class SourceUpdate(BaseModel):
    """Fields to change; ``credentials`` replaces the whole object."""

    model_config = ConfigDict(extra="forbid")

    base_url: BaseUrl | None = Field(default=None, description="采集源地址")
    credentials: Credentials | None = Field(default=None, description="新的凭据对象（整体替换）")
    interval_s: int | None = Field(default=None, ge=10, le=86_400, description="采集间隔（秒）")
    kinds: list[ReportKind] | None = Field(default=None, min_length=1, description="采集的数据类别")
    options: Annotated[dict[str, Any], JsonSafe] | None = Field(
        default=None, description="类型相关的选项（整体替换）"
    )
    enabled: bool | None = Field(default=None, description="是否启用定时采集")

    _credentials = field_validator("credentials")(_known_keys)


class SourceOut(BaseModel):
    source_id: str
    platform_code: str | None
    type: str
    base_url: str
    credentials: dict[str, str] = Field(description='凭据各项一律显示为 "***"')
    interval_s: int
    kinds: list[str]
    options: dict[str, Any]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None
    last_success_at: datetime | None
    consecutive_failures: int = Field(description="连续失败次数（>0 时处于退避中）")
    stale: bool = Field(description="两个采集间隔内无成功运行")
    running_run_id: str | None = Field(description="进行中的运行编号")


class SourceRunOut(BaseModel):
    run_id: str
    source_id: str
    started_at: datetime
    finished_at: datetime | None
    status: str = Field(description="running 运行中 / success 成功 / failed 失败")
    mode: str = Field(description="full 全量（完整快照）/ incremental 增量")
    trigger: str = Field(description="schedule 定时 / manual 手动")
    pages: int
    records: int
    accepted: int
    rejected: int
    error: str | None


class RunStarted(BaseModel):
    run_id: str
    started: bool = Field(description="false：该采集源已有运行在进行中，返回其 run_id")
