"""Collector sources (§8, §10): create, list, read, change, delete, run now, run history (admin)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok, server_key_of
from app.collectors.runner import CollectorRunner
from app.errors import JSONAnswer, envelope, request_id_of
from app.schemas.common import Envelope, ErrorEnvelope, Page
from app.schemas.sources import RunStarted, SourceCreate, SourceOut, SourceRunOut, SourceUpdate
from app.security.keys import ServerKey
from app.services import sources as source_service

router = APIRouter(prefix="/api/v1/admin/sources", tags=["sources"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404, 409, 422)
}
SourceId = Annotated[str, Path(description="采集源编号", max_length=64)]
#: the §2.2 page parameters
Limit = Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")]
Cursor = Annotated[
    str | None, Query(description="上一页返回的 next_cursor（与同一组筛选条件一起使用）", max_length=2000)
]
WithTotal = Annotated[bool, Query(description="是否返回总数 total")]


def _out(source: Any, key: ServerKey) -> dict[str, Any]:
    return SourceOut.model_validate(source_service.source_out(source, key)).model_dump(mode="json")


def runner_of(request: Request) -> CollectorRunner:
    """The process's runner (made on first use: it needs the server key)."""
    state = request.app.state
    runner: CollectorRunner | None = getattr(state, "collector_runner", None)
    if runner is None:
        runner = CollectorRunner(
            state.sessionmaker,
            state.settings,
            server_key_of(request),
            transport=getattr(state, "collector_transport", None),
        )
        state.collector_runner = runner
    return runner


@router.post(
    "",
    status_code=201,
    response_model=Envelope[SourceOut],
    responses=_ERRORS,
    summary="登记采集源 (create a collector source)",
)
async def create_source(
    request: Request,
    spec: SourceCreate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
) -> JSONAnswer:
    """A source the hub polls on a schedule; credentials are stored encrypted and never shown again."""
    principal.require_role("admin")
    key = server_key_of(request)
    source = await source_service.create_source(session, settings, key, spec)
    await session.commit()
    data = _out(source, key)
    return JSONAnswer(envelope(request_id_of(request), data=data), status_code=201)


@router.get(
    "",
    response_model=Envelope[Page[SourceOut]],
    response_model_exclude_unset=True,
    responses=_ERRORS,
    summary="采集源列表 (list sources)",
)
async def list_sources(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    platform_code: Annotated[str | None, Query(description="云平台编码", max_length=64)] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    with_total: WithTotal = False,
) -> dict[str, Any]:
    """Every source (of one platform) by ``source_id``, with its health: last success, failures
    in a row, stale."""
    principal.require_role("admin")
    page = await source_service.list_sources(
        session,
        server_key_of(request),
        platform_code=platform_code,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    return ok(request, page)


@router.get(
    "/{source_id}",
    response_model=Envelope[SourceOut],
    responses=_ERRORS,
    summary="采集源详情 (read a source)",
)
async def get_source(
    request: Request, source_id: SourceId, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    principal.require_role("admin")
    source = await source_service.get_source(session, source_id)
    return ok(
        request,
        SourceOut.model_validate(source_service.source_out(source, server_key_of(request))).model_dump(
            mode="json"
        ),
    )


@router.patch(
    "/{source_id}",
    response_model=Envelope[SourceOut],
    responses=_ERRORS,
    summary="修改采集源 (change a source)",
)
async def update_source(
    request: Request,
    source_id: SourceId,
    change: SourceUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Change a source; ``credentials`` and ``options`` are replaced whole."""
    principal.require_role("admin")
    key = server_key_of(request)
    source = await source_service.get_source(session, source_id)
    source = await source_service.update_source(session, settings, key, source, change)
    await session.commit()
    return ok(request, _out(source, key))


@router.delete(
    "/{source_id}",
    response_model=Envelope[SourceOut],
    responses=_ERRORS,
    summary="删除采集源 (delete a source)",
)
async def delete_source(
    request: Request, source_id: SourceId, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """The source and its run history are deleted; the data it collected stays."""
    principal.require_role("admin")
    key = server_key_of(request)
    source = await source_service.get_source(session, source_id)
    out = _out(source, key)
    await source_service.delete_source(session, source)
    await session.commit()
    return ok(request, out)


@router.post(
    "/{source_id}/run",
    status_code=202,
    response_model=Envelope[RunStarted],
    responses=_ERRORS,
    summary="立即运行 (run now)",
)
async def run_now(
    request: Request,
    source_id: SourceId,
    principal: CurrentPrincipal,
    session: SessionDep,
    mode: Annotated[
        Literal["full", "incremental"] | None, Query(description="full 全量 / incremental 增量；默认按计划")
    ] = None,
) -> JSONAnswer:
    """Start a run now (202 with its ``run_id``), or answer the run already in progress."""
    principal.require_role("admin")
    await source_service.get_source(session, source_id)
    await session.close()
    run_id, started = await runner_of(request).run_now(source_id, mode=mode)
    data = RunStarted(run_id=run_id, started=started).model_dump(mode="json")
    return JSONAnswer(envelope(request_id_of(request), data=data), status_code=202)


@router.get(
    "/{source_id}/runs",
    response_model=Envelope[Page[SourceRunOut]],
    response_model_exclude_unset=True,
    responses=_ERRORS,
    summary="运行记录 (run history, newest first)",
)
async def list_runs(
    request: Request,
    source_id: SourceId,
    principal: CurrentPrincipal,
    session: SessionDep,
    status: Annotated[
        str | None,
        Query(description="running 运行中 / success 成功 / failed 失败，可逗号分隔", max_length=100),
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    with_total: WithTotal = False,
) -> dict[str, Any]:
    """The source's runs, newest first (``started_at, run_id`` descending); ``next_cursor`` pages
    back through older runs. A cursor is bound to its source and filters."""
    principal.require_role("admin")
    await source_service.get_source(session, source_id)
    page = await source_service.list_runs(
        session,
        server_key_of(request),
        source_id,
        status=status,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    return ok(request, page)


@router.get(
    "/{source_id}/runs/{run_id}",
    response_model=Envelope[SourceRunOut],
    responses=_ERRORS,
    summary="一次运行 (one run)",
)
async def get_run(
    request: Request,
    source_id: SourceId,
    run_id: Annotated[str, Path(description="运行编号", max_length=32)],
    principal: CurrentPrincipal,
    session: SessionDep,
) -> dict[str, Any]:
    principal.require_role("admin")
    run = await source_service.get_run(session, source_id, run_id)
    return ok(request, SourceRunOut.model_validate(run, from_attributes=True).model_dump(mode="json"))
