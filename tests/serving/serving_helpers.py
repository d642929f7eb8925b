"""Helpers of the serving tests: real frontend and runtime processes, HTTP, load loops.

Kept apart from ``conftest.py`` (which holds only fixtures) so test modules import them by a
unique name: ``from serving_helpers import ...``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np

from clipper_deploy.frontend.client import AdminClient, QueryClient

REPO = Path(__file__).resolve().parents[2]
CONTAINER_DIR = REPO / "container"
if str(CONTAINER_DIR) not in sys.path:
    sys.path.insert(0, str(CONTAINER_DIR))

SEED_LINES = [
    "Starting PythonContainer container",
    "Connecting to Clipper with {address}",
    "Loading provided Python prediction function",
    "Serving predictions for {input_type} input type.",
]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, below the ephemeral range.

    Ports the kernel hands out for outgoing connections (32768 and up) are avoided, so a
    client socket cannot take a port between the moment it is picked and the server's bind.
    """
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found in 20000-32000")


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def pickle_function(func: Callable[[Any], Any], directory: Path) -> Path:
    """Write ``func`` as ``directory/func.pkl``, the format the runtime loads."""
    directory.mkdir(parents=True, exist_ok=True)
    module = sys.modules.get(func.__module__)
    by_value = module is not None and func.__module__ not in ("__main__",)
    if by_value:  # test modules are not importable inside the runtime: ship them by value
        cloudpickle.register_pickle_by_value(module)
    try:
        with open(directory / "func.pkl", "wb") as f:
            cloudpickle.dump(func, f)
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)
    return directory


def seed_function() -> Callable[[Any], Any]:
    """The seed example: LogisticRegression on 4 synthetic doubles, wrapped in centered_predict."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(42)
    xs = rng.normal(size=(300, 4))
    ys = (xs[:, 0] - xs[:, 2] > 0).astype(int)

    def center(xs: Any) -> Any:
        means = np.mean(xs, axis=0)
        return xs - means

    model = LogisticRegression()
    model.fit(center(xs), ys)

    def centered_predict(inputs: Any) -> Any:
        return model.predict(center(inputs))

    return centered_predict


class FrontendProcess:
    """``python -m clipper_deploy.frontend`` on free ports of 127.0.0.1."""

    def __init__(self, state_dir: Path, extra_args: list[str] | None = None) -> None:
        self.state_dir = state_dir
        self.query_port = free_port()
        self.admin_port = free_port()
        self.replica_port = free_port()
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = state_dir / "frontend.log"
        self.output_path = state_dir.parent / f"{state_dir.name}.out"

    def log_text(self) -> str:
        """The frontend's log (``frontend.log``) and whatever it printed outside it."""
        parts = []
        for path in (self.log_path, self.output_path):
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def token(self) -> str:
        return (self.state_dir / "admin.token").read_text().strip()

    def admin(self, token: str | None = None) -> AdminClient:
        return AdminClient(self.admin_url, token or self.token)

    def query(self, token: str | None = None) -> QueryClient:
        return QueryClient(self.query_url, token)

    def start(self, timeout: float = 15.0) -> FrontendProcess:
        args = [
            sys.executable,
            "-m",
            "clipper_deploy.frontend",
            "--state-dir",
            str(self.state_dir),
            "--bind",
            "127.0.0.1",
            "--query-port",
            str(self.query_port),
            "--admin-port",
            str(self.admin_port),
            "--replica-port",
            str(self.replica_port),
            *self.extra_args,
        ]
        with open(self.output_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO
            )

        def answers() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"frontend exited: {self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.admin_url}/admin/ping", timeout=1) as r:
                    return r.status == 200
            except (urllib.error.URLError, OSError):
                return False

        wait_for(answers, timeout, "the frontend to answer ping")
        return self

    def start_fresh(self, attempts: int = 3) -> FrontendProcess:
        """Start on newly picked ports, picking again if one was taken meanwhile."""
        for attempt in range(attempts):
            try:
                return self.start()
            except AssertionError as exc:
                if "address already in use" not in str(exc) or attempt == attempts - 1:
                    raise
                self.query_port, self.admin_port = free_port(), free_port()
                self.replica_port = free_port()
        raise AssertionError("unreachable")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def setup_app(
        self,
        app: str = "example",
        model: str = "example_model",
        version: str = "1",
        input_type: str = "doubles",
        default_output: Any = -1.0,
        slo_micros: int = 1_000_000,
    ) -> None:
        """Register an app and a model version and link them (1 s SLO unless told: on 2 busy
        cores a query can take over 100 ms, and most tests are about routing, not the SLO)."""
        admin = self.admin()
        admin.add_app(app, input_type, default_output, slo_micros)
        admin.add_model(model, version, input_type)
        admin.add_model_links(app, [model])


def keyed_env(fe: FrontendProcess, env: dict[str, str]) -> dict[str, str]:
    """``env`` plus ``CLIPPER_REPLICA_KEY_FILE``: the key the frontend gives this replica (its
    model version must be registered, and ``CLIPPER_REPLICA_ID`` set), in a 0600 file next to
    the frontend's state, as a deploy writes it on a host."""
    return keyed_env_from(fe.admin(), fe.state_dir.parent / f"{fe.state_dir.name}-keys", env)


def keyed_env_from(admin: AdminClient, keys: Path, env: dict[str, str]) -> dict[str, str]:
    """:func:`keyed_env` for any frontend: the key asked of ``admin``, written under ``keys``."""
    rid = env["CLIPPER_REPLICA_ID"]
    name, version = env["CLIPPER_MODEL_NAME"], env["CLIPPER_MODEL_VERSION"]
    key = admin.replica_keys(name, version, [rid])[rid]
    keys.mkdir(mode=0o700, exist_ok=True)
    path = keys / f"{name}-{version}-{rid.replace('/', '_')}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return {**env, "CLIPPER_REPLICA_KEY_FILE": str(path)}


def hand_hello(
    sock: socket.socket,
    model: str,
    version: str,
    replica_id: str,
    key: str | None,
    input_type: str = "doubles",
) -> tuple[int, bytes]:
    """Register by hand on a replica port socket, as the runtime does: read the CHALLENGE,
    send the HELLO with the proof of ``key`` (none if ``key`` is None); return the answer's
    ``(kind, payload)``."""
    from clipper_runtime import protocol as rt

    kind, payload = read_frame(sock)
    assert kind == rt.CHALLENGE, kind
    nonce = rt.read_challenge(payload)
    sock.sendall(rt.hello_frame(model, version, input_type, replica_id, key, nonce))
    return read_frame(sock)


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One frame from ``sock``: ``(kind, payload)``."""

    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    length, kind = struct.unpack(">IB", exactly(5))
    return kind, exactly(length)


class RuntimeProcess:
    """``python -m clipper_runtime`` with ``container/`` on PYTHONPATH; stdout captured."""

    def __init__(self, env: dict[str, str]) -> None:
        full_env = dict(os.environ)
        full_env.update(env)
        full_env["PYTHONPATH"] = str(CONTAINER_DIR)
        full_env["PYTHONUNBUFFERED"] = "1"
        self.replica_id = env.get("CLIPPER_REPLICA_ID", "")
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "clipper_runtime"],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=CONTAINER_DIR,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_serving(self, timeout: float = 20.0) -> RuntimeProcess:
        def serving() -> bool:
            if any(line.startswith("Serving predictions for") for line in self.lines):
                return True
            if self.proc.poll() is not None:
                raise AssertionError(f"runtime exited {self.proc.returncode}:\n{self.output}")
            return False

        wait_for(serving, timeout, f"the runtime to serve; output so far:\n{self.output}")
        return self

    def wait_exit(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()


def post(
    url: str, body: bytes | str | Any, token: str | None = None, timeout: float = 10.0
) -> tuple[int, Any]:
    """POST raw bytes (or JSON of an object) and return ``(status, parsed JSON body)``."""
    if isinstance(body, str):
        data = body.encode()
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


class LoadLoop:
    """Background threads sending queries for a bounded time; counts outcomes."""

    def __init__(self, url: str, body: Any, threads: int = 4, max_seconds: float = 30.0) -> None:
        self.url = url
        self.body = json.dumps(body).encode()
        self.stop_event = threading.Event()
        self.deadline = time.monotonic() + max_seconds
        self.ok = 0
        self.defaults = 0
        self.failures = 0
        self.outputs: list[Any] = []
        self.failure_reasons: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> LoadLoop:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        for t in self.threads:
            t.join(15)

    def _run(self) -> None:
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            try:
                status, doc = post(self.url, self.body, timeout=5)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                with self.lock:
                    self.failures += 1
                    self.failure_reasons.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.02)
                continue
            with self.lock:
                if status == 200 and not doc.get("default"):
                    self.ok += 1
                    self.outputs.append(doc["output"])
                elif status == 200:
                    self.defaults += 1
                    self.failure_reasons.append(f"default: {doc.get('default_explanation')}")
                else:
                    self.failures += 1
                    self.failure_reasons.append(f"HTTP {status}: {doc}")

    def snapshot(self) -> tuple[int, int, int]:
        with self.lock:
            return self.ok, self.defaults, self.failures


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (from ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class PacedLoad:
    """One background thread sending a query every ``interval`` seconds (bounded in time),
    recording each answer's latency; a light, legitimate load to measure beside something."""

    def __init__(
        self, url: str, body: Any, interval: float = 0.02, max_seconds: float = 30.0
    ) -> None:
        self.url = url
        self.body = json.dumps(body).encode()
        self.interval = interval
        self.max_seconds = max_seconds
        self.latencies: list[float] = []
        self.ok = 0
        self.defaults = 0
        self.failures: list[str] = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PacedLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join(15)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status, doc = post(self.url, self.body, timeout=5)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            else:
                self.latencies.append(time.monotonic() - started)
                if status == 200 and not doc.get("default"):
                    self.ok += 1
                elif status == 200:
                    self.defaults += 1
                else:
                    self.failures.append(f"HTTP {status}: {doc}")
            next_at += self.interval
            self.stop_event.wait(max(0.0, next_at - time.monotonic()))

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) of the recorded latencies, in seconds."""
        return float(np.percentile(self.latencies, q)) if self.latencies else float("nan")


class RawResponse:
    """What a raw HTTP exchange returned: status, headers, body, and how long it took."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, seconds: float) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.seconds = seconds

    def json(self) -> Any:
        return json.loads(self.body)


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> RawResponse:
    """Send ``data`` as is to 127.0.0.1:``port``, read one HTTP response (until the connection
    closes or ``Content-Length`` bytes of body arrived) and time it."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        # the server may answer and close before reading everything
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        buf = b""
        length: int | None = None
        head_end = -1
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            buf += chunk
            if head_end < 0:
                head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0 and buf[9:10] == b"1":  # an interim 1xx answer: skip it
                    buf = buf[head_end + 4 :]
                    head_end = buf.find(b"\r\n\r\n")
                if head_end >= 0:
                    for line in buf[:head_end].split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip())
            if head_end >= 0 and length is not None and len(buf) >= head_end + 4 + length:
                break
    seconds = time.monotonic() - started
    if head_end < 0:
        raise AssertionError(f"no HTTP response (got {buf[:200]!r})")
    lines = buf[:head_end].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = buf[head_end + 4 :]
    if length is not None:
        body = body[:length]
    return RawResponse(status, headers, body, seconds)


def http_request(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    content_length: bool = True,
) -> bytes:
    """Bytes of one HTTP/1.1 request with ``Connection: close``."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    given = {k.lower() for k in (headers or {})}
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if content_length and "content-length" not in given and "transfer-encoding" not in given:
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode("utf-8", "surrogateescape") + b"\r\n\r\n" + body


def seed_replica(fe: FrontendProcess, model_dir: Path, replica_id: str) -> RuntimeProcess:
    """A runtime serving ``model_dir``'s function as ``example_model`` version 1 of ``fe``
    (what ``fe.setup_app()`` registers), proving the key the frontend gives it."""
    return RuntimeProcess(
        keyed_env(
            fe,
            {
                "CLIPPER_IP": "127.0.0.1",
                "CLIPPER_PORT": str(fe.replica_port),
                "CLIPPER_MODEL_NAME": "example_model",
                "CLIPPER_MODEL_VERSION": "1",
                "CLIPPER_INPUT_TYPE": "doubles",
                "CLIPPER_MODEL_PATH": str(model_dir),
                "CLIPPER_REPLICA_ID": replica_id,
            },
        )
    )
