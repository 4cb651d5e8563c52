"""The interactive documentation, served whole by the hub: nothing loaded from another origin.

FastAPI's own ``/docs`` and ``/redoc`` load Swagger UI from a CDN and ReDoc's fonts from Google, so
on a government network without the Internet both pages were blank. Here both pages load only
the assets vendored in ``docs_static/`` (pinned versions with their licences, see its README),
served under :data:`STATIC_PREFIX`. The pages and the assets are plain Starlette routes, as
FastAPI's docs are: outside the OpenAPI document and the query check of the API
(:func:`app.api.guards.known_query_only`), and behind the same rule as ``/openapi.json`` (a key in
production unless ``SUPHUB_DOCS_PUBLIC``): their paths are listed in ``app.state.docs_paths``,
which the request guard reads.

The OpenAPI document also says how to authenticate (:func:`add_security`), so Swagger UI's
"Authorize" and "Try it out" work with a bearer key.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from app.api.guards import OPEN_PATHS

#: where the vendored assets are
STATIC_DIR = Path(__file__).resolve().parent / "docs_static"
#: the URL path they are served under
STATIC_PREFIX = "/docs-static"
DOCS_URL = "/docs"
REDOC_URL = "/redoc"

#: the files served (relative to :data:`STATIC_DIR`) and their media types; nothing else is
SWAGGER_JS = "swagger-ui/swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui/swagger-ui.css"
FAVICON = "swagger-ui/favicon-32x32.png"
REDOC_JS = "redoc/redoc.standalone.js"
ASSETS: dict[str, str] = {
    SWAGGER_JS: "text/javascript; charset=utf-8",
    SWAGGER_CSS: "text/css; charset=utf-8",
    FAVICON: "image/png",
    REDOC_JS: "text/javascript; charset=utf-8",
}

#: Swagger UI's settings beyond FastAPI's defaults. ``validatorUrl: None``: Swagger UI otherwise
#: shows a badge fetched from its online validator whenever the hub is not reached as
#: ``localhost`` — a request out of a closed network. Authorisations are not persisted: a secret
#: typed into "Authorize" is not left in the browser's storage.
SWAGGER_UI_PARAMETERS: dict[str, Any] = {"validatorUrl": None, "persistAuthorization": False}

#: inline ``<script>`` elements of a page (FastAPI's Swagger UI page starts Swagger UI with one)
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def content_security_policy(html: str) -> str:
    """The page's policy: the browser loads nothing from another origin, whatever a bundle asks.

    The vendored bundles may still name other origins (ReDoc's sidebar shows Redocly's logo from
    Redocly's CDN: a request out of a closed network, and a broken image there); the browser
    refuses those before they leave. Inline scripts are allowed by hash, inline styles as both
    UIs set them; ``blob:`` for ReDoc's search worker and Swagger UI's downloaded answers.
    """
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
        for body in _INLINE_SCRIPT.findall(html)
    )
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src 'self' {hashes}".rstrip(),
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: blob:",
            "font-src 'self' data:",
            "connect-src 'self'",
            "worker-src 'self' blob:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'self'",
        )
    )


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = content_security_policy(bytes(page.body).decode())
    return page


#: the signed-request headers a key presents instead of bearer (§3); ``X-Sign-Method`` is optional
_SIGNED_HEADERS: dict[str, str] = {
    "X-App-Key": "签名请求：密钥标识 app_key (signed request: the key id)",
    "X-Timestamp": (
        "签名请求：Unix 毫秒时间戳，与服务器时钟相差不超过 ±300 秒 "
        "(signed request: unix milliseconds, within ±300 s of the hub's clock)"
    ),
    "X-Nonce": (
        "签名请求：16–64 个 [A-Za-z0-9_-] 字符，同一密钥 600 秒内不得重复 "
        "(signed request: 16–64 characters of [A-Za-z0-9_-], never reused by a key within 600 s)"
    ),
    "X-Content-Digest": (
        "签名请求：请求体原样字节的小写十六进制 SM3 / SHA-256 摘要，空请求体取空串的摘要 "
        "(signed request: lower-case hex SM3 / SHA-256 of the body bytes as sent; "
        "empty body: digest of the empty string)"
    ),
    "X-Signature": (
        "签名请求：HMAC(密钥, 待签字符串) 的标准 Base64，见 docs/signing.md "
        "(signed request: standard Base64 of HMAC(secret, string to sign), see docs/signing.md)"
    ),
}
_SIGN_METHOD = (
    "签名请求：HMAC-SM3（默认）或 HMAC-SHA256 (signed request: HMAC-SM3, the default, or HMAC-SHA256)"
)
BEARER_DESCRIPTION = (
    "`Authorization: Bearer <app_key>.<secret>`：在 Authorize 中填入 `<app_key>.<secret>`。"
    "要求签名的密钥（云服务提供方默认）拒绝 bearer（2005），须改用签名请求头，见 docs/signing.md。"
    " (Enter `<app_key>.<secret>` in Authorize. A key that requires signatures — providers' by "
    "default — refuses bearer (2005) and signs each request instead: see docs/signing.md.)"
)
#: an operation's ``security``: bearer, or the signed headers together
SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {header: [] for header in _SIGNED_HEADERS}]


def security_schemes() -> dict[str, dict[str, Any]]:
    """The ways to present a key (§3): bearer, and one header scheme per signed-request header."""
    schemes: dict[str, dict[str, Any]] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "<app_key>.<secret>",
            "description": BEARER_DESCRIPTION,
        }
    }
    for header, description in (*_SIGNED_HEADERS.items(), ("X-Sign-Method", _SIGN_METHOD)):
        schemes[header] = {"type": "apiKey", "in": "header", "name": header, "description": description}
    return schemes


def add_security(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with the security schemes, required by every operation but the probes.

    The key is checked by the request guard before any route runs, not by a FastAPI security
    dependency, so FastAPI cannot know the schemes: without them Swagger UI had no "Authorize" and
    every "Try it out" was answered 401. Idempotent: FastAPI caches the document it returns.
    """
    components = spec.setdefault("components", {})
    components["securitySchemes"] = security_schemes()
    for path, operations in spec.get("paths", {}).items():
        if path in OPEN_PATHS:  # the probes answer without a key
            continue
        for operation in operations.values():
            if isinstance(operation, dict):
                operation["security"] = [dict(requirement) for requirement in SECURITY]
    return spec


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets from the package, and describe the security.

    ``app`` must be built with ``docs_url=None, redoc_url=None`` (FastAPI's own pages load from a
    CDN). Wraps whatever ``app.openapi`` is by now, so other changes to the document still apply.
    """
    build_openapi: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        return add_security(build_openapi())

    app.openapi = openapi  # type: ignore[method-assign]
    title = app.title

    def _url(request: Request, path: str) -> str:
        """``path`` as the browser must ask for it: behind the proxy's prefix, same origin."""
        return str(request.scope.get("root_path", "")).rstrip("/") + path

    def _static(request: Request, asset: str) -> str:
        return _url(request, f"{STATIC_PREFIX}/{asset}")

    async def swagger_ui(request: Request) -> HTMLResponse:
        return _with_policy(
            get_swagger_ui_html(
                openapi_url=_url(request, app.openapi_url or "/openapi.json"),
                title=f"{title} - Swagger UI",
                swagger_js_url=_static(request, SWAGGER_JS),
                swagger_css_url=_static(request, SWAGGER_CSS),
                swagger_favicon_url=_static(request, FAVICON),
                swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
            )
        )

    async def redoc(request: Request) -> HTMLResponse:
        return _with_policy(
            get_redoc_html(
                openapi_url=_url(request, app.openapi_url or "/openapi.json"),
                title=f"{title} - ReDoc",
                redoc_js_url=_static(request, REDOC_JS),
                redoc_favicon_url=_static(request, FAVICON),
                with_google_fonts=False,
            )
        )

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
    paths = {DOCS_URL, REDOC_URL}
    for asset, media_type in ASSETS.items():
        path = f"{STATIC_PREFIX}/{asset}"
        app.add_route(path, _asset_endpoint(STATIC_DIR / asset, media_type), include_in_schema=False)
        paths.add(path)
    app.state.docs_paths = frozenset(paths)


def _asset_endpoint(file: Path, media_type: str) -> Callable[[Request], Any]:
    """One vendored file, with its validators (``ETag``, ``Last-Modified``); only the listed
    files are served, so the licences and README beside them are not on the wire."""

    async def asset(request: Request) -> Response:
        return FileResponse(file, media_type=media_type)

    return asset
