"""Reading request bodies within the §4 limits: raw size, gzip, and the decompressed size."""

from __future__ import annotations

import zlib

from starlette.requests import Request

from app.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed


def too_large(limit: int) -> PayloadTooLarge:
    mib, rest = divmod(limit, 1024 * 1024)
    cap = f"{mib} MiB" if mib and not rest else f"{limit} 字节"
    return PayloadTooLarge(f"请求体超过 {cap} 上限 (body exceeds {limit} bytes)")


async def read_raw_body(request: Request, limit: int) -> bytes:
    """The body as sent: read by the request guard (``app/api/guards.py``), capped and timed, before
    the app ran; read here, refusing more than ``limit`` bytes early, only without the guard."""
    cached = getattr(request.state, "raw_body", None)
    if cached is not None:
        return bytes(cached)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
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
    return _gunzip(raw, limit)


#: compressed input is fed in pieces growing from the first size to the second: zlib copies what
#: follows the end of a member, so a body of many small members must not copy the rest each time
_GZIP_FEED = (512, 64 * 1024)


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Every member of a gzip body (RFC 1952 §2.2: members are concatenated), ``limit`` bytes at most.

    Zero bytes after the last member are padding (as ``gzip`` itself treats them); anything else
    after a member is decoded as the next member, and refused when it is not one.
    """
    view = memoryview(raw)
    parts: list[bytes] = []
    size = pos = 0
    feed = _GZIP_FEED[0]
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    inside = False  # whether the current member has begun
    members = 0
    try:
        while pos < len(view):
            if not inside and members and view[pos] == 0 and bytes(view[pos:]).count(0) == len(view) - pos:
                break  # zero padding after the last member
            piece = view[pos : pos + feed]
            out = inflater.decompress(piece, limit - size + 1)
            size += len(out)
            if size > limit:
                raise too_large(limit)
            if out:
                parts.append(out)
            if inflater.eof:
                members += 1
                pos += len(piece) - len(inflater.unused_data)
                inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
                inside, feed = False, _GZIP_FEED[0]
            else:
                pos += len(piece)
                inside, feed = True, min(feed * 2, _GZIP_FEED[1])
    except zlib.error as exc:
        raise ValidationFailed(f"gzip 解压失败 (invalid gzip body: {exc})") from None
    if inside or not members:
        raise ValidationFailed("gzip 数据不完整 (truncated gzip body)")
    return b"".join(parts)
