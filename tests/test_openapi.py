"""The published OpenAPI file is the code's own, and documents fields in Chinese."""

from __future__ import annotations

import json
from pathlib import Path

from app.main import create_app

PUBLISHED = Path(__file__).resolve().parent.parent / "openapi" / "openapi.json"


def test_published_openapi_matches_the_code() -> None:
    fresh = create_app().openapi()
    published = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    assert published == json.loads(json.dumps(fresh)), "openapi/openapi.json is stale: run `make openapi`"


def test_openapi_is_3_1_and_push_fields_have_chinese_descriptions() -> None:
    spec = json.loads(PUBLISHED.read_text(encoding="utf-8"))
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/reports/{kind}" in spec["paths"]
    receipt = spec["components"]["schemas"]["ReceiptOut"]["properties"]
    assert receipt["accepted"]["description"] == "接收的记录数"
