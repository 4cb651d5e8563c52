"""The ``hub`` collector (§8 item 1): mirror platforms of another Supervision Hub incrementally.

Options: ``platforms`` (codes to mirror) or ``region`` (every platform of the region); at least
one. Credentials: ``{"token": "<app_key>.<secret>"}`` of a regulator or integrator key on the
other hub. Each run lists the remote platforms (registering new ones here; a platform the source
may not write into, §8, is refused by the runner and skipped), then, per platform
and kind, follows ``updated_since`` / ``sync_token`` from where the last successful run stopped:
assets (retired ones included), logs (with ``origin_hash``), metric and environment samples
(corrections included) and alarms; rooms are listed whole before environment samples.
"""

from __future__ import annotations

from typing import Any, ClassVar

from app.collectors.base import Collector, RunContext, SourceDataError, SourceError
from app.collectors.hub import PlatformRefused
from app.collectors.hub.mapping import LISTS, to_record

#: the first sync of a kind starts with everything the other hub holds
BEGINNING = "1970-01-01T00:00:00Z"
PAGE = 1000


def _data(answer: Any, where: str) -> dict[str, Any]:
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("items", []), list):
        raise SourceDataError(f"{where}: 应答不是 Supervision Hub 的格式 (not a hub answer)")
    return data


class HubCollector(Collector):
    type: ClassVar[str] = "hub"
    produces: ClassVar[tuple[str, ...]] = ("rooms", "assets", "logs", "metrics", "environment", "alarms")
    mirrors_platforms: ClassVar[bool] = True

    @classmethod
    def check_options(cls, options: dict[str, Any], interval_s: int) -> None:
        platforms, region = options.get("platforms"), options.get("region")
        if platforms is not None and not (
            isinstance(platforms, list) and platforms and all(isinstance(p, str) for p in platforms)
        ):
            raise SourceError(
                "hub 选项 platforms 应为云平台编码数组 (options.platforms must list platform codes)"
            )
        if region is not None and not (
            isinstance(region, str) and region.isdigit() and len(region) in (2, 4, 6)
        ):
            raise SourceError(
                "hub 选项 region 应为 2、4 或 6 位行政区划代码 (options.region must be 2, 4 or 6 digits)"
            )
        if not platforms and not region:
            raise SourceError(
                "hub 采集源须在 options 中给出 platforms 或 region (options.platforms or options.region)"
            )

    def _headers(self) -> dict[str, str]:
        token = self.config.credentials.get("token")
        if not token:
            raise SourceError('hub 采集源需要凭据 {"token": "<app_key>.<secret>"} (a token is required)')
        return {"Authorization": f"Bearer {token}"}

    async def _pages(self, ctx: RunContext, path: str, params: dict[str, str]) -> Any:
        """Every page of a cursor-paged list."""
        cursor: str | None = None
        while True:
            query = {**params, "limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
            data = _data(await ctx.http.get_json(path, params=query, headers=self._headers()), path)
            yield data
            cursor = data.get("next_cursor")
            if not cursor:
                return

    async def _platforms(self, ctx: RunContext) -> list[dict[str, Any]]:
        wanted = self.config.options.get("platforms")
        region = self.config.options.get("region")
        if not wanted and not region:
            raise SourceError(
                "hub 采集源须在 options 中给出 platforms 或 region (options.platforms or options.region)"
            )
        params = {"region_code": str(region)} if region else {}
        found: list[dict[str, Any]] = []
        async for data in self._pages(ctx, "/api/v1/platforms", params):
            found += [p for p in data["items"] if not wanted or p.get("platform_code") in wanted]
        return sorted(found, key=lambda p: str(p.get("platform_code")))

    async def _sync(self, ctx: RunContext, kind: str, platform_code: str) -> None:
        """One kind of one platform, from the stored token (or the beginning) to now."""
        path = LISTS[kind][0]
        state_key = f"{kind}:{platform_code}"
        token = ctx.state.get(state_key) or BEGINNING
        while True:
            params = {"platform_code": platform_code, "updated_since": token, "limit": str(PAGE)}
            data = _data(await ctx.http.get_json(path, params=params, headers=self._headers()), path)
            # a derived dew point is not mirrored: this hub derives its own from the mirrored
            # temperature and humidity (and refuses pushes into a derived point's code)
            records = [
                to_record(kind, item)
                for item in data["items"]
                if isinstance(item, dict) and not item.get("derived_from")
            ]
            await ctx.emit(kind, records, platform_code=platform_code)
            token = data.get("sync_token")
            if not isinstance(token, str):
                raise SourceDataError(f"{path}: 应答缺少 sync_token (no sync_token)")
            ctx.state[state_key] = token
            if not data.get("next_cursor"):
                return

    async def run(self, ctx: RunContext) -> None:
        kinds = self.config.kinds
        for platform in await self._platforms(ctx):
            code = str(platform["platform_code"])
            try:
                await ctx.ensure_platform(platform)
            except PlatformRefused:
                continue  # not this source's to write (the runner records why): nothing fetched
            if "environment" in kinds or "rooms" in kinds:
                async for data in self._pages(ctx, "/api/v1/rooms", {"platform_code": code}):
                    rooms = [to_record("rooms", room) for room in data["items"]]
                    await ctx.emit("rooms", rooms, platform_code=code)
            for kind in ("assets", "alarms", "logs", "metrics", "environment"):
                if kind in kinds:
                    await self._sync(ctx, kind, code)
