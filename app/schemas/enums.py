"""The enumerations of §4 and §6 with their zh-CN labels (also served by the catalogue)."""

from __future__ import annotations

from typing import Literal, get_args

AssetType = Literal[
    "server",
    "hypervisor_host",
    "bare_metal",
    "vm",
    "container_cluster",
    "volume",
    "object_bucket",
    "file_share",
    "storage_device",
    "storage_pool",
    "network_device",
    "security_device",
    "database_instance",
    "middleware_instance",
    "facility_device",
    "rack",
]
CpuArch = Literal["x86_64", "aarch64", "loongarch64", "mips64el", "sw_64", "ppc64le", "riscv64", "other"]
AssetStatus = Literal[
    "running", "stopped", "suspended", "building", "migrating", "error", "deleted", "unknown"
]
Virtualization = Literal["kvm", "powervm", "vmware_esxi", "xen", "hyperv", "bare_metal", "container", "other"]
Lifecycle = Literal["in_use", "in_stock", "maintenance", "retired"]
NetworkZone = Literal["gov_extranet", "internet", "private"]
IpKind = Literal["mgmt", "business", "floating"]
LogCategory = Literal["operation", "security", "audit", "system"]
ActorType = Literal["user", "admin", "service", "system"]
Outcome = Literal["success", "failure", "unknown"]
AlarmStatus = Literal["active", "cleared"]
Gb50174Class = Literal["A", "B", "C"]
Position = Literal["cold_aisle", "hot_aisle", "rack_inlet", "rack_outlet", "room", "under_floor"]
PointType = Literal[
    "cold_aisle_temp",
    "rack_inlet_temp",
    "cold_aisle_dew_point",
    "cold_aisle_rh",
    "aux_area_temp",
    "aux_area_rh",
    "battery_room_temp",
    "mains_voltage",
    "ups_load",
    "water_leak",
    "smoke",
    "breaker_trip",
    "ups_on_battery",
    "hot_aisle_temp",
    "rack_outlet_temp",
    "door_open",
    "it_power_kw",
    "facility_power_kw",
    "it_energy_kwh",
    "facility_energy_kwh",
]
ReportKind = Literal["rooms", "assets", "logs", "metrics", "environment", "alarms"]
Role = Literal["admin", "regulator", "provider", "integrator"]
DataKind = Literal["assets", "logs", "metrics", "environment", "alarms", "indicators"]
PlatformLevel = Literal["province", "city", "county"]

REPORT_KINDS: tuple[str, ...] = get_args(ReportKind)
PHYSICAL_TYPES = frozenset(
    {
        "server",
        "hypervisor_host",
        "storage_device",
        "network_device",
        "security_device",
        "facility_device",
        "rack",
    }
)
#: types whose primary domestic dimension is the CPU (§4.2); the rest use the product
CPU_PRIMARY_TYPES = frozenset({"server", "hypervisor_host", "bare_metal", "vm"})

LABELS_ZH: dict[str, dict[str, str]] = {
    "asset_type": {
        "server": "物理服务器",
        "hypervisor_host": "宿主机",
        "bare_metal": "裸金属",
        "vm": "云主机",
        "container_cluster": "容器集群",
        "volume": "云硬盘",
        "object_bucket": "对象存储桶",
        "file_share": "文件存储",
        "storage_device": "存储设备",
        "storage_pool": "存储池",
        "network_device": "网络设备",
        "security_device": "安全设备",
        "database_instance": "数据库实例",
        "middleware_instance": "中间件实例",
        "facility_device": "动环设备",
        "rack": "机柜",
    },
    "cpu_arch": {
        "x86_64": "x86-64",
        "aarch64": "ARM 64 位",
        "loongarch64": "龙架构 LoongArch",
        "mips64el": "MIPS64",
        "sw_64": "申威 SW64",
        "ppc64le": "Power",
        "riscv64": "RISC-V",
        "other": "其他",
    },
    "status": {
        "running": "运行中",
        "stopped": "已停止",
        "suspended": "已挂起",
        "building": "创建中",
        "migrating": "迁移中",
        "error": "故障",
        "deleted": "已删除",
        "unknown": "未知",
    },
    "virtualization": {
        "kvm": "KVM",
        "powervm": "PowerVM",
        "vmware_esxi": "VMware ESXi",
        "xen": "Xen",
        "hyperv": "Hyper-V",
        "bare_metal": "裸金属",
        "container": "容器",
        "other": "其他",
    },
    "lifecycle": {"in_use": "在用", "in_stock": "库存", "maintenance": "维修", "retired": "退役"},
    "network_zone": {"gov_extranet": "政务外网区", "internet": "互联网区", "private": "专有区"},
    "log_category": {
        "operation": "操作日志",
        "security": "安全日志",
        "audit": "审计日志",
        "system": "系统日志",
    },
    "outcome": {"success": "成功", "failure": "失败", "unknown": "未知"},
    "alarm_status": {"active": "活动", "cleared": "已清除"},
    "alarm_level": {"1": "紧急", "2": "重要", "3": "次要", "4": "提示"},
    "role": {
        "admin": "管理员",
        "regulator": "监管方",
        "provider": "云服务提供方",
        "integrator": "第三方系统",
    },
    "ip_kind": {"mgmt": "管理地址", "business": "业务地址", "floating": "浮动地址"},
    "actor_type": {"user": "用户", "admin": "管理员", "service": "服务", "system": "系统"},
    "severity": {
        "0": "紧急 emergency",
        "1": "警报 alert",
        "2": "严重 critical",
        "3": "错误 error",
        "4": "警告 warning",
        "5": "通知 notice",
        "6": "信息 informational",
        "7": "调试 debug",
    },
    "gb50174_class": {"A": "A级", "B": "B级", "C": "C级"},
    "position": {
        "cold_aisle": "冷通道",
        "hot_aisle": "热通道",
        "rack_inlet": "机柜进风",
        "rack_outlet": "机柜出风",
        "room": "机房",
        "under_floor": "地板下",
    },
    "report_kind": {
        "rooms": "机房",
        "assets": "资产",
        "logs": "日志",
        "metrics": "监控数据",
        "environment": "机房环控数据",
        "alarms": "告警",
    },
    "data_kind": {
        "assets": "资产",
        "logs": "日志",
        "metrics": "监控数据",
        "environment": "机房环控数据",
        "alarms": "告警",
        "indicators": "监管指标",
    },
    "platform_level": {"province": "省级", "city": "市级", "county": "县级"},
    "platform_status": {"active": "运行", "decommissioned": "停用"},
    "batch_status": {"accepted": "全部接收", "partial": "部分接收", "rejected": "全部拒绝"},
    "environment_state": {"normal": "正常", "caution": "预警", "critical": "紧急"},
}
