"""Normalised records of the push interface (§4), shared by push and collectors.

A record model validates one record on its own (no database). Merge-patch semantics need to
know which fields a record carried, which pydantic keeps in ``model_fields_set``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import models_json_schema

from app.schemas.enums import (
    ActorType,
    AlarmStatus,
    AssetStatus,
    AssetType,
    CpuArch,
    Gb50174Class,
    IpKind,
    Lifecycle,
    LogCategory,
    NetworkZone,
    Outcome,
    PointType,
    Position,
    Virtualization,
)
from app.schemas.types import (
    BatchId,
    Bool,
    Count,
    Day,
    Float,
    LongText,
    NoControl,
    NonNegFloat,
    NonNegInt,
    PlatformCode,
    RecordId,
    RegionCode,
    Str,
    StrictStr,
    TextControl,
    Timestamp,
    Uscc,
)

_RECORD_CONFIG = ConfigDict(extra="ignore", frozen=False)


class Record(BaseModel):
    model_config = _RECORD_CONFIG
    #: fields that may not be sent as ``null`` (they are required, or merge-patch could not clear them)
    not_nullable: ClassVar[frozenset[str]] = frozenset()


class SnapshotInfo(BaseModel):
    """全量快照信息（仅资产推送，§4）：同一 ``id`` 的批次按 ``seq`` 1..N 组成一次完整快照。

    第 N 批 ``last`` 为 true。快照完整（无缺号）后，该上报方在 ``asset_types`` 范围内未出现在快照中的资产
    置为 ``lifecycle: retired``（从不删除）；不完整的快照不退役任何资产。
    Full-sync snapshot of one reporter's assets.
    """

    model_config = ConfigDict(extra="forbid")

    id: Annotated[
        Annotated[str, StringConstraints(min_length=1, max_length=128, strict=True), NoControl],
        Field(description="快照标识（必填，1–128 字符），同一快照的各批次相同 snapshot id"),
    ]
    seq: Annotated[
        Annotated[int, Field(strict=True, ge=1, le=1_000_000)],
        Field(description="本批在快照中的序号（必填），从 1 起连续编号 sequence number, 1..N"),
    ]
    last: Annotated[
        Bool, Field(description="是否为快照的最后一批（必填，第 N 批为 true）last batch of the snapshot")
    ]
    asset_types: Annotated[
        list[AssetType] | None,
        Field(description="快照覆盖的资产类型（§6.1）；缺省为全部类型 asset types covered, absent = all"),
    ] = None


class BatchEnvelope(BaseModel):
    """推送批次信封：批次号、云平台编码、采集时间与记录；记录随后逐条校验（部分接收）。

    The batch around the records; ``records`` are validated one by one afterwards.
    """

    model_config = ConfigDict(extra="ignore")

    batch_id: Annotated[
        BatchId,
        Field(
            description="批次号（必填，1–64 个字符 [A-Za-z0-9._:-]），同一云平台同一数据类别内唯一 batch id"
        ),
    ]
    platform_code: Annotated[PlatformCode, Field(description="云平台编码（必填，监管方分配）platform code")]
    collected_at: Annotated[
        Timestamp,
        Field(
            description="采集时间（必填，RFC 3339 带时区偏移，如 2026-11-21T08:00:00+08:00）collection time"
        ),
    ]
    records: Annotated[list[Any], Field(description="记录列表（必填，1–10000 条，可配置），逐条校验 records")]
    snapshot: Annotated[
        SnapshotInfo | None, Field(description="全量快照信息，仅用于资产（assets）推送 full-sync snapshot")
    ] = None


class RoomRecord(Record):
    """机房记录（§4.1），键为（云平台, room_code）。

    合并更新（merge-patch）：缺省保留已存值，null 清空，默认值仅在新建时生效；必填字段不能为 null。
    """

    not_nullable = frozenset(
        {
            "room_code",
            "name",
            "datacenter_code",
            "datacenter_name",
            "region_code",
            "gb50174_class",
            "aisle_containment",
        }
    )

    room_code: Annotated[RecordId, Field(description="机房编码（必填，1–128 字符）room code")]
    name: Annotated[Str, Field(description="机房名称（必填）room name")]
    datacenter_code: Annotated[RecordId, Field(description="数据中心编码（必填）data centre code")]
    datacenter_name: Annotated[Str, Field(description="数据中心名称（必填）data centre name")]
    region_code: Annotated[
        RegionCode, Field(description="所在行政区划代码（必填，GB/T 2260 六位数字）region code")
    ]
    address: Annotated[
        Annotated[str, StringConstraints(max_length=500, strict=True), TextControl] | None,
        Field(description="地址（≤ 500 字符）address"),
    ] = None
    gb50174_class: Annotated[
        Gb50174Class, Field(description="机房等级 A/B/C（GB 50174）（必填）data centre class")
    ]
    aisle_containment: Annotated[
        Bool,
        Field(
            description="是否冷热通道隔离（必填）；决定温度参考点取冷通道还是机柜进风 "
            "whether hot / cold aisles are separated"
        ),
    ]
    area_m2: Annotated[NonNegFloat | None, Field(description="机房面积（m²）floor area in m²")] = None
    rack_count: Annotated[Count | None, Field(description="机柜数（个）number of racks")] = None
    design_pue: Annotated[
        Annotated[float, Field(strict=True, allow_inf_nan=False, ge=1, le=10)] | None,
        Field(description="设计 PUE（1–10）design power usage effectiveness"),
    ] = None
    it_capacity_kw: Annotated[
        NonNegFloat | None, Field(description="IT 设计负载容量（kW）IT capacity in kW")
    ] = None


class IpAddress(BaseModel):
    """资产的 IP 地址及其用途。An IP address of an asset and its kind."""

    model_config = ConfigDict(extra="forbid")

    ip: Annotated[
        Annotated[str, StringConstraints(min_length=2, max_length=64, strict=True), NoControl],
        Field(description="IP 地址（必填，IPv4 或 IPv6，2–64 字符）IP address"),
    ]
    kind: Annotated[
        IpKind, Field(description="地址类型（必填）：mgmt 管理 / business 业务 / floating 浮动 address kind")
    ]


class AssetRecord(Record):
    """资产记录（§4.2），键为（云平台, asset_id）。

    合并更新（merge-patch）：缺省保留已存值，null 清空，默认值仅在新建时生效；asset_id、asset_type、
    name、status、lifecycle、network_zone 不能为 null。字段分组：通用、硬件（物理设备）、计算、存储、
    软件 / 设备、国产化；单位：内存 MiB，磁盘 / 容量 GiB，功率 W。
    """

    not_nullable = frozenset({"asset_id", "asset_type", "name", "status", "lifecycle", "network_zone"})

    asset_id: Annotated[RecordId, Field(description="资产标识（必填，上报方的 ID，1–128 字符）asset id")]
    asset_type: Annotated[
        AssetType,
        Field(
            description="资产类型（必填，§6.1）：server 物理服务器 / hypervisor_host 宿主机 / "
            "bare_metal 裸金属 / vm 云主机 / container_cluster 容器集群 / volume 云硬盘 / "
            "object_bucket 对象存储桶 / "
            "file_share 文件存储 / storage_device 存储设备 / storage_pool 存储池 / network_device 网络设备 / "
            "security_device 安全设备 / database_instance 数据库实例 / middleware_instance 中间件实例 / "
            "facility_device 动环设备 / rack 机柜"
        ),
    ]
    name: Annotated[Str, Field(description="资产名称（必填）name")]
    status: Annotated[
        AssetStatus,
        Field(
            description="运行状态（必填，§6.3）：running 运行中 / stopped 已停止 / suspended 已挂起 / "
            "building 创建中 / migrating 迁移中 / error 故障 / deleted 已删除 / unknown 未知"
        ),
    ]
    lifecycle: Annotated[
        Lifecycle | None,
        Field(
            description="生命周期：in_use 在用（新建默认）/ in_stock 库存 / maintenance 维修 / retired 退役；"
            "不能为 null lifecycle"
        ),
    ] = None
    network_zone: Annotated[
        NetworkZone | None,
        Field(
            description="网络区域：gov_extranet 政务外网区 / internet 互联网区 / private 专有区；"
            "新建时缺省取云平台的网络区域，不能为 null network zone"
        ),
    ] = None
    using_unit: Annotated[Str | None, Field(description="使用单位 using unit")] = None
    using_unit_uscc: Annotated[
        Uscc | None,
        Field(description="使用单位统一社会信用代码（GB 32100，18 位，含校验字符）USCC of the using unit"),
    ] = None
    business_system: Annotated[Str | None, Field(description="业务系统 business system")] = None
    ip_addresses: Annotated[
        Annotated[list[IpAddress], Field(max_length=256)] | None,
        Field(description="IP 地址列表（≤ 256 个）IP addresses"),
    ] = None
    tags: Annotated[
        Annotated[
            dict[Annotated[str, StringConstraints(max_length=128, strict=True), NoControl], Str],
            Field(max_length=64),
        ]
        | None,
        Field(description="标签（字符串键值对，≤ 64 个，键 ≤ 128 字符）tags"),
    ] = None
    source_updated_at: Annotated[
        Timestamp | None,
        Field(
            description="源系统中的更新时间（RFC 3339 带时区偏移；默认不记入变更历史）updated in the source"
        ),
    ] = None
    manufacturer: Annotated[Str | None, Field(description="制造商（硬件）manufacturer")] = None
    model: Annotated[Str | None, Field(description="型号（硬件）model")] = None
    serial_number: Annotated[Str | None, Field(description="序列号（硬件）serial number")] = None
    asset_tag: Annotated[Str | None, Field(description="资产标签 / 固定资产编号（硬件）asset tag")] = None
    room_code: Annotated[RecordId | None, Field(description="所在机房编码（硬件）room code")] = None
    rack_code: Annotated[RecordId | None, Field(description="所在机柜编码（硬件）rack code")] = None
    u_position: Annotated[
        Annotated[int, Field(strict=True, ge=0, le=100)] | None,
        Field(description="机柜内起始 U 位（0–100）U position"),
    ] = None
    u_height: Annotated[
        Annotated[int, Field(strict=True, ge=0, le=100)] | None,
        Field(description="占用高度（U，0–100）height in U"),
    ] = None
    purchase_date: Annotated[Day | None, Field(description="采购日期（YYYY-MM-DD）purchase date")] = None
    warranty_end: Annotated[Day | None, Field(description="保修截止日期（YYYY-MM-DD）warranty end")] = None
    rated_power_w: Annotated[NonNegFloat | None, Field(description="额定功率（W）rated power in W")] = None
    cpu_arch: Annotated[
        CpuArch | None,
        Field(
            description="CPU 架构（§6.2）：x86_64 / aarch64 ARM 64 位 / loongarch64 龙架构 / "
            "mips64el MIPS64 / sw_64 申威 / ppc64le Power / riscv64 RISC-V / other 其他 CPU architecture"
        ),
    ] = None
    cpu_vendor: Annotated[Str | None, Field(description="CPU 厂商（用于国产化判定）CPU vendor")] = None
    cpu_model: Annotated[Str | None, Field(description="CPU 型号（用于国产化判定）CPU model")] = None
    cpu_cores: Annotated[Count | None, Field(description="CPU 核数（个）CPU cores")] = None
    vcpus: Annotated[Count | None, Field(description="虚拟 CPU 数（个）vCPUs")] = None
    memory_mib: Annotated[NonNegInt | None, Field(description="内存（MiB）memory in MiB")] = None
    disk_gib: Annotated[NonNegFloat | None, Field(description="磁盘容量（GiB）disk in GiB")] = None
    os_name: Annotated[Str | None, Field(description="操作系统名称（用于国产化判定）OS name")] = None
    os_version: Annotated[Str | None, Field(description="操作系统版本 OS version")] = None
    virtualization: Annotated[
        Virtualization | None,
        Field(
            description="虚拟化类型（§6.4）：kvm / powervm / vmware_esxi / xen / hyperv / "
            "bare_metal 裸金属 / container 容器 / other 其他 virtualization"
        ),
    ] = None
    host_asset_id: Annotated[
        RecordId | None, Field(description="所在宿主机的资产标识（云主机）host asset id")
    ] = None
    capacity_gib: Annotated[NonNegFloat | None, Field(description="存储容量（GiB）capacity in GiB")] = None
    used_gib: Annotated[
        NonNegFloat | None, Field(description="已用容量（GiB；默认不记入变更历史）used in GiB")
    ] = None
    storage_protocol: Annotated[
        Annotated[str, StringConstraints(max_length=64, strict=True), NoControl] | None,
        Field(description="存储协议（≤ 64 字符，如 iSCSI、NFS、S3）storage protocol"),
    ] = None
    product: Annotated[Str | None, Field(description="产品名称（软件 / 设备）product")] = None
    vendor: Annotated[Str | None, Field(description="厂商（软件 / 设备）vendor")] = None
    version: Annotated[
        Annotated[str, StringConstraints(max_length=128, strict=True), NoControl] | None,
        Field(description="版本（≤ 128 字符）version"),
    ] = None
    is_domestic: Annotated[
        Bool | None,
        Field(description="是否国产化（上报值优先于主维度的判定，并标记为上报）reported domestic verdict"),
    ] = None

    model_config = ConfigDict(extra="ignore", protected_namespaces=())


class LogRecordIn(Record):
    """日志记录（§4.3），只插入（insert-only）：相同键相同内容为空操作，内容不同则拒绝（日志不可修改）。

    键为（云平台, log_id），无 log_id 时为规范化记录的 SHA-256；operation 与 audit 日志必须包含 actor
    （GB/T 22239）。
    """

    not_nullable = frozenset(
        {
            "category",
            "type",
            "event_time",
            "severity",
            "action",
            "outcome",
            "message",
        }
    )

    log_id: Annotated[
        RecordId | None, Field(description="日志标识（1–128 字符）；缺省时以规范化记录的 SHA-256 为键 log id")
    ] = None
    category: Annotated[
        LogCategory,
        Field(
            description="日志类别（必填）：operation 操作日志 / security 安全日志 / audit 审计日志 / "
            "system 系统日志 category"
        ),
    ]
    type: Annotated[
        Annotated[str, StringConstraints(min_length=1, max_length=64, strict=True), NoControl],
        Field(description="事件类型（必填，1–64 字符），如 login、resource_change、waf_block event type"),
    ]
    event_time: Annotated[
        Timestamp,
        Field(
            description="事件时间（必填，RFC 3339 带时区偏移）；超前 5 分钟以上或早于保留期的记录被拒绝 "
            "event time"
        ),
    ]
    severity: Annotated[
        Annotated[int, Field(strict=True, ge=0, le=7)],
        Field(description="严重级别（必填，RFC 5424：0 紧急 emergency … 7 调试 debug）severity"),
    ]
    actor: Annotated[Str | None, Field(description="操作者 / 用户；operation 与 audit 日志必填 actor")] = None
    actor_type: Annotated[
        ActorType | None,
        Field(description="操作者类型：user 用户 / admin 管理员 / service 服务 / system 系统 actor type"),
    ] = None
    source_ip: Annotated[
        Annotated[str, StringConstraints(max_length=64, strict=True), NoControl] | None,
        Field(description="来源 IP 地址（≤ 64 字符）source IP"),
    ] = None
    action: Annotated[
        Annotated[str, StringConstraints(min_length=1, max_length=256, strict=True), NoControl],
        Field(description="动作（必填，1–256 字符）action"),
    ]
    object_type: Annotated[
        Annotated[str, StringConstraints(max_length=128, strict=True), NoControl] | None,
        Field(description="操作对象类型（≤ 128 字符）object type"),
    ] = None
    object_id: Annotated[Str | None, Field(description="操作对象标识 object id")] = None
    outcome: Annotated[
        Outcome, Field(description="结果（必填）：success 成功 / failure 失败 / unknown 未知 outcome")
    ]
    message: Annotated[
        Annotated[str, StringConstraints(max_length=65536, strict=True), TextControl],
        Field(description="日志内容（必填，≤ 65536 字符）message"),
    ]
    asset_id: Annotated[
        RecordId | None,
        Field(description="相关资产标识；尚未上报的资产也接收并标记 asset_known=false related asset"),
    ] = None
    raw: Annotated[StrictStr | None, Field(description="原始日志文本（≤ 16 KiB，可配置）raw log line")] = None
    origin_hash: Annotated[
        Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$", strict=True)] | None,
        Field(description="来源汇聚节点的日志哈希（64 位小写十六进制），转发日志时保留 origin hash"),
    ] = None

    @model_validator(mode="after")
    def _actor_required(self) -> LogRecordIn:
        # GB/T 22239: operation and audit records must name the user
        if self.category in {"operation", "audit"} and not self.actor:
            raise ValueError("操作日志和审计日志必须包含 actor (operation and audit logs need an actor)")
        return self


LabelKey = Annotated[str, StringConstraints(min_length=1, max_length=64, strict=True), NoControl]
LabelValue = Annotated[str, StringConstraints(max_length=256, strict=True), NoControl]


class MetricRecord(Record):
    """监控数据记录（§4.4）。

    键为（云平台, metric, asset_id 或平台级, 排序后的 labels, ts），后写入者覆盖（更正）。
    """

    not_nullable = frozenset({"metric", "ts", "value"})

    metric: Annotated[
        Annotated[str, StringConstraints(min_length=1, max_length=64, strict=True), NoControl],
        Field(
            description="指标编码（必填，§6.5 指标目录，未知编码被拒绝），如 cpu.util（%）、mem.util（%）、"
            "net.rx.bits_per_s（bit/s）、host.mem.total_mib（MiB）、hw.power.watts（W）metric code"
        ),
    ]
    ts: Annotated[Timestamp, Field(description="采样时间（必填，RFC 3339 带时区偏移）sample time")]
    value: Annotated[
        Float, Field(description="数值（必填，有限数；单位见指标目录，% 取 0–100）value in the metric's unit")
    ]
    asset_id: Annotated[
        RecordId | None, Field(description="资产标识；缺省为云平台级指标 asset id, absent = platform level")
    ] = None
    labels: Annotated[
        Annotated[dict[LabelKey, LabelValue], Field(max_length=8)] | None,
        Field(description='标签（≤ 8 对字符串，键 1–64 字符、值 ≤ 256 字符），如 {"device": "eth0"} labels'),
    ] = None


class EnvironmentRecord(Record):
    """机房环控数据记录（§4.5）。

    键为（云平台, room_code, point_code, ts），后写入者覆盖（更正）；机房须已上报，否则拒绝；
    测点首次出现时登记。
    """

    not_nullable = frozenset({"room_code", "point_code", "point_type", "ts", "value"})

    room_code: Annotated[RecordId, Field(description="机房编码（必填，机房须已上报）room code")]
    point_code: Annotated[RecordId, Field(description="测点编码（必填，首次出现时登记）point code")]
    point_type: Annotated[
        PointType,
        Field(
            description="测点类型（必填，§6.6，同一测点不可改变）：cold_aisle_temp 冷通道温度（℃）/ "
            "rack_inlet_temp 机柜进风温度（℃）/ cold_aisle_dew_point 冷通道露点（℃）/ "
            "cold_aisle_rh 冷通道相对湿度（%RH）/ aux_area_temp 辅助区温度（℃）/ "
            "aux_area_rh 辅助区相对湿度（%RH）/ "
            "battery_room_temp 电池室温度（℃）/ mains_voltage 市电电压（V）/ ups_load UPS 负载率（%）/ "
            "water_leak 漏水（0/1）/ smoke 烟感（0/1）/ breaker_trip 断路器跳闸（0/1）/ "
            "ups_on_battery UPS 电池供电（0/1）/ hot_aisle_temp 热通道温度（℃）/ "
            "rack_outlet_temp 机柜出风温度（℃）/ door_open 门开启（0/1）/ it_power_kw IT 功率（kW）/ "
            "facility_power_kw 总功率（kW）/ it_energy_kwh IT 累计电量（kWh）/ "
            "facility_energy_kwh 总累计电量（kWh）point type"
        ),
    ]
    ts: Annotated[Timestamp, Field(description="采样时间（必填，RFC 3339 带时区偏移）sample time")]
    value: Annotated[
        Float,
        Field(description="测量值（必填，有限数；单位随测点类型：℃、%RH、V、%、0/1、kW、kWh）value"),
    ]
    rack_code: Annotated[RecordId | None, Field(description="机柜编码 rack code")] = None
    position: Annotated[
        Position | None,
        Field(
            description="测点位置：cold_aisle 冷通道 / hot_aisle 热通道 / rack_inlet 机柜进风 / "
            "rack_outlet 机柜出风 / room 机房 / under_floor 地板下 position"
        ),
    ] = None
    height_m: Annotated[
        Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=100)] | None,
        Field(description="测点高度（m，0–100）height in m"),
    ] = None
    interval_s: Annotated[
        Annotated[int, Field(strict=True, ge=1, le=86400)] | None,
        Field(description="测点通常采样间隔（秒，1–86400）；缺省时取采样间隔中位数 sampling interval in s"),
    ] = None


class AlarmRecord(Record):
    """告警记录（§4.6），键为（云平台, alarm_id）。

    合并更新（merge-patch）：缺省保留已存值，null 清空；last_at（或 cleared_at）早于已存值的更新被忽略，
    已清除的告警不会被较旧的更新重新激活。
    """

    not_nullable = frozenset({"alarm_id", "level", "status", "title", "first_at"})

    alarm_id: Annotated[RecordId, Field(description="告警标识（必填，1–128 字符）alarm id")]
    level: Annotated[
        Annotated[int, Field(strict=True, ge=1, le=4)],
        Field(description="告警级别（必填）：1 紧急 critical / 2 重要 major / 3 次要 minor / 4 提示 info"),
    ]
    status: Annotated[AlarmStatus, Field(description="告警状态（必填）：active 活动 / cleared 已清除 status")]
    title: Annotated[
        Annotated[str, StringConstraints(min_length=1, max_length=500, strict=True), NoControl],
        Field(description="告警标题（必填，1–500 字符）title"),
    ]
    message: Annotated[LongText | None, Field(description="告警详情（≤ 65536 字符）message")] = None
    asset_id: Annotated[RecordId | None, Field(description="相关资产标识 related asset")] = None
    room_code: Annotated[RecordId | None, Field(description="相关机房编码 related room")] = None
    first_at: Annotated[
        Timestamp, Field(description="首次发生时间（必填，RFC 3339 带时区偏移）first occurrence")
    ]
    last_at: Annotated[Timestamp | None, Field(description="最近发生时间 last occurrence")] = None
    cleared_at: Annotated[Timestamp | None, Field(description="清除时间 cleared at")] = None


RECORD_MODELS: dict[str, type[Record]] = {
    "rooms": RoomRecord,
    "assets": AssetRecord,
    "logs": LogRecordIn,
    "metrics": MetricRecord,
    "environment": EnvironmentRecord,
    "alarms": AlarmRecord,
}


# --- documentation of the push bodies (OpenAPI only; the service validates with BatchEnvelope) --------

_RECORDS_DESCRIPTION = "记录列表（必填，1–10000 条，可配置），逐条校验，部分接收 records"


class _PushBatchDoc(BaseModel):
    model_config = ConfigDict(extra="ignore")

    batch_id: Annotated[
        BatchId,
        Field(
            description="批次号（必填，1–64 个字符 [A-Za-z0-9._:-]），同一云平台同一数据类别内唯一；"
            "相同批次号与相同请求体重放返回原回执 batch id"
        ),
    ]
    platform_code: Annotated[PlatformCode, Field(description="云平台编码（必填，监管方分配）platform code")]
    collected_at: Annotated[
        Timestamp,
        Field(
            description="采集时间（必填，RFC 3339 带时区偏移，如 2026-11-21T08:00:00+08:00）collection time"
        ),
    ]


class RoomsBatch(_PushBatchDoc):
    """机房推送批次（POST /api/v1/reports/rooms 的请求体）。"""

    records: Annotated[
        list[RoomRecord], Field(min_length=1, max_length=10_000, description=_RECORDS_DESCRIPTION)
    ]


class AssetsBatch(_PushBatchDoc):
    """资产推送批次（POST /api/v1/reports/assets 的请求体），可带全量快照信息。"""

    records: Annotated[
        list[AssetRecord], Field(min_length=1, max_length=10_000, description=_RECORDS_DESCRIPTION)
    ]
    snapshot: Annotated[
        SnapshotInfo | None, Field(description="全量快照信息（可选，仅资产）full-sync snapshot")
    ] = None


class LogsBatch(_PushBatchDoc):
    """日志推送批次（POST /api/v1/reports/logs 的请求体）。"""

    records: Annotated[
        list[LogRecordIn], Field(min_length=1, max_length=10_000, description=_RECORDS_DESCRIPTION)
    ]


class MetricsBatch(_PushBatchDoc):
    """监控数据推送批次（POST /api/v1/reports/metrics 的请求体）。"""

    records: Annotated[
        list[MetricRecord], Field(min_length=1, max_length=10_000, description=_RECORDS_DESCRIPTION)
    ]


class EnvironmentBatch(_PushBatchDoc):
    """机房环控数据推送批次（POST /api/v1/reports/environment 的请求体）。"""

    records: Annotated[
        list[EnvironmentRecord], Field(min_length=1, max_length=10_000, description=_RECORDS_DESCRIPTION)
    ]


class AlarmsBatch(_PushBatchDoc):
    """告警推送批次（POST /api/v1/reports/alarms 的请求体）。"""

    records: Annotated[
        list[AlarmRecord], Field(min_length=1, max_length=10_000, description=_RECORDS_DESCRIPTION)
    ]


#: one documentation model per push kind, in the order of ``RECORD_MODELS``
PUSH_BATCH_MODELS: tuple[type[BaseModel], ...] = (
    RoomsBatch,
    AssetsBatch,
    LogsBatch,
    MetricsBatch,
    EnvironmentBatch,
    AlarmsBatch,
)


def push_body_schema() -> dict[str, Any]:
    """JSON Schema of the push request bodies: ``oneOf`` the batch models, self-contained.

    FastAPI only emits components for models its routes declare, and the push route reads its
    body itself; so every ``$ref`` is resolved here (the models are not recursive) and the schema
    can sit in the operation's ``openapi_extra`` without pointing at components that do not exist.
    """
    _, top = models_json_schema(
        [(m, "validation") for m in PUSH_BATCH_MODELS], ref_template="#/$defs/{model}"
    )
    defs: dict[str, Any] = top.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            target = inline(defs[ref.removeprefix("#/$defs/")])
            siblings = {key: inline(value) for key, value in node.items() if key != "$ref"}
            return {**target, **siblings}
        return {key: inline(value) for key, value in node.items()}

    return {"oneOf": [inline(defs[m.__name__]) for m in PUSH_BATCH_MODELS]}


class ReceiptOut(BaseModel):
    """``data`` of a push answer and of ``GET /reports/batches/{batch_id}``."""

    batch_id: str = Field(description="批次号")
    platform_code: str = Field(description="云平台编码")
    kind: str = Field(description="数据类别")
    status: str = Field(description="批次状态：accepted 全部接收 / partial 部分接收 / rejected 全部拒绝")
    received: int = Field(description="收到的记录数")
    accepted: int = Field(description="接收的记录数")
    rejected: int = Field(description="拒绝的记录数")
    errors: list[dict[str, Any]] = Field(description="被拒绝记录的 {index, loc, message}")
    warnings: list[dict[str, Any]] = Field(description="提示：忽略的未知字段、被覆盖的重复记录等")
    received_at: datetime = Field(description="接收时间")
    snapshot: dict[str, Any] | None = Field(default=None, description="全量快照进度（仅资产）")
    quarantined: list[dict[str, Any]] | None = Field(
        default=None, description="隔离区中被拒绝记录的原文（仅查询回执时）"
    )
