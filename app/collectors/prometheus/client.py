"""The one Prometheus endpoint a run needs: ``/api/v1/query_range``, with its error answers read.

Prometheus answers every API call with ``{"status": "success" | "error", "data", "errorType",
"error", "warnings"}``; a bad query is 400 (``bad_data``), one that cannot be executed 422, a query
that timed out 503 (retried by :class:`~app.collectors.http.SourceHTTP`). The 400 / 422 answers
are asked for (``expect``) so that the run fails with Prometheus's own message rather than a bare
status code. Compatible servers (Thanos, VictoriaMetrics, Mimir) answer the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from app.collectors.errors import SourceDataError, SourceError, SourceHTTPError
from app.collectors.http import SourceHTTP, parse_json
from app.collectors.prometheus.mapping import Series, Window, prometheus_time

log = logging.getLogger(__name__)

QUERY_RANGE = "api/v1/query_range"
#: answers whose body carries Prometheus's explanation (documented in the HTTP API page)
ERROR_STATUS = frozenset({400, 422})
HttpMethod = Literal["GET", "POST"]


class PrometheusQueryError(SourceError):
    """Prometheus answered ``status: error`` (a query it cannot parse or execute)."""


def auth_kwargs(credentials: Mapping[str, str]) -> dict[str, Any]:
    """``{"token"}`` → Bearer, ``{"username", "password"}`` → Basic, nothing → no authentication."""
    if credentials.get("token"):
        return {"headers": {"Authorization": f"Bearer {credentials['token']}"}}
    if "username" in credentials or "password" in credentials:
        if not credentials.get("username") or "password" not in credentials:
            raise SourceError(
                "prometheus 凭据须同时给出 username 和 password (credentials need username and password)"
            )
        return {"auth": httpx.BasicAuth(credentials["username"], credentials["password"])}
    if credentials:
        raise SourceError(
            "prometheus 凭据须为 {token} 或 {username, password} "
            "(credentials: a token, or a username and password)"
        )
    return {}


class PrometheusClient:
    """Range queries over the run's :class:`SourceHTTP` (one client, its timeouts and retries)."""

    def __init__(
        self, http: SourceHTTP, credentials: Mapping[str, str], *, method: HttpMethod = "POST"
    ) -> None:
        self.http = http
        self.method: HttpMethod = method
        self._auth = auth_kwargs(credentials)

    async def query_range(self, query: str, window: Window, *, name: str) -> list[Series]:
        """Every series of ``query`` evaluated over ``window``; ``name`` (the metric code) is for messages.

        Sent as form parameters — in a POST body by default, which keeps long PromQL out of URLs
        and proxy logs, or as a GET query string for gateways that allow only GET.
        """
        form = {
            "query": query,
            "start": prometheus_time(window.start_ms),
            "end": prometheus_time(window.end_ms),
            "step": prometheus_time(window.step_ms),
        }
        where = "data" if self.method == "POST" else "params"
        response = await self.http.request(
            self.method, QUERY_RANGE, expect=ERROR_STATUS, **{where: form}, **self._auth
        )
        return read_matrix(response, self.method, name)


def read_matrix(response: httpx.Response, method: str, name: str) -> list[Series]:
    """The series of a ``query_range`` answer; its error as :class:`PrometheusQueryError`."""
    if response.status_code in ERROR_STATUS:
        try:
            body = parse_json(response, method)
        except SourceDataError:
            body = None
        if not (isinstance(body, dict) and body.get("status") == "error"):
            raise SourceHTTPError(
                f"{method} {QUERY_RANGE} ({name}) → HTTP {response.status_code}", response.status_code
            )
    else:
        body = parse_json(response, method)
    if not isinstance(body, dict):
        raise SourceDataError(f"{name}: 应答不是 JSON 对象 (answer is not a JSON object)")
    status = body.get("status")
    if status == "error":
        kind = str(body.get("errorType") or "error")[:40]
        text = str(body.get("error") or "")[:500]
        raise PrometheusQueryError(f"Prometheus 查询 {name} 失败 (query failed): {kind}: {text}")
    if status != "success":
        raise SourceDataError(f"{name}: 应答 status 应为 success 或 error (unexpected status)")
    warnings = body.get("warnings")
    if isinstance(warnings, list) and warnings:
        log.warning("prometheus query %s: %s", name, "; ".join(str(w)[:200] for w in warnings[:5]))
    data = body.get("data")
    if not isinstance(data, dict):
        raise SourceDataError(f"{name}: 应答缺少 data (answer has no data)")
    if data.get("resultType") != "matrix":
        raise SourceDataError(
            f"{name}: resultType 应为 matrix，得到 {str(data.get('resultType'))[:20]} (expected a matrix)"
        )
    result = data.get("result")
    if not isinstance(result, list):
        raise SourceDataError(f"{name}: data.result 应为数组 (result is not a list)")
    return [_series(item, name) for item in result]


def _series(item: Any, name: str) -> Series:
    if not isinstance(item, dict):
        raise SourceDataError(f"{name}: 序列应为对象 (series is not an object)")
    labels = item.get("metric", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise SourceDataError(f"{name}: 序列标签应为字符串对象 (series labels are not strings)")
    values = item.get("values", [])
    # native histograms come as "histograms": a §4.4 value is one number, so they are not read
    if not isinstance(values, list) or not all(isinstance(p, list) and len(p) == 2 for p in values):
        raise SourceDataError(
            f"{name}: 序列 values 应为 [时间, 数值] 数组 (values are not [time, value] pairs)"
        )
    return Series(labels=labels, values=[(p[0], p[1]) for p in values])
