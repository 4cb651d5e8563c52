"""seed reference data: the metric catalogue (§6.5) and the default domestic lists (§7)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 12:06:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (code, zh-CN name, unit, kind)
METRICS = [
    ("cpu.util", "CPU使用率", "%", "gauge"),
    ("cpu.load1", "CPU一分钟负载", "1", "gauge"),
    ("mem.util", "内存使用率", "%", "gauge"),
    ("disk.util", "磁盘使用率", "%", "gauge"),
    ("disk.read.bytes_per_s", "磁盘读速率", "B/s", "gauge"),
    ("disk.write.bytes_per_s", "磁盘写速率", "B/s", "gauge"),
    ("disk.read.iops", "磁盘读IOPS", "1/s", "gauge"),
    ("disk.write.iops", "磁盘写IOPS", "1/s", "gauge"),
    ("net.rx.bits_per_s", "网络接收速率", "bit/s", "gauge"),
    ("net.tx.bits_per_s", "网络发送速率", "bit/s", "gauge"),
    ("host.vcpu.total", "宿主机vCPU总数", "vCPU", "gauge"),
    ("host.vcpu.used", "宿主机已分配vCPU", "vCPU", "gauge"),
    ("host.mem.total_mib", "宿主机内存总量", "MiB", "gauge"),
    ("host.mem.used_mib", "宿主机已分配内存", "MiB", "gauge"),
    ("storage.pool.total_gib", "存储池总容量", "GiB", "gauge"),
    ("storage.pool.free_gib", "存储池可用容量", "GiB", "gauge"),
    ("storage.bw.observed_gbps", "存储读写带宽(运行观测)", "Gbit/s", "gauge"),
    ("storage.bw.tested_gbps", "存储读写带宽(测试)", "Gbit/s", "gauge"),
    ("service.availability", "服务可用性", "%", "gauge"),
    ("dc.pue", "数据中心PUE", "1", "gauge"),
    ("hw.temp.inlet", "设备进风温度", "℃", "gauge"),
    ("hw.temp.cpu", "CPU温度", "℃", "gauge"),
    ("hw.power.watts", "设备功率", "W", "gauge"),
    ("hw.fan.rpm", "风扇转速", "rpm", "gauge"),
]

# (list, entry, aliases matched case-insensitively; Latin aliases on letter boundaries)
DOMESTIC = [
    ("cpu_vendor", "海光 Hygon", ["海光", "Hygon", "HYGON"]),
    ("cpu_vendor", "兆芯 Zhaoxin", ["兆芯", "Zhaoxin", "KaiXian", "开先", "开胜"]),
    ("cpu_vendor", "飞腾 Phytium", ["飞腾", "Phytium", "FT-2000", "FT2000", "S2500", "S5000"]),
    ("cpu_vendor", "鲲鹏 / 海思 Kunpeng / HiSilicon", ["鲲鹏", "海思", "Kunpeng", "HiSilicon"]),
    ("cpu_vendor", "龙芯 Loongson", ["龙芯", "Loongson"]),
    ("cpu_vendor", "申威 Sunway", ["申威", "Sunway", "SW64", "SW-64", "SW3231", "SW1621"]),
    ("os", "麒麟 Kylin", ["麒麟", "Kylin"]),
    ("os", "统信 UOS", ["统信", "UOS", "UnionTech"]),
    ("os", "openEuler", ["openEuler"]),
    ("os", "龙蜥 Anolis", ["龙蜥", "Anolis"]),
    ("os", "中科方德 NFS", ["中科方德", "NFSChina", "NFS China"]),
    ("database", "达梦 DM", ["达梦", "Dameng", "DM", "DM7", "DM8"]),
    ("database", "人大金仓 Kingbase", ["人大金仓", "金仓", "Kingbase", "KingbaseES"]),
    ("database", "GaussDB", ["GaussDB", "openGauss"]),
    ("database", "OceanBase", ["OceanBase"]),
    ("database", "PolarDB", ["PolarDB"]),
    ("database", "TiDB", ["TiDB"]),
    ("database", "神通 Oscar", ["神通", "Oscar", "ShenTong"]),
    ("database", "GBase", ["GBase", "南大通用"]),
    ("middleware", "东方通 TongWeb", ["东方通", "TongWeb", "TongTech"]),
    ("middleware", "宝兰德 BES", ["宝兰德", "BES", "BESWeb", "Bessystem"]),
    ("middleware", "金蝶 Apusic", ["金蝶", "Apusic", "Kingdee"]),
    ("middleware", "中创 InforSuite", ["中创", "InforSuite", "Inforbus"]),
    ("manufacturer", "华为 Huawei", ["华为", "Huawei", "xFusion", "超聚变"]),
    ("manufacturer", "浪潮 Inspur", ["浪潮", "Inspur"]),
    ("manufacturer", "新华三 H3C", ["新华三", "H3C"]),
    ("manufacturer", "中兴 ZTE", ["中兴", "ZTE"]),
    ("manufacturer", "曙光 Sugon", ["曙光", "Sugon"]),
    ("manufacturer", "锐捷 Ruijie", ["锐捷", "Ruijie"]),
    ("manufacturer", "迈普 Maipu", ["迈普", "Maipu"]),
    ("manufacturer", "深信服 Sangfor", ["深信服", "Sangfor"]),
    ("manufacturer", "奇安信 Qi-An-Xin", ["奇安信", "Qi-An-Xin", "QiAnXin", "Qianxin"]),
    ("manufacturer", "天融信 Topsec", ["天融信", "Topsec"]),
    ("manufacturer", "启明星辰 Venustech", ["启明星辰", "Venustech"]),
    ("manufacturer", "绿盟 NSFOCUS", ["绿盟", "NSFOCUS"]),
]


def upgrade() -> None:
    metric = sa.table(
        "metric_definition",
        sa.column("code", sa.String),
        sa.column("name_zh", sa.String),
        sa.column("unit", sa.String),
        sa.column("kind", sa.String),
        sa.column("default_interval_s", sa.Integer),
        sa.column("enabled", sa.Boolean),
    )
    op.bulk_insert(
        metric,
        [
            {"code": c, "name_zh": n, "unit": u, "kind": k, "default_interval_s": 60, "enabled": True}
            for c, n, u, k in METRICS
        ],
    )
    entry = sa.table(
        "domestic_list_entry",
        sa.column("list_code", sa.String),
        sa.column("entry", sa.String),
        sa.column("aliases", sa.JSON),
    )
    op.bulk_insert(entry, [{"list_code": l, "entry": e, "aliases": a} for l, e, a in DOMESTIC])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM domestic_list_entry"))
    op.execute(sa.text("DELETE FROM metric_definition"))
