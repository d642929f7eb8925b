"""The OpenAPI 3 document of the query and management APIs, served at ``GET /openapi.json``
on the management port.

One document describes both HTTP ports: operations tagged ``query`` are served on the query port
(default 1337), those tagged ``admin`` on the management port (default 1338). The fuzzing test
(``tests/serving/test_serving_fuzz.py``) feeds it to schemathesis against a real frontend.
"""

from __future__ import annotations

from typing import Any

from clipper_deploy.frontend.protocol import INPUT_TYPES, MAX_REPLICA_ID_CHARS
from clipper_deploy.frontend.store import MAX_NAME_CHARS, MAX_SLO_MICROS

NAME = {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "pattern": r"^[^/\s]+$"}
VERSION = {"oneOf": [NAME, {"type": "integer", "minimum": 0}]}
REPLICA_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_REPLICA_ID_CHARS,
    "pattern": r"^[^\x00-\x1f\x7f]+$",
}
MAX_KEYS_PER_CALL = 1024
NUMBERS = {"type": "array", "minItems": 1, "items": {"type": "number"}}
INPUT = {
    "description": "doubles/floats/ints: a flat array of numbers; strings: a string; bytes: "
    "a base64 string",
    "oneOf": [NUMBERS, {"type": "string"}],
}
ERROR = {
    "type": "object",
    "required": ["error", "cause"],
    "properties": {"error": {"type": "string"}, "cause": {"type": "string"}},
}
PREDICTION = {
    "type": "object",
    "required": ["query_id", "output", "default"],
    "properties": {
        "query_id": {"type": "integer"},
        "output": {},
        "default": {"type": "boolean"},
        "default_explanation": {"type": "string"},
    },
}
SUCCESS = {
    "type": "object",
    "required": ["success"],
    "properties": {"success": {"type": "boolean", "enum": [True]}},
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    text = {
        400: "malformed request: the cause says what is wrong",
        401: "missing or wrong token (bearer, or Basic with the token as password)",
        404: "unknown application or model",
        408: "the body did not arrive in time",
        409: "conflict (the name exists, the app is linked elsewhere, no replica)",
        413: "body too large",
    }
    return {str(s): {"description": text[s], **_json(ERROR)} for s in statuses}


def _object(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


ADMIN_ENDPOINTS: dict[str, tuple[str, dict[str, Any], dict[str, Any], bool]] = {
    # name: (summary, request schema, success schema, also GET)
    "add_app": (
        "Register an application",
        _object(
            ["name", "input_type"],
            {
                "name": NAME,
                "input_type": {"type": "string", "enum": list(INPUT_TYPES)},
                "default_output": {},
                "latency_slo_micros": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_SLO_MICROS,
                },
            },
        ),
        SUCCESS,
        False,
    ),
    "delete_app": ("Remove an application", _object(["name"], {"name": NAME}), SUCCESS, False),
    "add_model": (
        "Register a model version (the first becomes current)",
        _object(
            ["model_name", "model_version", "input_type"],
            {
                "model_name": NAME,
                "model_version": VERSION,
                "input_type": {"type": "string", "enum": list(INPUT_TYPES)},
                "labels": {"type": "array", "items": {"type": "string"}},
                "container_name": {"type": "string"},
                "model_data_path": {"type": "string"},
            },
        ),
        SUCCESS,
        False,
    ),
    "delete_versioned_model": (
        "Remove one model version",
        _object(["model_name", "model_version"], {"model_name": NAME, "model_version": VERSION}),
        SUCCESS,
        False,
    ),
    "add_model_links": (
        "Link an application to one model of the same input type",
        _object(
            ["app_name", "model_names"],
            {
                "app_name": NAME,
                "model_names": {"type": "array", "minItems": 1, "maxItems": 1, "items": NAME},
            },
        ),
        SUCCESS,
        False,
    ),
    "delete_model_links": (
        "Remove an application's link to its model (Clipper's unlink_model_from_app)",
        _object(
            ["app_name", "model_names"],
            {"app_name": NAME, "model_names": {"type": "array", "items": NAME}},
        ),
        SUCCESS,
        False,
    ),
    "set_model_version": (
        "Switch the version that serves a model",
        _object(["model_name", "model_version"], {"model_name": NAME, "model_version": VERSION}),
        SUCCESS,
        False,
    ),
    "get_all_applications": (
        "Application names, or full objects with verbose",
        _object([], {"verbose": {"type": "boolean"}}),
        {"type": "array"},
        True,
    ),
    "get_application": (
        "One application",
        _object(["name"], {"name": NAME}),
        {"type": "object"},
        True,
    ),
    "get_linked_models": (
        "The model linked to an application",
        _object(["app_name"], {"app_name": NAME}),
        {"type": "array", "items": {"type": "string"}},
        True,
    ),
    "get_all_models": (
        "Model versions as name:version, or full objects with verbose",
        _object([], {"verbose": {"type": "boolean"}}),
        {"type": "array"},
        True,
    ),
    "get_model": (
        "One model version",
        _object(["model_name", "model_version"], {"model_name": NAME, "model_version": VERSION}),
        {"type": "object"},
        True,
    ),
    "get_all_containers": (
        "Connected and recently departed replicas",
        _object([], {"verbose": {"type": "boolean"}}),
        {"type": "array"},
        True,
    ),
    "get_container": (
        "One replica of a model version, by replica id",
        _object(
            ["model_name", "model_version", "replica_id"],
            {
                "model_name": NAME,
                "model_version": VERSION,
                "replica_id": {"oneOf": [NAME, {"type": "integer", "minimum": 0}]},
            },
        ),
        {"type": "object"},
        True,
    ),
    "smoke_predict": (
        "One query on a version's replicas, current or not (the rollout health gate)",
        _object(
            ["model_name", "model_version", "input"],
            {
                "model_name": NAME,
                "model_version": VERSION,
                "input": INPUT,
                "timeout_s": {
                    "type": "number",
                    "minimum": 0,
                    "exclusiveMinimum": True,
                    "maximum": 60,
                },
            },
        ),
        _object(
            ["output", "default", "explanation"],
            {"output": {}, "default": {"type": "boolean"}, "explanation": {}},
        ),
        False,
    ),
    "replica_keys": (
        "The keys replicas of a version prove at HELLO (the deploy writes each into a 0600 "
        "file on the replica's host)",
        _object(
            ["model_name", "model_version", "replica_ids"],
            {
                "model_name": NAME,
                "model_version": VERSION,
                "replica_ids": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_KEYS_PER_CALL,
                    "items": REPLICA_ID,
                },
            },
        ),
        _object(
            ["keys"],
            {"keys": {"type": "object", "additionalProperties": {"type": "string"}}},
        ),
        False,
    ),
}


def _admin_operation(
    name: str, summary: str, request: dict[str, Any], ok: dict[str, Any]
) -> dict[str, Any]:
    return {
        "tags": ["admin"],
        "operationId": name,
        "summary": summary,
        "security": [{"bearer": []}, {"basic": []}],
        "requestBody": {"required": False, **_json(request)},
        "responses": {
            "200": {"description": "done", **_json(ok)},
            **_errors(400, 401, 404, 409, 413),
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.0 document."""
    paths: dict[str, Any] = {
        "/{app}/predict": {
            "post": {
                "tags": ["query"],
                "operationId": "predict",
                "summary": "Predict one input or a batch with the app's current model version",
                "parameters": [{"name": "app", "in": "path", "required": True, "schema": NAME}],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "oneOf": [
                                _object(["input"], {"input": INPUT}),
                                _object(
                                    ["input_batch"],
                                    {
                                        "input_batch": {
                                            "type": "array",
                                            "minItems": 1,
                                            "items": INPUT,
                                        }
                                    },
                                ),
                            ]
                        }
                    ),
                },
                "responses": {
                    "200": {
                        "description": "the model's output, or the default output and why",
                        **_json(
                            {
                                "oneOf": [
                                    PREDICTION,
                                    _object(
                                        ["batch_predictions"],
                                        {
                                            "batch_predictions": {
                                                "type": "array",
                                                "items": PREDICTION,
                                            }
                                        },
                                    ),
                                ]
                            }
                        ),
                    },
                    **_errors(400, 401, 404, 408, 413),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["query"],
                "operationId": "metrics",
                "summary": "Prometheus metrics (admin token unless the frontend opens them)",
                "security": [{"bearer": []}, {"basic": []}, {}],
                "responses": {
                    "200": {
                        "description": "Prometheus text",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    **_errors(401),
                },
            }
        },
        "/admin/ping": {
            "get": {
                "tags": ["admin"],
                "operationId": "ping",
                "summary": "Liveness (no token)",
                "responses": {
                    "200": {
                        "description": "alive",
                        **_json(
                            _object(
                                ["status", "uptime_s"],
                                {"status": {"type": "string"}, "uptime_s": {"type": "number"}},
                            )
                        ),
                    }
                },
            }
        },
    }
    for name, (summary, request, ok, also_get) in ADMIN_ENDPOINTS.items():
        item = {"post": _admin_operation(name, summary, request, ok)}
        if also_get:
            get = dict(_admin_operation(name, summary, request, ok))
            get["operationId"] = f"{name}_get"
            del get["requestBody"]
            item["get"] = get
        paths[f"/admin/{name}"] = item
    paths.update(_dashboard_paths())
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "clipper-deploy frontend",
            "version": "1",
            "description": "Clipper-compatible query API (operations tagged 'query', on the query "
            "port, default 1337) and management API (tagged 'admin', on the management port, "
            'default 1338). Every refusal is a 4xx with {"error", "cause"}.',
        },
        "tags": [
            {"name": "query", "description": "served on the query port (default 1337)"},
            {"name": "admin", "description": "served on the management port (default 1338)"},
        ],
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "the admin token as password, any user name (~/.netrc)",
                },
            }
        },
        "paths": paths,
    }


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _dashboard_paths() -> dict[str, Any]:
    """The dashboard's routes (:mod:`~clipper_deploy.frontend.dashboard`), on the management
    port. Its static files (``/dashboard/static/{name}``) are left out: they are not an API."""
    state = {
        "type": "object",
        "required": [
            "time",
            "frontend",
            "apps",
            "models",
            "hosts",
            "metrics",
            "audit",
            "operations",
        ],
        "properties": {
            "time": {"type": "number"},
            "frontend": {"type": "object"},
            "apps": {"type": "array", "items": {"type": "object"}},
            "models": {"type": "array", "items": {"type": "object"}},
            "hosts": {"type": "array", "items": {"type": "object"}},
            "metrics": {"type": "object"},
            "audit": {"type": "object"},
            "operations": {"type": "array", "items": {"type": "object"}},
        },
    }
    form = {
        "type": "object",
        "required": ["token"],
        "properties": {"token": {"type": "string", "maxLength": 1024}},
    }
    redirect = {"description": "to /dashboard (a session cookie is set on sign-in)"}
    return {
        "/dashboard": {
            "get": {
                "tags": ["admin"],
                "operationId": "dashboard",
                "summary": "The fleet dashboard (signed in), else its sign-in form",
                "security": [{"bearer": []}, {}],
                "responses": {"200": _html("the page or the sign-in form")},
            }
        },
        "/dashboard/login": {
            "post": {
                "tags": ["admin"],
                "operationId": "dashboard_login",
                "summary": "Sign in to the dashboard with the admin token (form field token)",
                "requestBody": {
                    "required": True,
                    "content": {"application/x-www-form-urlencoded": {"schema": form}},
                },
                "responses": {
                    "303": redirect,
                    "401": _html("wrong token: the form again"),
                    **_errors(400, 413),
                    "403": {"description": "posted from another site", **_json(ERROR)},
                },
            }
        },
        "/dashboard/logout": {
            "post": {
                "tags": ["admin"],
                "operationId": "dashboard_logout",
                "summary": "End the dashboard session",
                "responses": {
                    "303": redirect,
                    "403": {"description": "posted from another site", **_json(ERROR)},
                },
            }
        },
        "/dashboard/api/state": {
            "get": {
                "tags": ["admin"],
                "operationId": "dashboard_state",
                "summary": "Everything the dashboard shows, as JSON (session cookie or bearer)",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "the fleet", **_json(state)}, **_errors(401)},
            }
        },
    }
