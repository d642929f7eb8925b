"""TLS for the frontend of an inventory: settings, and the certificate files it serves.

Variables of the ``[clipper]`` host (paths relative to the inventory's folder, on this machine):

- ``clipper_tls``: ``off`` (default), ``self-signed`` (clipper-deploy creates a CA and a server
  certificate for the host's address; clients pin the CA) or ``provided`` (the default when
  ``clipper_tls_cert`` is set);
- ``clipper_tls_cert``, ``clipper_tls_key``: the user's PEM certificate (with its chain) and key;
- ``clipper_tls_ca``: the CA file clients verify a provided certificate against (default: the
  system's trusted CAs).

Where the files live: under ``<state>/tls/`` next to the frontend's state: ``server.pem``,
``server.key`` (0600, the frontend's user), and for ``self-signed`` ``ca.pem`` and ``ca.key``
(0600; on a remote host owned by root, so the frontend's container cannot read it). A local
frontend serves a provided certificate from where it is; a remote one gets a copy sent over SSH.
The CA key never leaves the frontend's host except over SSH when a server certificate must be
issued again (it expires within 30 days, or no longer names the address). A remote frontend's
``ca.pem`` is cached here per inventory and address, mode 0600, read over SSH at every start.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.frontend import certificates
from clipper_deploy.frontend.process import connect_host
from clipper_deploy.frontend.tokens import config_dir, write_private
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.settings import CONTAINER_USER

TLS_DIR = "tls"
CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.pem", "ca.key", "server.pem", "server.key"
MODES = ("off", "self-signed", "provided")


class FrontendTLSError(ClipperDeployError):
    """TLS of the frontend cannot be set up; the message names the file, host and fix."""


@dataclass(frozen=True)
class TLSSettings:
    """What the inventory asks for (paths on this machine)."""

    mode: str = "off"
    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.mode != "off"


def tls_settings(host: Host, inventory_source: str) -> TLSSettings:
    """The ``[clipper]`` host's TLS variables, checked."""
    var = host.vars.get
    base = Path(inventory_source).resolve().parent

    def path(name: str) -> Path | None:
        value = var(name, "")
        if not value:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    cert, key, ca = path("clipper_tls_cert"), path("clipper_tls_key"), path("clipper_tls_ca")
    mode = var("clipper_tls", "provided" if cert else "off").strip().lower()
    if mode in ("false", "no", "0"):
        mode = "off"
    where = f"{inventory_source}: [clipper] host {host.name}"
    if mode not in MODES:
        raise FrontendTLSError(
            f"{where}: clipper_tls must be one of {', '.join(MODES)}, not {mode!r}"
        )
    if mode == "provided" and not (cert and key):
        raise FrontendTLSError(
            f"{where}: clipper_tls=provided needs clipper_tls_cert and clipper_tls_key (PEM "
            "files on this machine); or use clipper_tls=self-signed"
        )
    if mode == "self-signed" and cert:
        raise FrontendTLSError(
            f"{where}: clipper_tls=self-signed creates its own certificate; remove "
            "clipper_tls_cert/clipper_tls_key, or set clipper_tls=provided"
        )
    return TLSSettings(mode, cert, key, ca)


def read_provided(settings: TLSSettings, address: str) -> certificates.KeyPair:
    """The user's certificate and key, refused with the reason if clients would refuse it."""
    assert settings.cert and settings.key
    try:
        pair = certificates.KeyPair(settings.cert.read_bytes(), settings.key.read_bytes())
    except OSError as exc:
        raise FrontendTLSError(
            f"TLS certificate or key cannot be read: {exc.filename}: {exc.strerror}; fix "
            "clipper_tls_cert/clipper_tls_key of the [clipper] host"
        ) from None
    problem = certificates.certificate_problem(pair.cert_pem, address)
    if problem:
        raise FrontendTLSError(
            f"TLS certificate {settings.cert} cannot serve {address}: {problem}; give a "
            "certificate for this address that is valid now (or use clipper_tls=self-signed)"
        )
    return pair


# ------------------------------------------------------------------ a local frontend


def prepare_local(settings: TLSSettings, state_dir: Path, address: str) -> None:
    """Make the files a local frontend serves: nothing for a provided certificate (checked);
    a CA (once) and a server certificate (again when it nears its end or no longer names
    ``address``) under ``state_dir/tls`` for ``self-signed``."""
    address = connect_host(address)  # what local clients dial (127.0.0.1 for 0.0.0.0)
    if settings.mode == "provided":
        read_provided(settings, address)
        return
    tls = state_dir / TLS_DIR
    tls.mkdir(parents=True, exist_ok=True)
    tls.chmod(0o700)
    if not (tls / CA_KEY).exists() or not (tls / CA_CERT).exists():
        ca = certificates.create_ca(address)
        write_private(tls / CA_KEY, ca.key_pem.decode())
        write_private(tls / CA_CERT, ca.cert_pem.decode())
    ca = certificates.KeyPair((tls / CA_CERT).read_bytes(), (tls / CA_KEY).read_bytes())
    server = tls / SERVER_CERT
    if not server.exists() or certificates.certificate_problem(
        server.read_bytes(), address, renew_days=certificates.RENEW_BEFORE_DAYS
    ):
        pair = certificates.issue_server_certificate(ca, [address])
        write_private(tls / SERVER_KEY, pair.key_pem.decode())
        write_private(server, pair.cert_pem.decode())


def local_paths(
    settings: TLSSettings, state_dir: Path
) -> tuple[str | None, str | None, str | None]:
    """``(cert, key, ca)`` a local frontend and its clients use."""
    if settings.mode == "provided":
        return str(settings.cert), str(settings.key), str(settings.ca) if settings.ca else None
    if settings.mode == "self-signed":
        tls = state_dir / TLS_DIR
        return str(tls / SERVER_CERT), str(tls / SERVER_KEY), str(tls / CA_CERT)
    return None, None, None


# ------------------------------------------------------------------ a remote frontend


def remote_paths(state_dir: str) -> tuple[str, str]:
    """``(cert, key)`` on the remote host (the state directory is bound at the same path)."""
    tls = PurePosixPath(state_dir) / TLS_DIR
    return str(tls / SERVER_CERT), str(tls / SERVER_KEY)


def cached_ca_path(inventory_source: str, address: str, port: int) -> Path:
    """Where this machine pins a remote self-signed frontend's CA."""
    where = hashlib.sha256(str(Path(inventory_source).resolve()).encode()).hexdigest()[:12]
    safe = address.replace(":", "_").replace("/", "_")
    return config_dir() / "tls" / f"{safe}_{port}-{where}.ca.pem"


SEPARATOR = "::clipper-deploy-tls::"


def read_remote_command(state_dir: str, names: tuple[str, ...]) -> str:
    """Shell: print each file of ``<state>/tls`` (empty when missing), separated."""
    tls = PurePosixPath(state_dir) / TLS_DIR
    parts = [f"echo {SEPARATOR}; cat {shlex.quote(str(tls / n))} 2>/dev/null" for n in names]
    return "; ".join(parts) + "; true"


def split_remote(output: str, names: tuple[str, ...]) -> dict[str, bytes]:
    chunks = output.split(SEPARATOR + "\n")[1:]
    return {n: c.encode() for n, c in zip(names, chunks, strict=False) if c.strip()}


def write_remote_command(state_dir: str, name: str, owner: str) -> str:
    """Shell: standard input into ``<state>/tls/<name>``, mode 0600, owned by ``owner``."""
    tls = PurePosixPath(state_dir) / TLS_DIR
    uid, gid = CONTAINER_USER.split(":")
    target, tmp = shlex.quote(str(tls / name)), shlex.quote(str(tls / f".{name}.part"))
    return (
        f"install -d -o {uid} -g {gid} -m 700 {shlex.quote(str(tls))} && "
        f"(umask 077 && cat > {tmp} && chown {owner} {tmp} && mv {tmp} {target})"
    )


def prepare_remote(
    run: Any, settings: TLSSettings, state_dir: str, address: str, ca_cache: Path | None
) -> str:
    """Put the served certificate and key in ``<state>/tls`` on the host (``run(command,
    what, stdin)`` runs a shell line there); cache a self-signed CA's ``ca.pem`` at
    ``ca_cache``. Returns the sha256 of the served certificate (the container is replaced
    when it changes)."""
    names = (CA_CERT, SERVER_CERT)
    found = split_remote(run(read_remote_command(state_dir, names), "read the TLS files"), names)
    user = CONTAINER_USER
    uploads: list[tuple[str, bytes, str]] = []
    if settings.mode == "provided":
        pair = read_provided(settings, address)
        if found.get(SERVER_CERT) != pair.cert_pem:
            uploads += [(SERVER_KEY, pair.key_pem, user), (SERVER_CERT, pair.cert_pem, user)]
        served = pair.cert_pem
    else:
        if CA_CERT not in found:
            ca = certificates.create_ca(address)
            uploads += [(CA_KEY, ca.key_pem, "0:0"), (CA_CERT, ca.cert_pem, user)]
            found.pop(SERVER_CERT, None)
        else:
            ca_key = run(read_remote_command(state_dir, (CA_KEY,)), "read the TLS CA key")
            ca = certificates.KeyPair(
                found[CA_CERT], split_remote(ca_key, (CA_KEY,)).get(CA_KEY, b"")
            )
        served = found.get(SERVER_CERT, b"")
        if not served or certificates.certificate_problem(
            served, address, renew_days=certificates.RENEW_BEFORE_DAYS
        ):
            if not ca.key_pem:
                raise FrontendTLSError(
                    f"the frontend's TLS certificate must be issued again but "
                    f"{state_dir}/{TLS_DIR}/{CA_KEY} cannot be read on the [clipper] host; "
                    f"remove {state_dir}/{TLS_DIR} there to start over with a new CA"
                )
            pair = certificates.issue_server_certificate(ca, [address])
            uploads += [(SERVER_KEY, pair.key_pem, user), (SERVER_CERT, pair.cert_pem, user)]
            served = pair.cert_pem
        if ca_cache is not None:
            write_private(ca_cache, ca.cert_pem.decode())
    for name, content, owner in uploads:
        run(write_remote_command(state_dir, name, owner), f"write {name}", content.decode())
    return hashlib.sha256(served).hexdigest()


def served_digest(run: Any, settings: TLSSettings, state_dir: str, address: str) -> str:
    """What :func:`prepare_remote` would return, read without changing anything: the sha256
    of the certificate that will be served, or "" when a new one would be issued."""
    if settings.mode == "provided":
        return hashlib.sha256(read_provided(settings, address).cert_pem).hexdigest()
    found = split_remote(
        run(read_remote_command(state_dir, (SERVER_CERT,)), "read the TLS files"), (SERVER_CERT,)
    )
    served = found.get(SERVER_CERT, b"")
    if not served or certificates.certificate_problem(
        served, address, renew_days=certificates.RENEW_BEFORE_DAYS
    ):
        return ""
    return hashlib.sha256(served).hexdigest()
