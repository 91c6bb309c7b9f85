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


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield method.upper(), path, operation


def test_every_error_is_documented_as_a_problem(document: dict[str, Any]) -> None:
    """Errors are answered as RFC 9457 problems (api/problems.py), and the document says so:
    FastAPI's own ``application/json`` ``HTTPValidationError`` is gone."""
    assert "HTTPValidationError" not in document["components"]["schemas"]
    problem = document["components"]["schemas"]["Problem"]
    assert problem["required"] == ["type", "title", "status"]
    others = {}
    for method, path, operation in operations(document):
        for status, answer in operation["responses"].items():
            if status[0] in "45":
                content = answer["content"]
                if "application/problem+json" in content:
                    schema = content["application/problem+json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}
                if set(content) != {"application/problem+json"}:
                    others[f"{method} {path} {status}"] = sorted(content)
    # The only error bodies that are not problems: the health report, and the page a
    # browser gets for a certificate number that does not exist.
    assert others == {
        "GET /health 503": ["application/json"],
        "GET /verify/{number} 404": ["application/problem+json", "text/html"],
    }


def test_the_errors_of_a_route_follow_from_its_dependencies(document: dict[str, Any]) -> None:
    paths = document["paths"]

    def statuses(method: str, path: str) -> set[str]:
        return set(paths[API_PREFIX + path if path.startswith("/") else path][method]["responses"])

    # A bearer token (401), a role (403), a path naming a user (404), a body (400, 413), the
    # database (503); 409 is the route's own.
    assert statuses("patch", "/users/{user_id}") == {
        "200", "400", "401", "403", "404", "409", "413", "422", "503"
    }  # fmt: skip
    assert statuses("post", "/auth/logout") == {"204", "401", "503"}
    # The key set reads no database and needs no token.
    assert set(paths["/.well-known/mutabaqa-keys.json"]["get"]["responses"]) == {"200"}
    forbidden = paths[API_PREFIX + "/products"]["post"]["responses"]["403"]["description"]
    assert forbidden.endswith("(it needs: manufacturer).")
    users = paths[API_PREFIX + "/users"]["get"]["responses"]["403"]["description"]
    assert users.endswith("(it needs: admin).")
