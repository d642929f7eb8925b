"""Assemble and run the frontend: store, router, replica port, query and management APIs,
and the dashboard (on the management port, fed by the query port's traffic).

:func:`run` is what ``python -m clipper_deploy.frontend`` calls: it opens the state directory
(SQLite database, tokens, pidfile), listens on the three ports, and serves until SIGTERM or
SIGINT; then it stops listening, answers the queries in progress, closes replica connections
(replicas reconnect by themselves to the next frontend) and removes the pidfile.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time

from clipper_deploy.frontend import logs
from clipper_deploy.frontend.admin_api import AdminAPI
from clipper_deploy.frontend.config import FrontendConfig
from clipper_deploy.frontend.dashboard import Dashboard
from clipper_deploy.frontend.http import HTTPServer
from clipper_deploy.frontend.metrics import Metrics
from clipper_deploy.frontend.query_api import QueryAPI
from clipper_deploy.frontend.replica_server import ReplicaServer
from clipper_deploy.frontend.router import Router
from clipper_deploy.frontend.state_files import AuditTail
from clipper_deploy.frontend.store import Store
from clipper_deploy.frontend.timeseries import LatencyRing
from clipper_deploy.frontend.tls import TLSConfigError, server_context
from clipper_deploy.frontend.tokens import ADMIN_TOKEN_FILE, QUERY_TOKEN_FILE, ensure_token

log = logging.getLogger("clipper_deploy.frontend")


class Frontend:
    """One running frontend; :meth:`start` then :meth:`stop`."""

    def __init__(self, config: FrontendConfig) -> None:
        self.config = config
        self.ssl = server_context(config.tls_cert, config.tls_key) if config.tls_cert else None
        config.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(config.state_dir, 0o700)
        self.admin_token = ensure_token(config.state_dir, ADMIN_TOKEN_FILE)
        query_tokens: tuple[str, ...] | None = None
        if config.require_query_token:
            query_tokens = (ensure_token(config.state_dir, QUERY_TOKEN_FILE), self.admin_token)
        self.store = Store.open(config.db_path)
        self.metrics = Metrics()
        self.router = Router(self.store, self.metrics, config.max_queue, config.batch_timeout_s)
        self.replicas = ReplicaServer(self.router, config.heartbeat_interval_s)
        self.query_api = QueryAPI(
            self.store,
            self.router,
            self.metrics,
            config.max_body_bytes,
            query_tokens,
            metrics_tokens=None if config.metrics_open else (self.admin_token,),
            max_batch_inputs=config.max_batch_inputs,
            body_timeout_s=config.body_timeout_s,
        )
        self.admin_api = AdminAPI(
            self.store, self.router, self.admin_token, time.time(), config.body_timeout_s
        )
        self.dashboard = Dashboard(
            self.store,
            self.router,
            LatencyRing(),
            AuditTail(config.state_dir),
            self.admin_token,
            self.admin_api.started_at,
            config.body_timeout_s,
        )
        self.servers: list[HTTPServer] = []

    async def start(self) -> None:
        """Listen on the replica, query and management ports."""
        c = self.config
        await self.replicas.start(c.replica_bind or c.bind, c.replica_port)
        query_app, admin_app = self.query_api.application(), self.admin_api.application()
        query_app.middlewares.append(self.dashboard.recorder())
        self.dashboard.register(admin_app)
        for application, port in ((query_app, c.query_port), (admin_app, c.admin_port)):
            server = HTTPServer(application, c.idle_timeout_s, c.max_connections)
            await server.start(c.bind, port, ssl=self.ssl)
            self.servers.append(server)
        log.info(
            "frontend serving: queries on %s://%s:%d, management on %s:%d, replicas on %s:%d "
            "(%d apps, %d model versions restored from %s)",
            c.scheme,
            c.bind,
            c.query_port,
            c.bind,
            c.admin_port,
            c.replica_bind or c.bind,
            c.replica_port,
            len(self.store.apps),
            len(self.store.models),
            c.db_path,
        )

    async def stop(self) -> None:
        """Stop listening on the HTTP ports, let the queries in progress get their answers
        (bounded: :data:`~clipper_deploy.frontend.http.SHUTDOWN_TIMEOUT_S`), then drop the
        replica connections and close the database. Replicas go last: dropped first, they
        would turn every query still in progress into a default output."""
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.stop()
        await self.replicas.stop()
        self.store.close()


async def serve(config: FrontendConfig) -> None:
    """Run a frontend until SIGTERM or SIGINT."""
    frontend = Frontend(config)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await frontend.start()
    config.pid_path.write_text(f"{os.getpid()}\n")
    try:
        await stopping.wait()
        log.info("stopping")
    finally:
        await frontend.stop()
        try:
            if config.pid_path.read_text().strip() == str(os.getpid()):
                config.pid_path.unlink()
        except FileNotFoundError:
            pass
        log.info("stopped")


def run(config: FrontendConfig) -> int:
    """Configure logging (the rotated ``frontend.log``) and run the frontend; return the exit
    status. A failure to start is logged there and also printed on stderr."""
    logs.configure(config)
    try:
        asyncio.run(serve(config))
    except (OSError, TLSConfigError) as exc:
        log.error("the frontend could not start: %s", exc)
        print(f"the frontend could not start: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0
