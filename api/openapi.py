"""The OpenAPI document, completed.

- The body of each request action as a named schema. One route takes every request action
  (``POST /requests/{id}/actions/{action}``), so FastAPI alone would document its body as
  "any object". Each action has its own pydantic model (``domain.actions.ACTION_BODIES``);
  this publishes them under their names and lists them as the route's body (``oneOf``),
  with which actions take which.
- The errors every route can answer because of what it depends on, derived from its
  dependencies so that they cannot drift from the code: 401 when it needs a bearer token,
  403 (naming the roles) when it ``require``s a permission, 404 when its path names
  something, 400 and 413 when it reads a body, 503 when it uses the database. A route
  documents its own other errors (409, a 404 of a body's reference, ...) with
  ``responses=``, and keeps its own description of any of these.
- Every error answer as what it is: RFC 9457 problem details (``application/problem+json``,
  the ``Problem`` schema; ``api/problems.py`` writes them). FastAPI documents its 422 as
  ``application/json`` ``HTTPValidationError`` and the ``responses=`` of a route without a
  body; both become problems here. An error whose route documents another body (the 503 of
  ``/health``, a ``HealthReport``) keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from api.deps import get_current_user, get_read_session, get_session
from api.problems import MEDIA_TYPE as PROBLEM_MEDIA_TYPE
from api.problems import PROBLEM_BASE
from domain.actions import ACTION_BODIES
from domain.permissions import ROUTE_ROLES

ACTION_ROUTE = "/requests/{request_id}/actions/{action}"

#: The schema of every problem answer (``api/problems.py``): ``type``, ``title`` and
#: ``status`` always; ``detail`` and members of the rule (``errors`` of a 422 that does not
#: match the schema, ``max_bytes`` of a 413, ``error_id`` of a 500, ...) when they apply.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. `type` ends with the rule's name "
    f"(`{PROBLEM_BASE}<name>`); other members depend on the rule.",
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "The rule, as a URI."},
        "title": {"type": "string"},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Where the request does not match the schema (422).",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": ["string", "null"]},
                },
            },
        },
    },
    "additionalProperties": True,
}
_PROBLEM_CONTENT = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
_FASTAPI_VALIDATION_ERROR = "#/components/schemas/HTTPValidationError"


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


def _is_default_error_body(content: dict[str, Any] | None) -> bool:
    """No body documented, or FastAPI's own ``HTTPValidationError``."""
    if not content:
        return True
    schema = content.get("application/json", {}).get("schema", {})
    return len(content) == 1 and schema.get("$ref") == _FASTAPI_VALIDATION_ERROR


def document_problems(document: dict[str, Any]) -> None:
    """Document every error answer of ``document`` as a problem (see the module's text)."""
    components = document.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, answer in operation.get("responses", {}).items():
                if status[:1] in ("4", "5") and _is_default_error_body(answer.get("content")):
                    answer["content"] = dict(_PROBLEM_CONTENT)
    # FastAPI's validation error schemas, now referenced by nothing, are dropped.
    for name in ("HTTPValidationError", "ValidationError"):
        if f"'#/components/schemas/{name}'" not in str(document):
            components.pop(name, None)


def _calls(dependant: Dependant) -> Iterator[Any]:
    """Every dependency ``dependant`` resolves, depth first."""
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _has_path_parameters(dependant: Dependant) -> bool:
    return bool(dependant.path_params) or any(
        _has_path_parameters(dependency) for dependency in dependant.dependencies
    )


#: Dependencies that open a database session (the caller's account is read in one).
_DATABASE = (get_session, get_read_session, get_current_user)


def route_errors(route: APIRoute | RouteContext) -> dict[str, str]:
    """The errors ``route`` can answer because of its dependencies and body (status:
    description); see the module's text."""
    calls = list(_calls(route.dependant))
    errors: dict[str, str] = {}
    if any(call is get_current_user for call in calls):
        errors["401"] = (
            "No bearer token, or an expired, revoked or unknown one, or a disabled account "
            "(`WWW-Authenticate: Bearer`)."
        )
    permissions = [call.permission for call in calls if hasattr(call, "permission")]
    if permissions:
        roles = sorted(set.intersection(*(set(ROUTE_ROLES[p]) for p in permissions)))
        errors["403"] = (
            f"The caller's roles do not allow this route (it needs: {', '.join(roles)})."
        )
    if _has_path_parameters(route.dependant):
        errors["404"] = "Nothing the path names exists within the caller's reach."
    if route.body_field is not None:
        errors["400"] = "The body could not be read (it is not UTF-8)."
        errors["413"] = "The body is larger than this route accepts (`max_bytes`)."
    if any(call in _DATABASE for call in calls):
        errors["503"] = (
            "The database or a workflow did not answer in time: repeat after `Retry-After` "
            "(with the same `Idempotency-Key`)."
        )
    return errors


def document_route_errors(app: FastAPI, document: dict[str, Any]) -> None:
    # Routes of included routers are reached through their contexts (FastAPI >= 0.165).
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document["paths"].get(route.path_format or "", {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status, description in route_errors(route).items():
                responses.setdefault(status, {"description": description})


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
        document_route_errors(app, document)
        document_problems(document)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
