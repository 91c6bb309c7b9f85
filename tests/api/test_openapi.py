"""The OpenAPI document tells a client what each request action takes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from api.app import API_PREFIX, create_app
from domain.actions import ACTION_BODIES
from mutabaqa.settings import Settings


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Settings(database_url="sqlite://")).openapi()


def refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


def test_each_action_body_is_a_named_schema_of_the_action_route(document: dict[str, Any]) -> None:
    route = document["paths"][API_PREFIX + "/requests/{request_id}/actions/{action}"]["post"]
    schema = route["requestBody"]["content"]["application/json"]["schema"]
    listed = {ref.rsplit("/", 1)[-1] for ref in refs(schema)}
    assert listed == {model.__name__ for model in ACTION_BODIES.values()}
    for action, model in ACTION_BODIES.items():
        assert f"{action}" in schema["description"], action
        assert model.__name__ in document["components"]["schemas"]


def test_the_schemas_say_what_each_action_requires(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert set(schemas["AcceptBody"]["properties"]) == {"centre_code", "scope", "confirm_gtin"}
    assert schemas["AcceptBody"].get("required", []) == []
    assert set(schemas["RetestBody"]["required"]) == {"items", "reason"}
    assert schemas["ReasonBody"]["required"] == ["reason"]
    assert schemas["ReceiveSampleBody"]["additionalProperties"] is False


def test_every_reference_in_the_document_resolves(document: dict[str, Any]) -> None:
    names = set(document["components"]["schemas"])
    dangling = {ref for ref in refs(document) if ref.rsplit("/", 1)[-1] not in names}
    assert dangling == set()
