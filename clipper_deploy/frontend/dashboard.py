"""The fleet dashboard, on the management port: ``/dashboard``.

=============================  ===================================================================
``GET /dashboard``             the page (signed in), else the sign-in form
``POST /dashboard/login``      form field ``token`` = the admin token: sets the session cookie and
                               redirects (303) to ``/dashboard``; a wrong token gets the form
                               again with a 401
``POST /dashboard/logout``     ends the session
``GET /dashboard/api/state``   the whole dashboard as JSON (:mod:`.dashboard_state`); the session
                               cookie or ``Authorization: Bearer <admin token>``, else 401 JSON
``GET /dashboard/static/F``    the page's script and style sheet (package data, no secret)
=============================  ===================================================================

Sign-in: the admin token is checked once; the browser then holds only a random session id
(``clipper_dashboard`` cookie: ``HttpOnly``, ``SameSite=Strict``, ``Path=/dashboard``,
``Secure`` when the request came over HTTPS, 12 hours). Sessions live in the frontend's memory
(at most :data:`MAX_SESSIONS`, the oldest dropped first), so a restart or ``frontend.rotate-token``
signs everyone out, and sign-out ends a session for real. Against cross-site requests: the
cookie is never sent cross-site (``SameSite=Strict``), nothing changes state on a ``GET``, and
the two ``POST`` forms refuse a request whose ``Origin`` (or ``Sec-Fetch-Site``) is another
site's.

Every page carries a strict Content-Security-Policy (scripts, styles and fetches from this
origin only, no inline code, no frames), ``nosniff`` and ``no-referrer``. The page is plain
HTML, one vanilla script that draws its charts as SVG, one style sheet: nothing is fetched from
anywhere but this port. The script polls ``/dashboard/api/state`` every second.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from clipper_deploy.frontend.dashboard_state import fleet_state
from clipper_deploy.frontend.errors import BAD_REQUEST, UNAUTHORIZED, ClipperError
from clipper_deploy.frontend.http import json_response, read_body
from clipper_deploy.frontend.router import Router
from clipper_deploy.frontend.state_files import AuditTail
from clipper_deploy.frontend.store import Store
from clipper_deploy.frontend.timeseries import LatencyRing
from clipper_deploy.frontend.tokens import token_matches

log = logging.getLogger("clipper_deploy.frontend.dashboard")

COOKIE = "clipper_dashboard"
SESSION_S = 12 * 3600
MAX_SESSIONS = 256
MAX_FORM_BYTES = 4096
ASSETS = "clipper_deploy.frontend.dashboard_assets"
STATIC = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
LOGIN_ERROR_MARK = "<!--error-->"
#: How the query API's answer marks a default output (``json.dumps`` of ``"default": True``).
DEFAULT_MARK = b'"default": true'
WRONG_TOKEN = '<p class="error" id="login-error">That is not this frontend\'s admin token.</p>'


def asset(name: str) -> bytes:
    """A file of the dashboard's package data."""
    return resources.files(ASSETS).joinpath(name).read_bytes()


class Sessions:
    """Signed-in browsers: random ids with an expiry time, bounded, in memory."""

    def __init__(self, max_sessions: int = MAX_SESSIONS, ttl_s: float = SESSION_S) -> None:
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self._expiry: OrderedDict[str, float] = OrderedDict()

    def new(self) -> str:
        """Start a session; returns its id (the oldest session goes if there are too many)."""
        now = time.monotonic()
        for sid, expires in list(self._expiry.items()):
            if expires <= now:
                del self._expiry[sid]
        while len(self._expiry) >= self.max_sessions:
            self._expiry.popitem(last=False)
        sid = secrets.token_urlsafe(32)
        self._expiry[sid] = now + self.ttl_s
        return sid

    def valid(self, sid: str | None) -> bool:
        if not sid:
            return False
        for known, expires in self._expiry.items():
            if hmac.compare_digest(known, sid):
                return expires > time.monotonic()
        return False

    def end(self, sid: str | None) -> None:
        if sid:
            self._expiry.pop(sid, None)

    def __len__(self) -> int:
        return len(self._expiry)


def _with_headers(resp: web.Response, cache: str = "no-store") -> web.Response:
    resp.headers.update(SECURITY_HEADERS)
    resp.headers["Cache-Control"] = cache
    return resp


def _cross_site(request: web.Request) -> bool:
    """True when a form was posted from anywhere but this origin: a browser's
    ``Sec-Fetch-Site`` other than ``same-origin``/``none``, or an ``Origin`` that is not ours
    (clients that send neither, such as scripts, are not browsers carrying a cookie)."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    return origin is not None and origin != f"{request.scheme}://{request.host}"


class Dashboard:
    """The dashboard's routes (:meth:`register` on the management app) and the query port's
    recording middleware (:meth:`recorder`)."""

    def __init__(
        self,
        store: Store,
        router: Router,
        ring: LatencyRing,
        audit: AuditTail,
        admin_token: str,
        started_at: float,
        body_timeout_s: float = 30.0,
    ) -> None:
        self.store = store
        self.router = router
        self.ring = ring
        self.audit = audit
        self.admin_token = admin_token
        self.started_at = started_at
        self.body_timeout_s = body_timeout_s
        self.sessions = Sessions()
        self.page = asset("page.html")
        login = asset("login.html").decode()
        self.login_page = login.encode()
        self.login_refused = login.replace(LOGIN_ERROR_MARK, WRONG_TOKEN).encode()
        self.static = {name: asset(name) for name in STATIC}
        self.etags = {
            name: '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
            for name, data in self.static.items()
        }

    def register(self, app: web.Application) -> None:
        """Add the dashboard's routes to the management port's application."""
        app.router.add_get("/dashboard", self.index)
        app.router.add_post("/dashboard/login", self.login)
        app.router.add_post("/dashboard/logout", self.logout)
        app.router.add_get("/dashboard/api/state", self.state)
        app.router.add_get("/dashboard/static/{name}", self.static_file)

    def recorder(self) -> Any:
        """The query port's middleware feeding the ring: each ``/{app}/predict`` of a known
        app counts for the model linked to it, with its end-to-end time, its status, and
        whether the answer holds a default output (the query API writes ``"default": true``
        for one: a search of the body's bytes, no parsing)."""
        ring, store = self.ring, self.store

        @web.middleware
        async def record(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            started = time.monotonic()
            resp = await handler(request)
            app = store.apps.get(request.match_info.get("app", ""))
            if app is not None and app.linked_model is not None:
                ok = resp.status == 200
                body = getattr(resp, "body", None)
                default = ok and isinstance(body, bytes) and DEFAULT_MARK in body
                ring.record(app.linked_model, time.monotonic() - started, ok, default)
            return resp

        return record

    # ---- who is signed in -----------------------------------------------------------------

    def signed_in(self, request: web.Request) -> bool:
        """A valid session cookie, or the admin token as a bearer token."""
        if token_matches(request.headers.get("Authorization"), (self.admin_token,)):
            return True
        return self.sessions.valid(request.cookies.get(COOKIE))

    # ---- handlers ---------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        body = self.page if self.signed_in(request) else self.login_page
        return _with_headers(web.Response(body=body, content_type="text/html", charset="utf-8"))

    async def login(self, request: web.Request) -> web.Response:
        if _cross_site(request):
            raise ClipperError(
                403, "Forbidden", "the dashboard's sign-in form must be posted from its own page"
            )
        if request.content_type != "application/x-www-form-urlencoded":
            raise ClipperError(
                400,
                BAD_REQUEST,
                "sign in with the form of GET /dashboard (application/x-www-form-urlencoded "
                "with the field 'token')",
            )
        raw = await read_body(request, MAX_FORM_BYTES, self.body_timeout_s)
        try:
            fields = parse_qs(raw.decode(), max_num_fields=4, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            fields = {}
        given = (fields.get("token") or [""])[0].strip()
        if not token_matches(f"Bearer {given}", (self.admin_token,)):
            log.info("dashboard: refused a sign-in from %s (wrong token)", request.remote)
            resp = web.Response(
                status=401, body=self.login_refused, content_type="text/html", charset="utf-8"
            )
            return _with_headers(resp)
        sid = self.sessions.new()
        log.info("dashboard: signed in from %s", request.remote)
        resp = web.Response(status=303, headers={"Location": "/dashboard"})
        resp.set_cookie(
            COOKIE,
            sid,
            max_age=SESSION_S,
            path="/dashboard",
            httponly=True,
            samesite="Strict",
            secure=request.secure,
        )
        return _with_headers(resp)

    async def logout(self, request: web.Request) -> web.Response:
        if _cross_site(request):
            raise ClipperError(
                403, "Forbidden", "the dashboard's sign-out form must be posted from its own page"
            )
        self.sessions.end(request.cookies.get(COOKIE))
        resp = web.Response(status=303, headers={"Location": "/dashboard"})
        resp.del_cookie(COOKIE, path="/dashboard")
        return _with_headers(resp)

    async def state(self, request: web.Request) -> web.Response:
        if not self.signed_in(request):
            raise ClipperError(
                401,
                UNAUTHORIZED,
                "the dashboard's data needs its session cookie (sign in at GET /dashboard) or "
                "'Authorization: Bearer <admin token>'",
            )
        doc = fleet_state(
            self.store, self.router, self.ring, self.audit, started_at=self.started_at
        )
        return _with_headers(json_response(doc))

    async def static_file(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.static:
            raise ClipperError(
                404, "Not found", f"no dashboard file {name!r}; there are {', '.join(STATIC)}"
            )
        etag = self.etags[name]
        if request.headers.get("If-None-Match") == etag:
            return _with_headers(web.Response(status=304, headers={"ETag": etag}), "no-cache")
        resp = web.Response(body=self.static[name], headers={"ETag": etag})
        resp.content_type = STATIC[name]
        resp.charset = "utf-8"
        return _with_headers(resp, "no-cache")
