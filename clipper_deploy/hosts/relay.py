"""Host-to-host relays: a host that holds a layer passes it to a host that lacks it, over SSH.

The client sends a large layer (the base image, a bundle's site-packages layer) to one host;
hosts that hold it pass it on, as the client instructs, so the client's uplink carries it once
per deploy whatever the number of hosts. One relay from holder ``A`` to receiver ``B``:

1. on ``B`` (the client's session): write the receive script to
   ``<root>/relay/<token>.sh`` and add a one-operation key to the deploy user's
   authorized_keys, restricted to that script and to ``A``'s address, expiring on its own
   after :data:`~clipper_deploy.settings.RELAY_KEY_LIFETIME_MIN` minutes::

       restrict,from="A",expiry-time="...",command="sh <root>/relay/<token>.sh" ssh-ed25519 ...

2. on ``A``: the private key arrives on the session's standard input into a 0600 file, ``B``'s
   host key (from the client's own known_hosts) into a per-relay known_hosts file, and
   ``<source> | ssh -o StrictHostKeyChecking=yes -o UserKnownHostsFile=<that file> B`` streams
   the layer; both files are removed when the command ends;
3. on ``B``: the key's line and the script are removed (always, also after a failure).

Every relay has a key of its own: hosts may share one authorized_keys file (the test bed's
do), and sshd uses the first line whose key matches.

``A`` never holds the user's own key, and the key it gets can only feed one receive script on
one host, from ``A``, for minutes. What ``B`` receives is checked there as from the client:
blobs by their sha256, images by ``docker load``. Commands are built by pure functions here;
:func:`relay` runs them. Bytes moved are counted in :data:`~.transfer.METER` as the holder's.
"""

from __future__ import annotations

import io
import posixpath
import shlex
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.hosts.connection import DEFAULT_USER, ConnectionSetupError
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.hosts.transfer import METER, stream_into
from clipper_deploy.settings import (
    CONNECT_TIMEOUT,
    DEFAULT_AUTHORIZED_KEYS,
    RELAY_KEY_LIFETIME_MIN,
    REMOTE_ROOT,
)

AUTHORIZED_KEYS_VAR = "clipper_authorized_keys_file"
"""Inventory variable: the deploy user's authorized_keys on a host, when not the default."""

RELAY_TIMEOUT = 900.0
"""Seconds one relay may take from the client's call to the receiver's last byte."""

MARK = "clipper-deploy-relay-"
"""Starts the comment of every relay key line (with the relay's token after it)."""


class RelayError(ClipperDeployError, RuntimeError):
    """A relay from one host to another failed; the message names both and the reason."""


@dataclass(frozen=True)
class RelayKey:
    """A key for one operation: ``private`` (OpenSSH format), ``public`` (``ssh-ed25519 ...``)."""

    private: str
    public: str

    @classmethod
    def generate(cls) -> RelayKey:
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode()
        public = (
            key.public_key()
            .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
            .decode()
        )
        return cls(private, public)


def relay_dir(root: str = REMOTE_ROOT) -> str:
    return posixpath.join(root, "relay")


def authorized_keys_of(host: Host) -> str:
    """Where the deploy user's authorized_keys is on ``host`` (inventory variable
    ``clipper_authorized_keys_file``, default ``~/.ssh/authorized_keys``)."""
    return host.vars.get(AUTHORIZED_KEYS_VAR) or DEFAULT_AUTHORIZED_KEYS


def _shell_path(path: str) -> str:
    """``path`` for a shell line, with a leading ``~/`` as ``"$HOME"/``."""
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def known_hosts_line(known_hosts: Path, host: Host) -> str:
    """``host``'s key as one known_hosts line, read from the client's ``known_hosts``; raises
    :class:`ConnectionSetupError` when the file has no key for it."""
    name = host.address if host.port == 22 else f"[{host.address}]:{host.port}"
    try:
        keys = paramiko.HostKeys(str(known_hosts)).lookup(name)
    except OSError as exc:
        raise ConnectionSetupError(f"cannot read known_hosts file {known_hosts}: {exc}") from None
    if not keys:
        raise ConnectionSetupError(
            f"{host.name}: no host key for {name} in {known_hosts}, so no host can be told to "
            "check it; add it after checking the fingerprint"
        )
    return "\n".join(f"{name} {kind} {key.get_base64()}" for kind, key in keys.items())


def authorize_command(
    token: str,
    public_key: str,
    source_address: str,
    keys_file: str,
    root: str = REMOTE_ROOT,
    lifetime_min: int = RELAY_KEY_LIFETIME_MIN,
) -> str:
    """On the receiver: the receive script (standard input) into ``relay/<token>.sh``, and a
    key line allowing only that script, only from ``source_address``, for ``lifetime_min``
    minutes, appended to ``keys_file`` under a lock."""
    directory = relay_dir(root)
    script = posixpath.join(directory, f"{token}.sh")
    options = f'restrict,from="{source_address}",expiry-time="$until",command="sh {script}"'
    line = f"{options} {public_key} {MARK}{token}"
    keys = _shell_path(keys_file)
    return "\n".join(
        [
            "set -e",
            "umask 077",
            f"mkdir -p {shlex.quote(directory)}",
            f"cat > {shlex.quote(script)}",
            f"keys={keys}",
            'mkdir -p "$(dirname "$keys")"',
            f'until=$(date -d "@$(( $(date +%s) + {int(lifetime_min) * 60} ))" +%Y%m%d%H%M)',
            "(",
            "  flock 9",
            '  if [ -s "$keys" ] && [ -n "$(tail -c 1 "$keys")" ]; then echo >> "$keys"; fi',
            f'  printf "%s\\n" "{_double_quoted(line)}" >> "$keys"',
            ') 9>>"$keys.clipper-lock"',
        ]
    )


def _double_quoted(text: str) -> str:
    """``text`` for inside a shell's double quotes, keeping ``$until`` expanded."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")


def revoke_command(token: str, keys_file: str, root: str = REMOTE_ROOT) -> str:
    """On the receiver: remove the relay's key line and its script (nothing else)."""
    script = posixpath.join(relay_dir(root), f"{token}.sh")
    keys = _shell_path(keys_file)
    return "\n".join(
        [
            "umask 077",
            f"keys={keys}",
            'if [ -f "$keys" ]; then (',
            "  flock 9",
            f'  grep -v -F {shlex.quote(MARK + token)} "$keys" > "$keys.clipper-tmp" || true',
            '  mv -f "$keys.clipper-tmp" "$keys"',
            ') 9>>"$keys.clipper-lock"; fi',
            f"rm -f {shlex.quote(script)}",
            f"rmdir {shlex.quote(relay_dir(root))} 2>/dev/null || true",  # leave nothing behind
        ]
    )


def send_command(
    token: str,
    target: Host,
    target_known_hosts: str,
    source_command: str,
    root: str = REMOTE_ROOT,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> str:
    """On the holder: the key (standard input) into a 0600 file, ``target``'s host key into a
    per-relay known_hosts file, then ``source_command``'s output over SSH to ``target``, host
    key checked; the key and known_hosts files are removed when it ends.

    The files live in a directory of this relay's own (``relay/<token>/``): a holder passes a
    layer to several hosts at once, and another relay's cleanup only removes the shared
    ``relay/`` directory when it is empty, never while this one uses it. The cleanup never
    changes the command's exit status (an ``rmdir`` of the shared directory fails while
    another relay uses it; under ``set -e`` that used to turn a relay that had delivered into
    a failed one, with no message). A failure ends with a ``clipper-relay:`` line on standard
    error saying which part failed (ssh, the receive script on ``target``, or
    ``source_command``), after the lines that part wrote there."""
    shared = relay_dir(root)
    directory = posixpath.join(shared, token)
    key = shlex.quote(posixpath.join(directory, f"{token}.key"))
    known = shlex.quote(posixpath.join(directory, f"{token}.known_hosts"))
    status = shlex.quote(posixpath.join(directory, f"{token}.status"))
    ssh = [
        "ssh",
        "-F",
        "/dev/null",
        "-T",
        "-i",
        posixpath.join(directory, f"{token}.key"),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={posixpath.join(directory, f'{token}.known_hosts')}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        f"ConnectTimeout={max(1, int(connect_timeout))}",
        "-o",
        "Ciphers=aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com",
        "-o",
        "ServerAliveInterval=5",
        "-o",
        "ServerAliveCountMax=3",
        "-p",
        str(target.port),
        "-l",
        target.user or DEFAULT_USER,
        target.address,
        "relay",
    ]
    to = f"{target.address} port {target.port}"
    said = "clipper-relay:"
    return "\n".join(
        [
            "set -e",
            "umask 077",
            # Twice: another relay may remove the empty shared directory between its two mkdirs.
            f"mkdir -p {shlex.quote(directory)} || mkdir -p {shlex.quote(directory)}",
            f"trap 'rc=$?; set +e; rm -f {key} {known} {status}; "
            f"rmdir {shlex.quote(directory)} {shlex.quote(shared)} 2>/dev/null; exit $rc' EXIT",
            f"cat > {key}",
            f"printf '%s\\n' {shlex.quote(target_known_hosts)} > {known}",
            "set +e",
            # A subshell: a source that exits (or has its own ``set -e``) still leaves a status.
            f"{{ ( {source_command} ); echo $? > {status}; }} | {shlex.join(ssh)}",
            "sent=$?",
            f'made=$(cat {status} 2>/dev/null || echo "not known")',
            'if [ "$sent" -eq 255 ]; then',
            f'  echo "{said} ssh to {to} failed (exit status 255)" >&2; exit 255',
            'elif [ "$sent" -ne 0 ] && [ "$made" != 0 ]; then',  # the lines above say which first
            f'  echo "{said} the receive script on {to} exited $sent and the source command '
            f'here exited $made:" {shlex.quote(source_command)} >&2; exit "$sent"',
            'elif [ "$sent" -ne 0 ]; then',
            f'  echo "{said} the receive script on {to} exited $sent" >&2; exit "$sent"',
            'elif [ "$made" != 0 ]; then',
            f'  echo "{said} the source command here exited $made:" '
            f"{shlex.quote(source_command)} >&2",
            "  exit 1",
            "fi",
        ]
    )


def relay(
    source_conn: Any,
    source: Host,
    target_conn: Any,
    target: Host,
    *,
    source_command: str,
    receive_script: str,
    key: RelayKey,
    known_hosts: Path,
    nbytes: int,
    what: str,
    token: str | None = None,
    root: str = REMOTE_ROOT,
    timeout: float = RELAY_TIMEOUT,
) -> None:
    """Have ``source`` stream ``source_command``'s output into ``receive_script`` on
    ``target`` (see the module docstring); ``nbytes`` (the layer's size) is counted in the
    meter as ``source``'s. Raises :class:`RelayError` naming both hosts."""
    token = token or uuid.uuid4().hex[:12]
    keys_file = authorized_keys_of(target)
    line = known_hosts_line(known_hosts, target)
    authorized = stream_into(
        target_conn,
        ["sh", "-c", authorize_command(token, key.public, source.address, keys_file, root)],
        io.BytesIO(receive_script.encode()),
        timeout=60,
        receiver=target.name,
    )
    try:
        if not authorized.ok:
            said = _tail(authorized.stderr) or "it wrote no message"
            raise RelayError(
                f"{target.name} could not authorize a relay from {source.name}: "
                f"{said}; check that {keys_file} is the deploy user's "
                f"authorized_keys there (inventory variable {AUTHORIZED_KEYS_VAR})"
            )
        sent = stream_into(
            source_conn,
            ["sh", "-c", send_command(token, target, line, source_command, root)],
            io.BytesIO(key.private.encode()),
            timeout=timeout,
            receiver=source.name,
        )
    finally:
        target_conn.run(
            revoke_command(token, keys_file, root),
            hide=True,
            warn=True,
            in_stream=False,
            timeout=60,
        )
    if not sent.ok:
        said = _tail(sent.stderr) or _tail(sent.stdout) or "it wrote no message"
        raise RelayError(
            f"{source.name} could not pass {what} to {target.name} (exit status "
            f"{sent.exited}): {said}"
        )
    METER.add(source.name, target.name, nbytes)


def _tail(text: str, count: int = 4, width: int = 300) -> str:
    """The last ``count`` non-blank lines of ``text`` (each cut to ``width``), joined by
    ``" / "``: a relay's own ``clipper-relay:`` line comes last, after the reason above it."""
    lines = [line.strip()[:width] for line in text.splitlines() if line.strip()]
    return " / ".join(lines[-count:])
