"""Redfish resources → §4 records: server assets, ``hw.*`` metrics and machine-room samples.

Pure functions over the JSON the collector fetched (no I/O), so every rule here is unit-tested
on plain dictionaries. What comes from where:

* **asset** (``server``): the ComputerSystem (``HostName`` else ``Name``, serial, model, power
  state), its Processors (vendor, model, cores, architecture) and the Chassis holding it (serial
  and model when the system lacks them, rack and U position);
* **metrics**: the chassis' ThermalSubsystem / EnvironmentMetrics / PowerSubsystem, and the
  deprecated Thermal / Power only for what the new resources did not give; CPU temperatures from
  each processor's EnvironmentMetrics first;
* **environment** (when the source names a room): the inlet temperature of each chassis as
  ``rack_inlet_temp`` and its power as ``it_power_kw``.

CPU architecture: Redfish can only say ``OEM`` for LoongArch and Sunway (§6.2), so vendor and
model strings are read too; they decide for the domestic architectures the enums cannot express
and whenever the enums say nothing useful.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from app.schemas.enums import CpuArch

AssetStatus = Literal["running", "stopped", "suspended", "error", "unknown"]

# --- CPU architecture ---------------------------------------------------------------------------

#: Redfish ``Processor.InstructionSet`` (DMTF Processor.v1_22_0); ``None`` = says nothing useful
INSTRUCTION_SETS: Mapping[str, CpuArch | None] = {
    "x86-64": "x86_64",
    "ARM-A64": "aarch64",
    "MIPS64": "mips64el",
    "PowerISA": "ppc64le",
    "RV64": "riscv64",
    "IA-64": "other",
    "ARM-A32": "other",
    "MIPS32": "other",
    "RV32": "other",
    # 32-bit x86 is what some BMCs say of any Intel / AMD CPU: let the vendor or the
    # ProcessorArchitecture decide
    "x86": None,
    "OEM": None,
}
#: Redfish ``Processor.ProcessorArchitecture``
ARCHITECTURES: Mapping[str, CpuArch | None] = {
    "x86": "x86_64",
    "ARM": "aarch64",
    "MIPS": "mips64el",
    "Power": "ppc64le",
    "RISC-V": "riscv64",
    "IA-64": "other",
    "OEM": None,
}

_LOONGSON = re.compile(r"loongson|龙芯|loongarch|\bls3[abcde]\d", re.IGNORECASE)
#: Loongson 3A/3B/3C/3D/3E model numbers: the 5000 series and later are LoongArch, before MIPS64
_LOONGSON_GENERATION = re.compile(r"\b(?:ls)?3[abcde]\s?-?(\d)\d{3}", re.IGNORECASE)
_VENDOR_ARCH: Sequence[tuple[re.Pattern[str], CpuArch]] = (
    (re.compile(r"sunway|申威|shenwei|\bsw[-_ ]?64\b|\bsw[-_ ]?\d{3,5}\b", re.IGNORECASE), "sw_64"),
    (
        re.compile(
            r"phytium|飞腾|\bft-?[12]\d{3}|\bs2500\b|\bs5000c?\b|\bd[23]000\b|"
            r"kunpeng|鲲鹏|hisilicon|海思|\bhi16\d\d\b|taishan|"
            r"ampere|\baltra\b|cavium|thunderx|graviton|neoverse|aarch64|armv8|\barm\b",
            re.IGNORECASE,
        ),
        "aarch64",
    ),
    (
        re.compile(
            r"hygon|海光|zhaoxin|兆芯|kaixian|kaisheng|开先|开胜|centaurhauls|"
            r"intel|xeon|\bamd\b|authenticamd|advanced micro devices|\bepyc\b|opteron|x86[-_]64",
            re.IGNORECASE,
        ),
        "x86_64",
    ),
    (re.compile(r"\bpower\s?(?:8|9|10|11)\b|powerpc|ppc64|\bibm\b", re.IGNORECASE), "ppc64le"),
    (re.compile(r"risc-?v|sifive|\brv64", re.IGNORECASE), "riscv64"),
    (re.compile(r"\bmips", re.IGNORECASE), "mips64el"),
)


def arch_from_strings(strings: Iterable[str | None], *, mips_hint: bool = False) -> CpuArch | None:
    """The architecture a CPU's vendor / model strings name, or ``None``.

    Loongson is LoongArch from the 3A5000 / 3C5000 generation on and MIPS64 before; without a
    model number it is LoongArch (what is sold today) unless the enums said MIPS (``mips_hint``).
    Zhaoxin's CPUID vendor string is ``"  Shanghai  "``.
    """
    parts = [s.strip() for s in strings if isinstance(s, str) and s.strip()]
    text = " ".join(parts)
    if not text:
        return None
    if _LOONGSON.search(text):
        generation = _LOONGSON_GENERATION.search(text)
        if generation is not None:
            return "loongarch64" if int(generation.group(1)) >= 5 else "mips64el"
        return "mips64el" if mips_hint and "loongarch" not in text.lower() else "loongarch64"
    if any(p.lower() == "shanghai" for p in parts):
        return "x86_64"
    for pattern, arch in _VENDOR_ARCH:
        if pattern.search(text):
            return arch
    return None


def infer_cpu_arch(
    instruction_set: str | None, architecture: str | None, strings: Iterable[str | None]
) -> CpuArch | None:
    """§6.2 ``cpu_arch`` of one processor.

    LoongArch and Sunway come from the strings whatever the enums say (the enums cannot name
    them: a BMC saying ``MIPS`` of a 3C5000 is wrong); otherwise a meaningful enum decides
    (``InstructionSet`` before ``ProcessorArchitecture``), and the strings only when the enums
    say ``OEM`` or nothing.
    """
    from_enums = INSTRUCTION_SETS.get(instruction_set or "")
    if from_enums is None:
        from_enums = ARCHITECTURES.get(architecture or "")
    from_strings = arch_from_strings(strings, mips_hint=from_enums == "mips64el")
    if from_strings in ("loongarch64", "sw_64"):
        return from_strings
    return from_enums if from_enums is not None else from_strings


# --- small readers ------------------------------------------------------------------------------


def link(resource: Mapping[str, Any] | None, name: str) -> str | None:
    """``resource[name]["@odata.id"]`` when it is a string."""
    if not isinstance(resource, Mapping):
        return None
    value = resource.get(name)
    if isinstance(value, Mapping) and isinstance(value.get("@odata.id"), str):
        return str(value["@odata.id"])
    return None


def links(value: Any) -> list[str]:
    """The ``@odata.id`` strings of a list of references (``Links.Chassis``, ``RelatedItem``)."""
    if not isinstance(value, list):
        return []
    return [
        str(v["@odata.id"]) for v in value if isinstance(v, Mapping) and isinstance(v.get("@odata.id"), str)
    ]


def norm_path(ref: str) -> str:
    """A reference as a comparable path: no scheme/host, no fragment, no trailing slash."""
    path = urlsplit(ref).path if "://" in ref else ref.split("#", 1)[0].split("?", 1)[0]
    return path.rstrip("/") or "/"


def at(resource: Mapping[str, Any] | None, *path: str) -> Any:
    """The value at ``path`` through nested objects, ``None`` where one is missing or not an object."""
    value: Any = resource
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def text(resource: Mapping[str, Any] | None, *path: str) -> str | None:
    """A non-empty string at ``path`` (stripped), else ``None``."""
    value = at(resource, *path)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def number(value: Any) -> float | None:
    """A finite JSON number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    result = float(value)
    return result if math.isfinite(result) else None


def reading(resource: Mapping[str, Any] | None, *path: str) -> float | None:
    """A finite number at ``path``, else ``None`` (a sensor without a reading)."""
    return number(at(resource, *path))


def absent(resource: Mapping[str, Any]) -> bool:
    """``Status.State`` says there is nothing to read (an empty bay, a disabled sensor)."""
    state = text(resource, "Status", "State")
    return state in {"Absent", "Disabled", "UnavailableOffline"}


# --- identities ---------------------------------------------------------------------------------

_JUNK_SERIALS = {
    "",
    "0",
    "none",
    "null",
    "n/a",
    "na",
    "unknown",
    "not specified",
    "not available",
    "default string",
    "to be filled by o.e.m.",
    "system serial number",
    "chassis serial number",
    "0123456789",
    "1234567890",
}
_JUNK_UUIDS = {
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "03000200-0400-0500-0006-000700080009",
}
MAX_ID = 128


def usable_serial(value: str | None) -> str | None:
    """A serial number worth keeping: placeholders such as "To Be Filled By O.E.M." are not."""
    if value is None or value.strip().lower() in _JUNK_SERIALS or set(value.strip()) <= {"0", "X", "x", "-"}:
        return None
    return value.strip()


def usable_uuid(value: str | None) -> str | None:
    if value is None or value.strip().lower() in _JUNK_UUIDS:
        return None
    return value.strip().lower()


def clip_id(value: str, limit: int = MAX_ID) -> str:
    """An identifier within ``limit`` characters (long ones keep a hash of what was cut)."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:12]
    return f"{value[: limit - 13]}~{digest}"


def host_of(base_url: str) -> str:
    return (urlsplit(base_url).hostname or "").lower()


def resource_id(resource: Mapping[str, Any], url: str) -> str:
    return text(resource, "Id") or norm_path(url).rsplit("/", 1)[-1]


def system_asset_id(system: Mapping[str, Any], url: str, bmc_host: str) -> str:
    """The asset id of a server: its serial number, else its SMBIOS UUID, else ``{bmc}:{system Id}``.

    The serial number is what every other record of the same machine (a CMDB, a hypervisor
    listing) is most likely to share; the fallback keeps ids unique across the BMCs of a platform
    (``1`` or ``System.Embedded.1`` are the same on every Dell).
    """
    found = usable_serial(text(system, "SerialNumber")) or usable_uuid(text(system, "UUID"))
    return clip_id(found or f"{bmc_host}:{resource_id(system, url)}")


# --- fetched resources --------------------------------------------------------------------------


@dataclass
class ProcessorData:
    url: str
    body: dict[str, Any]
    environment: dict[str, Any] | None = None


@dataclass
class SystemData:
    url: str
    body: dict[str, Any]
    processors: list[ProcessorData] = field(default_factory=list)

    @property
    def path(self) -> str:
        return norm_path(self.url)


@dataclass
class ChassisData:
    """One chassis and the telemetry resources read from it (``None``: not linked, or not read)."""

    url: str
    body: dict[str, Any]
    #: paths of the systems it holds (from either side's links)
    systems: list[str] = field(default_factory=list)
    thermal_metrics: dict[str, Any] | None = None
    fans: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] | None = None
    power_supply_metrics: list[dict[str, Any]] = field(default_factory=list)
    thermal: dict[str, Any] | None = None
    power: dict[str, Any] | None = None

    @property
    def path(self) -> str:
        return norm_path(self.url)


@dataclass(frozen=True)
class SensorValue:
    """One reading and the systems it belongs to (empty: every system of the chassis)."""

    value: float
    sensor: str = ""
    related: tuple[str, ...] = ()


@dataclass
class ChassisReadings:
    inlet: SensorValue | None = None
    power_w: SensorValue | None = None
    cpu_temps: list[SensorValue] = field(default_factory=list)
    fans: list[SensorValue] = field(default_factory=list)

    def complete_thermal(self) -> bool:
        return self.inlet is not None and bool(self.fans)


_INLET = re.compile(r"inlet|intake", re.IGNORECASE)
_CPU = re.compile(r"\bcpu\s?\d*\b|processor", re.IGNORECASE)


def _related(item: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(norm_path(r) for r in links(item.get("RelatedItem")))


def readings_from_new(chassis: ChassisData) -> ChassisReadings:
    """What ThermalSubsystem, EnvironmentMetrics and PowerSubsystem of a chassis say."""
    out = ChassisReadings()
    metrics = chassis.thermal_metrics
    inlet = reading(metrics, "TemperatureSummaryCelsius", "Intake", "Reading")
    rows = metrics.get("TemperatureReadingsCelsius") if isinstance(metrics, Mapping) else None
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, Mapping):
            continue
        value, name = number(row.get("Reading")), text(row, "DeviceName") or ""
        if value is None:
            continue
        if inlet is None and _INLET.search(name):
            inlet = value
        elif _CPU.search(name) and not _INLET.search(name):
            out.cpu_temps.append(SensorValue(value, name))
    if inlet is not None:
        out.inlet = SensorValue(inlet, "Intake")
    for fan in chassis.fans:
        rpm = reading(fan, "SpeedPercent", "SpeedRPM")
        if rpm is not None and rpm >= 0 and not absent(fan):
            out.fans.append(SensorValue(rpm, text(fan, "Id") or text(fan, "Name") or "fan"))
    env = chassis.environment
    if not out.fans and isinstance(env, Mapping) and isinstance(env.get("FanSpeedsPercent"), list):
        for row in env["FanSpeedsPercent"]:
            rpm = reading(row, "SpeedRPM")
            if rpm is not None and rpm >= 0:
                out.fans.append(SensorValue(rpm, text(row, "DeviceName") or "fan"))
    power = reading(env, "PowerWatts", "Reading")
    if power is None and chassis.power_supply_metrics:
        inputs = [reading(m, "InputPowerWatts", "Reading") for m in chassis.power_supply_metrics]
        known = [v for v in inputs if v is not None]
        power = sum(known) if known else None
    if power is not None and power >= 0:
        out.power_w = SensorValue(power)
    return out


def readings_from_legacy(chassis: ChassisData) -> ChassisReadings:
    """What the deprecated Thermal and Power resources of a chassis say."""
    out = ChassisReadings()
    thermal = chassis.thermal or {}
    temps = thermal.get("Temperatures")
    for item in temps if isinstance(temps, list) else []:
        if not isinstance(item, Mapping) or absent(item):
            continue
        value = number(item.get("ReadingCelsius"))
        name = text(item, "Name") or text(item, "MemberId") or "temp"
        context = text(item, "PhysicalContext")
        if value is None:
            continue
        if context == "Intake" or _INLET.search(name):
            if out.inlet is None:
                out.inlet = SensorValue(value, name, _related(item))
        elif context == "CPU" or _CPU.search(name):
            out.cpu_temps.append(SensorValue(value, name, _related(item)))
    fans = thermal.get("Fans")
    for item in fans if isinstance(fans, list) else []:
        if not isinstance(item, Mapping) or absent(item):
            continue
        # Thermal 1.0 had ReadingRPM; later versions Reading with ReadingUnits
        rpm = number(item.get("ReadingRPM"))
        if rpm is None and text(item, "ReadingUnits") in (None, "RPM"):
            rpm = number(item.get("Reading"))
        if rpm is not None and rpm >= 0:
            name = text(item, "Name") or text(item, "FanName") or text(item, "MemberId") or "fan"
            out.fans.append(SensorValue(rpm, name, _related(item)))
    controls = (chassis.power or {}).get("PowerControl")
    for item in controls if isinstance(controls, list) else []:
        if isinstance(item, Mapping) and not absent(item):
            watts = number(item.get("PowerConsumedWatts"))
            if watts is not None and watts >= 0:
                out.power_w = SensorValue(watts, text(item, "Name") or "", _related(item))
                break
    return out


def chassis_readings(chassis: ChassisData) -> ChassisReadings:
    """New resources first; the deprecated ones fill in only what the new ones lacked."""
    new, old = readings_from_new(chassis), readings_from_legacy(chassis)
    return ChassisReadings(
        inlet=new.inlet or old.inlet,
        power_w=new.power_w or old.power_w,
        cpu_temps=new.cpu_temps or old.cpu_temps,
        fans=new.fans or old.fans,
    )


def _owners(value: SensorValue, systems: Sequence[str]) -> list[str]:
    """The systems a reading belongs to: those its RelatedItem names, else all of the chassis."""
    named = [s for s in systems if any(r == s or r.startswith(s + "/") for r in value.related)]
    return named or list(systems)


# --- records ------------------------------------------------------------------------------------

_POWER_STATES: Mapping[str, AssetStatus] = {
    "On": "running",
    "PoweringOff": "running",
    "Off": "stopped",
    # a transition keeps the state it is leaving: §6.3 has no "starting" / "stopping"
    "PoweringOn": "stopped",
    "Paused": "suspended",
}
SERVER_TYPES = frozenset({"Physical", "PhysicallyPartitioned"})


def server_status(system: Mapping[str, Any], chassis: Sequence[ChassisData]) -> AssetStatus:
    """§6.3 status from ``PowerState`` (the chassis' if the system has none); critical health → error."""
    if text(system, "Status", "Health") == "Critical":
        return "error"
    state = text(system, "PowerState") or next(
        (s for c in chassis if (s := text(c.body, "PowerState"))), None
    )
    return _POWER_STATES.get(state or "", "unknown")


def _cpus(system: SystemData) -> list[dict[str, Any]]:
    """Present CPUs (not FPGAs, GPUs or empty sockets)."""
    return [
        p.body
        for p in system.processors
        if text(p.body, "ProcessorType") in (None, "CPU") and not absent(p.body)
    ]


def cpu_fields(system: SystemData) -> dict[str, Any]:
    """cpu_arch / cpu_vendor / cpu_model / cpu_cores / vcpus (logical processors) of a system.

    The socket count (``ProcessorSummary.Count``) has no §4.2 field; ``tags`` is not used for it
    because tags are replaced whole and would erase what another reporter tagged the server with.
    """
    summary = system.body.get("ProcessorSummary")
    summary = summary if isinstance(summary, Mapping) else {}
    cpus = _cpus(system)
    out: dict[str, Any] = {}
    arch: CpuArch | None = None
    for cpu in cpus:
        arch = infer_cpu_arch(
            text(cpu, "InstructionSet"),
            text(cpu, "ProcessorArchitecture"),
            [text(cpu, "Manufacturer"), text(cpu, "Model"), text(cpu, "ProcessorId", "VendorId")],
        )
        if arch is not None:
            break
    model = text(summary, "Model") or next((m for c in cpus if (m := text(c, "Model"))), None)
    if arch is None:
        arch = arch_from_strings([model])
    vendor = next((v for c in cpus if (v := text(c, "Manufacturer"))), None)
    vendor = vendor or next((v for c in cpus if (v := text(c, "ProcessorId", "VendorId"))), None)
    cores = _count(summary.get("CoreCount"))
    if cores is None and cpus:
        counts = [_count(c.get("TotalCores")) for c in cpus]
        cores = sum(n for n in counts if n is not None) if any(n is not None for n in counts) else None
    threads = _count(summary.get("LogicalProcessorCount"))
    if threads is None and cpus:
        counts = [_count(c.get("TotalThreads")) for c in cpus]
        threads = sum(n for n in counts if n is not None) if any(n is not None for n in counts) else None
    for name, value in (
        ("cpu_arch", arch),
        ("cpu_vendor", vendor[:256] if vendor else None),
        ("cpu_model", model[:256] if model else None),
        ("cpu_cores", cores),
        ("vcpus", threads),
    ):
        if value is not None:
            out[name] = value
    return out


def _count(value: Any) -> int | None:
    """A count as Redfish gives it (an integer; sushy-emulator sends strings of digits)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        return None
    return value


def _u_height(chassis: Mapping[str, Any]) -> int | None:
    """Rack units from ``HeightMm`` (1U = 44.45 mm) for rack-mount chassis."""
    height = number(chassis.get("HeightMm"))
    if height is None or text(chassis, "ChassisType") not in ("RackMount", "Enclosure", "StandAlone"):
        return None
    units = round(height / 44.45)
    return units if 1 <= units <= 100 and abs(height - units * 44.45) < 10 else None


def server_record(
    system: SystemData,
    chassis: Sequence[ChassisData],
    *,
    asset_id: str,
    bmc_host: str,
    room_code: str | None,
) -> dict[str, Any]:
    """One §4.2 ``server`` record (merge-patch: only what the BMC says is sent)."""
    body = system.body
    record: dict[str, Any] = {
        "asset_id": asset_id,
        "asset_type": "server",
        "name": (text(body, "HostName") or text(body, "Name") or resource_id(body, system.url))[:256],
        "status": server_status(body, chassis),
    }
    # a chassis speaks for the server only when it holds this one system
    own = [c for c in chassis if c.systems == [system.path]]
    for field_name, key in (
        ("manufacturer", "Manufacturer"),
        ("model", "Model"),
        ("serial_number", "SerialNumber"),
        ("asset_tag", "AssetTag"),
    ):
        value = text(body, key) or next((v for c in own if (v := text(c.body, key))), None)
        if field_name == "serial_number":
            value = usable_serial(value)
        if value is not None:
            record[field_name] = value[:256]
    for c in own:
        rack = text(c.body, "Location", "Placement", "Rack")
        if rack and "rack_code" not in record:
            record["rack_code"] = clip_id(rack)
            offset = _count(at(c.body, "Location", "Placement", "RackOffset"))
            units = text(c.body, "Location", "Placement", "RackOffsetUnits")
            if units in (None, "EIA_310") and offset is not None and offset <= 100:
                record["u_position"] = offset
        height = _u_height(c.body)
        if height is not None and "u_height" not in record:
            record["u_height"] = height
    record.update(cpu_fields(system))
    memory = reading(body, "MemorySummary", "TotalSystemMemoryGiB")
    if memory is not None and memory >= 0:
        record["memory_mib"] = round(memory * 1024)
    try:
        ipaddress.ip_address(bmc_host)
    except ValueError:
        pass
    else:
        record["ip_addresses"] = [{"ip": bmc_host, "kind": "mgmt"}]
    if room_code:
        record["room_code"] = room_code
    return record


@dataclass(frozen=True)
class Telemetry:
    """The ``hw.*`` values of one server (``(code, labels) → value``), first reading wins."""

    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def put(self, code: str, value: float, sensor: str | None = None) -> None:
        labels = (("sensor", sensor[:256]),) if sensor else ()
        self.values.setdefault((code, labels), value)


def server_telemetry(system: SystemData, chassis: Sequence[tuple[ChassisData, ChassisReadings]]) -> Telemetry:
    """A server's ``hw.temp.inlet`` / ``hw.power.watts`` (no labels), ``hw.temp.cpu`` and
    ``hw.fan.rpm`` (label ``sensor``).

    Chassis power goes to a server only when the reading can be attributed (one system in the
    chassis, or the Power resource's RelatedItem names it): an enclosure's power is not each
    blade's. CPU temperatures of the processors' own EnvironmentMetrics win over chassis sensors.
    """
    out = Telemetry()
    for processor in system.processors:
        value = reading(processor.environment, "TemperatureCelsius", "Reading")
        if value is not None:
            out.put("hw.temp.cpu", value, resource_id(processor.body, processor.url))
    has_cpu = bool(out.values)
    me = system.path
    for data, found in chassis:
        if found.inlet is not None and me in _owners(found.inlet, data.systems):
            out.put("hw.temp.inlet", found.inlet.value)
        if found.power_w is not None:
            owners = _owners(found.power_w, data.systems)
            if owners == [me]:
                out.put("hw.power.watts", found.power_w.value)
        if not has_cpu:
            for item in found.cpu_temps:
                if me in _owners(item, data.systems):
                    out.put("hw.temp.cpu", item.value, item.sensor)
        for item in found.fans:
            if me in _owners(item, data.systems):
                out.put("hw.fan.rpm", item.value, item.sensor)
    return out


def metric_records(asset_id: str, telemetry: Telemetry, ts: str) -> list[dict[str, Any]]:
    records = []
    for (code, labels), value in telemetry.values.items():
        record: dict[str, Any] = {"metric": code, "ts": ts, "value": value, "asset_id": asset_id}
        if labels:
            record["labels"] = dict(labels)
        records.append(record)
    return records


def environment_records(
    point_prefix: str,
    chassis: ChassisData,
    found: ChassisReadings,
    *,
    room_code: str,
    ts: str,
    interval_s: int,
) -> list[dict[str, Any]]:
    """``rack_inlet_temp`` (℃) and ``it_power_kw`` (kW) points of one chassis in the source's room."""
    base: dict[str, Any] = {"room_code": room_code, "ts": ts, "interval_s": max(1, min(interval_s, 86_400))}
    rack = text(chassis.body, "Location", "Placement", "Rack")
    if rack:
        base["rack_code"] = clip_id(rack)
    records = []
    prefix = clip_id(point_prefix, MAX_ID - 10)
    if found.inlet is not None:
        records.append(
            {
                **base,
                "point_code": f"{prefix}:inlet",
                "point_type": "rack_inlet_temp",
                "value": found.inlet.value,
                "position": "rack_inlet",
            }
        )
    if found.power_w is not None:
        records.append(
            {
                **base,
                "point_code": f"{prefix}:it_power",
                "point_type": "it_power_kw",
                "value": round(found.power_w.value / 1000, 6),
            }
        )
    return records


def chassis_point_prefix(chassis: ChassisData, system_ids: Mapping[str, str], bmc_host: str) -> str:
    """Point codes of a chassis: its one server's asset id, else its own serial / UUID / ``bmc:Id``."""
    if len(chassis.systems) == 1 and chassis.systems[0] in system_ids:
        return system_ids[chassis.systems[0]]
    body = chassis.body
    found = usable_serial(text(body, "SerialNumber")) or usable_uuid(text(body, "UUID"))
    return found or f"{bmc_host}:{resource_id(body, chassis.url)}"
