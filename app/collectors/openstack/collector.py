"""The ``openstack`` collector (§8 item 2): Keystone v3, Nova, Cinder and Placement.

A run authenticates once (the token is reused and renewed, see :mod:`.client`), checks that every
endpoint it needs is in the catalogue before it emits anything, then reads, page by page (the
next page is requested while this one is mapped, and gathered pages are ingested in the
background while the following ones are read):
hypervisors (``/os-hypervisors/detail``), servers (``/servers/detail?all_tenants=1``, marker
paging via ``servers_links``), volumes (``/volumes/detail?all_tenants=1``) and the Placement
inventories and usages of every resource provider. A full run lists everything and is a snapshot
of hypervisor hosts, VMs, bare-metal instances and volumes; an incremental run asks Nova only for
servers changed since the previous successful run started (``changes-since``) and retires nothing.
Options are described in this folder's README.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from app.collectors.base import Collector, RunContext, SourceDataError, SourceError, SourceHTTPError
from app.collectors.openstack.client import OpenStackClient
from app.collectors.openstack.mapping import (
    HostInfo,
    capacity_metrics,
    hypervisor_record,
    obj,
    server_record,
    volume_record,
)

#: items per page asked of Nova and Cinder (Nova's default ``[api]/max_limit`` is 1000 too)
DEFAULT_LIMIT = 1000
#: records gathered from consecutive pages into one ingest batch
DEFAULT_BATCH = 1000
#: ``changes-since`` starts this long before the previous run, for clock skew between hub and Nova
DEFAULT_OVERLAP_S = 60
#: Placement requests in flight at once (two per resource provider)
DEFAULT_CONCURRENCY = 4
STATE_SINCE = "servers_changes_since"


def _nova_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _microversion(value: Any) -> tuple[int, int]:
    major, _, minor = str(value or "3.0").partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return 3, 0


class AssetPages:
    """Mapped items of consecutive source pages, ingested in batches while the next pages are read.

    Nova pages are often small (100 servers): one ingest batch per page would spend more on the
    batch (its transaction, receipt, snapshot bookkeeping) than on the rows, so ``size`` records
    are gathered first. One batch at a time is ingested in the background — batches still reach
    the runner one after the other, in order — so the source's latency overlaps the database.
    A failed ingest fails the run at the next :meth:`add` or at :meth:`drain`.
    """

    def __init__(self, ctx: RunContext, size: int) -> None:
        self.ctx = ctx
        self.size = size
        self.records: list[dict[str, Any]] = []
        self._ingesting: asyncio.Task[None] | None = None

    async def add(self, path: str, key: str, mapped: list[dict[str, Any] | None]) -> list[dict[str, Any]]:
        """Keep a page's records (an item that could not be identified is skipped and counted)."""
        records = []
        for index, record in enumerate(mapped):
            if record is None:
                self.ctx.skip(f"{path} 第 {index + 1} 项没有可用的 {key} (item without a usable {key})")
            else:
                records.append(record)
        self.records += records
        if len(self.records) >= self.size:
            await self._wait()
            batch, self.records = self.records, []
            self._ingesting = asyncio.create_task(self.ctx.emit("assets", batch))
        return records

    async def _wait(self) -> None:
        if self._ingesting is not None:
            task, self._ingesting = self._ingesting, None
            await task

    async def drain(self) -> None:
        """Ingest what is left; raises what a background ingest raised."""
        await self._wait()
        batch, self.records = self.records, []
        await self.ctx.emit("assets", batch)

    async def close(self) -> None:
        """After a failure: let the batch being ingested finish (its transaction is short), raise nothing."""
        if self._ingesting is not None:
            with contextlib.suppress(Exception):
                await self._wait()


class OpenStackCollector(Collector):
    type: ClassVar[str] = "openstack"
    produces: ClassVar[tuple[str, ...]] = ("assets", "metrics")

    # --- options ----------------------------------------------------------------------------
    @classmethod
    def check_options(cls, options: dict[str, Any], interval_s: int) -> None:
        probe = cls(cls._probe_config(options, interval_s))
        probe._int_option("limit", DEFAULT_LIMIT, 1, 10_000)
        probe._int_option("batch_size", DEFAULT_BATCH, 1, 10_000)
        probe._int_option("changes_since_overlap_s", DEFAULT_OVERLAP_S, 0, 86_400)
        probe._int_option("concurrency", DEFAULT_CONCURRENCY, 1, 64)

    def _enabled(self, name: str) -> bool:
        """``options.hypervisors`` / ``servers`` / ``volumes``: on unless set to false."""
        return self.config.options.get(name, True) is not False

    def _int_option(self, name: str, default: int, low: int, high: int) -> int:
        value = self.config.options.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise SourceError(f"options.{name} 应为 {low}–{high} 的整数 (must be an integer {low}–{high})")
        return value

    def snapshot_asset_types(self) -> list[str] | None:
        """Only the types this source lists whole: a disabled list never retires its assets."""
        types = []
        if self._enabled("hypervisors"):
            types.append("hypervisor_host")
        if self._enabled("servers"):
            types += ["vm", "bare_metal"]
        if self._enabled("volumes"):
            types.append("volume")
        return types

    # --- the run ----------------------------------------------------------------------------
    async def run(self, ctx: RunContext) -> None:
        """Hypervisors, servers and volumes as assets; Placement capacity as metrics."""
        options = self.config.options
        limit = self._int_option("limit", DEFAULT_LIMIT, 1, 10_000)
        projects = obj(options.get("projects"))
        client = OpenStackClient(ctx.http, self.config.base_url, self.config.credentials, options)
        assets = "assets" in self.config.kinds
        metrics = "metrics" in self.config.kinds
        # every endpoint is checked before the first page, so a missing one fails the run at once
        if assets and (self._enabled("hypervisors") or self._enabled("servers")):
            await client.require_endpoint("compute")
        if assets and self._enabled("volumes"):
            await client.require_endpoint("volume")
        if metrics:
            await client.require_endpoint("placement")

        hosts: dict[str, HostInfo] = {}
        out = AssetPages(ctx, self._int_option("batch_size", DEFAULT_BATCH, 1, 10_000))
        try:
            if assets and self._enabled("hypervisors"):
                hosts = await self._hypervisors(client, out, limit)
            if assets and self._enabled("servers"):
                await self._servers(ctx, client, out, limit, hosts, projects)
            if assets and self._enabled("volumes"):
                await self._volumes(ctx, client, out, limit, projects)
            await out.drain()
        finally:
            await out.close()
        if metrics:
            await self._capacity(ctx, client)
        ctx.state[STATE_SINCE] = ctx.started_at.astimezone(UTC).isoformat()

    def _since(self, ctx: RunContext) -> datetime | None:
        """Where an incremental run starts: the previous successful run's start, less the overlap."""
        previous = ctx.state.get(STATE_SINCE)
        if ctx.mode != "incremental" or not isinstance(previous, str):
            return None
        overlap = self._int_option("changes_since_overlap_s", DEFAULT_OVERLAP_S, 0, 86_400)
        try:
            return datetime.fromisoformat(previous) - timedelta(seconds=overlap)
        except ValueError:
            return None

    async def _hypervisors(self, client: OpenStackClient, out: AssetPages, limit: int) -> dict[str, HostInfo]:
        hosts: dict[str, HostInfo] = {}
        path = "/os-hypervisors/detail"
        async with contextlib.aclosing(
            client.pages("compute", path, "hypervisors", {"limit": str(limit)})
        ) as pages:
            async for page in pages:
                records = await out.add(path, "hypervisor_hostname", [hypervisor_record(i) for i in page])
                hosts.update((record["asset_id"], HostInfo.of(record)) for record in records)
        return hosts

    async def _flavors(self, client: OpenStackClient) -> dict[str, dict[str, Any]]:
        """Flavors by id, for servers listed below microversion 2.47 (no embedded flavor)."""
        flavors: dict[str, dict[str, Any]] = {}
        async with contextlib.aclosing(
            client.pages("compute", "/flavors/detail", "flavors", {"is_public": "None"})
        ) as pages:
            async for page in pages:
                for flavor in page:
                    if isinstance(flavor, dict) and flavor.get("id") is not None:
                        flavors[str(flavor["id"])] = {
                            "vcpus": flavor.get("vcpus"),
                            "ram": flavor.get("ram"),
                            "disk": flavor.get("disk"),
                            "ephemeral": flavor.get("OS-FLV-EXT-DATA:ephemeral"),
                            "name": flavor.get("name"),
                        }
        return flavors

    async def _servers(
        self,
        ctx: RunContext,
        client: OpenStackClient,
        out: AssetPages,
        limit: int,
        hosts: dict[str, HostInfo],
        projects: dict[str, Any],
    ) -> None:
        path = "/servers/detail"
        params = {"all_tenants": "1", "limit": str(limit)}
        since = self._since(ctx)
        if since is not None:
            params["changes-since"] = _nova_time(since)
        flavors: dict[str, dict[str, Any]] | None = None
        async with contextlib.aclosing(client.pages("compute", path, "servers", params)) as pages:
            async for page in pages:
                if flavors is None and any(
                    isinstance(s, dict) and isinstance(s.get("flavor"), dict) and "vcpus" not in s["flavor"]
                    for s in page
                ):
                    flavors = await self._flavors(client)
                await out.add(path, "id", [server_record(i, hosts, flavors or {}, projects) for i in page])

    async def _volumes(
        self, ctx: RunContext, client: OpenStackClient, out: AssetPages, limit: int, projects: dict[str, Any]
    ) -> None:
        path = "/volumes/detail"
        params = {"all_tenants": "1", "limit": str(limit)}
        since = self._since(ctx)
        # Cinder filters by time only from microversion 3.60; below it every run lists all volumes
        if since is not None and _microversion(self.config.options.get("volume_microversion")) >= (3, 60):
            params["updated_at"] = f"gte:{_nova_time(since)}"
        async with contextlib.aclosing(client.pages("volume", path, "volumes", params)) as pages:
            async for page in pages:
                await out.add(path, "id", [volume_record(item, projects) for item in page])

    async def _capacity(self, ctx: RunContext, client: OpenStackClient) -> None:
        """Placement: every resource provider's inventories and usages → host capacity metrics."""
        concurrency = self._int_option("concurrency", DEFAULT_CONCURRENCY, 1, 64)
        read_at = datetime.now(UTC).replace(microsecond=0).isoformat()
        body = await client.get_json("placement", "/resource_providers")
        listed = body.get("resource_providers") if isinstance(body, dict) else None
        if not isinstance(listed, list):
            raise SourceDataError("GET /resource_providers: 应答缺少 resource_providers 列表 (no list)")
        providers = [p for p in listed if isinstance(p, dict) and isinstance(p.get("uuid"), str)]
        inventories: dict[str, dict[str, Any]] = {}
        usages: dict[str, dict[str, Any]] = {}
        gate = asyncio.Semaphore(concurrency)

        async def read(uuid: str, what: str, into: dict[str, dict[str, Any]]) -> None:
            async with gate:
                try:
                    answer = await client.get_json("placement", f"/resource_providers/{uuid}/{what}")
                except SourceHTTPError as exc:
                    if exc.status_code == 404:  # deleted since it was listed
                        return
                    raise
            found = answer.get(what) if isinstance(answer, dict) else None
            if isinstance(found, dict):
                into[uuid] = found

        try:
            async with asyncio.TaskGroup() as group:
                for provider in providers:
                    group.create_task(read(provider["uuid"], "inventories", inventories))
                    group.create_task(read(provider["uuid"], "usages", usages))
        except ExceptionGroup as failed:  # the run fails with the first reason, as for any request
            raise failed.exceptions[0] from None
        await ctx.emit("metrics", capacity_metrics(providers, inventories, usages, read_at))
