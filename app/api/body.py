"""Reading request bodies within the §4 limits: raw size, gzip, and the decompressed size."""

from __future__ import annotations

import zlib

from starlette.requests import Request

from app.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"请求体超过 {limit // (1024 * 1024)} MiB 上限 (body exceeds {limit} bytes)")


async def read_raw_body(request: Request, limit: int) -> bytes:
    """The body as sent (cached on the request), refusing more than ``limit`` bytes early."""
    cached = getattr(request.state, "raw_body", None)
    if cached is not None:
        return bytes(cached)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    body = b"".join(parts)
    request.state.raw_body = body
    return body


def decode_body(request: Request, raw: bytes, limit: int) -> bytes:
    """``Content-Encoding: gzip`` bodies decompressed, never beyond ``limit`` bytes (zip bombs)."""
    content_type = request.headers.get("content-type", "application/json")
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(
            f"仅支持 application/json，收到 {media} (only application/json is accepted)"
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in {"", "identity"}:
        return raw
    if encoding not in {"gzip", "x-gzip"}:
        raise UnsupportedMediaType(f"不支持的内容编码 {encoding}，仅支持 gzip (unsupported content encoding)")
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise _too_large(limit)
        out += inflater.flush()
    except zlib.error as exc:
        raise ValidationFailed(f"gzip 解压失败 (invalid gzip body: {exc})") from None
    if len(out) > limit:
        raise _too_large(limit)
    if not inflater.eof:
        raise ValidationFailed("gzip 数据不完整 (truncated gzip body)")
    return out
