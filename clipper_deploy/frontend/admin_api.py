"""The management API (default port 1338): Clipper's ``/admin/`` endpoints and JSON.

Every endpoint takes a JSON object in a ``POST`` body (read-only ones also answer ``GET``, with
an empty body meaning ``{}``) and needs ``Authorization: Bearer <admin token>`` (or HTTP Basic
credentials whose password is the admin token, any user name: what ``requests`` sends from
``~/.netrc`` for Clipper's ``clipper_admin``, which sends no token), except
``/admin/ping``, which answers anyone (it reveals nothing and serves as the liveness check).
Changes answer ``{"success": true}``; reads answer the data. A refused request gets a 4xx with
``{"error": ..., "cause": ...}``: 400 for a malformed request, 401 without a valid token, 404 for
an unknown app or model, 409 for a conflict (the name exists, the app is linked elsewhere).

=========================  =================================================================
endpoint                   body
=========================  =================================================================
add_app                    ``name, input_type, default_output, latency_slo_micros``
delete_app                 ``name``
add_model                  ``model_name, model_version, input_type`` (+ ``labels``,
                           ``container_name``, ``model_data_path``)
delete_versioned_model     ``model_name, model_version``
add_model_links            ``app_name, model_names`` (a list of one name)
delete_model_links         ``app_name, model_names``: remove the app's link (each name must be
                           linked: 404 for an unknown app, 409 for a name not linked)
set_model_version          ``model_name, model_version``
get_all_applications       ``verbose`` (names, or full objects)
get_application            ``name``
get_linked_models          ``app_name``
get_all_models             ``verbose`` (``"name:version"`` strings, or full objects)
get_model                  ``model_name, model_version``
get_all_containers         ``verbose`` (default true: one object per replica; false:
                           ``"name:version:replica_id"`` strings)
get_container              ``model_name, model_version, replica_id``: one replica (404 if
                           none has that id)
ping                       nothing
smoke_predict              ``model_name, model_version, input`` (+ ``timeout_s``, at most
                           60): one query on that version's replicas, current or not
                           (clipper-deploy's own: the health gate of rolling rollouts)
replica_keys               ``model_name, model_version, replica_ids`` (at most 1024):
                           ``{"keys": {id: key}}``, the key each replica proves at HELLO
                           (clipper-deploy's own; POST only)
=========================  =================================================================

``GET /openapi.json`` (no token: it describes, it reveals nothing) is the OpenAPI 3 document of
both HTTP APIs (:mod:`~clipper_deploy.frontend.openapi`).

Bodies are bounded (:data:`MAX_ADMIN_BODY_BYTES`, :data:`~clipper_deploy.frontend.validation.
MAX_JSON_DEPTH` levels), and every string field must be valid Unicode (no lone surrogates).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from clipper_deploy.frontend.errors import UNAUTHORIZED, ClipperError, bad_json
from clipper_deploy.frontend.http import expect_handler, json_errors, json_response, read_body
from clipper_deploy.frontend.openapi import MAX_KEYS_PER_CALL, document
from clipper_deploy.frontend.protocol import MAX_REPLICA_ID_CHARS
from clipper_deploy.frontend.router import Pending, Router
from clipper_deploy.frontend.store import DEFAULT_SLO_MICROS, Store
from clipper_deploy.frontend.tokens import token_matches
from clipper_deploy.frontend.validation import check_depth, parse_json, parse_query

Body = dict[str, Any]
Handler = Callable[[Body], Any]

SUCCESS = {"success": True}
MAX_ADMIN_BODY_BYTES = 4 * 1024 * 1024
MAX_SMOKE_TIMEOUT_S = 60.0


def field(body: Body, key: str, kind: type | tuple[type, ...] = str, default: Any = ...) -> Any:
    """Return ``body[key]`` checked against ``kind``; a 400 names the missing or wrong field."""
    if key not in body:
        if default is ...:
            raise bad_json(f"the request body needs the field {key!r}")
        return default
    value = body[key]
    kinds = _as_tuple(kind)
    if isinstance(value, bool) and int in kinds and bool not in kinds:
        raise bad_json(f"field {key!r} has the wrong type (got a boolean)")
    if not isinstance(value, kind):
        raise bad_json(f"field {key!r} has the wrong type (got {type(value).__name__})")
    if isinstance(value, str):
        check_text(value, key)
    return value


def check_text(value: str, key: str) -> None:
    """Refuse a string with a lone surrogate: it has no UTF-8 form (SQLite could not store it)."""
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise bad_json(
            f"field {key!r} holds a lone surrogate (U+{ord(value[exc.start]):04X}), which is "
            "not valid Unicode"
        ) from None


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def version_field(body: Body, key: str = "model_version") -> str:
    """Model versions are strings (as in Clipper); integers are accepted and converted."""
    value = field(body, key, (str, int))
    return str(value)


def model_names(body: Body) -> list[str]:
    """``body["model_names"]``, a list of strings (400 otherwise)."""
    names = field(body, "model_names", list)
    if not all(isinstance(x, str) for x in names):
        raise bad_json("field 'model_names' must be a list of strings")
    return names


class AdminAPI:
    """Handlers of the management port."""

    def __init__(
        self,
        store: Store,
        router: Router,
        admin_token: str,
        started_at: float | None = None,
        body_timeout_s: float = 30.0,
    ) -> None:
        self.store = store
        self.router = router
        self.admin_token = admin_token
        self.started_at = started_at or time.time()
        self.body_timeout_s = body_timeout_s
        self.openapi = json.dumps(document()).encode()

    def application(self) -> web.Application:
        """The aiohttp application serving the management port."""
        app = web.Application(
            client_max_size=MAX_ADMIN_BODY_BYTES,
            middlewares=[json_errors("the endpoints are listed in GET /openapi.json")],
        )
        changes: dict[str, Handler] = {
            "add_app": self.add_app,
            "delete_app": self.delete_app,
            "add_model": self.add_model,
            "delete_versioned_model": self.delete_versioned_model,
            "add_model_links": self.add_model_links,
            "delete_model_links": self.delete_model_links,
            "set_model_version": self.set_model_version,
        }
        reads: dict[str, Handler] = {
            "get_all_applications": self.get_all_applications,
            "get_application": self.get_application,
            "get_linked_models": self.get_linked_models,
            "get_all_models": self.get_all_models,
            "get_model": self.get_model,
            "get_all_containers": self.get_all_containers,
            "get_container": self.get_container,
        }
        expect = expect_handler(MAX_ADMIN_BODY_BYTES)
        app.router.add_post(
            "/admin/smoke_predict", self.endpoint(self.smoke_predict), expect_handler=expect
        )
        app.router.add_post(
            "/admin/replica_keys", self.endpoint(self.replica_keys), expect_handler=expect
        )
        for name, handler in changes.items():
            app.router.add_post(f"/admin/{name}", self.endpoint(handler), expect_handler=expect)
        for name, handler in reads.items():
            app.router.add_post(f"/admin/{name}", self.endpoint(handler), expect_handler=expect)
            app.router.add_get(f"/admin/{name}", self.endpoint(handler))
        app.router.add_get("/admin/ping", self.ping)
        app.router.add_post("/admin/ping", self.ping)
        app.router.add_get("/openapi.json", self.openapi_page)
        return app

    def endpoint(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Wrap ``handler(body) -> data`` with the token check, JSON parsing and error mapping."""

        async def serve(request: web.Request) -> web.Response:
            if not token_matches(request.headers.get("Authorization"), (self.admin_token,)):
                raise ClipperError(
                    401,
                    UNAUTHORIZED,
                    "the management API needs 'Authorization: Bearer <admin token>', or "
                    "HTTP Basic credentials with the token as password (any user name; "
                    "clients such as clipper_admin take them from ~/.netrc); the token is "
                    "admin.token in the frontend's state directory",
                )
            raw = await read_body(request, MAX_ADMIN_BODY_BYTES, self.body_timeout_s)
            body = parse_json(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise bad_json("the request body must be a JSON object")
            check_depth(body)
            result = handler(body)
            if inspect.isawaitable(result):
                result = await result
            return json_response(result)

        return serve

    async def ping(self, request: web.Request) -> web.Response:
        """Liveness: answers without a token."""
        return json_response({"status": "ok", "uptime_s": round(time.time() - self.started_at, 3)})

    async def openapi_page(self, request: web.Request) -> web.Response:
        """``GET /openapi.json``: the OpenAPI 3 document of the query and management APIs."""
        return web.Response(body=self.openapi, content_type="application/json")

    # ---- changes ------------------------------------------------------------------------

    def add_app(self, body: Body) -> Any:
        self.store.add_app(
            field(body, "name"),
            field(body, "input_type"),
            field(body, "default_output", object, None),
            field(body, "latency_slo_micros", int, DEFAULT_SLO_MICROS),
        )
        return SUCCESS

    def delete_app(self, body: Body) -> Any:
        self.store.delete_app(field(body, "name"))
        self.router.refresh_slos()
        return SUCCESS

    def add_model(self, body: Body) -> Any:
        labels = field(body, "labels", list, [])
        if not all(isinstance(x, str) for x in labels):
            raise bad_json("field 'labels' must be a list of strings")
        self.store.add_model(
            field(body, "model_name"),
            version_field(body),
            field(body, "input_type"),
            labels,
            field(body, "container_name", str, ""),
            field(body, "model_data_path", str, ""),
        )
        return SUCCESS

    def delete_versioned_model(self, body: Body) -> Any:
        self.store.delete_versioned_model(field(body, "model_name"), version_field(body))
        return SUCCESS

    def add_model_links(self, body: Body) -> Any:
        self.store.add_model_links(field(body, "app_name"), model_names(body))
        self.router.refresh_slos()
        return SUCCESS

    def delete_model_links(self, body: Body) -> Any:
        self.store.delete_model_links(field(body, "app_name"), model_names(body))
        self.router.refresh_slos()
        return SUCCESS

    def set_model_version(self, body: Body) -> Any:
        self.store.set_model_version(field(body, "model_name"), version_field(body))
        return SUCCESS

    # ---- reads --------------------------------------------------------------------------

    def get_all_applications(self, body: Body) -> Any:
        if field(body, "verbose", bool, False):
            return [a.to_json() for a in self.store.apps.values()]
        return list(self.store.apps)

    def get_application(self, body: Body) -> Any:
        return self.store.get_app(field(body, "name")).to_json()

    def get_linked_models(self, body: Body) -> Any:
        app = self.store.get_app(field(body, "app_name"))
        return [app.linked_model] if app.linked_model else []

    def get_all_models(self, body: Body) -> Any:
        current = self.store.current_versions
        if field(body, "verbose", bool, False):
            return [m.to_json(current.get(m.name)) for m in self.store.models.values()]
        return [f"{name}:{version}" for name, version in self.store.models]

    def get_model(self, body: Body) -> Any:
        name = field(body, "model_name")
        model = self.store.get_model(name, version_field(body))
        return model.to_json(self.store.current_versions.get(name))

    async def smoke_predict(self, body: Body) -> Any:
        """Answer one ``input`` with the replicas of ``model_name:model_version``, current or
        not: the health gate of rollouts tries a version before it takes traffic. Admin-only,
        and not counted as application traffic."""
        name = field(body, "model_name")
        version = version_field(body)
        model = self.store.get_model(name, version)
        if "input" not in body:
            raise bad_json("the request body needs the field 'input'")
        timeout = float(field(body, "timeout_s", (int, float), 5.0))
        if not 0 < timeout <= MAX_SMOKE_TIMEOUT_S:
            raise bad_json(
                f"field 'timeout_s' must be a number of seconds in (0, {MAX_SMOKE_TIMEOUT_S:g}], "
                f"got {timeout!r}"
            )
        inputs, _ = parse_query(model.input_type, json.dumps({"input": body["input"]}).encode())
        queue = self.router.queues.get((name, version))
        if queue is None or not queue.replicas:
            raise ClipperError(
                409, "No replica", f"no connected replica of model {name}:{version} to try"
            )
        loop = asyncio.get_running_loop()
        pending = Pending(inputs[0], loop.create_future())
        pending.timer = loop.call_later(timeout, pending.expire)
        queue.submit(pending)
        is_default, output, explanation, _reason = await pending.future
        return {"output": output, "default": is_default, "explanation": explanation}

    def replica_keys(self, body: Body) -> Any:
        """The key of each of ``replica_ids`` of ``model_name:model_version`` (derived from
        the version's secret, which never leaves the frontend)."""
        name = field(body, "model_name")
        version = version_field(body)
        ids = field(body, "replica_ids", list)
        if not 0 < len(ids) <= MAX_KEYS_PER_CALL:
            raise bad_json(f"field 'replica_ids' must list 1 to {MAX_KEYS_PER_CALL} replica ids")
        for rid in ids:
            if (
                not isinstance(rid, str)
                or not rid
                or len(rid) > MAX_REPLICA_ID_CHARS
                or not rid.isprintable()
            ):
                raise bad_json(
                    "field 'replica_ids' must hold printable strings of 1 to "
                    f"{MAX_REPLICA_ID_CHARS} characters"
                )
            check_text(rid, "replica_ids")
        return {"keys": {rid: self.store.replica_key(name, version, rid) for rid in ids}}

    def get_all_containers(self, body: Body) -> Any:
        containers = self.router.containers()
        if field(body, "verbose", bool, True):
            return containers
        return [
            f"{c['model_name']}:{c['model_version']}:{c['replica_id']}"
            for c in containers
            if c["state"] != "disconnected"
        ]

    def get_container(self, body: Body) -> Any:
        """One replica of ``model_name:model_version`` by ``replica_id`` (Clipper sends an
        integer; our replica ids are strings: both compare as text)."""
        name = field(body, "model_name")
        version = version_field(body)
        replica = str(field(body, "replica_id", (str, int)))
        for c in self.router.containers():
            if (c["model_name"], c["model_version"], str(c["replica_id"])) == (
                name,
                version,
                replica,
            ):
                return c
        raise ClipperError(
            404,
            "Unknown replica",
            f"no replica {replica!r} of model {name}:{version} is connected or recently gone "
            "(get_all_containers lists them)",
        )
