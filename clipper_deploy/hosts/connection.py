"""Connections to inventory hosts: Fabric over SSH with strict host key checking, or local.

:func:`connection_for` turns a :class:`~clipper_deploy.hosts.inventory.Host` into something
with Fabric's ``run()`` / ``sudo()`` / ``put()`` / ``get()``::

    with connection_for(host) as conn:
        conn.run("docker version", hide=True)

Host keys are always verified. The known_hosts file (``~/.ssh/known_hosts`` unless another is
given) is read into the Paramiko client and unknown hosts are rejected
(:class:`paramiko.client.RejectPolicy`); nothing is ever added to the file, and there is no
switch to turn checking off. Add a host's key once, after checking its fingerprint::

    ssh-keyscan -p 22 10.0.0.5 >> ~/.ssh/known_hosts

The inventory is the only source of connection settings: ``~/.ssh/config`` is not read (pass a
``fabric.Config`` of your own to change that). Authentication uses the host's
``ansible_ssh_private_key_file`` when it has one (plus any keys in a running ssh-agent, as
OpenSSH does); otherwise the agent and ``~/.ssh/id_*``. The user defaults to ``root``.

Hosts with ``ansible_connection=local`` get a :class:`LocalConnection`, which runs commands on
this machine through Invoke with the same ``run()`` signature and results.

:func:`connect_error_message` turns what a failed connection raises into one line that says
what happened, on which host, and what to do. :class:`HostGroup` runs one command on many hosts
in parallel and reports per host, like Fabric's ``ThreadingGroup``.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import fabric
import invoke
import paramiko
from fabric.transfer import Result as TransferResult
from fabric.util import get_local_user
from paramiko.client import RejectPolicy
from paramiko.ssh_exception import (
    AuthenticationException,
    BadAuthenticationType,
    BadHostKeyException,
    NoValidConnectionsError,
    PasswordRequiredException,
    SSHException,
)

from clipper_deploy.errors import ClipperDeployError

from .inventory import Host

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_KNOWN_HOSTS",
    "DEFAULT_MAX_WORKERS",
    "DEFAULT_USER",
    "ConnectionSetupError",
    "GroupError",
    "GroupResult",
    "HostGroup",
    "LocalConnection",
    "connect_error_message",
    "connection_for",
    "known_hosts_path",
]

#: Where host keys are read from unless a caller names another file.
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
#: Seconds to wait for TCP connect, the SSH banner and authentication, each.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: The remote user for hosts without ``ansible_user``.
DEFAULT_USER = "root"
#: How many hosts :class:`HostGroup` talks to at once.
DEFAULT_MAX_WORKERS = 16


class ConnectionSetupError(ClipperDeployError):
    """A connection cannot even be attempted: missing known_hosts or unreadable key file.

    The message says which file and how to fix it.
    """


def known_hosts_path(known_hosts: str | os.PathLike[str] | None = None) -> Path:
    """The known_hosts file to use: ``known_hosts`` or the default, with ``~`` expanded."""
    return Path(os.path.expanduser(known_hosts if known_hosts is not None else DEFAULT_KNOWN_HOSTS))


def connection_for(
    host: Host,
    *,
    known_hosts: str | os.PathLike[str] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    config: fabric.Config | None = None,
) -> fabric.Connection | LocalConnection:
    """A connection to ``host``, not yet opened (Fabric opens it on the first command).

    For SSH hosts this is a :class:`fabric.Connection` whose Paramiko client holds the keys of
    ``known_hosts`` (default ``~/.ssh/known_hosts``) and rejects any host not in it. The key
    file is loaded now so that a missing or unreadable key is reported before connecting; a
    passphrase-protected key is left to ssh-agent. ``connect_timeout`` (seconds, default 10)
    bounds the TCP connect (rounded up to whole seconds, as Fabric does), the wait for the SSH
    banner and authentication. ``config`` replaces the default Fabric config, which ignores
    ``~/.ssh/config``.

    For ``ansible_connection=local`` hosts this is a :class:`LocalConnection`.

    Raises :class:`ConnectionSetupError` when the known_hosts file or the key file is missing
    or unreadable.
    """
    if connect_timeout <= 0:
        raise ValueError(f"connect_timeout must be positive, not {connect_timeout!r}")
    if host.is_local:
        return LocalConnection(host, config=config)

    path = known_hosts_path(known_hosts if known_hosts is not None else host.known_hosts)
    if not path.is_file():
        raise ConnectionSetupError(
            f"{_where(host)}: known_hosts file {path} does not exist, so the host's key cannot "
            f"be verified; after checking the host's fingerprint, add it with "
            f"`{_keyscan(host, path)}`"
        )

    connect_kwargs: dict[str, Any] = {
        "banner_timeout": connect_timeout,
        "auth_timeout": connect_timeout,
    }
    if host.key_file is not None:
        connect_kwargs["look_for_keys"] = False
        pkey = _load_key(host, host.key_file)
        if pkey is not None:
            connect_kwargs["pkey"] = pkey

    if config is None:
        config = fabric.Config(ssh_config=paramiko.SSHConfig())
    conn = fabric.Connection(
        host.address,
        user=host.user or DEFAULT_USER,
        port=host.port,
        config=config,
        connect_timeout=math.ceil(connect_timeout),
        connect_kwargs=connect_kwargs,
    )
    # Fabric's client would accept any host key (AutoAddPolicy) and knows none: replace it.
    client = paramiko.SSHClient()
    try:
        # "system" host keys are read-only for Paramiko: never written back.
        client.load_system_host_keys(str(path))
    except OSError as exc:
        raise ConnectionSetupError(
            f"{_where(host)}: cannot read known_hosts file {path}: {exc.strerror or exc}"
        ) from None
    client.set_missing_host_key_policy(RejectPolicy())
    conn.client = client
    return conn


def _load_key(host: Host, key_file: Path) -> paramiko.PKey | None:
    """The host's private key, or ``None`` when it needs a passphrase (ssh-agent's job)."""
    if not key_file.is_file():
        raise ConnectionSetupError(
            f"{_where(host)}: key file {key_file} does not exist; fix "
            "ansible_ssh_private_key_file in the inventory (relative paths start from the "
            "inventory's folder)"
        )
    try:
        return paramiko.PKey.from_path(key_file)
    except (PasswordRequiredException, TypeError):
        # Encrypted and we have no passphrase: only ssh-agent can use it.
        if not os.environ.get("SSH_AUTH_SOCK"):
            raise ConnectionSetupError(
                f"{_where(host)}: key file {key_file} is protected by a passphrase and no "
                f"ssh-agent is running; start one and `ssh-add {key_file}`, or use a deploy key "
                "without a passphrase"
            ) from None
        return None
    except (OSError, ValueError, SSHException) as exc:
        raise ConnectionSetupError(
            f"{_where(host)}: key file {key_file} is not a private key clipper-deploy can read "
            f"({exc}); point ansible_ssh_private_key_file at the private half of an RSA, ECDSA "
            "or Ed25519 key"
        ) from None


class LocalConnection(invoke.Context):
    """Runs a host's commands on this machine (``ansible_connection=local``).

    It offers the part of :class:`fabric.Connection` the tool uses: ``run()`` and ``sudo()``
    (Invoke's, same arguments and :class:`invoke.runners.Result`), ``local()`` (same as
    ``run()``), ``put()`` / ``get()`` for file paths (plain copies), ``open()`` / ``close()``
    (nothing to do) and use as a context manager. There is no ``sftp()``.
    """

    # Class-level defaults make these real attributes, not Invoke config keys.
    host: str = ""
    user: str | None = None
    port: int = 0
    inventory_host: Host | None = None

    def __init__(self, host: Host, config: invoke.Config | None = None) -> None:
        super().__init__(config=config if config is not None else fabric.Config())
        #: The host's address, for messages (like ``fabric.Connection.host``).
        self.host = host.address
        #: The local user commands run as.
        self.user = get_local_user()
        self.port = host.port
        #: The inventory host this connection stands for.
        self.inventory_host = host

    def local(self, command: str, **kwargs: Any) -> invoke.runners.Result | None:
        """Run ``command`` on this machine; the same as :meth:`run`."""
        return self.run(command, **kwargs)

    def put(self, local: str | os.PathLike[str], remote: str | os.PathLike[str]) -> TransferResult:
        """Copy file ``local`` to ``remote`` (a file path, or a folder to copy into)."""
        target = Path(remote)
        if target.is_dir():
            target = target / Path(local).name
        shutil.copyfile(local, target)
        return TransferResult(
            local=str(Path(local).absolute()),
            orig_local=local,
            remote=str(target),
            orig_remote=remote,
            connection=self,
        )

    def get(self, remote: str | os.PathLike[str], local: str | os.PathLike[str]) -> TransferResult:
        """Copy file ``remote`` to ``local`` (a file path, or a folder to copy into)."""
        target = Path(local)
        if target.is_dir():
            target = target / Path(remote).name
        shutil.copyfile(remote, target)
        return TransferResult(
            local=str(target.absolute()),
            orig_local=local,
            remote=str(remote),
            orig_remote=remote,
            connection=self,
        )

    @property
    def is_connected(self) -> bool:
        """Always true: there is nothing to connect to."""
        return True

    def open(self) -> None:
        """Nothing to open; present for parity with :class:`fabric.Connection`."""

    def close(self) -> None:
        """Nothing to close; present for parity with :class:`fabric.Connection`."""

    def __enter__(self) -> LocalConnection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LocalConnection {self.host} user={self.user}>"


# --------------------------------------------------------------------------- messages


def connect_error_message(
    host: Host,
    exc: BaseException,
    *,
    known_hosts: str | os.PathLike[str] | None = None,
) -> str:
    """One line explaining ``exc``, raised while connecting to or running on ``host``.

    It names the host and address, says what went wrong (unreachable, timed out, connection
    refused, authentication failed, host key unknown or changed, command failed) and what to do
    about it. ``known_hosts`` should be the file the connection used (default
    ``~/.ssh/known_hosts``) so the advice names the right file.
    """
    where = _where(host)
    kh = known_hosts_path(known_hosts if known_hosts is not None else host.known_hosts)
    user = host.user or DEFAULT_USER

    if isinstance(exc, ConnectionSetupError):
        return str(exc)
    if isinstance(exc, invoke.UnexpectedExit):
        result = exc.result
        detail = _last_line(result.stderr) or _last_line(result.stdout)
        return f"{where}: `{result.command}` exited with status {result.exited}" + (
            f": {detail}" if detail else ""
        )
    if isinstance(exc, invoke.CommandTimedOut):
        return f"{where}: `{exc.result.command}` did not finish within {exc.timeout} s"
    if isinstance(exc, BadHostKeyException):
        name = _known_hosts_name(host)
        return (
            f"{where}: HOST KEY CHANGED: {kh} has {exc.expected_key.get_name()} key "
            f"{exc.expected_key.fingerprint} but the host offered {exc.key.get_name()} key "
            f"{exc.key.fingerprint}. Someone may be intercepting the connection; if the host "
            f"was reinstalled, check the new fingerprint, then replace the old entry: "
            f"`ssh-keygen -f {kh} -R '{name}' && {_keyscan(host, kh)}`"
        )
    if isinstance(exc, PasswordRequiredException):
        return (
            f"{where}: key {host.key_file} is protected by a passphrase and is not in "
            "ssh-agent; run `ssh-add "
            f"{host.key_file}` first, or use a deploy key without a passphrase"
        )
    if isinstance(exc, BadAuthenticationType):
        allowed = ", ".join(exc.allowed_types) or "none"
        return (
            f"{where}: the server does not accept key authentication for user {user} "
            f"(it allows: {allowed}); enable PubkeyAuthentication in its sshd_config"
        )
    if isinstance(exc, AuthenticationException):
        return f"{where}: authentication failed for user {user} {_credentials(host)}; " + (
            f"check that the public key is in ~{user}/.ssh/authorized_keys on the host, or fix "
            "ansible_user / ansible_ssh_private_key_file in the inventory"
        )
    if isinstance(exc, SSHException):
        text = str(exc)
        if "not found in known_hosts" in text:
            return (
                f"{where}: host key unknown: {_known_hosts_name(host)} is not in {kh}; after "
                f"checking the host's fingerprint, add it with `{_keyscan(host, kh)}`"
            )
        if "No authentication methods available" in text:
            if host.key_file is not None:
                return (
                    f"{where}: key {host.key_file} needs a passphrase and ssh-agent does not "
                    f"hold it; run `ssh-add {host.key_file}`, or use a key without a passphrase"
                )
            return (
                f"{where}: no key to log in as {user} with; set ansible_ssh_private_key_file "
                "in the inventory or load a key into ssh-agent"
            )
        if any(sign in text for sign in _HANDSHAKE_FAILURES):
            return (
                f"{where}: the port answered but no SSH session started within the connect "
                "timeout; check that ansible_port is sshd's port and that sshd is not "
                "overloaded"
            )
        return f"{where}: SSH error: {text}"
    if isinstance(exc, NoValidConnectionsError):
        codes = {getattr(e, "errno", None) for e in exc.errors.values()}
        if codes <= {errno.ECONNREFUSED}:
            return _refused(where)
        return _unreachable(where, "no route to the host")
    if isinstance(exc, ConnectionRefusedError):
        return _refused(where)
    if isinstance(exc, socket.gaierror):
        return (
            f"{where}: cannot resolve address {host.address!r} ({exc.strerror or exc}); fix "
            "ansible_host in the inventory or the DNS name"
        )
    if isinstance(exc, TimeoutError):
        return _unreachable(where, "timed out")
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return _unreachable(where, exc.strerror or "no route to the host")
    if isinstance(exc, ConnectionResetError | EOFError):
        return (
            f"{where}: the connection was closed by the host ({exc or type(exc).__name__}); "
            "check the host's sshd log (MaxStartups, AllowUsers, fail2ban)"
        )
    return f"{where}: {type(exc).__name__}: {exc}"


# What Paramiko says when TCP connected but SSH did not start: no banner within the banner
# timeout, or the key exchange not done within the connect timeout.
_HANDSHAKE_FAILURES = ("protocol banner", "No existing session", "Negotiation failed")


def _where(host: Host) -> str:
    address = f"{host.address}:{host.port}"
    return host.name if host.is_local else f"{host.name} ({address})"


def _known_hosts_name(host: Host) -> str:
    """How known_hosts names the host (OpenSSH and Paramiko agree)."""
    return host.address if host.port == 22 else f"[{host.address}]:{host.port}"


def _keyscan(host: Host, known_hosts: Path) -> str:
    return f"ssh-keyscan -p {host.port} {host.address} >> {known_hosts}"


def _credentials(host: Host) -> str:
    if host.key_file is not None:
        return f"with key {host.key_file} (and any ssh-agent keys)"
    return "with the ssh-agent's keys and ~/.ssh/id_*"


def _refused(where: str) -> str:
    return (
        f"{where}: connection refused: nothing listens for SSH on that port; start sshd on "
        "the host or fix ansible_port in the inventory"
    )


def _unreachable(where: str, why: str) -> str:
    return (
        f"{where}: unreachable ({why}); check that the host is up, that ansible_host is its "
        "address, and that no firewall drops SSH"
    )


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# --------------------------------------------------------------------------- groups


class GroupResult(dict[Host, Any]):
    """Per-host outcome of :meth:`HostGroup.run`: a Result, or the exception that host raised.

    Like Fabric's ``GroupResult``: ``succeeded`` and ``failed`` split it in two.
    """

    @property
    def succeeded(self) -> GroupResult:
        """Hosts whose command ran (and, unless ``warn=True``, exited 0)."""
        return GroupResult({h: r for h, r in self.items() if not isinstance(r, BaseException)})

    @property
    def failed(self) -> GroupResult:
        """Hosts that raised: could not connect, or the command failed."""
        return GroupResult({h: r for h, r in self.items() if isinstance(r, BaseException)})

    def messages(self, *, known_hosts: str | os.PathLike[str] | None = None) -> dict[Host, str]:
        """One :func:`connect_error_message` line per failed host."""
        return {
            host: connect_error_message(host, exc, known_hosts=known_hosts)
            for host, exc in self.failed.items()
        }


class GroupError(ClipperDeployError):
    """Some hosts of a :meth:`HostGroup.run` failed; ``result`` holds every host's outcome."""

    def __init__(self, result: GroupResult, messages: Mapping[Host, str]) -> None:
        self.result = result
        self.messages = dict(messages)
        lines = [f"{len(messages)} of {len(result)} hosts failed:"]
        lines += [f"  {message}" for message in messages.values()]
        super().__init__("\n".join(lines))


class HostGroup:
    """Several hosts, to run one command on all of them in parallel.

    At most ``max_workers`` hosts are worked on at once. Connections are made on first use,
    kept for later calls, and closed by :meth:`close` (or leaving a ``with`` block). Run one
    command at a time on a group.
    """

    def __init__(
        self,
        hosts: Iterable[Host],
        *,
        known_hosts: str | os.PathLike[str] | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_workers: int = DEFAULT_MAX_WORKERS,
        config: fabric.Config | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers!r}")
        self.hosts: tuple[Host, ...] = tuple(dict.fromkeys(hosts))
        self.known_hosts = known_hosts
        self.connect_timeout = connect_timeout
        self.max_workers = max_workers
        self.config = config
        self._connections: dict[Host, fabric.Connection | LocalConnection] = {}
        self._lock = threading.Lock()

    def connection(self, host: Host) -> fabric.Connection | LocalConnection:
        """The (cached) connection to ``host``, built by :func:`connection_for`."""
        with self._lock:
            conn = self._connections.get(host)
            if conn is None:
                conn = connection_for(
                    host,
                    known_hosts=self.known_hosts,
                    connect_timeout=self.connect_timeout,
                    config=self.config,
                )
                self._connections[host] = conn
            return conn

    def run(self, command: str, **kwargs: Any) -> GroupResult:
        """Run ``command`` on every host; return each host's Result.

        ``kwargs`` go to each ``run()`` (Fabric/Invoke's: ``warn``, ``hide``, ``timeout``,
        ``env``...); ``hide`` defaults to True and ``in_stream`` to False, since output from many
        hosts at once would interleave and no host can read our terminal. Raises
        :class:`GroupError` when any host failed to connect or, unless ``warn=True``, exited
        non-zero; its ``result`` still holds the Results of the hosts that succeeded.
        """
        kwargs.setdefault("hide", True)
        kwargs.setdefault("in_stream", False)
        result = GroupResult()
        if not self.hosts:
            return result
        workers = min(self.max_workers, len(self.hosts))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hostgroup") as pool:
            futures = {host: pool.submit(self._run_one, host, command, kwargs) for host in self}
            for host, future in futures.items():
                result[host] = future.result()
        if result.failed:
            raise GroupError(result, result.messages(known_hosts=self.known_hosts))
        return result

    def _run_one(self, host: Host, command: str, kwargs: dict[str, Any]) -> Any:
        try:
            return self.connection(host).run(command, **kwargs)
        except Exception as exc:  # reported per host, never lost
            return exc

    def close(self) -> None:
        """Close every connection the group opened."""
        with self._lock:
            connections, self._connections = list(self._connections.values()), {}
        for conn in connections:
            conn.close()

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __enter__(self) -> HostGroup:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
