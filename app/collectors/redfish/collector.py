"""Source type ``redfish`` (§8 item 4): physical servers and their sensors from a BMC.

A run reads the service root (logging in where a SessionService is offered, see
:mod:`.client`), every ComputerSystem with its Processors, and every Chassis holding a system
with its ThermalSubsystem / EnvironmentMetrics / PowerSubsystem — the deprecated Thermal / Power
only for what those lacked. The session is closed before anything is ingested, then one page of
``server`` assets, one of ``hw.*`` metrics and, when ``options.room_code`` names a room the
platform reported, one of ``rack_inlet_temp`` / ``it_power_kw`` samples are emitted
(:mod:`.mapping` says what comes from where).

What fails the run, and what is only skipped: the service root, the Systems collection and each
system are the snapshot — if one cannot be read the run fails (a full run that left a server out
would retire it). Processors, chassis and sensor resources only add detail: an HTTP error or a
malformed answer there is skipped and counted (``ctx.skip``), and the fields it would have given
keep their stored values. A transport failure (timeouts, refused connections, 429 / 503 after
every retry) fails the run wherever it happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from app.collectors.base import Collector, RunContext, SourceConfig, SourceError
from app.collectors.errors import SourceDataError, SourceHTTPError
from app.collectors.redfish.client import RedfishClient, redfish_credentials
from app.collectors.redfish.mapping import (
    SERVER_TYPES,
    ChassisData,
    ChassisReadings,
    ProcessorData,
    SystemData,
    absent,
    at,
    chassis_point_prefix,
    chassis_readings,
    environment_records,
    host_of,
    link,
    links,
    metric_records,
    norm_path,
    readings_from_new,
    resource_id,
    server_record,
    server_telemetry,
    system_asset_id,
    text,
)

T = TypeVar("T")
MAX_CONCURRENCY = 16


def _bad(name: str, why: str) -> SourceError:
    return SourceError(f"redfish 选项 {name} 无效：{why} (invalid option {name})")


@dataclass(frozen=True)
class RedfishOptions:
    """``options`` of a redfish source, checked when the collector is built (no I/O)."""

    room_code: str | None
    use_session: bool
    concurrency: int

    @classmethod
    def of(cls, config: SourceConfig) -> RedfishOptions:
        options = config.options
        room = options.get("room_code")
        if room is not None and not (isinstance(room, str) and 1 <= len(room) <= 128):
            raise _bad("room_code", "应为 1–128 字符的机房编码")
        use_session = options.get("use_session", True)
        if not isinstance(use_session, bool):
            raise _bad("use_session", "应为 true 或 false")
        concurrency = options.get("concurrency", 4)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int):
            raise _bad("concurrency", f"应为 1–{MAX_CONCURRENCY} 的整数")
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise _bad("concurrency", f"应为 1–{MAX_CONCURRENCY} 的整数")
        return cls(room_code=room, use_session=use_session, concurrency=concurrency)


@dataclass
class Inventory:
    """What one run read from the service."""

    systems: list[SystemData]
    chassis: list[ChassisData]
    read_at: datetime


class RedfishReader:
    """Walks one service for one run (the policy on errors is in the module docstring)."""

    def __init__(self, client: RedfishClient, ctx: RunContext, *, telemetry: bool) -> None:
        self.client = client
        self.ctx = ctx
        self.telemetry = telemetry

    async def optional(self, what: Callable[[], Awaitable[T]], where: str) -> T | None:
        """A detail resource: an HTTP error or a malformed answer is skipped and counted."""
        try:
            return await what()
        except (SourceHTTPError, SourceDataError) as exc:
            self.ctx.skip(f"{where}: {exc}（已跳过 skipped）")
            return None

    async def get(self, ref: str) -> dict[str, Any] | None:
        return await self.optional(lambda: self.client.get(ref), ref)

    async def members(self, ref: str) -> list[str]:
        return await self.optional(lambda: self.client.members(ref), ref) or []

    async def each(self, items: list[Any], read: Callable[[Any], Coroutine[Any, Any, T]]) -> list[T]:
        """``read`` over ``items`` concurrently (the client bounds requests); one failure cancels all."""
        try:
            async with asyncio.TaskGroup() as group:
                tasks: list[asyncio.Task[T]] = [group.create_task(read(item)) for item in items]
        except BaseExceptionGroup as failed:
            # the runner expects the SourceError itself (its message is the run's error)
            raise failed.exceptions[0] from None
        return [t.result() for t in tasks]

    # --- systems -----------------------------------------------------------------------------
    async def inventory(self) -> Inventory:
        root = await self.client.open()
        systems_ref = link(root, "Systems")
        if systems_ref is None:
            raise SourceDataError("服务根没有 Systems 链接 (the service root links no Systems)")
        systems = await self.each(await self.client.members(systems_ref), self.system)
        chassis = await self.chassis(root, systems)
        return Inventory(systems=systems, chassis=chassis, read_at=datetime.now(UTC))

    async def system(self, ref: str) -> SystemData:
        data = SystemData(url=self.client.url(ref), body=await self.client.get(ref))
        processors_ref = link(data.body, "Processors")
        if processors_ref is not None:
            refs = await self.members(processors_ref)
            bodies = await self.each(refs, self.get)
            data.processors = [
                ProcessorData(url=self.client.url(member), body=body)
                for member, body in zip(refs, bodies, strict=True)
                if body is not None
            ]
            if self.telemetry:
                await self.each(data.processors, self.processor_environment)
        return data

    async def processor_environment(self, processor: ProcessorData) -> None:
        env = link(processor.body, "EnvironmentMetrics")
        if (
            env is not None
            and text(processor.body, "ProcessorType") in (None, "CPU")
            and not absent(processor.body)
        ):
            processor.environment = await self.get(env)

    # --- chassis -----------------------------------------------------------------------------
    async def chassis(self, root: dict[str, Any], systems: list[SystemData]) -> list[ChassisData]:
        """Every chassis the collection or a system names, with the systems it holds."""
        refs: dict[str, str] = {}
        collection = link(root, "Chassis")
        for ref in await self.members(collection) if collection is not None else []:
            refs.setdefault(norm_path(ref), ref)
        for system in systems:
            for ref in links(at(system.body, "Links", "Chassis")):
                refs.setdefault(norm_path(ref), ref)
        bodies = await self.each(list(refs.values()), self.get)
        known = [s.path for s in systems]
        found: list[ChassisData] = []
        for ref, body in zip(refs.values(), bodies, strict=True):
            if body is None:
                continue
            data = ChassisData(url=self.client.url(ref), body=body)
            held = {norm_path(r) for r in links(at(body, "Links", "ComputerSystems"))}
            for system in systems:
                if data.path in {norm_path(r) for r in links(at(system.body, "Links", "Chassis"))}:
                    held.add(system.path)
            data.systems = [path for path in known if path in held]
            found.append(data)
        if self.telemetry:
            processor_temps = {
                s.path for s in systems if any(p.environment is not None for p in s.processors)
            }
            await self.each(
                [c for c in found if c.systems], lambda c: self.chassis_telemetry(c, processor_temps)
            )
        return found

    async def chassis_telemetry(self, data: ChassisData, processor_temps: set[str]) -> None:
        """New resources first; Thermal / Power (deprecated) only for what they did not give."""
        body = data.body
        thermal_subsystem = link(body, "ThermalSubsystem")
        if thermal_subsystem is not None:
            subsystem = await self.get(thermal_subsystem)
            metrics, fans = link(subsystem, "ThermalMetrics"), link(subsystem, "Fans")
            if metrics is not None:
                data.thermal_metrics = await self.get(metrics)
            if fans is not None:
                data.fans = [f for f in await self.each(await self.members(fans), self.get) if f is not None]
        environment = link(body, "EnvironmentMetrics")
        if environment is not None:
            data.environment = await self.get(environment)
        found = readings_from_new(data)
        power_subsystem = link(body, "PowerSubsystem")
        if found.power_w is None and power_subsystem is not None:
            subsystem = await self.get(power_subsystem)
            supplies = link(subsystem, "PowerSupplies")
            if supplies is not None:
                units = [u for u in await self.each(await self.members(supplies), self.get) if u is not None]
                wanted = [m for u in units if not absent(u) and (m := link(u, "Metrics")) is not None]
                data.power_supply_metrics = [m for m in await self.each(wanted, self.get) if m is not None]
            found = readings_from_new(data)
        cpu_known = bool(found.cpu_temps) or all(s in processor_temps for s in data.systems)
        thermal = link(body, "Thermal")
        if thermal is not None and not (found.complete_thermal() and cpu_known):
            data.thermal = await self.get(thermal)
        power = link(body, "Power")
        if power is not None and found.power_w is None:
            data.power = await self.get(power)


class RedfishCollector(Collector):
    """Physical servers (``server`` assets), their ``hw.*`` sensors and, per room, inlet / IT power."""

    type: ClassVar[str] = "redfish"
    produces: ClassVar[tuple[str, ...]] = ("assets", "metrics", "environment")

    @classmethod
    def check_options(cls, options: dict[str, Any], interval_s: int) -> None:
        RedfishOptions.of(cls._probe_config(options, interval_s))

    def __init__(self, config: SourceConfig) -> None:
        super().__init__(config)
        # checked now so a misconfigured source fails its run before any request
        self.options = RedfishOptions.of(config)
        self.credentials = redfish_credentials(config.credentials)

    def snapshot_asset_types(self) -> list[str] | None:
        """A full run reports every server of the BMC; it never retires other types."""
        return ["server"]

    async def run(self, ctx: RunContext) -> None:
        """Read the service (the session is closed even when reading fails), then emit."""
        opts = self.options
        kinds = set(self.config.kinds)
        wants_environment = "environment" in kinds and opts.room_code is not None
        client = RedfishClient(
            ctx.http, self.credentials, use_session=opts.use_session, concurrency=opts.concurrency
        )
        reader = RedfishReader(client, ctx, telemetry="metrics" in kinds or wants_environment)
        try:
            inventory = await reader.inventory()
        finally:
            await client.close()
        await self.emit(ctx, inventory, wants_environment=wants_environment)

    async def emit(self, ctx: RunContext, inventory: Inventory, *, wants_environment: bool) -> None:
        opts = self.options
        bmc_host = host_of(self.config.base_url)
        ts = inventory.read_at.isoformat(timespec="seconds")
        servers: list[SystemData] = []
        ids: dict[str, str] = {}
        for system in inventory.systems:
            kind = text(system.body, "SystemType")
            if kind is not None and kind not in SERVER_TYPES:
                ctx.skip(f"{system.path}: 系统类型 {kind} 不是物理服务器 (SystemType {kind} is not a server)")
                continue
            asset_id = system_asset_id(system.body, system.url, bmc_host)
            if asset_id in ids.values():  # two systems with one serial: keep them apart
                asset_id = f"{bmc_host}:{resource_id(system.body, system.url)}"
            ids[system.path] = asset_id
            servers.append(system)
        readings: dict[str, ChassisReadings] = {
            c.path: chassis_readings(c) for c in inventory.chassis if any(s in ids for s in c.systems)
        }
        holding = {
            s.path: [
                (c, readings[c.path]) for c in inventory.chassis if c.path in readings and s.path in c.systems
            ]
            for s in servers
        }
        assets = [
            server_record(
                s,
                [c for c, _ in holding[s.path]],
                asset_id=ids[s.path],
                bmc_host=bmc_host,
                room_code=opts.room_code,
            )
            for s in servers
        ]
        await ctx.emit("assets", assets)
        metrics: list[dict[str, Any]] = []
        for s in servers:
            metrics += metric_records(ids[s.path], server_telemetry(s, holding[s.path]), ts)
        await ctx.emit("metrics", metrics)
        if wants_environment and opts.room_code is not None:
            samples: list[dict[str, Any]] = []
            for c in inventory.chassis:
                if c.path in readings:
                    samples += environment_records(
                        chassis_point_prefix(c, ids, bmc_host),
                        c,
                        readings[c.path],
                        room_code=opts.room_code,
                        ts=ts,
                        interval_s=self.config.interval_s,
                    )
            await ctx.emit("environment", samples)
