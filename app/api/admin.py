"""Administration (§10): platforms and clients."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok, server_key_of
from app.errors import JSONAnswer, envelope, request_id_of
from app.schemas.common import (
    ClientCreate,
    ClientCreated,
    ClientOut,
    ClientRotated,
    ClientUpdate,
    DomesticListsPut,
    Envelope,
    ErrorEnvelope,
    MetricDefinitionIn,
    Page,
    PlatformCreate,
    PlatformOut,
    PlatformUpdate,
)
from app.schemas.supervision_admin import MetricCatalogChange
from app.security.principal import Principal
from app.services import clients as client_service
from app.services import platforms as platform_service
from app.services import reference

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404, 409, 413, 422)
}
PlatformCode = Annotated[str, Path(description="云平台编码", max_length=64)]
AppKey = Annotated[str, Path(description="密钥编号", max_length=64)]
#: the §2.2 page parameters every administrative list takes
Limit = Annotated[int, Query(ge=1, le=1000, description="每页条数，默认 100，最大 1000")]
Cursor = Annotated[
    str | None, Query(description="上一页返回的 next_cursor（与同一组筛选条件一起使用）", max_length=2000)
]
WithTotal = Annotated[bool, Query(description="是否返回总数 total")]


def _admin(principal: Principal) -> None:
    principal.require_role("admin")


def _platform(platform: Any) -> dict[str, Any]:
    return PlatformOut.model_validate(platform).model_dump(mode="json")


@router.post(
    "/platforms",
    status_code=201,
    response_model=Envelope[PlatformOut],
    responses=_ERRORS,
    summary="登记云平台 (register a platform)",
)
async def create_platform(
    request: Request, spec: PlatformCreate, principal: CurrentPrincipal, session: SessionDep
) -> JSONAnswer:
    """Register a cloud platform; its ``platform_code`` is assigned by the regulator."""
    _admin(principal)
    platform = await platform_service.create_platform(session, spec)
    await session.commit()
    return JSONAnswer(envelope(request_id_of(request), data=_platform(platform)), status_code=201)


@router.get(
    "/platforms",
    response_model=Envelope[Page[PlatformOut]],
    response_model_exclude_unset=True,
    responses=_ERRORS,
    summary="云平台列表 (list platforms)",
)
async def list_platforms(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    region_code: Annotated[str | None, Query(description="行政区划代码（2/4/6 位）", max_length=6)] = None,
    status: Annotated[
        str | None, Query(description="active 运行 / decommissioned 停用，可逗号分隔", max_length=100)
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    with_total: WithTotal = False,
) -> dict[str, Any]:
    """Every registered platform (decommissioned ones too), ordered by ``platform_code``."""
    _admin(principal)
    page = await platform_service.list_platforms(
        session,
        server_key_of(request),
        principal,
        region_code=region_code,
        status=status,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    return ok(request, page)


@router.get(
    "/platforms/{code}",
    response_model=Envelope[PlatformOut],
    responses=_ERRORS,
    summary="云平台详情 (read a platform)",
)
async def get_platform(
    request: Request, code: PlatformCode, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """One platform."""
    _admin(principal)
    return ok(request, _platform(await platform_service.get_platform(session, code, principal)))


@router.patch(
    "/platforms/{code}",
    response_model=Envelope[PlatformOut],
    responses=_ERRORS,
    summary="修改云平台 (change a platform)",
)
async def update_platform(
    request: Request,
    code: PlatformCode,
    change: PlatformUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> dict[str, Any]:
    """Change a platform; ``status: decommissioned`` stops pushes and keeps the data."""
    _admin(principal)
    platform = await platform_service.get_platform(session, code, principal)
    return ok(request, _platform(await platform_service.update_platform(session, platform, change)))


@router.post(
    "/clients",
    status_code=201,
    response_model=Envelope[ClientCreated],
    responses=_ERRORS,
    summary="创建客户端密钥 (create a client key)",
)
async def create_client(
    request: Request, spec: ClientCreate, principal: CurrentPrincipal, session: SessionDep
) -> JSONAnswer:
    """Create a key; the secret is in this answer only."""
    _admin(principal)
    created = await client_service.create_client(session, server_key_of(request), spec)
    await session.commit()
    data = ClientCreated.model_validate(created).model_dump(mode="json")
    return JSONAnswer(envelope(request_id_of(request), data=data), status_code=201)


@router.get(
    "/clients",
    response_model=Envelope[Page[ClientOut]],
    response_model_exclude_unset=True,
    responses=_ERRORS,
    summary="客户端列表 (list clients)",
)
async def list_clients(
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    role: Annotated[
        str | None, Query(description="admin / regulator / provider / integrator，可逗号分隔", max_length=100)
    ] = None,
    status: Annotated[
        str | None, Query(description="active / disabled / revoked，可逗号分隔", max_length=100)
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
    with_total: WithTotal = False,
) -> dict[str, Any]:
    """Every client key (never its secret), oldest first: ordered by ``created_at, app_key``."""
    _admin(principal)
    page = await client_service.list_clients(
        session,
        server_key_of(request),
        role=role,
        status=status,
        limit=limit,
        cursor=cursor,
        with_total=with_total,
    )
    return ok(request, page)


@router.patch(
    "/clients/{app_key}",
    response_model=Envelope[ClientOut],
    responses=_ERRORS,
    summary="修改客户端 (change scope or disable)",
)
async def update_client(
    request: Request,
    app_key: AppKey,
    change: ClientUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
) -> dict[str, Any]:
    """Change a key's scope, signature requirement or status."""
    _admin(principal)
    out = await client_service.update_client(session, app_key, change)
    return ok(request, ClientOut.model_validate(out).model_dump(mode="json"))


@router.post(
    "/clients/{app_key}/rotate",
    response_model=Envelope[ClientRotated],
    responses=_ERRORS,
    summary="轮换密钥 (new secret, old one overlaps)",
)
async def rotate_client(
    request: Request,
    app_key: AppKey,
    principal: CurrentPrincipal,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """A new secret, shown once; the old one stays valid for ``SUPHUB_CLIENT_ROTATION_OVERLAP_S``."""
    _admin(principal)
    out = await client_service.rotate_client(
        session, server_key_of(request), app_key, settings.client_rotation_overlap_s
    )
    return ok(request, ClientRotated.model_validate(out).model_dump(mode="json"))


@router.delete(
    "/clients/{app_key}",
    response_model=Envelope[ClientOut],
    responses=_ERRORS,
    summary="吊销客户端 (revoke a key)",
)
async def revoke_client(
    request: Request, app_key: AppKey, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """Revoke a key at once; it can never be used again."""
    _admin(principal)
    out = await client_service.revoke_client(session, app_key)
    return ok(request, ClientOut.model_validate(out).model_dump(mode="json"))


@router.get(
    "/metric-catalog",
    response_model=Envelope[list[dict[str, Any]]],
    responses=_ERRORS,
    summary="指标目录 (metric catalogue)",
)
async def get_metric_catalog(
    request: Request, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """Every metric code with its unit, enabled or not."""
    _admin(principal)
    return ok(request, await reference.metric_catalog(session))


@router.put(
    "/metric-catalog",
    response_model=Envelope[list[dict[str, Any]]],
    responses=_ERRORS,
    summary="修改指标目录 (replace the metric catalogue)",
)
async def put_metric_catalog(
    request: Request, change: MetricCatalogChange, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """The catalogue becomes the given list; codes left out are disabled (pushes of them are refused).
    Values are taken as JSON types only: ``enabled`` is ``true``/``false``, never ``0`` or ``"no"``."""
    _admin(principal)
    metrics: list[MetricDefinitionIn] = list(change.metrics)
    return ok(request, await reference.put_metric_catalog(session, metrics))


@router.get(
    "/domestic-lists",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="国产化名录 (domestic lists)",
)
async def get_domestic_lists(
    request: Request, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """The lists the domestic verdicts are judged by."""
    _admin(principal)
    return ok(request, await reference.domestic_lists(session))


@router.put(
    "/domestic-lists",
    response_model=Envelope[dict[str, Any]],
    responses=_ERRORS,
    summary="修改国产化名录 (replace domestic lists)",
)
async def put_domestic_lists(
    request: Request, change: DomesticListsPut, principal: CurrentPrincipal, session: SessionDep
) -> dict[str, Any]:
    """Each list named is replaced as a whole; assets are judged by the new lists when next reported."""
    _admin(principal)
    return ok(request, await reference.put_domestic_lists(session, change))
