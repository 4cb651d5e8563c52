"""Liveness and readiness (§10); the only endpoints without authentication."""

from __future__ import annotations

from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Request
from sqlalchemy import text

from app.api.deps import sessionmaker_of
from app.errors import JSONAnswer, StorageUnavailable, envelope, error_response, request_id_of
from app.paths import ALEMBIC_INI

router = APIRouter(tags=["health"])


def migration_head() -> str | None:
    return ScriptDirectory.from_config(Config(str(ALEMBIC_INI))).get_current_head()


@router.get("/healthz", summary="存活检查 (liveness)")
async def healthz(request: Request) -> dict[str, Any]:
    """The process is up."""
    return envelope(request_id_of(request), data={"status": "ok"})


@router.get("/readyz", summary="就绪检查 (readiness)")
async def readyz(request: Request) -> JSONAnswer:
    """The database answers and its schema is at the newest migration."""
    head = getattr(request.app.state, "migration_head", None)
    if head is None:
        head = migration_head()
        request.app.state.migration_head = head
    try:
        async with sessionmaker_of(request)() as session:
            current = (await session.execute(text("SELECT version_num FROM alembic_version"))).scalar()
    except Exception:
        response = error_response(request, StorageUnavailable("数据库不可用 (database unreachable)"))
        return response  # type: ignore[return-value]
    if current != head:
        err = StorageUnavailable(f"数据库结构不是最新 ({current} ≠ {head}) (migrations not at head)")
        return error_response(request, err)  # type: ignore[return-value]
    return JSONAnswer(envelope(request_id_of(request), data={"status": "ready", "migration": current}))
