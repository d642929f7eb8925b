"""The replica's side of the connection to the frontend: dial, register, heartbeat, serve.

:class:`Replica` loops for ever: it dials the frontend, registers with ``HELLO``, then serves
``BATCH`` frames with the prediction function while a background thread sends heartbeats. When
the connection drops (frontend restarted, network gone, no heartbeat answered) it dials again with
a capped exponential backoff, logging each failure on one line. A failing function fails only the
batch it was given; the replica keeps serving. A function stuck on a batch beyond
``CLIPPER_PREDICT_TIMEOUT_S`` ends the process (:mod:`clipper_runtime.watchdog`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

from clipper_runtime import protocol
from clipper_runtime.config import RuntimeConfig
from clipper_runtime.outputs import OutputError, normalize
from clipper_runtime.watchdog import Watchdog

INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 1.0
REJECTED_RETRY_S = 2.0
CONNECT_TIMEOUT_S = 5.0
ERROR_TRACEBACK_EVERY_S = 10.0

Log = Callable[[str], None]


def log_line(message: str) -> None:
    """Print one log line to stdout and flush it (``docker logs`` shows it at once)."""
    print(message, flush=True)


class Rejected(Exception):
    """The frontend refused the registration; the message carries its error and cause."""


class ConnectionLost(Exception):
    """The connection to the frontend ended; the message says how."""


class Session:
    """One registered connection to the frontend."""

    def __init__(
        self,
        sock: socket.socket,
        config: RuntimeConfig,
        func: Callable[[Any], Any],
        log: Log,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.sock = sock
        self.config = config
        self.func = func
        self.log = log
        self.watchdog = watchdog
        self.rfile: BinaryIO = sock.makefile("rb", buffering=1 << 16)
        self.send_lock = threading.Lock()
        self.closed = threading.Event()
        self.heartbeat_interval_s = 1.0
        self.batches_served = 0
        self.last_traceback_at = 0.0

    def send(self, data: bytes) -> None:
        """Send one frame (thread-safe: the heartbeat thread sends too)."""
        with self.send_lock:
            self.sock.sendall(data)

    def read_frame(self) -> tuple[int, bytes]:
        """Return ``(kind, payload)`` of the next frame; raise :class:`ConnectionLost` at EOF."""
        header = self.rfile.read(protocol.HEADER.size)
        if len(header) < protocol.HEADER.size:
            raise ConnectionLost("the frontend closed the connection")
        length, kind = protocol.parse_header(header)
        payload = self.rfile.read(length) if length else b""
        if len(payload) < length:
            raise ConnectionLost("the frontend closed the connection mid-frame")
        return kind, payload

    def register(self) -> None:
        """Read the frontend's ``CHALLENGE``, answer ``HELLO`` with the proof of this
        replica's key, wait for ``WELCOME``; raise :class:`Rejected` on ``REJECT``."""
        c = self.config
        self.sock.settimeout(CONNECT_TIMEOUT_S)
        kind, payload = self.read_frame()
        if kind == protocol.REJECT:
            raise Rejected(rejection(payload))
        if kind != protocol.CHALLENGE:
            raise protocol.ProtocolError(f"expected CHALLENGE, got frame kind {kind}")
        nonce = protocol.read_challenge(payload)
        key = c.read_key()
        self.send(
            protocol.hello_frame(
                c.model_name, c.model_version, c.input_type, c.replica_id, key, nonce
            )
        )
        kind, payload = self.read_frame()
        if kind == protocol.REJECT:
            raise Rejected(rejection(payload))
        if kind != protocol.WELCOME:
            raise protocol.ProtocolError(f"expected WELCOME, got frame kind {kind}")
        welcome = json.loads(payload)
        self.heartbeat_interval_s = float(welcome.get("heartbeat_interval_s", 1.0))

    def heartbeat_loop(self) -> None:
        """Send a ``HEARTBEAT`` every interval until the session closes."""
        beat = protocol.frame(protocol.HEARTBEAT)
        while not self.closed.wait(self.heartbeat_interval_s):
            try:
                self.send(beat)
            except OSError:
                self.closed.set()
                self.sock.close()

    def run(self) -> None:
        """Serve batches until the connection ends (always by raising)."""
        silence_s = self.heartbeat_interval_s * protocol.HEARTBEAT_MISSES + 1.0
        self.sock.settimeout(silence_s)
        beater = threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True)
        beater.start()
        try:
            while True:
                try:
                    kind, payload = self.read_frame()
                except TimeoutError:
                    raise ConnectionLost(
                        f"no word from the frontend in {silence_s:.1f} s"
                    ) from None
                if kind == protocol.BATCH:
                    self.serve_batch(payload)
                elif kind == protocol.HEARTBEAT:
                    continue
                else:
                    raise protocol.ProtocolError(f"unexpected frame kind {kind}")
        finally:
            self.closed.set()

    def serve_batch(self, payload: bytes) -> None:
        """Run the function on one batch and send its ``RESULT``; never let it kill the replica
        (but the watchdog ends the process if the function is stuck on it)."""
        batch_id, inputs = protocol.decode_batch(payload, self.config.input_type)
        if self.watchdog is not None:
            self.watchdog.begin(len(inputs))
        try:
            self.predict_and_send(batch_id, inputs)
        finally:
            if self.watchdog is not None:
                self.watchdog.end()

    def predict_and_send(self, batch_id: int, inputs: Any) -> None:
        """Run the function on ``inputs`` and send the ``RESULT`` of batch ``batch_id``."""
        count = len(inputs)
        try:
            outputs, errors = normalize(self.func(inputs), count)
        except (Exception, SystemExit) as exc:
            message = failure_message(exc)
            self.report_failure(
                f"Prediction failed for a batch of {count}: {message}",
                with_traceback=not isinstance(exc, OutputError),
            )
            if count == 1:
                self.send(protocol.result_frame(batch_id, None, error=message))
                self.batches_served += 1
                return
            outputs, errors = self.predict_one_by_one(inputs)
        self.send(protocol.result_frame(batch_id, outputs, errors))
        self.batches_served += 1

    def predict_one_by_one(self, inputs: Any) -> tuple[list[Any], dict[int, str]]:
        """After a batch failed, run each input alone so one bad input fails only itself."""
        outputs: list[Any] = []
        errors: dict[int, str] = {}
        for i in range(len(inputs)):
            try:
                single, single_errors = normalize(self.func(inputs[i : i + 1]), 1)
            except (Exception, SystemExit) as exc:
                outputs.append(None)
                errors[i] = failure_message(exc)
                continue
            outputs.append(single[0])
            if single_errors:
                errors[i] = single_errors[0]
        return outputs, errors

    def report_failure(self, line: str, with_traceback: bool = True) -> None:
        """Log a failed batch: one line, plus the traceback at most every few seconds."""
        now = time.monotonic()
        if with_traceback and now - self.last_traceback_at >= ERROR_TRACEBACK_EVERY_S:
            self.last_traceback_at = now
            self.log(f"{line}; the container keeps serving.\n{traceback.format_exc().rstrip()}")
        else:
            self.log(f"{line}; the container keeps serving.")

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.closed.set()
        with contextlib.suppress(OSError):
            self.rfile.close()
        with contextlib.suppress(OSError):
            self.sock.close()


class Replica:
    """Keeps one session with the frontend alive for as long as the process runs."""

    def __init__(
        self, config: RuntimeConfig, func: Callable[[Any], Any], log: Log = log_line
    ) -> None:
        self.config = config
        self.func = func
        self.log = log
        self.stop = threading.Event()
        self.watchdog = Watchdog(config.predict_timeout_s, log)

    def connect(self) -> socket.socket:
        """Dial the frontend's replica port."""
        sock = socket.create_connection(
            (self.config.clipper_ip, self.config.clipper_port), timeout=CONNECT_TIMEOUT_S
        )
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        return sock

    def serve_forever(self) -> None:
        """Dial, register and serve; on any connection loss, dial again with backoff."""
        address = self.config.address
        backoff = INITIAL_BACKOFF_S
        registered_once = False
        self.watchdog.start()
        if self.config.read_key() is None:
            self.log(
                f"No replica key in {self.config.key_file} (CLIPPER_REPLICA_KEY_FILE): the "
                "frontend will refuse this replica; deploy the model with clipper-deploy, which "
                "writes each replica's key"
            )
        while not self.stop.is_set():
            try:
                sock = self.connect()
            except OSError as exc:
                self.log(
                    f"Could not reach Clipper at {address} ({describe(exc)}); "
                    f"retrying in {backoff:.1f} s"
                )
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            session = Session(sock, self.config, self.func, self.log, self.watchdog)
            try:
                session.register()
                backoff = INITIAL_BACKOFF_S
                if registered_once:
                    self.log(f"Reconnected to Clipper at {address}")
                else:
                    self.log(f"Serving predictions for {self.config.input_type} input type.")
                    registered_once = True
                session.run()
            except Rejected as exc:
                self.log(
                    f"Clipper at {address} refused this replica: {exc}; "
                    f"retrying in {REJECTED_RETRY_S:.1f} s"
                )
                session.close()
                self.stop.wait(REJECTED_RETRY_S)
            except Exception as exc:  # connection, protocol or decoding trouble: start over
                session.close()
                self.log(f"Lost connection to Clipper at {address} ({describe(exc)}); reconnecting")
                self.stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
            finally:
                session.close()


def rejection(payload: bytes) -> str:
    """The ``error: cause`` of a ``REJECT`` payload, for the log."""
    try:
        body = json.loads(payload)
        return f"{body.get('error')}: {body.get('cause')}"
    except (ValueError, AttributeError):
        return payload[:200].decode(errors="replace")


def failure_message(exc: BaseException) -> str:
    """The error a failed query reports: the output problem, or the function's exception."""
    if isinstance(exc, OutputError):
        return str(exc)
    return f"the prediction function raised {type(exc).__name__}: {exc}"


def describe(exc: BaseException) -> str:
    """Return a short description of a connection error for a log line."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
