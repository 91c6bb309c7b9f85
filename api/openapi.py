"""The OpenAPI document, completed: the body of each request action as a named schema.

One route takes every request action (``POST /requests/{id}/actions/{action}``), so FastAPI
alone would document its body as "any object". Each action has its own pydantic model
(``domain.actions.ACTION_BODIES``); this publishes them under their names and lists them as
the route's body (``oneOf``), with which actions take which.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from domain.actions import ACTION_BODIES

ACTION_ROUTE = "/requests/{request_id}/actions/{action}"


def action_body_schemas(components: dict[str, Any]) -> dict[str, Any]:
    """Add each action body's schema to ``components``; return the route's body schema."""
    actions_of: dict[str, list[str]] = {}
    for action, model in ACTION_BODIES.items():
        name = model.__name__
        if name not in components:
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            components[name] = schema
        actions_of.setdefault(name, []).append(action)
    return {
        "oneOf": [{"$ref": f"#/components/schemas/{name}"} for name in actions_of],
        "description": "The body of the action named in the path — "
        + "; ".join(f"{', '.join(actions)}: {name}" for name, actions in actions_of.items()),
    }


def install_openapi(app: FastAPI, prefix: str) -> None:
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        operation = document["paths"][prefix + ACTION_ROUTE]["post"]
        body = operation.setdefault("requestBody", {"content": {"application/json": {}}})
        body["content"]["application/json"]["schema"] = action_body_schemas(components)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
