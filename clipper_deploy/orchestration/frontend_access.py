"""The frontend of an inventory: its settings, its clients, starting and stopping it.

The ``[clipper]`` host's inventory variables (all optional) are ``clipper_state_dir`` (the
frontend's state; relative to the inventory's folder), ``clipper_query_port``,
``clipper_admin_port`` and ``clipper_replica_port`` (defaults in :mod:`clipper_deploy.settings`),
``clipper_metrics_open`` (``false``: ``/metrics`` needs the admin token), and the frontend's
limits ``clipper_max_body_bytes``, ``clipper_max_batch_inputs``, ``clipper_max_queue``,
``clipper_idle_timeout``, ``clipper_batch_timeout``, ``clipper_max_connections`` (see
``docs/errors.md``, "The frontend's limits and refusals"), and TLS on the query and management
ports: ``clipper_tls``, ``clipper_tls_cert``, ``clipper_tls_key``, ``clipper_tls_ca``
(:mod:`.frontend_tls`; default off).

With ``ansible_connection=local`` the frontend runs as a process on this machine
(:mod:`clipper_deploy.frontend.process`). Any other ``[clipper]`` host runs it as a Docker
container reached over SSH (:mod:`.frontend_service`); its state directory is then a path on
that host (default ``/var/lib/clipper-deploy/frontend``; a relative ``clipper_state_dir`` is
under ``/var/lib/clipper-deploy``), and the admin token is read over SSH and cached here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

import clipper_deploy
from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.frontend import process as frontend_process
from clipper_deploy.frontend.client import AdminClient, FrontendError, QueryClient
from clipper_deploy.frontend.config import (
    DEFAULT_BATCH_TIMEOUT_S,
    DEFAULT_IDLE_TIMEOUT_S,
    DEFAULT_MAX_BATCH_INPUTS,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_QUEUE,
    FrontendConfig,
)
from clipper_deploy.hosts.inventory import Host, Inventory
from clipper_deploy.images.configured import BaseImage, configured_base_image
from clipper_deploy.orchestration import frontend_tls
from clipper_deploy.orchestration.frontend_service import FrontendService, RefreshingAdminClient
from clipper_deploy.settings import (
    CONNECT_TIMEOUT,
    DEFAULT_ADMIN_PORT,
    DEFAULT_QUERY_PORT,
    DEFAULT_REPLICA_PORT,
    DEFAULT_STATE_DIR,
    FRONTEND_GROUP,
    REMOTE_ROOT,
)


class ClipperError(ClipperDeployError, RuntimeError):
    """A management call failed; the message says what, where and how to fix it."""


def frontend_host(inventory: Inventory) -> Host:
    """The inventory's one ``[clipper]`` host; raises :class:`ClipperError` for the example
    inventory or a group without exactly one host."""
    if any(h.vars.get("clipper_example_inventory") for h in inventory.hosts("all")):
        raise ClipperError(
            f"{inventory.source} is the repository's example inventory: copy it, put "
            "your own hosts in, remove `clipper_example_inventory`, and pass it with "
            "--inventory; or bring up the local test bed with `invoke testbed.up`"
        )
    frontends = inventory.hosts(FRONTEND_GROUP)
    if len(frontends) != 1:
        raise ClipperError(
            f"{inventory.source}: the [{FRONTEND_GROUP}] group must hold exactly one "
            f"host (the frontend), not {len(frontends)}"
        )
    return frontends[0]


class FrontendAccess:
    """Settings and clients of the frontend on ``host`` (the inventory's ``[clipper]``)."""

    def __init__(
        self,
        inventory: Inventory,
        host: Host,
        say: Callable[[str], None],
        base_image: Callable[[], BaseImage] | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        self.inventory = inventory
        self.host = host
        self.say = say
        self._base_image = base_image or (lambda: configured_base_image(None, say=say))
        self.connect_timeout = connect_timeout
        self._service: FrontendService | None = None

    @property
    def tls(self) -> frontend_tls.TLSSettings:
        """The ``[clipper]`` host's TLS settings (``clipper_tls``...)."""
        return frontend_tls.tls_settings(self.host, str(self.inventory.source))

    @property
    def config(self) -> FrontendConfig:
        """The frontend's settings, from the ``[clipper]`` host's inventory variables."""
        host = self.host
        var = host.vars.get
        tls = self.tls
        if host.is_local:
            state_dir = Path(var("clipper_state_dir", DEFAULT_STATE_DIR)).expanduser()
            if not state_dir.is_absolute():
                state_dir = Path(self.inventory.source).resolve().parent / state_dir
        else:  # a path on the [clipper] host, never resolved here
            remote = PurePosixPath(var("clipper_state_dir", DEFAULT_STATE_DIR))
            if not remote.is_absolute():
                remote = PurePosixPath(REMOTE_ROOT) / remote
            state_dir = Path(remote)
        cert = key = ca = None
        if host.is_local:
            cert, key, ca = frontend_tls.local_paths(tls, state_dir)
        elif tls.enabled:
            cert, key = frontend_tls.remote_paths(str(state_dir))
            ca = str(tls.ca) if tls.ca else None
            if tls.mode == "self-signed":
                ca = str(self.remote_ca_path(host.address, var))
        return FrontendConfig(
            tls_cert=cert,
            tls_key=key,
            tls_ca=ca,
            state_dir=state_dir,
            bind=host.address,
            query_port=int(var("clipper_query_port", DEFAULT_QUERY_PORT)),
            admin_port=int(var("clipper_admin_port", DEFAULT_ADMIN_PORT)),
            replica_port=int(var("clipper_replica_port", DEFAULT_REPLICA_PORT)),
            metrics_open=inventory_flag(var("clipper_metrics_open", "false")),
            max_body_bytes=int(var("clipper_max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
            max_batch_inputs=int(var("clipper_max_batch_inputs", DEFAULT_MAX_BATCH_INPUTS)),
            max_queue=int(var("clipper_max_queue", DEFAULT_MAX_QUEUE)),
            idle_timeout_s=float(var("clipper_idle_timeout", DEFAULT_IDLE_TIMEOUT_S)),
            batch_timeout_s=float(var("clipper_batch_timeout", DEFAULT_BATCH_TIMEOUT_S)),
            max_connections=int(var("clipper_max_connections", DEFAULT_MAX_CONNECTIONS)),
        )

    def remote_ca_path(self, address: str, var: Any) -> Path:
        port = int(var("clipper_admin_port", DEFAULT_ADMIN_PORT))
        return frontend_tls.cached_ca_path(str(self.inventory.source), address, port)

    @property
    def admin_url(self) -> str:
        config = self.config
        return f"{config.scheme}://{config.bind}:{config.admin_port}"

    @property
    def query_url(self) -> str:
        config = self.config
        return f"{config.scheme}://{config.bind}:{config.query_port}"

    @property
    def replica_address(self) -> str:
        """``address:port`` where replicas reach the frontend."""
        config = self.config
        return f"{config.bind}:{config.replica_port}"

    @property
    def service(self) -> FrontendService:
        """The frontend's container on a remote ``[clipper]`` host (not for a local one)."""
        if self.host.is_local:
            raise ClipperError(
                f"{self.host.name} is ansible_connection=local: its frontend is a process "
                "here, not a container (use `invoke frontend.start --state-dir ...`)"
            )
        if self._service is None:
            self._service = FrontendService(
                self.host,
                self.config,
                self.inventory.source,
                self._base_image,
                say=self.say,
                connect_timeout=self.connect_timeout,
                tls=self.tls,
            )
        return self._service

    @property
    def admin(self) -> AdminClient:
        config = self.config
        if not self.host.is_local:
            self.ensure_pinned_ca()
            return RefreshingAdminClient(self.admin_url, self.service, cafile=config.tls_ca)
        token = None
        token_file = config.state_dir / "admin.token"
        if self.host.is_local and token_file.exists():
            token = token_file.read_text().strip()
        return AdminClient(self.admin_url, token, cafile=config.tls_ca)

    @property
    def query(self) -> QueryClient:
        if not self.host.is_local:
            self.ensure_pinned_ca()
        return QueryClient(self.query_url, cafile=self.config.tls_ca)

    def ensure_pinned_ca(self) -> None:
        """A remote self-signed frontend's ``ca.pem``, read over SSH when not cached yet."""
        config = self.config
        if self.tls.mode == "self-signed" and config.tls_ca and not Path(config.tls_ca).exists():
            self.service.fetch_ca()

    def start(self) -> dict[str, Any]:
        """Start the frontend (idempotent); returns its status. A remote ``[clipper]`` host
        gets it as a container built from this clipper-deploy (a newer one replaces it)."""
        if not self.host.is_local:
            return self.service.start()
        config = self.config
        if self.tls.enabled:
            frontend_tls.prepare_local(self.tls, config.state_dir, config.bind)
        status = frontend_process.start(config)
        self.say(f"Frontend {status.message}: queries at {status.query_url}")
        return status.to_json()

    def stop(self) -> dict[str, Any]:
        """Stop the frontend (model containers keep running and reconnect when it is back)."""
        if not self.host.is_local:
            return self.service.stop()
        return frontend_process.stop(self.config.state_dir).to_json()

    def status(self) -> dict[str, Any]:
        """Where the frontend runs (a local process or a container on the host), its
        clipper-deploy version and uptime."""
        if not self.host.is_local:
            return self.service.status()
        doc = frontend_process.status(self.config.state_dir).to_json()
        doc["where"] = (
            f"process {doc['pid']} on this machine" if doc["running"] else "nowhere (stopped)"
        )
        doc["host"] = self.host.name
        doc["version"] = clipper_deploy.__version__
        return doc

    def register_application(
        self, name: str, input_type: str, default_output: Any, slo_micros: int = 100_000
    ) -> None:
        """Register an app (idempotent when it exists)."""
        admin = self.admin
        try:
            existing = admin.get_application(name)
        except FrontendError:
            existing = None
        if existing is not None:
            self.say(f"Application {name} already registered")
            return
        admin.add_app(name, input_type, default_output, slo_micros)
        self.say(f"Registered application {name} ({input_type}, SLO {slo_micros} us)")

    def link_model_to_app(self, app_name: str, model_name: str) -> None:
        """Route ``app_name``'s queries to ``model_name``'s current version."""
        if model_name in self.admin.get_linked_models(app_name):
            return
        self.admin.add_model_links(app_name, [model_name])
        self.say(f"Linked model {model_name} to application {app_name}")

    def next_version(self, model: str) -> str:
        """One more than the highest numeric version the frontend knows of ``model`` (1 for a
        new model); other version names cannot be bumped and are an error."""
        versions = [
            str(m["model_version"])
            for m in self.admin.get_all_models(verbose=True)
            if m["model_name"] == model
        ]
        if not all(v.isdigit() for v in versions):
            raise ClipperError(
                f"cannot pick the next version of {model} after {', '.join(versions)}: "
                "versions are not all numbers; give one with --version"
            )
        return str(max((int(v) for v in versions), default=0) + 1)


def inventory_flag(value: str) -> bool:
    """An inventory variable read as a boolean, the way Ansible reads ``true``/``yes``/``1``."""
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0", ""):
        return False
    raise ClipperError(f"expected true or false for an inventory flag, got {value!r}")
