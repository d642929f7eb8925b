"""The frontend's replica port: authenticate replicas, register them, carry their frames.

One coroutine per connection. It opens with ``CHALLENGE`` (a fresh nonce), then reads the
peer's ``HELLO`` (at most :data:`~clipper_deploy.frontend.protocol.MAX_HELLO_BYTES`, within
:data:`AUTH_TIMEOUT_S`) and answers ``WELCOME`` only to a replica of a registered model
version that proves the key of its replica id and whose id is not already connected
(:meth:`~clipper_deploy.frontend.router.Router.check_hello`); anything else gets ``REJECT`` and
the connection is closed. At most :data:`MAX_PENDING_AUTH` connections may be in the handshake
at once. Then ``HEARTBEAT`` (echoed) and ``RESULT`` (handed to the model's queue) until the
connection ends. A watchdog closes connections silent for ``HEARTBEAT_MISSES`` intervals, which
sends their unfinished batch to other replicas. See :mod:`clipper_deploy.frontend.protocol`.

Every refusal is counted in ``/metrics`` (``clipper_replica_refusals{reason}``, reasons in
:data:`REFUSAL_REASONS`) and logged at most once per peer address every
:data:`REFUSAL_LOG_EVERY_S` (:class:`RefusalLog`), with what the peer sent escaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict

from clipper_deploy.frontend.batching import AIMDController
from clipper_deploy.frontend.protocol import (
    HEADER,
    HEARTBEAT,
    HEARTBEAT_MISSES,
    HELLO,
    MAX_HELLO_BYTES,
    NONCE_BYTES,
    REJECT,
    RESULT,
    WELCOME,
    ProtocolError,
    challenge_frame,
    decode_hello,
    decode_result,
    frame,
    json_frame,
    parse_header,
)
from clipper_deploy.frontend.router import ReplicaLink, Router

log = logging.getLogger(__name__)

AUTH_TIMEOUT_S = 5.0
"""How long a peer has, from its connection, to send a ``HELLO``."""
MAX_PENDING_AUTH = 256
"""Connections allowed in the handshake at once; more are refused at once (``busy``)."""
REFUSAL_LOG_EVERY_S = 60.0
"""A peer address's refusals are logged once per this many seconds (all are counted)."""
REFUSAL_LOG_PEERS = 1024
"""Peer addresses the refusal log remembers (the oldest is forgotten first)."""
HEARTBEAT_FRAME = frame(HEARTBEAT)

REFUSAL_REASONS = {
    "unknown_model": "the model version is not registered",
    "input_type": "the input type contradicts the registered model",
    "no_proof": "the replica proved no key (no key file)",
    "bad_proof": "the proof does not match the replica id's key",
    "duplicate_id": "a replica with this id is already connected",
    "bad_hello": "the first frame is not a valid HELLO of this protocol version",
    "oversized": f"the first frame is over {MAX_HELLO_BYTES} bytes",
    "timeout": f"no HELLO within {AUTH_TIMEOUT_S:g} s",
    "busy": f"more than {MAX_PENDING_AUTH} connections in the handshake",
}


def shown(value: object, limit: int = 120) -> str:
    """``value`` as a quoted, escaped, bounded string, safe in a log line."""
    text = value if isinstance(value, str) else str(value)
    return ascii(text[:limit]) + ("..." if len(text) > limit else "")


class Refused(Exception):
    """A connection is refused before registration: ``reason`` (a key of
    :data:`REFUSAL_REASONS`) and ``cause`` (what the peer is told and the log says)."""

    def __init__(self, reason: str, cause: str, who: str = "") -> None:
        super().__init__(cause)
        self.reason = reason
        self.cause = cause
        self.who = who


class RefusalLog:
    """Logs refusals at most once per peer address every ``every_s`` seconds, remembering at
    most ``peers`` addresses; the next line says how many were not logged meanwhile."""

    def __init__(self, every_s: float = REFUSAL_LOG_EVERY_S, peers: int = REFUSAL_LOG_PEERS):
        self.every_s = every_s
        self.peers = peers
        self.seen: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def should_log(self, address: str, now: float | None = None) -> tuple[bool, int]:
        """``(log it?, refusals from address not logged since the last line)``."""
        now = time.monotonic() if now is None else now
        last = self.seen.get(address)
        if last is not None and now - last[0] < self.every_s:
            self.seen[address] = (last[0], last[1] + 1)
            return False, 0
        self.seen.pop(address, None)
        self.seen[address] = (now, 0)
        while len(self.seen) > self.peers:
            self.seen.popitem(last=False)
        return True, last[1] if last is not None else 0


class ReplicaServer:
    """Accepts replica connections on one TCP port."""

    def __init__(
        self,
        router: Router,
        heartbeat_interval_s: float = 1.0,
        auth_timeout_s: float = AUTH_TIMEOUT_S,
    ) -> None:
        self.router = router
        self.heartbeat_interval_s = heartbeat_interval_s
        self.metrics = router.metrics
        self.auth_timeout_s = auth_timeout_s
        self.server: asyncio.Server | None = None
        self.watchdog: asyncio.Task[None] | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.pending_auth = 0
        self.refusal_log = RefusalLog()

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
                        shown(link.replica_id),
                        shown(link.model_name),
                        shown(link.model_version),
                        now - link.last_seen,
                    )
                    link.close()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one replica connection from its handshake to its end."""
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if peername else "unknown"
        address = str(peername[0]) if peername else "unknown"
        self.writers.add(writer)
        link: ReplicaLink | None = None
        try:
            try:
                link = await self.authenticate(reader, writer, peer)
            except Refused as refused:
                self.refuse(writer, address, peer, refused)
                return
            self.router.attach(link)
            log.info(
                "replica %s of %s:%s (%s input) connected from %s",
                shown(link.replica_id),
                shown(link.model_name),
                shown(link.model_version),
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
                    shown(link.replica_id),
                    shown(link.model_name),
                    shown(link.model_version),
                )
            writer.transport.abort()

    async def authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> ReplicaLink:
        """The handshake: ``CHALLENGE``, then a ``HELLO`` that passes
        :meth:`Router.check_hello`; answer ``WELCOME`` and return the replica's link, or raise
        :class:`Refused`."""
        if self.pending_auth >= MAX_PENDING_AUTH:
            raise Refused("busy", f"{MAX_PENDING_AUTH} connections are already in the handshake")
        self.pending_auth += 1
        try:
            nonce = secrets.token_bytes(NONCE_BYTES)
            writer.write(challenge_frame(nonce))
            try:
                kind, payload = await asyncio.wait_for(
                    read_first_frame(reader), self.auth_timeout_s
                )
            except TimeoutError:
                raise Refused(
                    "timeout", f"no HELLO within {self.auth_timeout_s:g} s of connecting"
                ) from None
            if kind != HELLO:
                raise Refused("bad_hello", f"expected HELLO, got frame kind {kind}")
            try:
                hello = decode_hello(payload)
            except ProtocolError as exc:
                raise Refused("bad_hello", str(exc)) from None
            who = (
                f"replica {shown(hello['replica_id'])} of "
                f"{shown(hello['model_name'])}:{shown(hello['model_version'])}"
            )
            problem = self.router.check_hello(hello, nonce)
            if problem is not None:
                raise Refused(*problem, who=who)
        finally:
            self.pending_auth -= 1
        writer.write(json_frame(WELCOME, {"heartbeat_interval_s": self.heartbeat_interval_s}))
        return ReplicaLink(
            hello["model_name"],
            hello["model_version"],
            hello["input_type"],
            hello["replica_id"],
            peer,
            writer.write,
            writer.transport.abort,
            AIMDController.for_slo(0.1),
        )

    def refuse(
        self, writer: asyncio.StreamWriter, address: str, peer: str, refused: Refused
    ) -> None:
        """Answer ``REJECT`` (the peer may have hung up already), count the refusal, and log
        it unless this address was logged recently."""
        with contextlib.suppress(Exception):
            writer.write(
                json_frame(REJECT, {"error": "Registration refused", "cause": refused.cause})
            )
        self.metrics.child("refusals", refused.reason).inc()
        logged, unlogged = self.refusal_log.should_log(address)
        if logged:
            more = (
                f" ({unlogged} more refusal(s) from {address} since the last line)"
                if unlogged
                else ""
            )
            log.warning(
                "refused %s from %s (%s): %s%s; further refusals from %s are logged at most "
                "every %g s",
                refused.who or "a connection",
                peer,
                refused.reason,
                shown(refused.cause, 400),
                more,
                address,
                self.refusal_log.every_s,
            )


async def read_first_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The peer's first frame, refused (``oversized``) before its payload is read if it is
    over :data:`MAX_HELLO_BYTES`: an unauthenticated peer makes the frontend hold no more."""
    header = await reader.readexactly(5)
    length, kind = HEADER.unpack(header)
    if length > MAX_HELLO_BYTES:
        raise Refused(
            "oversized",
            f"a first frame of {length} bytes (before registration at most {MAX_HELLO_BYTES})",
        )
    payload = await reader.readexactly(length) if length else b""
    return kind, payload


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Read one frame of a registered replica: ``(kind, payload)``."""
    length, kind = parse_header(await reader.readexactly(5))
    payload = await reader.readexactly(length) if length else b""
    return kind, payload
