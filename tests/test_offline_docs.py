"""The interactive docs work on a closed network (issue 14, "Offline, as government networks are").

``/docs`` loaded Swagger UI from a CDN and ``/redoc`` loaded fonts from Google: on a government
network without the Internet both pages were blank. Both now load only what the hub serves itself
(``app/api/docs_static/``), under the same rule as the pages (a key in production unless
``SUPHUB_DOCS_PUBLIC``), and the OpenAPI document says how to authenticate, so "Try it out" works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from app.main import create_app
from tests.collectors.peers import stop
from tests.helpers import Hub

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("/docs", "/redoc")
#: what a page on a closed network cannot load
ELSEWHERE = ("fonts.googleapis", "fonts.gstatic", "cdn.jsdelivr", "unpkg", "http://", "https://")
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
SIGNED_HEADERS = ("X-App-Key", "X-Timestamp", "X-Nonce", "X-Content-Digest", "X-Signature")
CHROMIUM = Path("/usr/bin/chromium")
CLI = [sys.executable, "-m", "app.cli"]


class _Links(HTMLParser):
    """Every URL an HTML page makes the browser load or follow."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in {"src", "href", "spec-url", "action"} and value is not None:
                self.urls.append(value)


def links_of(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.urls


def same_origin(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and not url.startswith("//")


@asynccontextmanager
async def variant(hub: Hub, **update: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The same database served by an app with other settings."""
    application = create_app(hub.settings.model_copy(update=update))
    transport = httpx.ASGITransport(app=application)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
            yield client
    finally:
        await application.state.audit_writer.close()
        await application.state.rate_limiter.close()
        await application.state.engine.dispose()


async def _assets_of(http: httpx.AsyncClient, page: str) -> list[str]:
    answer = await http.get(page)
    assert answer.status_code == 200, answer.text
    return [urljoin(page, url) for url in links_of(answer.text) if not url.endswith("openapi.json")]


async def test_the_doc_pages_load_nothing_from_another_origin(hub: Hub) -> None:
    for page in PAGES:
        answer = await hub.http.get(page)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/html")
        html = answer.text
        for elsewhere in ELSEWHERE:
            assert elsewhere not in html, f"{page} names {elsewhere}"
        policy = answer.headers["content-security-policy"]  # what a bundle asks for stays in, too
        assert "default-src 'none'" in policy and "http" not in policy, policy
        urls = links_of(html)
        assert urls, html
        assert [url for url in urls if not same_origin(url)] == [], html
        assert "/openapi.json" in html
        for url in urls:
            asset = await hub.http.get(urljoin(page, url))
            assert asset.status_code == 200, (page, url)
            expected = CONTENT_TYPES.get(Path(urlsplit(url).path).suffix, "application/json")
            assert asset.headers["content-type"].startswith(expected), (url, asset.headers)
            assert len(asset.content) > 100, url


async def test_swagger_ui_neither_asks_the_online_validator_nor_needs_the_network(hub: Hub) -> None:
    """Swagger UI shows a badge fetched from its online validator unless told not to: on a hub
    reached by any name but ``localhost`` the page would reach out of the network."""
    html = (await hub.http.get("/docs")).text
    assert '"validatorUrl": null' in html
    for script in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert any(url.endswith(script) for url in links_of(html)), html
    redoc = (await hub.http.get("/redoc")).text
    assert any(url.endswith("redoc.standalone.js") for url in links_of(redoc)), redoc


async def test_the_vendored_assets_follow_the_rule_of_the_docs(hub: Hub) -> None:
    assets = await _assets_of(hub.http, "/docs") + await _assets_of(hub.http, "/redoc")
    assert len(assets) >= 4, assets
    async with variant(hub, env="production") as production:
        for url in (*PAGES, *assets):
            answer = await production.get(url)
            assert answer.status_code == 401 and answer.json()["code"] == "2001", url
            keyed = await production.get(url, headers=hub.auth(hub.admin))
            assert keyed.status_code == 200, url
    async with variant(hub, env="production", docs_public=True) as opened:
        for url in (*PAGES, *assets):
            assert (await opened.get(url)).status_code == 200, url


async def test_only_the_listed_assets_are_served(hub: Hub) -> None:
    """The licences and the README beside the assets are in the package, not on the wire; a path
    outside the folder is not read."""
    for path in (
        "/docs-static/swagger-ui/LICENSE",
        "/docs-static/README.md",
        "/docs-static/../config.py",
        "/docs-static/%2e%2e/docs.py",
    ):
        answer = await hub.get(path)
        assert answer.status_code == 404, path


async def test_the_openapi_document_says_how_to_authenticate(hub: Hub) -> None:
    spec = (await hub.http.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http"
    assert schemes["bearer"]["scheme"] == "bearer"
    for header in (*SIGNED_HEADERS, "X-Sign-Method"):
        assert schemes[header] == {"type": "apiKey", "in": "header", "name": header, **schemes[header]}
        assert schemes[header]["description"]
    signed: dict[str, list[str]] = {header: [] for header in SIGNED_HEADERS}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path in {"/healthz", "/readyz"}:
                assert not operation.get("security"), (method, path)
            else:
                assert operation["security"] == [{"bearer": []}, signed], (method, path)


def test_the_vendored_assets_are_package_data() -> None:
    """``pip install .`` (not editable) ships every asset and licence the docs folder holds."""
    import tomllib
    from fnmatch import fnmatch

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"].get("app.api", [])
    folder = ROOT / "app" / "api" / "docs_static"
    files = [p.relative_to(folder.parent).as_posix() for p in folder.rglob("*") if p.is_file()]
    assert len(files) >= 10, files
    missing = [f for f in files if not any(fnmatch(f, pattern) for pattern in patterns)]
    assert missing == [], f"not in [tool.setuptools.package-data] app.api: {missing}"


# --- a real browser on a closed network --------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    base: str
    bearer: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``supervision-hub serve`` on 127.0.0.2, and an admin key: a name Swagger UI does not take for
    a developer's own machine, so what it would fetch from elsewhere for a real host it fetches here."""
    if not CHROMIUM.exists():
        pytest.skip("no Chromium at /usr/bin/chromium (`apt-get install chromium`)")
    pytest.importorskip("playwright.async_api")
    from tests.collectors.peers import free_port

    tmp = tmp_path_factory.mktemp("docs-serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPHUB_")}
    env.update(SUPHUB_DATA_DIR=str(tmp / "var"), PYTHONPATH=str(ROOT))
    port = free_port()
    base = f"http://127.0.0.2:{port}"
    log = tmp / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.2", "--port", str(port), "--no-scheduler"],
            cwd=tmp,
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        created = subprocess.run(  # the database exists now: serve has migrated it
            [*CLI, "clients", "create", "--name", "root", "--role", "admin"],
            cwd=tmp,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        yield Served(base, json.loads(created.stdout)["bearer"])
    finally:
        stop(process)


@dataclass
class Browsed:
    tab: Any
    #: requests that would have left the hub (aborted before they did)
    elsewhere: list[str] = field(default_factory=list)
    #: the hub's own requests that failed or were answered 4xx/5xx
    failed: list[str] = field(default_factory=list)


@asynccontextmanager
async def browsing(base: str, page: str) -> AsyncIterator[Browsed]:
    """``page`` open in Chromium, every request to another origin recorded and aborted."""
    from playwright.async_api import Route, async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = await browser.new_context()
            tab = await context.new_page()
            browsed = Browsed(tab)

            async def only_the_hub(route: Route) -> None:
                url = route.request.url
                if url.startswith((f"{base}/", "data:", "blob:")):
                    await route.continue_()
                else:
                    browsed.elsewhere.append(url)
                    await route.abort()

            await context.route("**/*", only_the_hub)
            # what Chromium refused itself (the page's policy) never left: only the hub's own count
            tab.on(
                "requestfailed", lambda r: browsed.failed.append(r.url) if r.url.startswith(base) else None
            )
            tab.on("response", lambda r: browsed.failed.append(r.url) if r.status >= 400 else None)
            await tab.goto(f"{base}{page}", wait_until="networkidle")
            yield browsed
            await tab.wait_for_load_state("networkidle")
        finally:
            await browser.close()


async def test_swagger_ui_renders_and_tries_a_call_without_leaving_the_hub(served: Served) -> None:
    async with browsing(served.base, "/docs") as browsed:
        tab = browsed.tab
        title = await tab.locator(".swagger-ui .info .title").first.inner_text(timeout=20_000)
        assert "Supervision Hub" in title
        # "Authorize" with a bearer key, then "Try it out" on an operation that needs one
        await tab.click("button.authorize")
        dialog = tab.locator(".modal-ux")
        await dialog.locator("input").first.fill(served.bearer)
        await dialog.locator("button.authorize").first.click()
        await dialog.locator("button.close-modal").click()
        path = tab.locator(".opblock-summary-path", has_text="/api/v1/admin/platforms")
        operation = tab.locator(".opblock-get", has=path).first
        await operation.locator(".opblock-summary").click()
        await operation.locator("button.try-out__btn").click()
        await operation.locator("button.execute").click()
        status = operation.locator(".live-responses-table .response .response-col_status").first
        assert (await status.inner_text(timeout=20_000)).strip() == "200"
    assert browsed.elsewhere == []
    assert browsed.failed == []


async def test_redoc_renders_and_searches_without_leaving_the_hub(served: Served) -> None:
    async with browsing(served.base, "/redoc") as browsed:
        tab = browsed.tab
        title = await tab.locator(".api-info h1").first.inner_text(timeout=20_000)
        assert "Supervision Hub" in title
        await tab.fill("input[placeholder='Search...']", "platforms")  # ReDoc's search worker
        found = tab.locator("[data-role='search:results'] li")
        await found.first.wait_for(timeout=20_000)
    assert browsed.elsewhere == []
    assert browsed.failed == []
