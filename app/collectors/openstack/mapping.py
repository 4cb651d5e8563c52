"""OpenStack answers → §4 records (pure functions, no I/O).

Nova servers become ``vm`` assets (``bare_metal`` on an Ironic node), hypervisors become
``hypervisor_host`` assets named by ``hypervisor_hostname`` — the name a server's
``OS-EXT-SRV-ATTR:hypervisor_hostname`` and a Placement resource provider use too, so the three
join without a lookup — and Cinder volumes become ``volume`` assets. Placement inventories and
usages become the host capacity metrics of §6.5. A mapper returns ``None`` only for an item it
cannot identify (not an object, no id); every other field it cannot read is left out, because a
record dropped from a full run would retire the asset.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from app.schemas.types import uscc_is_valid

#: Nova ``status`` → §6.3 (domain research §5.4; the list is nova ``api-ref/source/servers.inc``)
NOVA_STATUS = {
    "ACTIVE": "running",
    "REBOOT": "running",
    "HARD_REBOOT": "running",
    "PASSWORD": "running",
    "SHUTOFF": "stopped",
    "SHELVED": "stopped",
    "SHELVED_OFFLOADED": "stopped",
    "PAUSED": "suspended",
    "SUSPENDED": "suspended",
    "BUILD": "building",
    "REBUILD": "building",
    "MIGRATING": "migrating",
    "RESIZE": "migrating",
    "VERIFY_RESIZE": "migrating",
    "REVERT_RESIZE": "migrating",
    "ERROR": "error",
    "DELETED": "deleted",
    "SOFT_DELETED": "deleted",
}

#: Cinder volume ``status`` → §6.3: attached volumes run, unattached ones are idle ("stopped")
CINDER_STATUS = {
    "in-use": "running",
    "available": "stopped",
    "creating": "building",
    "downloading": "building",
    "reserved": "building",
    "attaching": "building",
    "detaching": "running",
    "extending": "running",
    "uploading": "running",
    "backing-up": "running",
    "restoring-backup": "building",
    "retyping": "migrating",
    "maintenance": "unknown",
    "awaiting-transfer": "stopped",
    "deleting": "deleted",
    "deleted": "deleted",
}

#: Nova / libvirt architecture names → §6.2
ARCH = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "x86-64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "loongarch64": "loongarch64",
    "mips64el": "mips64el",
    "mips64": "mips64el",
    "sw_64": "sw_64",
    "sw64": "sw_64",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64le",
    "riscv64": "riscv64",
}
#: Nova knows no LoongArch or Sunway (domain research §5.2): read them from vendor / model strings
_LOONGSON = re.compile(r"loongson|龙芯|loongarch|3[acd][56]000", re.IGNORECASE)
#: Loongson 3A5000 / 3C5000 / 3D5000 and later are LoongArch, earlier ones MIPS-compatible
_LOONGARCH_MODEL = re.compile(r"3[acd][56]000", re.IGNORECASE)
_SUNWAY = re.compile(r"sunway|申威|sw_?64|sw\d{3,4}", re.IGNORECASE)

#: ``hypervisor_type`` (lower-cased) → §6.4; Nova reports libvirt/KVM hosts as ``QEMU``
VIRTUALIZATION = {
    "qemu": "kvm",
    "kvm": "kvm",
    "vmware vcenter server": "vmware_esxi",
    "vmware": "vmware_esxi",
    "xen": "xen",
    "xenserver": "xen",
    "xenapi": "xen",
    "hyper-v": "hyperv",
    "hyperv": "hyperv",
    "ironic": "bare_metal",
    "powervm": "powervm",
    "phyp": "powervm",
    "lxc": "container",
    "docker": "container",
    "zun": "container",
}

#: Placement resource classes → (total metric, used metric) of the §6.5 catalogue
CAPACITY = {
    "VCPU": ("host.vcpu.total", "host.vcpu.used"),
    "MEMORY_MB": ("host.mem.total_mib", "host.mem.used_mib"),
}

UNIT_FIELDS = ("using_unit", "using_unit_uscc", "business_system")


def obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one (fields of the wrong type are ignored)."""
    return value if isinstance(value, dict) else {}


def text(value: Any, limit: int = 256) -> str | None:
    """A non-empty string cut to ``limit`` characters, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    out = str(value).strip()
    return out[:limit] if out else None


def record_id(value: Any) -> str | None:
    """An id usable as ``asset_id`` (1–128 characters), else ``None``."""
    out = text(value, 10_000)
    return out if out is not None and len(out) <= 128 else None


def number(value: Any) -> int | None:
    """A non-negative integer (Nova and Cinder sizes), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and 0 <= value <= 2**31 - 1:
        return value
    return None


def utc_time(value: Any) -> str | None:
    """An OpenStack time (``2013-09-03T04:01:32Z``, or naive ``…12.774549`` meaning UTC) as RFC 3339."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat()


def cpu_arch(arch: Any, *hints: Any) -> str | None:
    """§6.2 code from an architecture name, falling back to vendor / model strings."""
    if isinstance(arch, str) and arch.strip().lower() in ARCH:
        found = ARCH[arch.strip().lower()]
        joined = " ".join(h for h in hints if isinstance(h, str))
        # a Loongson 3A5000+ may still be described as MIPS by old libvirt
        return "loongarch64" if found == "mips64el" and _LOONGARCH_MODEL.search(joined) else found
    joined = " ".join(h for h in hints if isinstance(h, str))
    if _LOONGSON.search(joined):
        return "loongarch64"
    if _SUNWAY.search(joined):
        return "sw_64"
    if isinstance(arch, str) and arch.strip():
        return "other"
    return None


def virtualization(hypervisor_type: Any) -> str | None:
    if not isinstance(hypervisor_type, str) or not hypervisor_type.strip():
        return None
    return VIRTUALIZATION.get(hypervisor_type.strip().lower(), "other")


def _tags(**values: Any) -> dict[str, str] | None:
    tags = {key: out for key, value in values.items() if (out := text(value)) is not None}
    return tags or None


def unit_fields(*sources: Any) -> dict[str, str]:
    """``using_unit`` / ``using_unit_uscc`` / ``business_system`` from the first source naming each.

    Sources are the VM's own metadata (a provider tags its VMs), then ``options.projects[project]``.
    A USCC that fails its check digit is left out: the ingest would refuse the whole record.
    """
    out: dict[str, str] = {}
    for source in sources:
        if not isinstance(source, dict):
            continue
        for name in UNIT_FIELDS:
            value = text(source.get(name))
            if name in out or value is None:
                continue
            if name == "using_unit_uscc" and not uscc_is_valid(value):
                continue
            out[name] = value
    return out


@dataclass(frozen=True)
class HostInfo:
    """What a server takes from its hypervisor."""

    cpu_arch: str | None
    virtualization: str | None

    @classmethod
    def of(cls, record: dict[str, Any]) -> HostInfo:
        """From the host's own asset record."""
        return cls(cpu_arch=record.get("cpu_arch"), virtualization=record.get("virtualization"))


def cpu_info_of(hypervisor: dict[str, Any]) -> dict[str, Any]:
    """``cpu_info`` as an object (a JSON string before microversion 2.28; absent from 2.88)."""
    info = hypervisor.get("cpu_info")
    if isinstance(info, str):
        try:
            info = orjson.loads(info)
        except orjson.JSONDecodeError:
            return {}
    return info if isinstance(info, dict) else {}


def hypervisor_record(hypervisor: Any) -> dict[str, Any] | None:
    """One ``/os-hypervisors/detail`` item → a ``hypervisor_host`` asset."""
    if not isinstance(hypervisor, dict):
        return None
    asset_id = record_id(hypervisor.get("hypervisor_hostname"))
    if asset_id is None:
        return None
    state, status = hypervisor.get("state"), hypervisor.get("status")
    record: dict[str, Any] = {
        "asset_id": asset_id,
        "asset_type": "hypervisor_host",
        "name": asset_id[:256],
        "status": (
            "error"
            if state == "down"
            else "stopped"
            if status == "disabled"
            else "running"
            if state == "up"
            else "unknown"
        ),
    }
    info = cpu_info_of(hypervisor)
    arch = cpu_arch(info.get("arch"), info.get("vendor"), info.get("model"))
    if arch is not None:
        record["cpu_arch"] = arch
    for field, value in (("cpu_vendor", info.get("vendor")), ("cpu_model", info.get("model"))):
        if text(value) is not None:
            record[field] = text(value)
    topology = obj(info.get("topology"))
    sockets, cores = number(topology.get("sockets")), number(topology.get("cores"))
    cpu_cores = sockets * cores if sockets and cores else number(hypervisor.get("vcpus"))
    if cpu_cores:
        record["cpu_cores"] = cpu_cores
    if number(hypervisor.get("memory_mb")) is not None:
        record["memory_mib"] = number(hypervisor.get("memory_mb"))
    if number(hypervisor.get("local_gb")) is not None:
        record["disk_gib"] = float(number(hypervisor.get("local_gb")) or 0)
    kind = virtualization(hypervisor.get("hypervisor_type"))
    if kind is not None:
        record["virtualization"] = kind
    host_ip = text(hypervisor.get("host_ip"), 64)
    if host_ip is not None and len(host_ip) >= 2:
        record["ip_addresses"] = [{"ip": host_ip, "kind": "mgmt"}]
    service = obj(hypervisor.get("service"))
    tags = _tags(
        hypervisor_type=hypervisor.get("hypervisor_type"),
        hypervisor_version=hypervisor.get("hypervisor_version"),
        service_host=service.get("host"),
        hypervisor_id=hypervisor.get("id"),
    )
    if tags:
        record["tags"] = tags
    return record


def _ip_addresses(addresses: Any) -> list[dict[str, str]]:
    found: dict[str, str] = {}
    if not isinstance(addresses, dict):
        return []
    for entries in addresses.values():
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict):
                continue
            ip = text(entry.get("addr"), 64)
            if ip is None or len(ip) < 2:
                continue
            kind = "floating" if entry.get("OS-EXT-IPS:type") == "floating" else "business"
            if found.get(ip) != "floating":
                found[ip] = kind
    return [{"ip": ip, "kind": kind} for ip, kind in found.items()][:256]


def server_record(
    server: Any,
    hosts: dict[str, HostInfo],
    flavors: dict[str, dict[str, Any]],
    projects: dict[str, Any],
) -> dict[str, Any] | None:
    """One ``/servers/detail`` item → a ``vm`` asset (``bare_metal`` on an Ironic node)."""
    if not isinstance(server, dict):
        return None
    asset_id = record_id(server.get("id"))
    if asset_id is None:
        return None
    status = server.get("status")
    hostname = record_id(server.get("OS-EXT-SRV-ATTR:hypervisor_hostname"))
    host = hosts.get(hostname) if hostname else None
    bare_metal = host is not None and host.virtualization == "bare_metal"
    record: dict[str, Any] = {
        "asset_id": asset_id,
        "asset_type": "bare_metal" if bare_metal else "vm",
        "name": text(server.get("name")) or asset_id,
        "status": NOVA_STATUS.get(status.upper(), "unknown") if isinstance(status, str) else "unknown",
    }
    # flavor embedded since microversion 2.47; before that only its id (looked up in /flavors/detail)
    flavor = obj(server.get("flavor"))
    flavor_id = text(flavor.get("id"))
    if "vcpus" not in flavor and flavor_id is not None and flavor_id in flavors:
        flavor = flavors[flavor_id]
    if number(flavor.get("vcpus")):
        record["vcpus"] = number(flavor.get("vcpus"))
    if number(flavor.get("ram")) is not None:
        record["memory_mib"] = number(flavor.get("ram"))
    disk = number(flavor.get("disk"))
    if disk is not None:
        record["disk_gib"] = float(disk + (number(flavor.get("ephemeral")) or 0))
    image = obj(server.get("image"))
    properties = obj(image.get("properties"))
    arch = cpu_arch(properties.get("architecture")) or (host.cpu_arch if host else None)
    if arch is not None:
        record["cpu_arch"] = arch
    if text(properties.get("os_distro")) is not None:
        record["os_name"] = text(properties.get("os_distro"))
        if text(properties.get("os_version"), 128) is not None:
            record["os_version"] = text(properties.get("os_version"), 128)
    if host is not None and host.virtualization is not None:
        record["virtualization"] = host.virtualization
    if hostname is not None or "OS-EXT-SRV-ATTR:hypervisor_hostname" in server:
        record["host_asset_id"] = hostname  # an admin view without a host (shelved, deleted) clears it
    ips = _ip_addresses(server.get("addresses"))
    if ips:
        record["ip_addresses"] = ips
    updated = utc_time(server.get("updated"))
    if updated is not None:
        record["source_updated_at"] = updated
    project = text(server.get("tenant_id"))
    record.update(unit_fields(server.get("metadata"), projects.get(project or "")))
    tags = _tags(
        project_id=project,
        availability_zone=server.get("OS-EXT-AZ:availability_zone"),
        flavor=flavor.get("original_name") or flavor.get("name"),
        instance_name=server.get("OS-EXT-SRV-ATTR:instance_name"),
        power_state=server.get("OS-EXT-STS:power_state"),
    )
    if tags:
        record["tags"] = tags
    return record


def volume_record(volume: Any, projects: dict[str, Any]) -> dict[str, Any] | None:
    """One Cinder ``/volumes/detail`` item → a ``volume`` asset."""
    if not isinstance(volume, dict):
        return None
    asset_id = record_id(volume.get("id"))
    if asset_id is None:
        return None
    status = volume.get("status")
    record: dict[str, Any] = {
        "asset_id": asset_id,
        "asset_type": "volume",
        "name": text(volume.get("name")) or asset_id,
        "status": (
            "error"
            if isinstance(status, str) and status.startswith("error")
            else CINDER_STATUS.get(status, "unknown")
            if isinstance(status, str)
            else "unknown"
        ),
    }
    size = number(volume.get("size"))
    if size is not None:
        record["capacity_gib"] = float(size)
    updated = utc_time(volume.get("updated_at")) or utc_time(volume.get("created_at"))
    if updated is not None:
        record["source_updated_at"] = updated
    project = text(volume.get("os-vol-tenant-attr:tenant_id"))
    record.update(unit_fields(volume.get("metadata"), projects.get(project or "")))
    attachments = volume.get("attachments")
    servers = sorted(
        {
            str(a["server_id"])
            for a in (attachments if isinstance(attachments, list) else [])
            if isinstance(a, dict) and text(a.get("server_id"))
        }
    )
    tags = _tags(
        project_id=project,
        availability_zone=volume.get("availability_zone"),
        volume_type=volume.get("volume_type"),
        bootable=volume.get("bootable"),
        attached_to=",".join(servers),
        backend_host=volume.get("os-vol-host-attr:host"),
    )
    if tags:
        record["tags"] = tags
    return record


def capacity(inventory: Any) -> float | None:
    """Schedulable capacity of one inventory: ``(total − reserved) × allocation_ratio``."""
    if not isinstance(inventory, dict):
        return None
    values = [inventory.get("total"), inventory.get("reserved", 0), inventory.get("allocation_ratio", 1.0)]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    total, reserved, ratio = (float(v) for v in values)
    return max(0.0, (total - reserved) * ratio)


def capacity_metrics(
    providers: list[dict[str, Any]],
    inventories: dict[str, dict[str, Any]],
    usages: dict[str, dict[str, Any]],
    ts: str,
) -> list[dict[str, Any]]:
    """Host capacity metrics, one set per root resource provider (its tree summed).

    With NUMA in Placement the ``VCPU`` / ``MEMORY_MB`` inventories sit on child providers; the
    root is the compute node, named like the hypervisor, which is the metric's ``asset_id``.
    """
    by_uuid = {str(p["uuid"]): p for p in providers if isinstance(p.get("uuid"), str)}
    totals: dict[str, dict[str, float]] = {}
    for uuid, provider in by_uuid.items():
        root = provider.get("root_provider_uuid")
        root_uuid = root if isinstance(root, str) and root in by_uuid else uuid
        sums = totals.setdefault(root_uuid, {})
        for resource_class, (total_code, used_code) in CAPACITY.items():
            cap = capacity((inventories.get(uuid) or {}).get(resource_class))
            if cap is None:
                continue
            sums[total_code] = sums.get(total_code, 0.0) + cap
            used = (usages.get(uuid) or {}).get(resource_class, 0)
            if isinstance(used, int | float) and not isinstance(used, bool):
                sums[used_code] = sums.get(used_code, 0.0) + float(used)
    records = []
    for root_uuid, sums in sorted(totals.items()):
        asset_id = record_id(by_uuid[root_uuid].get("name"))
        if asset_id is None:
            continue
        records += [
            {"metric": c, "ts": ts, "value": v, "asset_id": asset_id} for c, v in sorted(sums.items())
        ]
    return records
