"""The OpenAPI description, made to say what the server does, in one place.

Routes declare what only they know with :func:`doc`: their success body (a model of
``api.schemas`` or a media type) and the error statuses peculiar to them (406 on a submit,
409, 504 …). :func:`install` then completes every operation once, when ``/openapi.json`` is
first built:

* ``securitySchemes`` for the three ways to pass a key (``Authorization: Bearer``,
  ``x-api-key``, ``apikey``), applied to each route that reads the key (``api.auth``);
  ``/files/…`` takes one optionally;
* the statuses every route of its kind can answer: 400 (422 on the Replicate routes, as
  ``api.errors`` answers invalid input there), 401 and 429 with a key, 403 with an admin
  key, 404 with a path parameter, 408 and 413 with a body, 503 everywhere (a database or
  disk away, too many bodies in flight);
* every error status with the error model of the route's family (``api.errors``), as
  ``application/problem+json`` on the Replicate routes; FastAPI's own 422
  ``HTTPValidationError`` is dropped (validation errors never have that shape here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel

from sticker_maker.api import schemas
from sticker_maker.api.auth import admin_key, current_key, optional_key
from sticker_maker.api.errors import api_family

#: the three headers a key may come in (``api.auth.key_from_headers``)
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "`Authorization: Bearer sm_…` (native, Replicate's clients)",
    },
    "x-api-key": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "`x-api-key: sm_…` (Segmind's clients)",
    },
    "apikey": {
        "type": "apiKey",
        "in": "header",
        "name": "apikey",
        "description": "`apikey: sm_…` (the sticker-maker API's clients)",
    },
}
#: any one of them will do
SECURITY = [{name: []} for name in SECURITY_SCHEMES]

#: each family's error body (``api.errors.error_body``) and its media type
ERROR_MODELS: dict[str, tuple[type[BaseModel], str]] = {
    "native": (schemas.NativeError, "application/json"),
    "seed": (schemas.SeedError, "application/json"),
    "segmind": (schemas.SegmindError, "application/json"),
    "replicate": (schemas.Problem, "application/problem+json"),
}

DESCRIPTIONS = {
    400: "Invalid input: the message names the field (or `body`) and what is allowed",
    401: "No API key, or one that is unknown or revoked",
    403: "This route needs an admin key",
    404: "No such resource for this key (another key's is 404 too), or no such route",
    406: "Not enough credits for the job's upper estimate (the message says how many)",
    408: "The request body did not arrive in time",
    409: "Conflict: the job is not in a state that allows this (or the request is replayed)",
    413: "The request body is larger than the service's limit",
    422: "Refused: content policy, a reused idempotency key, or a failed job",
    429: "Too many requests for this key: retry after `Retry-After` seconds",
    503: "The service is busy or a dependency is down: retry after `Retry-After` seconds",
    504: "The job did not finish in the synchronous route's time; it keeps running",
}
_OTHER_DESCRIPTIONS = {304: "Not modified (`If-None-Match`)", 307: "Elsewhere (`Location`)"}
#: Replicate answers invalid input with 422 (``api.errors.error_status``)
REPLICATE_DESCRIPTIONS = {422: "Invalid input (`invalid_fields` names each field) or refused"}

BINARY = {"schema": {"type": "string", "format": "binary"}}
#: server-sent events: ``itemSchema`` describes each event (OpenAPI 3.2, as FastAPI writes it)
EVENT_STREAM = {
    "text/event-stream": {
        "itemSchema": {
            "type": "object",
            "properties": {
                "event": {"type": "string"},
                "data": {"type": "string", "description": "JSON, or a text line (logs)"},
                "id": {"type": "string"},
                "retry": {"type": "integer", "minimum": 0},
            },
        }
    }
}


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with its ``#/$defs/…`` references replaced by what they name."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its JSON body itself (so keeps its own
    field names in errors): the body's schema, from ``model``."""
    schema = model.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline(schema, schema.get("$defs", {}))}},
        }
    }


def form_doc(properties: dict[str, Any], required: tuple[str, ...] = ("image",)) -> dict[str, Any]:
    """``openapi_extra`` for a multipart route (the route reads the form itself)."""
    schema = {"type": "object", "required": list(required), "properties": properties}
    return {
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    }


def doc(
    model: type[BaseModel] | None = None,
    *errors: int,
    status: int = 200,
    content: dict[str, Any] | None = None,
    description: str = "",
    others: dict[int, type[BaseModel] | None] | None = None,
) -> dict[str, Any]:
    """Route decorator arguments: the success answer (``model`` as JSON, or ``content`` by
    media type), the error statuses of this route beyond the common ones, and ``others``:
    statuses with a body of their own (a model, or None for no body).

    The route keeps building its body itself (``response_model=None``): the model
    documents it, and the fuzzer holds the answers to it."""
    success: dict[str, Any] = {"description": description or "OK"}
    if model is not None:
        success["model"] = model
    if content is not None:
        success["content"] = content
    responses: dict[int | str, dict[str, Any]] = {status: success}
    for code in errors:
        responses[code] = {"description": DESCRIPTIONS[code]}
    for code, other in (others or {}).items():
        described = DESCRIPTIONS.get(code) or _OTHER_DESCRIPTIONS[code]
        responses[code] = {"description": described, **({"model": other} if other else {})}
    return {"response_model": None, "responses": responses}


def _calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    for dependency in getattr(dependant, "dependencies", None) or ():
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _add_models(components: dict[str, Any]) -> None:
    for model, _ in ERROR_MODELS.values():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema


def _complete(operation: dict[str, Any], route: Any) -> None:
    family = api_family(route.path_format)
    model, media_type = ERROR_MODELS[family]
    calls = set(_calls(route.dependant))
    responses: dict[str, Any] = operation.setdefault("responses", {})
    invalid = responses.get("422", {}).get("content", {}).get("application/json", {})
    if invalid.get("schema", {}).get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]  # FastAPI's guess: our validation errors are the family's model

    statuses = {422 if family == "replicate" else 400, 503}
    if calls & {current_key, admin_key, optional_key}:
        statuses |= {401, 429}
        operation["security"] = [*SECURITY, {}] if optional_key in calls else SECURITY
    if admin_key in calls:
        statuses.add(403)
    if route.param_convertors:
        statuses.add(404)
    if "requestBody" in operation:
        statuses |= {408, 413}
    for status in statuses:
        responses.setdefault(str(status), {})
    texts = {**DESCRIPTIONS, **(REPLICATE_DESCRIPTIONS if family == "replicate" else {})}
    for code, response in responses.items():
        if not code.isdigit() or int(code) < 400:
            continue
        response.setdefault("description", texts.get(int(code), "Error"))
        content = response.setdefault("content", {})
        for media in [m for m in content if not content[m]]:
            del content[media]  # an empty media type entry: the family's model below
        if not content:
            content[media_type] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}


def build(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI description, completed (see the module's docstring)."""
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {})
    _add_models(components.setdefault("schemas", {}))
    components["securitySchemes"] = SECURITY_SCHEMES
    paths = schema.get("paths", {})
    for route in iter_route_contexts(app.routes):
        if not getattr(route, "include_in_schema", False) or route.dependant is None:
            continue
        for method in route.methods or ():
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is not None:
                _complete(operation, route)
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    """Serve :func:`build`'s description at ``/openapi.json`` (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
