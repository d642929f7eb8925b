"""The frontend's replica port: accept replicas, register them, carry their frames.

One coroutine per connection reads frames until the connection ends: ``HELLO`` first (answered
with ``WELCOME`` or ``REJECT``), then ``HEARTBEAT`` (echoed) and ``RESULT`` (handed to the
model's queue). A watchdog closes connections silent for ``HEARTBEAT_MISSES`` intervals, which
sends their unfinished batch to other replicas. See :mod:`clipper_deploy.frontend.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from clipper_deploy.frontend.batching import AIMDController
from clipper_deploy.frontend.protocol import (
    HEARTBEAT,
    HEARTBEAT_MISSES,
    HELLO,
    REJECT,
    RESULT,
    WELCOME,
    ProtocolError,
    decode_hello,
    decode_result,
    frame,
    json_frame,
    parse_header,
)
from clipper_deploy.frontend.router import ReplicaLink, Router

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
#: Largest first frame accepted from an unregistered peer (a HELLO is a few hundred bytes).
MAX_HELLO_BYTES = 64 * 1024
HEARTBEAT_FRAME = frame(HEARTBEAT)


class ReplicaServer:
    """Accepts replica connections on one TCP port."""

    def __init__(self, router: Router, heartbeat_interval_s: float = 1.0) -> None:
        self.router = router
        self.heartbeat_interval_s = heartbeat_interval_s
        self.server: asyncio.Server | None = None
        self.watchdog: asyncio.Task[None] | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> None:
        """Listen on ``host:port`` and start the heartbeat watchdog."""
        self.server = await asyncio.start_server(self.handle, host, port, limit=1 << 20)
        self.watchdog = asyncio.create_task(self.watch())

    async def stop(self) -> None:
        """Stop listening and close every replica connection (replicas will reconnect)."""
        if self.watchdog is not None:
            self.watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watchdog
        if self.server is not None:
            self.server.close()
        for w in list(self.writers):
            w.transport.abort()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2.0)

    async def watch(self) -> None:
        """Close connections that stayed silent too long."""
        limit = self.heartbeat_interval_s * HEARTBEAT_MISSES
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            now = time.monotonic()
            for link in self.router.links():
                if now - link.last_seen > limit:
                    log.warning(
                        "replica %s of %s:%s sent nothing for %.1f s; dropping it",
                        link.replica_id,
                        link.model_name,
                        link.model_version,
                        now - link.last_seen,
                    )
                    link.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one replica connection from ``HELLO`` to its end."""
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "unknown"
        self.writers.add(writer)
        link: ReplicaLink | None = None
        try:
            kind, payload = await asyncio.wait_for(
                read_frame(reader, MAX_HELLO_BYTES), HELLO_TIMEOUT_S
            )
            if kind != HELLO:
                raise ProtocolError(f"expected HELLO, got frame kind {kind}")
            try:
                hello = decode_hello(payload)
            except ProtocolError as exc:
                writer.write(json_frame(REJECT, {"error": "Bad registration", "cause": str(exc)}))
                raise
            problem = self.router.check_hello(
                hello["model_name"], hello["model_version"], hello["input_type"]
            )
            if problem:
                writer.write(
                    json_frame(REJECT, {"error": "Registration refused", "cause": problem})
                )
                log.warning("refused replica %s from %s: %s", hello["replica_id"], peer, problem)
                return
            writer.write(json_frame(WELCOME, {"heartbeat_interval_s": self.heartbeat_interval_s}))
            link = ReplicaLink(
                hello["model_name"],
                hello["model_version"],
                hello["input_type"],
                hello["replica_id"],
                peer,
                writer.write,
                writer.transport.abort,
                AIMDController.for_slo(0.1),
            )
            self.router.attach(link)
            log.info(
                "replica %s of %s:%s (%s input) connected from %s",
                link.replica_id,
                link.model_name,
                link.model_version,
                link.input_type,
                peer,
            )
            queue = self.router.queue(link.key)
            while True:
                kind, payload = await read_frame(reader)
                link.last_seen = time.monotonic()
                if kind == RESULT:
                    queue.on_result(link, decode_result(payload))
                elif kind == HEARTBEAT:
                    link.last_heartbeat = time.time()
                    writer.write(HEARTBEAT_FRAME)
                else:
                    raise ProtocolError(f"unexpected frame kind {kind} from a replica")
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass
        except ProtocolError as exc:
            log.warning("replica connection from %s broke the protocol: %s", peer, exc)
        finally:
            self.writers.discard(writer)
            if link is not None:
                self.router.detach(link)
                log.info(
                    "replica %s of %s:%s disconnected",
                    link.replica_id,
                    link.model_name,
                    link.model_version,
                )
            writer.transport.abort()


async def read_frame(
    reader: asyncio.StreamReader, max_bytes: int | None = None
) -> tuple[int, bytes]:
    """Read one frame: ``(kind, payload)``, refusing one over ``max_bytes`` before reading it."""
    length, kind = parse_header(await reader.readexactly(5))
    if max_bytes is not None and length > max_bytes:
        raise ProtocolError(f"a first frame of {length} bytes (a HELLO is at most {max_bytes})")
    payload = await reader.readexactly(length) if length else b""
    return kind, payload
