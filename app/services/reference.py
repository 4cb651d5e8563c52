"""The data the hub judges by, changed through §10: the metric catalogue and the domestic lists."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import DomesticListEntry, MetricDefinition
from app.repositories.bulk import upsert_rows
from app.schemas.common import DomesticListsPut, MetricDefinitionIn


def metric_out(m: MetricDefinition) -> dict[str, Any]:
    return {
        "code": m.code,
        "name_zh": m.name_zh,
        "unit": m.unit,
        "kind": m.kind,
        "description": m.description,
        "default_interval_s": m.default_interval_s,
        "enabled": m.enabled,
    }


async def metric_catalog(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(select(MetricDefinition).order_by(MetricDefinition.code))
    return [metric_out(m) for m in rows.scalars()]


async def put_metric_catalog(
    session: AsyncSession, metrics: list[MetricDefinitionIn]
) -> list[dict[str, Any]]:
    """The catalogue becomes ``metrics``; codes left out are disabled, never deleted (samples name them)."""
    rows = [m.model_dump() for m in sorted(metrics, key=lambda m: m.code)]
    await upsert_rows(session, MetricDefinition.__table__, rows, key=("code",))
    await session.execute(
        update(MetricDefinition)
        .where(MetricDefinition.code.not_in([m.code for m in metrics]))
        .values(enabled=False)
    )
    return await metric_catalog(session)


async def domestic_lists(session: AsyncSession) -> dict[str, list[dict[str, Any]]]:
    rows = await session.execute(
        select(DomesticListEntry).order_by(DomesticListEntry.list_code, DomesticListEntry.entry)
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in rows.scalars():
        out.setdefault(entry.list_code, []).append({"entry": entry.entry, "aliases": list(entry.aliases)})
    return out


async def put_domestic_lists(
    session: AsyncSession, change: DomesticListsPut
) -> dict[str, list[dict[str, Any]]]:
    """Each list named in ``change`` is replaced as a whole; lists not named keep their entries.

    Verdicts are computed when an asset is written: stored verdicts change with the asset's next report.
    """
    for list_code, entries in sorted(change.lists.items()):
        await session.execute(delete(DomesticListEntry).where(DomesticListEntry.list_code == list_code))
        for entry in entries:
            session.add(DomesticListEntry(list_code=list_code, entry=entry.entry, aliases=entry.aliases))
    await session.flush()
    return await domestic_lists(session)
