"""监管数据汇集接口: the push interface (§4) and batch receipts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from app.api.body import decode_body, read_raw_body
from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok, sessionmaker_of
from app.errors import BadParameter, Forbidden, JSONAnswer, NotFound, envelope, request_id_of
from app.models import BatchReceipt, Platform
from app.schemas.common import Envelope, ErrorEnvelope
from app.schemas.enums import ReportKind
from app.schemas.ingest import ReceiptOut
from app.security.principal import Principal
from app.services.ingest import IngestService, quarantined_records
from app.services.ingest.service import receipt_of

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
KIND_DESCRIPTION = (
    "数据类别：rooms 机房 / assets 资产 / logs 日志 / metrics 监控 / environment 环控 / alarms 告警"
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404, 409, 413, 415, 422, 503)
}


def _push_authorizer(principal: Principal) -> Any:
    def authorize(platform: Platform) -> None:
        if principal.role == "admin":
            return
        if principal.role != "provider" or platform.platform_code not in principal.platforms:
            raise Forbidden(
                f"无权为云平台 {platform.platform_code} 推送数据 "
                f"(this key may not push for platform {platform.platform_code})"
            )

    return authorize


@router.post(
    "/{kind}",
    response_model=Envelope[ReceiptOut],
    responses=_ERRORS,
    summary="推送监管数据 (push a batch)",
)
async def push_report(
    request: Request,
    kind: Annotated[ReportKind, Path(description=KIND_DESCRIPTION)],
    principal: CurrentPrincipal,
    settings: SettingsDep,
) -> Response:
    """Push one batch of records; 200 means every accepted record is committed.

    Partial acceptance: valid records are stored even when others fail (``status`` ``partial``);
    when no record is valid the answer is 422 ``1002`` and the ``batch_id`` stays unused. The same
    ``batch_id`` with the same body returns the original receipt (``Idempotent-Replay: true``);
    with another body, 409 ``3001``. Bodies may be gzip-compressed.
    """
    principal.require_role("admin", "provider")
    raw = await read_raw_body(request, settings.max_body_bytes)
    body = decode_body(request, raw, settings.max_body_bytes)
    service = IngestService(sessionmaker_of(request), settings)
    outcome = await service.accept_batch(
        kind, body, reporter=principal.reporter, authorize=_push_authorizer(principal)
    )
    receipt = ReceiptOut.model_validate(outcome.receipt).model_dump(mode="json", exclude_none=True)
    headers = {"Idempotent-Replay": "true"} if outcome.replay else {}
    request_id = request_id_of(request)
    if outcome.all_rejected:
        body_out = envelope(
            request_id,
            "1002",
            "全部记录校验失败 (every record was rejected)",
            data=receipt,
            errors=receipt["errors"],
        )
        return JSONAnswer(body_out, status_code=422, headers=headers)
    return JSONAnswer(envelope(request_id, data=receipt), headers=headers)


@router.get(
    "/batches/{batch_id}",
    response_model=Envelope[ReceiptOut],
    responses=_ERRORS,
    summary="查询批次回执 (batch receipt)",
)
async def get_batch(
    request: Request,
    batch_id: Annotated[str, Path(description="批次号", max_length=200)],
    principal: CurrentPrincipal,
    session: SessionDep,
    platform_code: Annotated[str | None, Query(description="云平台编码（批次号不唯一时必填）")] = None,
    kind: Annotated[ReportKind | None, Query(description="数据类别（批次号不唯一时必填）")] = None,
) -> dict[str, Any]:
    """The receipt of a batch with its quarantined (rejected) records; for its provider and admins."""
    principal.require_role("admin", "provider")
    stmt = select(BatchReceipt).where(BatchReceipt.batch_id == batch_id)
    if platform_code is not None:
        stmt = stmt.where(BatchReceipt.platform_code == platform_code)
    if kind is not None:
        stmt = stmt.where(BatchReceipt.kind == kind)
    if not principal.is_admin:
        if platform_code is not None and platform_code not in principal.platforms:
            raise Forbidden(f"云平台 {platform_code} 超出授权范围 (platform outside your scope)")
        stmt = stmt.where(principal.platform_condition(BatchReceipt.platform_code))
    rows = list((await session.execute(stmt.limit(2))).scalars())
    if not rows:
        raise NotFound(f"批次 {batch_id} 不存在 (no such batch)")
    if len(rows) > 1:
        raise BadParameter(
            "批次号不唯一，请同时给出 platform_code 和 kind (ambiguous batch_id: give platform_code and kind)"
        )
    row = rows[0]
    receipt = receipt_of(row)
    receipt["quarantined"] = await quarantined_records(session, row.platform_code, row.kind, row.batch_id)
    return ok(request, ReceiptOut.model_validate(receipt).model_dump(mode="json", exclude_none=True))
