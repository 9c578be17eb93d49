"""The OpenAPI document, made to say what the API does: the packet schema and the request bodies
as components, a bearer token on every `/v1` operation (which may answer 401 / 403), and every
error as problem+json (FastAPI's default 422 body is not what this API sends: it answers
`invalid_request` problems)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from gateway.engine.models import Packet
from gateway.http.problems import PROBLEM_JSON, ProblemDetail, problem_responses

#: What reading a small JSON body (approve, reject, kill switch) can answer.
SMALL_BODY_CODES = ("malformed_json", "body_too_large", "unsupported_media_type", "invalid_request",
                    "invalid_unicode", "duplicate_key")


def json_body(model: type[BaseModel], *, required: bool) -> dict[str, Any]:
    """`openapi_extra` for a route that reads `model` as JSON itself (`gateway.http.body`)."""
    return {"requestBody": {"required": required, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def install_openapi(app: FastAPI, bodies: Iterable[type[BaseModel]]) -> None:
    """Serve the document built by `document(app, bodies)`, built once."""
    models = tuple(bodies)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, models)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document(app: FastAPI, bodies: Iterable[type[BaseModel]]) -> dict[str, Any]:
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    packet_schema = Packet.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(packet_schema.pop("$defs", {}))
    components["Packet"] = packet_schema
    for model in bodies:
        body_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(body_schema.pop("$defs", {}))
        components[model.__name__] = body_schema
    security = schema["components"].setdefault("securitySchemes", {})
    security["bearer"] = {"type": "http", "scheme": "bearer"}
    _document_problems(schema)
    return schema


def _document_problems(schema: dict[str, Any]) -> None:
    auth = problem_responses("missing_token", "invalid_token", "forbidden_role")
    invalid = problem_responses("invalid_request")
    problem_ref = {"$ref": "#/components/schemas/ProblemDetail"}
    schema["components"]["schemas"].setdefault("ProblemDetail", ProblemDetail.model_json_schema())
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if path.startswith("/v1/"):
                operation["security"] = [{"bearer": []}]
                for status, response in auth.items():
                    responses.setdefault(str(status), _openapi_response(response, problem_ref))
            if "422" in responses and PROBLEM_JSON not in responses["422"].get("content", {}):
                responses["422"] = _openapi_response(invalid[422], problem_ref)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    content = response.setdefault("content", {})
                    content.pop("application/json", None)
                    content.setdefault(PROBLEM_JSON, {"schema": problem_ref})
                    if not content[PROBLEM_JSON]:
                        content[PROBLEM_JSON] = {"schema": problem_ref}


def _openapi_response(response: dict[str, Any], problem_ref: dict[str, str]) -> dict[str, Any]:
    return {"description": response["description"], "content": {PROBLEM_JSON: {"schema": problem_ref}}}
