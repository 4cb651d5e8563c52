"""监管数据汇集接口: the push interface (§4) and batch receipts."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from app.api.body import decode_body, read_raw_body
from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, ok, sessionmaker_of
from app.errors import BadParameter, Forbidden, JSONAnswer, NotFound, envelope, request_id_of
from app.models import BatchReceipt
from app.schemas.common import Envelope, ErrorEnvelope
from app.schemas.enums import ReportKind
from app.schemas.ingest import ReceiptOut, push_body_schema
from app.services.ingest import IngestService, quarantined_records
from app.services.ingest.service import push_authorizer, receipt_of

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
KIND_DESCRIPTION = (
    "数据类别：rooms 机房 / assets 资产 / logs 日志 / metrics 监控 / environment 环控 / alarms 告警"
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope} for code in (400, 401, 403, 404, 409, 413, 415, 422, 503)
}


@router.post(
    "/{kind}",
    response_model=Envelope[ReceiptOut],
    responses={
        **_ERRORS,
        200: {
            "description": "批次回执：accepted 全部接收 / partial 部分接收 (batch receipt)",
            "headers": {
                "Idempotent-Replay": {
                    "description": "值为 true 时表示相同批次号、相同请求体的重放，返回原回执且未重复存储 "
                    "(a replay of the same batch: the original receipt, nothing stored again)",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            },
        },
    },
    summary="推送监管数据 (push a batch)",
    description="""推送一批监管数据（§4）；返回 200 表示所有被接收的记录均已持久提交。
Push one batch of records; 200 means every accepted record is committed.

请求体随路径中的 `{kind}` 而定：rooms → `RoomsBatch`，assets → `AssetsBatch`，logs → `LogsBatch`，
metrics → `MetricsBatch`，environment → `EnvironmentBatch`，alarms → `AlarmsBatch`。
`records` 为 1–10000 条（可配置），解压后的请求体不超过 32 MiB（可配置）；`snapshot` 仅用于资产全量同步。

* **部分接收 (partial acceptance)**：有效记录即使在其他记录失败时也会保存（`status` 为 `partial`），
  被拒绝的记录在 `errors[]` 中给出 `{index, loc, message}` 并原样保存在隔离区；全部记录无效时返回
  422 `1002`（`status` 为 `rejected`），该 `batch_id` 不被占用。
* **幂等 (idempotency)**：相同 `batch_id` 且请求体相同（解压后字节的 SHA-256 相同）时返回原回执、不重复存储，
  并带响应头 `Idempotent-Replay: true`；请求体不同则返回 409 `3001`。
* **请求头 `Content-Encoding: gzip`**：请求体可以 gzip 压缩（也接受 `x-gzip`；缺省或 `identity` 为不压缩），
  其他编码返回 415 `1004`；`Content-Type` 须为 `application/json`（或 `*+json`）。
* **更新语义**：rooms / assets / alarms 为合并更新（缺省字段保留已存值，`null` 清空）；
  metrics / environment 后写入者覆盖；logs 只插入、不可修改。
* **授权范围**：云服务提供方只能为其绑定的云平台推送（否则 403 `2006`）。
""",
    openapi_extra={
        "parameters": [
            {
                "name": "Content-Encoding",
                "in": "header",
                "required": False,
                "description": "请求体压缩方式：gzip（或 x-gzip）；缺省为不压缩 (request body compression)",
                "schema": {"type": "string", "enum": ["gzip", "x-gzip", "identity"]},
            }
        ],
        "requestBody": {
            "required": True,
            "description": "推送批次，记录结构随 {kind} 而定 (the batch; its records depend on {kind})",
            "content": {"application/json": {"schema": push_body_schema()}},
        },
    },
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
        kind, body, reporter=principal.reporter, authorize=push_authorizer(principal)
    )
    receipt = ReceiptOut.model_validate(outcome.receipt).model_dump(mode="json", exclude_none=True)
    request.state.audit_records = outcome.receipt["received"]
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
