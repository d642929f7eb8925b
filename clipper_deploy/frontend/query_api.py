"""The query API (default port 1337): Clipper's ``POST /{app}/predict`` and ``GET /metrics``.

``{"input": x}`` answers ``{"query_id": int, "output": y, "default": bool}`` (plus
``"default_explanation"`` when the default output was used); ``{"input_batch": [x, ...]}``
answers ``{"batch_predictions": [...]}`` with one such object per input. A refused request gets
a 4xx with ``{"error": ..., "cause": ...}``. This is the hot path: it touches memory only.

Bounded: a body over ``max_body_bytes`` is refused before it is read, one that does not arrive
within ``body_timeout_s`` gets 408, an ``input_batch`` over ``max_batch_inputs`` gets 400, a
body over :data:`PARSE_INLINE_BYTES` is parsed in a worker thread (the event loop keeps serving
meanwhile), and a query its model's queue cannot take gets the default output at once (see
:mod:`~clipper_deploy.frontend.router`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from clipper_deploy.frontend.errors import UNAUTHORIZED, ClipperError
from clipper_deploy.frontend.http import (
    error_response,
    expect_handler,
    json_errors,
    json_response,
    read_body,
)
from clipper_deploy.frontend.metrics import CONTENT_TYPE, Metrics
from clipper_deploy.frontend.router import Outcome, Pending, Router
from clipper_deploy.frontend.store import App, Store, unknown_app
from clipper_deploy.frontend.tokens import token_matches
from clipper_deploy.frontend.validation import parse_query

UNKNOWN_APP_LABEL = "_unknown"
#: Bodies up to this size are parsed on the event loop; larger ones in a worker thread.
PARSE_INLINE_BYTES = 64 * 1024
#: Large bodies parsed at once (each waits its turn beyond that): bounds their memory.
MAX_CONCURRENT_LARGE_PARSES = 2

__all__ = ["QueryAPI", "default_value", "error_response", "json_response"]


def default_value(default_output: Any) -> Any:
    """Clipper's json-or-string rule: a string default that is valid JSON is sent parsed."""
    if isinstance(default_output, str):
        try:
            return json.loads(default_output)
        except (ValueError, RecursionError):
            return default_output
    return default_output


class QueryAPI:
    """Handlers of the query port.

    ``tokens``: bearer tokens accepted on queries (``None``: queries need none).
    ``metrics_tokens``: tokens accepted on ``/metrics`` (``None``: open to anyone).
    """

    def __init__(
        self,
        store: Store,
        router: Router,
        metrics: Metrics,
        max_body_bytes: int,
        tokens: tuple[str, ...] | None = None,
        *,
        metrics_tokens: tuple[str, ...] | None = None,
        max_batch_inputs: int | None = None,
        body_timeout_s: float = 30.0,
    ) -> None:
        self.store = store
        self.router = router
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.tokens = tokens
        self.metrics_tokens = metrics_tokens
        self.max_batch_inputs = max_batch_inputs
        self.body_timeout_s = body_timeout_s
        self.query_ids = itertools.count()
        self.parser_pool = ThreadPoolExecutor(
            max_workers=MAX_CONCURRENT_LARGE_PARSES, thread_name_prefix="parse"
        )
        self.large_parses: asyncio.Semaphore | None = None

    def application(self) -> web.Application:
        """The aiohttp application serving the query port."""
        app = web.Application(
            client_max_size=self.max_body_bytes,
            middlewares=[json_errors("use POST /{app}/predict or GET /metrics")],
        )
        app.router.add_post(
            "/{app}/predict", self.predict, expect_handler=expect_handler(self.max_body_bytes)
        )
        app.router.add_get("/metrics", self.metrics_page)
        app.on_cleanup.append(self._close_pool)
        return app

    async def _close_pool(self, app: web.Application) -> None:
        self.parser_pool.shutdown(wait=False, cancel_futures=True)

    def check_token(self, request: web.Request) -> None:
        if self.tokens is not None and not token_matches(
            request.headers.get("Authorization"), self.tokens
        ):
            raise ClipperError(
                401,
                UNAUTHORIZED,
                "this frontend requires 'Authorization: Bearer <token>' (or HTTP Basic "
                "credentials with the token as password) on queries (query.token or "
                "admin.token from its state directory)",
            )

    async def parse(self, app: App, body: bytes) -> tuple[list[Any], bool]:
        """Parse and validate a query body; large ones off the event loop."""
        if len(body) <= PARSE_INLINE_BYTES:
            return parse_query(app.input_type, body, self.max_batch_inputs)
        if self.large_parses is None:
            self.large_parses = asyncio.Semaphore(MAX_CONCURRENT_LARGE_PARSES)
        async with self.large_parses:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self.parser_pool, parse_query, app.input_type, body, self.max_batch_inputs
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
            body = await read_body(request, self.max_body_bytes, self.body_timeout_s)
            inputs, is_batch = await self.parse(app, body)
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

    async def run(self, app: App, inputs: list[Any]) -> list[Outcome]:
        """Queue every input for the app's current model version and wait for all outcomes."""
        route = self.router.route(app)
        queue = route.queue
        if queue is None:
            return [(True, None, route.explanation, route.reason)] * len(inputs)
        loop = asyncio.get_running_loop()
        refused = queue.refuse(len(inputs))
        if refused is not None:
            explanation, reason = refused
            return [(True, None, explanation, reason)] * len(inputs)
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
        """``GET /metrics``: Prometheus text (admin token needed unless the metrics are open)."""
        if self.metrics_tokens is not None and not token_matches(
            request.headers.get("Authorization"), self.metrics_tokens
        ):
            raise ClipperError(
                401,
                UNAUTHORIZED,
                "/metrics needs 'Authorization: Bearer <admin token>' or HTTP Basic "
                "credentials with it as password (admin.token in the frontend's state "
                "directory), unless the frontend runs with --metrics-open "
                "(inventory: clipper_metrics_open=true)",
            )
        resp = web.Response(body=self.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp
