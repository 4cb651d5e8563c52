"""The OpenAPI document: references resolve, the push bodies are documented, record fields in Chinese."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any, get_args
from urllib.parse import unquote

from app.main import create_app
from app.schemas.enums import REPORT_KINDS, CpuArch
from app.schemas.ingest import PUSH_BATCH_MODELS, RECORD_MODELS

PUSH_PATH = "/api/v1/reports/{kind}"
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
RECORD_TITLES = {model.__name__ for model in RECORD_MODELS.values()}
BATCH_TITLES = {
    "rooms": "RoomsBatch",
    "assets": "AssetsBatch",
    "logs": "LogsBatch",
    "metrics": "MetricsBatch",
    "environment": "EnvironmentBatch",
    "alarms": "AlarmsBatch",
}


@cache
def _spec() -> dict[str, Any]:
    return create_app().openapi()


def _walk(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every object of the document with its JSON pointer."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    """The target of a local reference ``#/a/b``; raises ``LookupError`` when there is none."""
    if not ref.startswith("#"):
        raise LookupError(f"not a local reference: {ref}")
    target: Any = spec
    for raw in unquote(ref[1:]).split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and token in target:
            target = target[token]
        elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
            target = target[int(token)]
        else:
            raise LookupError(ref)
    return target


def _deref(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = _resolve(spec, schema["$ref"])
    return schema


def _is_record(name: Any) -> bool:
    return isinstance(name, str) and (name.endswith("Record") or name in RECORD_TITLES)


def _record_schemas(spec: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every schema of a ``*Record`` model in the document (components and inline), by title."""
    found: dict[str, list[dict[str, Any]]] = {}
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        if _is_record(name):
            found.setdefault(name, []).append(schema)
    for _, node in _walk(spec):
        title = node.get("title")
        if _is_record(title) and isinstance(node.get("properties"), dict):
            found.setdefault(title, []).append(node)
    return found


def _undescribed(schemas: dict[str, list[dict[str, Any]]]) -> list[str]:
    return sorted(
        {
            f"{title}.{name}"
            for title, nodes in schemas.items()
            for node in nodes
            for name, prop in node.get("properties", {}).items()
            if not CJK.search(str(prop.get("description") or ""))
        }
    )


def test_every_ref_in_the_document_resolves() -> None:
    spec = _spec()
    refs = [(where, node["$ref"]) for where, node in _walk(spec) if isinstance(node.get("$ref"), str)]
    assert refs, "the document should use references"
    broken = []
    for where, ref in refs:
        try:
            _resolve(spec, ref)
        except LookupError:
            broken.append(f"{where}: {ref}")
    assert not broken, "unresolved $ref:\n" + "\n".join(broken)


def test_push_operation_documents_its_request_body_and_headers() -> None:
    spec = _spec()
    operation = spec["paths"][PUSH_PATH]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    schema = _deref(spec, body["content"]["application/json"]["schema"])
    batches = {_deref(spec, option)["title"]: _deref(spec, option) for option in schema["oneOf"]}
    assert set(batches) == set(BATCH_TITLES.values())
    assert {model.__name__ for model in PUSH_BATCH_MODELS} == set(BATCH_TITLES.values())

    for kind, title in BATCH_TITLES.items():
        batch = batches[title]
        assert CJK.search(batch["description"])
        assert {"batch_id", "platform_code", "collected_at", "records"} <= set(batch["required"])
        for name, prop in batch["properties"].items():
            assert CJK.search(prop.get("description", "")), f"{title}.{name}"
        records = batch["properties"]["records"]
        assert (records["minItems"], records["maxItems"]) == (1, 10_000)
        item = _deref(spec, records["items"])
        assert item["title"] == RECORD_MODELS[kind].__name__
        assert set(item["properties"]) == set(RECORD_MODELS[kind].model_fields)
        assert ("snapshot" in batch["properties"]) is (kind == "assets")

    asset = _deref(spec, batches["AssetsBatch"]["properties"]["records"]["items"])
    assert {"asset_id", "asset_type", "name", "status"} <= set(asset["required"])
    assert "lifecycle" not in asset["required"]
    cpu_arch = asset["properties"]["cpu_arch"]
    enums = [option["enum"] for option in cpu_arch["anyOf"] if "enum" in option]
    assert enums == [list(get_args(CpuArch))]
    assert "龙架构" in cpu_arch["description"]
    assert "MiB" in asset["properties"]["memory_mib"]["description"]
    assert "合并" in asset["description"] and "null" in asset["description"]

    replay = operation["responses"]["200"]["headers"]["Idempotent-Replay"]
    assert CJK.search(replay["description"])
    assert "Content-Encoding: gzip" in operation["description"]
    assert "Idempotent-Replay" in operation["description"]
    headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
    assert "Content-Encoding" in headers
    assert {str(code) for code in (400, 401, 403, 409, 413, 415, 422)} <= set(operation["responses"])


def test_every_record_property_has_a_chinese_description() -> None:
    found = _record_schemas(_spec())
    assert set(found) >= RECORD_TITLES
    missing = _undescribed(found)
    assert not missing, "properties without a Chinese description: " + ", ".join(missing)


def test_every_object_of_the_push_body_is_described_in_chinese() -> None:
    """Batches, records and what they nest (``SnapshotInfo``, ``IpAddress``)."""
    spec = _spec()
    body = spec["paths"][PUSH_PATH]["post"]["requestBody"]
    objects: dict[str, list[dict[str, Any]]] = {}
    pending = [body["content"]["application/json"]["schema"]]
    while pending:
        for _, node in _walk(_deref(spec, pending.pop())):
            if "$ref" in node:
                pending.append(node)
            elif isinstance(node.get("properties"), dict):
                objects.setdefault(str(node.get("title")), []).append(node)
    assert {"SnapshotInfo", "IpAddress", "AssetsBatch", "AssetRecord"} <= set(objects)
    for title, nodes in objects.items():
        assert all(CJK.search(str(node.get("description") or "")) for node in nodes), title
    missing = _undescribed(objects)
    assert not missing, "properties without a Chinese description: " + ", ".join(missing)


def test_record_models_describe_every_field_in_chinese() -> None:
    for kind in REPORT_KINDS:
        model = RECORD_MODELS[kind]
        assert model.__doc__ and CJK.search(model.__doc__), model.__name__
        for name, field in model.model_fields.items():
            assert field.description and CJK.search(field.description), f"{model.__name__}.{name}"
