"""HTTP plumbing shared by the query and management ports: JSON errors, limits, timeouts.

- :func:`json_errors` is the middleware of both applications: a refused request (a
  :class:`~clipper_deploy.frontend.errors.ClipperError` or one of aiohttp's own 404/405/413...)
  is answered with Clipper's ``{"error": ..., "cause": ...}`` JSON and logged as one line; an
  unexpected exception answers JSON too (500, the one status that means a bug here), logged with
  its traceback at most every few seconds.
- :class:`FrontendRequestHandler` answers what aiohttp's parser refuses before any handler runs
  (a malformed request line, a header line over 8190 bytes, more than 128 headers, a bad
  ``Content-Length``) with the same JSON, instead of aiohttp's plain-text page and traceback.
- :class:`HTTPServer` listens with those handlers and the connection timeout: a connection that
  has not sent complete request headers within ``idle_timeout_s`` of connecting or of its
  previous answer is closed (aiohttp's keep-alive timer, which also runs from the moment a
  connection is made, so half-sent headers cannot hold a connection open).
- :func:`read_body` reads a body within the size limit and ``body_timeout_s``;
  :func:`expect_handler` refuses an oversized ``Expect: 100-continue`` body before the client
  sends it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web

from clipper_deploy.frontend.errors import (
    BAD_REQUEST,
    INTERNAL,
    METHOD_NOT_ALLOWED,
    NOT_FOUND,
    TIMEOUT,
    TOO_LARGE,
    ClipperError,
)

log = logging.getLogger("clipper_deploy.frontend.http")

#: Key under which a refused response carries its error, for the middleware's log line.
ERROR_KEY = "clipper_error"
TRACEBACK_EVERY_S = 10.0
LOG_FIELD_CHARS = 300
LINGERING_S = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def clean(text: str, limit: int = LOG_FIELD_CHARS) -> str:
    """``text`` on one line and at most ``limit`` characters, for a log line."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def error_response(exc: ClipperError) -> web.Response:
    """Clipper's ``{"error": ..., "cause": ...}`` answer for a refused request."""
    resp = web.Response(status=exc.status, body=exc.body(), content_type="application/json")
    resp[ERROR_KEY] = exc
    if exc.headers:
        resp.headers.update(exc.headers)
    return resp


def from_http_exception(
    exc: web.HTTPException, request: web.BaseRequest, hint: str = ""
) -> ClipperError:
    """The Clipper error for one of aiohttp's own HTTP errors (``hint`` follows a 404)."""
    status = exc.status
    if status == 404:
        return ClipperError(
            404,
            NOT_FOUND,
            f"no endpoint {request.method} {request.path}" + (f"; {hint}" if hint else ""),
        )
    if status == 405:
        allowed = ", ".join(sorted(getattr(exc, "allowed_methods", ()) or ()))
        return ClipperError(
            405,
            METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed on {request.path}"
            + (f"; use {allowed}" if allowed else ""),
        )
    if status == 413:
        return ClipperError(413, TOO_LARGE, exc.text or "the request body is too large")
    return ClipperError(status, exc.reason or BAD_REQUEST, exc.text or exc.reason)


class _InternalErrors:
    """Rate limit for tracebacks of unexpected exceptions."""

    last = 0.0


def internal_error(request: web.BaseRequest, exc: BaseException) -> ClipperError:
    """Log an unexpected exception (traceback at most every few seconds) and say so as JSON."""
    now = time.monotonic()
    where = f"{request.method} {clean(request.path, 200)}"
    if now - _InternalErrors.last >= TRACEBACK_EVERY_S:
        _InternalErrors.last = now
        log.error("internal error on %s: %s", where, clean(repr(exc)), exc_info=exc)
    else:
        log.error("internal error on %s: %s", where, clean(repr(exc)))
    return ClipperError(
        500,
        INTERNAL,
        f"the frontend failed on this request ({type(exc).__name__}); this is a bug of the "
        "frontend: its log (frontend.log) has the details",
    )


def log_refused(request: web.BaseRequest, exc: ClipperError) -> None:
    """One log line for a refused request: who, what, and why."""
    log.info(
        "refused %s %s from %s: %d %s: %s",
        request.method,
        clean(request.path, 200),
        request.remote,
        exc.status,
        exc.error,
        clean(exc.cause),
    )


def json_errors(not_found_hint: str = "") -> Any:
    """The middleware that turns every refusal into Clipper's JSON error and logs it on one
    line; ``not_found_hint`` says which endpoints exist, after a 404."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            resp = await handler(request)
        except ClipperError as exc:
            resp = error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            resp = error_response(from_http_exception(exc, request, not_found_hint))
            if exc.status == 405:
                resp.headers["Allow"] = exc.headers.get("Allow", "")
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:
            resp = error_response(internal_error(request, exc))
        error = resp.get(ERROR_KEY) if isinstance(resp, web.StreamResponse) else None
        if error is not None:
            log_refused(request, error)
        return resp

    return middleware


class FrontendRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering requests its parser refuses with Clipper JSON,
    and refusing a connection beyond ``max_connections`` open ones on its port (a 503 written
    at once, then closed: no request of it is read)."""

    def __init__(self, manager: web.Server, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.max_connections = max_connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        manager = self._manager
        if manager is not None and len(manager.connections) > self.max_connections:
            _refuse_over_capacity(transport, self.max_connections)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's own exception reports (a body it could not drain after an answer, ...):
        one line, no traceback."""
        exc = kw.get("exc_info")
        message = args[0] % args[1:] if args and len(args) > 1 else (args[0] if args else "")
        log.warning("connection handler: %s: %s", clean(str(message), 100), clean(repr(exc)))

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Answer (and log on one line) a request that never reached a handler."""
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already sent; cannot send the error")
        if status >= 500:
            error = internal_error(request, exc or RuntimeError(message or "unknown"))
        else:
            detail = clean(message or (str(exc) if exc else ""), 200)
            error = ClipperError(
                status,
                BAD_REQUEST,
                f"malformed HTTP request ({detail}); send HTTP/1.1 with headers under 8190 "
                "bytes each and at most 128 of them",
            )
            log.info("refused malformed HTTP from %s: %d %s", request.remote, status, clean(detail))
        resp = web.Response(status=error.status, body=error.body(), content_type="application/json")
        resp.force_close()
        return resp


def expect_handler(max_bytes: int) -> Callable[[web.Request], Awaitable[web.Response | None]]:
    """The ``Expect:`` handler of POST routes: ``100 Continue`` only for a body within
    ``max_bytes``; a 413 (or 417 for another expectation) in Clipper's JSON otherwise."""

    async def handle(request: web.Request) -> web.Response | None:
        expect = request.headers.get("Expect", "")
        if expect.lower() != "100-continue":
            error = ClipperError(
                417, "Expectation failed", f"unknown Expect: {clean(expect, 100)}; send none"
            )
        elif request.content_length is not None and request.content_length > max_bytes:
            error = too_large(max_bytes, request.content_length)
        else:
            if request.version >= (1, 1):
                await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                request.writer.output_size = 0
            return None
        log_refused(request, error)
        resp = error_response(error)
        resp.force_close()
        return resp

    return handle


async def read_body(request: web.Request, max_bytes: int, timeout_s: float) -> bytes:
    """The request body, refused (413) beyond ``max_bytes`` before it is read, and (408) if it
    does not arrive within ``timeout_s``."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise too_large(max_bytes, length)
    try:
        if request.content.is_eof():  # all of it arrived with the headers: nothing to wait for
            return await request.read()
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large(max_bytes, None) from None
    except web.RequestPayloadError as exc:
        raise ClipperError(
            400,
            BAD_REQUEST,
            f"the request body could not be read ({clean(str(exc), 200)}); check its "
            "Content-Encoding and chunked framing",
            headers={"Connection": "close"},
        ) from None
    except TimeoutError:
        raise ClipperError(
            408,
            TIMEOUT,
            f"the request body did not arrive within {timeout_s:g} s (--body-timeout)",
            headers={"Connection": "close"},
        ) from None


def too_large(max_bytes: int, length: int | None) -> ClipperError:
    """The 413 for a body over ``max_bytes``."""
    size = f"of {length} bytes " if length is not None else ""
    return ClipperError(
        413,
        TOO_LARGE,
        f"the request body {size}exceeds this frontend's limit of {max_bytes} bytes "
        "(--max-body-bytes)",
    )


def json_response(obj: Any, status: int = 200) -> web.Response:
    """A JSON HTTP answer."""
    return web.Response(
        status=status, body=json.dumps(obj).encode(), content_type="application/json"
    )


_over_capacity_logged = 0.0


def _refuse_over_capacity(transport: asyncio.BaseTransport, limit: int) -> None:
    """Write a 503 (Clipper JSON, ``Retry-After: 1``) and close; logged at most once a minute."""
    global _over_capacity_logged
    error = ClipperError(
        503,
        "Service Unavailable",
        f"this port already has {limit} open connections (max_connections); close idle "
        "connections or retry in a second",
    )
    body = error.body()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Retry-After: 1\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    cast(asyncio.Transport, transport).write(head.encode() + body)
    transport.close()
    now = time.monotonic()
    if now - _over_capacity_logged > 60:
        _over_capacity_logged = now
        log.warning("refused connections beyond max_connections=%d (logged once a minute)", limit)


SHUTDOWN_TIMEOUT_S = 5.0
"""How long a stopping frontend lets requests in progress finish (under Docker's 10 s)."""


class HTTPServer:
    """One aiohttp application on one TCP port, with :class:`FrontendRequestHandler`."""

    def __init__(
        self,
        app: web.Application,
        idle_timeout_s: float,
        max_connections: int = 2048,
        shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S,
    ) -> None:
        self.app = app
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=shutdown_timeout_s
        )
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int, backlog: int = 1024, ssl: Any = None) -> None:
        """Listen on ``host:port`` (TLS with the ``ssl`` context if given)."""
        await self.runner.setup()
        manager = self.runner.server
        assert manager is not None
        loop = asyncio.get_running_loop()
        idle = self.idle_timeout_s

        def protocol() -> FrontendRequestHandler:
            return FrontendRequestHandler(
                manager,
                max_connections=self.max_connections,
                loop=loop,
                access_log=None,
                keepalive_timeout=idle,
                lingering_time=LINGERING_S,
            )

        self.server = await loop.create_server(
            protocol,
            host,
            port,
            backlog=backlog,
            reuse_address=True,
            ssl=ssl,
            ssl_handshake_timeout=idle if ssl is not None else None,
        )

    def close(self) -> None:
        """Stop listening (requests already received are still answered)."""
        if self.server is not None:
            self.server.close()

    async def stop(self) -> None:
        """Stop listening, let the requests in progress finish (at most
        ``shutdown_timeout_s``), then close the connections."""
        self.close()
        await self.runner.cleanup()
