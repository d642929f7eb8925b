"""The query API (default port 1337): Clipper's ``POST /{app}/predict`` and ``GET /metrics``.

``{"input": x}`` answers ``{"query_id": int, "output": y, "default": bool}`` (plus
``"default_explanation"`` when the default output was used); ``{"input_batch": [x, ...]}``
answers ``{"batch_predictions": [...]}`` with one such object per input. A refused request gets
a 4xx with ``{"error": ..., "cause": ...}``. This is the hot path: it touches memory only.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

from aiohttp import web

from clipper_deploy.frontend.errors import NOT_FOUND, TOO_LARGE, UNAUTHORIZED, ClipperError
from clipper_deploy.frontend.metrics import CONTENT_TYPE, Metrics
from clipper_deploy.frontend.router import Outcome, Pending, Router
from clipper_deploy.frontend.store import App, Store, unknown_app
from clipper_deploy.frontend.tokens import token_matches
from clipper_deploy.frontend.validation import parse_query

UNKNOWN_APP_LABEL = "_unknown"


def default_value(default_output: Any) -> Any:
    """Clipper's json-or-string rule: a string default that is valid JSON is sent parsed."""
    if isinstance(default_output, str):
        try:
            return json.loads(default_output)
        except ValueError:
            return default_output
    return default_output


def json_response(obj: Any, status: int = 200) -> web.Response:
    """A JSON HTTP answer."""
    return web.Response(
        status=status, body=json.dumps(obj).encode(), content_type="application/json"
    )


def error_response(exc: ClipperError) -> web.Response:
    """Clipper's ``{"error": ..., "cause": ...}`` answer for a refused request."""
    return web.Response(status=exc.status, body=exc.body(), content_type="application/json")


class QueryAPI:
    """Handlers of the query port."""

    def __init__(
        self,
        store: Store,
        router: Router,
        metrics: Metrics,
        max_body_bytes: int,
        tokens: tuple[str, ...] | None = None,
    ) -> None:
        self.store = store
        self.router = router
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.tokens = tokens
        self.query_ids = itertools.count()

    def application(self) -> web.Application:
        """The aiohttp application serving the query port."""
        app = web.Application(client_max_size=self.max_body_bytes)
        app.router.add_post("/{app}/predict", self.predict)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_route("*", "/{tail:.*}", self.not_found)
        return app

    def check_token(self, request: web.Request) -> None:
        if self.tokens is not None and not token_matches(
            request.headers.get("Authorization"), self.tokens
        ):
            raise ClipperError(
                401,
                UNAUTHORIZED,
                "this frontend requires 'Authorization: Bearer <token>' on queries "
                "(query.token or admin.token from its state directory)",
            )

    async def predict(self, request: web.Request) -> web.Response:
        """``POST /{app}/predict``."""
        started = time.monotonic()
        name = request.match_info["app"]
        app = self.store.apps.get(name)
        label = name if app is not None else UNKNOWN_APP_LABEL
        try:
            self.check_token(request)
            if app is None:
                raise unknown_app(name)
            length = request.content_length
            if length is not None and length > self.max_body_bytes:
                raise self.too_large(length)
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise self.too_large(None) from None
            inputs, is_batch = parse_query(app.input_type, body)
            outcomes = await self.run(app, inputs)
        except ClipperError as exc:
            self.metrics.child("requests", label, str(exc.status)).inc()
            return error_response(exc)
        if is_batch:
            doc: Any = {"batch_predictions": [self.answer(app, o) for o in outcomes]}
        else:
            doc = self.answer(app, outcomes[0])
        self.metrics.child("requests", label, "200").inc()
        self.metrics.child("latency", label).observe(time.monotonic() - started)
        return web.Response(body=json.dumps(doc).encode(), content_type="application/json")

    def too_large(self, length: int | None) -> ClipperError:
        size = f"of {length} bytes " if length is not None else ""
        return ClipperError(
            413,
            TOO_LARGE,
            f"the request body {size}exceeds this frontend's limit of {self.max_body_bytes} "
            "bytes (--max-body-bytes)",
        )

    async def run(self, app: App, inputs: list[Any]) -> list[Outcome]:
        """Queue every input for the app's current model version and wait for all outcomes."""
        route = self.router.route(app)
        queue = route.queue
        if queue is None:
            return [(True, None, route.explanation, route.reason)] * len(inputs)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + app.slo_s
        items = []
        for value in inputs:
            pending = Pending(value, loop.create_future())
            pending.timer = loop.call_at(deadline, pending.expire)
            items.append(pending)
        if len(items) == 1:
            queue.submit(items[0])
            return [await items[0].future]
        queue.submit_many(items)
        return list(await asyncio.gather(*(p.future for p in items)))

    def answer(self, app: App, outcome: Outcome) -> dict[str, Any]:
        """One prediction object of the answer."""
        is_default, output, explanation, reason = outcome
        query_id = next(self.query_ids)
        if not is_default:
            return {"query_id": query_id, "output": output, "default": False}
        self.metrics.child("defaults", app.name, reason or "unknown").inc()
        return {
            "query_id": query_id,
            "output": default_value(app.default_output),
            "default": True,
            "default_explanation": explanation,
        }

    async def metrics_page(self, request: web.Request) -> web.Response:
        """``GET /metrics``: Prometheus text."""
        try:
            self.check_token(request)
        except ClipperError as exc:
            return error_response(exc)
        resp = web.Response(body=self.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp

    async def not_found(self, request: web.Request) -> web.Response:
        """Any other path: a JSON 404 naming the endpoints that exist."""
        return error_response(
            ClipperError(
                404,
                NOT_FOUND,
                f"no endpoint {request.method} {request.path}; "
                "use POST /{app}/predict or GET /metrics",
            )
        )
