"""Stream a local file into a command's standard input on a remote host, over one SSH channel.

Faster than SFTP plus a second command for large files (measured on the test bed: a 168 MiB
base image streamed into ``docker import -`` in 2.2 s, against 1.3 s upload + 1.6 s import),
and nothing is left in a temporary file on the host if the transfer breaks.

Every payload byte a transfer moves is counted in one place, :data:`METER` (the client's own
sends here, host-to-host relays in :mod:`.relay`): benchmarks and progress output subscribe to
it instead of each transfer keeping its own tally.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from fabric import Connection

CHUNK = 1 << 20

CLIENT = "client"
"""The sender name of bytes the deploying machine sent itself."""

Listener = Callable[[str, str, int], None]
"""Called as ``listener(sender, receiver, nbytes)`` for every chunk a transfer moves."""


class TransferMeter:
    """Payload bytes moved per (sender, receiver): ``sender`` is :data:`CLIENT` or the host
    that relayed them. Thread-safe; :meth:`subscribe` adds a listener called for each chunk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[tuple[str, str], int] = {}
        self._listeners: list[Listener] = []

    def add(self, sender: str, receiver: str, nbytes: int) -> None:
        with self._lock:
            key = (sender, receiver)
            self._sent[key] = self._sent.get(key, 0) + nbytes
            listeners = list(self._listeners)
        for listener in listeners:
            listener(sender, receiver, nbytes)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` for every chunk from now on; returns the unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def sent_by(self, sender: str) -> int:
        """Bytes ``sender`` sent so far, to every receiver."""
        with self._lock:
            return sum(n for (s, _r), n in self._sent.items() if s == sender)

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._sent)


METER = TransferMeter()
"""The process's one meter of transfer bytes."""


@dataclass(frozen=True)
class StreamResult:
    """Exit status and output of the remote command."""

    exited: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exited == 0


Sent = Callable[[int, int], None]
"""Called with ``(bytes sent so far, total bytes)`` after each chunk (progress views)."""


def stream_into(
    connection: Connection,
    argv: Sequence[str],
    source: Path | BinaryIO,
    timeout: float = 600,
    *,
    receiver: str | None = None,
    on_sent: Sent | None = None,
) -> StreamResult:
    """Run ``argv`` on the connection's host with ``source``'s bytes as its standard input;
    the bytes are counted in :data:`METER` as the client's to ``receiver`` (default: the
    connection's host), and ``on_sent(sent, total)`` follows them. Raises
    :class:`TimeoutError` when the command has not ended within ``timeout`` seconds (Fabric's
    ``in_stream`` would also do, but it sends one byte per 10 ms)."""
    to = receiver or str(getattr(connection, "host", "?"))
    deadline = time.monotonic() + timeout
    connection.open()
    transport = connection.client.get_transport()
    assert transport is not None
    channel = transport.open_session()
    channel.settimeout(timeout)
    stdout, stderr = bytearray(), bytearray()
    try:
        channel.exec_command(shlex.join(argv))
        stream = open(source, "rb") if isinstance(source, Path) else source  # noqa: SIM115
        try:
            total = _remaining(stream)
            sent = 0
            while chunk := stream.read(CHUNK):
                channel.sendall(chunk)
                METER.add(CLIENT, to, len(chunk))
                sent += len(chunk)
                if on_sent is not None:
                    on_sent(sent, max(total, sent))
                while channel.recv_stderr_ready():
                    stderr += channel.recv_stderr(65536)
        finally:
            if isinstance(source, Path):
                stream.close()
        channel.shutdown_write()
        while (
            not channel.exit_status_ready() or channel.recv_ready() or channel.recv_stderr_ready()
        ):
            if channel.recv_ready():
                stdout += channel.recv(65536)
            elif channel.recv_stderr_ready():
                stderr += channel.recv_stderr(65536)
            elif time.monotonic() > deadline:
                raise TimeoutError(f"`{argv[0]}` on {to} did not end within {timeout:.0f} s")
            else:
                channel.status_event.wait(0.05)
        return StreamResult(
            channel.recv_exit_status(),
            stdout.decode(errors="replace"),
            stderr.decode(errors="replace"),
        )
    finally:
        channel.close()


def _remaining(stream: BinaryIO) -> int:
    """Bytes left to read in ``stream`` (0 when it cannot tell, e.g. a pipe)."""
    try:
        here = stream.tell()
        return os.fstat(stream.fileno()).st_size - here
    except (OSError, ValueError, AttributeError):
        return 0
