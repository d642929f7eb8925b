"""Clipper's own client, ``clipper_admin`` 0.4.1, driving a clipper-deploy frontend.

``clipper_admin.ClipperConnection`` talks to a cluster through a *container manager* that
starts the frontend, says where it listens and runs model containers. This module is that
manager for an inventory: the management and query calls then go, unchanged, to our frontend::

    from clipper_admin import ClipperConnection
    from clipper_deploy.compat.clipper_admin import ClipperDeployContainerManager

    conn = ClipperConnection(ClipperDeployContainerManager("inventory.ini"))
    conn.start_clipper()          # the inventory's frontend (idempotent), or conn.connect()
    conn.register_application("example", "doubles", "-1.0", 100000)

``clipper_admin`` sends no token. Our management API also takes the admin token as the
password of HTTP Basic credentials, which ``requests`` reads from ``~/.netrc`` by itself; so
one line there (mode 0600) is all it needs, and :meth:`~ClipperDeployContainerManager.connect`
says which line when it is missing (``clipper-deploy frontend.start`` prints the token's file)::

    machine 10.0.0.5 login clipper password <the admin token>

What cannot work, and why (each raises :class:`clipper_admin.ClipperException` saying so, or
is documented in the README):

- ``deploy_model``, ``build_and_deploy_model`` and the ``deployers``: they build and run
  Docker images from Clipper's registry on the client's Docker; clipper-deploy deploys a Python
  function to the inventory's hosts instead (``Clipper.deploy_predict_function`` or
  ``clipper-deploy deploy``). ``register_model`` works: any replica that dials the frontend
  for that model and version serves it.
- ``set_num_replicas``: the replicas of a version are the playbook's ``replicas`` (or
  ``num_containers``), placed on hosts; change them with a rollout.
- ``inspect_instance``: Clipper's ``/metrics`` was JSON; ours is Prometheus text.
- TLS (``clipper_tls``): ``clipper_admin`` writes ``http://`` into every URL, so it cannot
  reach a frontend whose ports speak TLS.

``clipper_admin`` itself is not a dependency of clipper-deploy (its pinned cloudpickle 0.5.3
does not import on Python 3.11): install it with ``pip install --no-deps clipper_admin==0.4.1``
plus current versions of its dependencies.
"""

from __future__ import annotations

import logging
import netrc
import os
import shutil
from pathlib import Path
from typing import Any

try:
    from clipper_admin.container_manager import ClusterAdapter, ContainerManager
    from clipper_admin.exceptions import ClipperException
except ImportError as exc:  # pragma: no cover - what a user without clipper_admin sees
    raise ImportError(
        "clipper_deploy.compat.clipper_admin needs Clipper's clipper_admin package: "
        "`pip install --no-deps clipper_admin==0.4.1` plus its dependencies (requests, "
        f"numpy, pyyaml, docker, kubernetes, prometheus-client, redis, psutil, jsonschema, "
        f"jinja2, cloudpickle) ({exc})"
    ) from exc

from clipper_deploy.clipper import Clipper
from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.orchestration import observe
from clipper_deploy.settings import MODEL_HOSTS_GROUP

logger = logging.getLogger(__name__)

NETRC_LOGIN = "clipper"
"""The user name written in ``~/.netrc`` examples; the frontend checks only the password."""


class ClipperDeployContainerManager(ContainerManager):
    """A ``clipper_admin`` container manager for the frontend of an inventory.

    Args:
        inventory: the inventory file (its ``[clipper]`` host runs the frontend), or a
            ready :class:`~clipper_deploy.Clipper`.
    """

    def __init__(self, inventory: str | os.PathLike[str] | Clipper = "inventory.ini") -> None:
        self.clipper = inventory if isinstance(inventory, Clipper) else Clipper(inventory)
        config = self.clipper.frontend_config
        if config.tls_enabled:
            raise ClipperException(
                "clipper_admin 0.4.1 writes http:// into every URL, so it cannot talk to this "
                f"frontend: its ports speak TLS (clipper_tls of {self.clipper.frontend_host.name})"
            )
        self.host = config.bind
        self.cluster_name = f"clipper-deploy:{self.clipper.frontend_host.name}"
        self.cluster_identifier = self.cluster_name
        self.logger = ClusterAdapter(logger, {"cluster_name": self.cluster_identifier})

    # ------------------------------------------------------------------ addresses

    def get_admin_addr(self) -> str:
        return f"{self.host}:{self.clipper.frontend_config.admin_port}"

    def get_query_addr(self) -> str:
        return f"{self.host}:{self.clipper.frontend_config.query_port}"

    def get_metric_addr(self) -> str:
        """Our Prometheus text is at ``/metrics`` of the query port (admin token needed)."""
        return self.get_query_addr()

    # ------------------------------------------------------------------ the frontend

    def start_clipper(self, *args: Any, **kwargs: Any) -> None:
        """Start the inventory's frontend (idempotent). Clipper's image, cache and thread
        settings do not apply and are ignored."""
        self._call(self.clipper.start)
        self.check_credentials()

    def connect(self) -> None:
        """Check that the frontend answers and that ``~/.netrc`` holds its admin token."""
        self._call(self.clipper.admin.ping)
        self.check_credentials()

    def check_credentials(self) -> None:
        """Fail at once, naming the line to add, when ``~/.netrc`` has no entry for the
        frontend's address (clipper_admin would otherwise retry 401s for minutes)."""
        token = self._call(lambda: self.clipper.admin.token)
        entry = netrc_password(self.host)
        if entry == token:
            return
        problem = "has no entry" if entry is None else "holds another password"
        raise ClipperException(
            f"clipper_admin sends no token: ~/.netrc {problem} for {self.host}. Add the line "
            f"`machine {self.host} login {NETRC_LOGIN} password <admin token>` (the file must "
            "be mode 0600); the admin token is the one clipper-deploy cached "
            f"({self.token_source()})"
        )

    def token_source(self) -> str:
        access = self.clipper.frontend
        if access.host.is_local:
            return str(access.config.state_dir / "admin.token")
        return str(access.service.token_path)

    # ------------------------------------------------------------------ models

    def deploy_model(self, name: str, version: str, input_type: str, image: str, **kw: Any) -> None:
        raise ClipperException(
            f"cannot run Clipper image {image!r} for {name}:{version}: clipper-deploy deploys "
            "a Python function to the inventory's hosts. Use Clipper(inventory)."
            "deploy_predict_function(...) or `clipper-deploy deploy --playbook ...`; "
            "register_model works for replicas started that way"
        )

    def get_num_replicas(self, name: str, version: str) -> int:
        """Connected replicas of ``name:version``."""
        replicas = self._call(self.clipper.admin.get_all_containers)
        return sum(
            1
            for r in replicas
            if r["model_name"] == name
            and r["model_version"] == str(version)
            and r["state"] != "disconnected"
        )

    def set_num_replicas(self, name: str, version: str, *args: Any, **kw: Any) -> None:
        raise ClipperException(
            f"cannot resize {name}:{version} from clipper_admin: its replicas are the "
            "playbook's `replicas` placed on hosts; change them there and run "
            "`clipper-deploy rollout --playbook ...`"
        )

    def get_logs(self, logging_dir: str) -> list[str]:
        """Write the frontend's log and the model containers' recent logs to
        ``logging_dir``; return the files written."""
        out = Path(logging_dir)
        out.mkdir(parents=True, exist_ok=True)
        access = self.clipper.frontend
        frontend_log = out / "clipper-frontend.log"
        if access.host.is_local:
            source = access.config.log_path
            if source.exists():
                shutil.copyfile(source, frontend_log)
            else:
                frontend_log.write_text("")
        else:
            frontend_log.write_text(self._call(access.service.logs))
        written = [str(frontend_log)]
        for entry in self._call(self._model_logs):
            path = out / f"{entry['host']}-{entry['container']}.log"
            path.write_text("\n".join(entry["lines"]) + "\n")
            written.append(str(path))
        return written

    def _model_logs(self) -> list[dict[str, Any]]:
        inventory = self.clipper.inventory
        if MODEL_HOSTS_GROUP not in inventory.groups:
            return []
        hosts = [h for h in inventory.hosts(MODEL_HOSTS_GROUP) if not h.is_local]
        return observe.recent_logs(hosts, self.clipper.connect_timeout, None, 200)

    def stop_models(self, models: dict[str, list[str]]) -> None:
        """Remove the containers of each model's listed versions from every host."""
        for name, versions in models.items():
            self._call(lambda n=name, v=versions: self.clipper.stop_models(n, [str(x) for x in v]))

    def stop_all_model_containers(self) -> None:
        """Remove every model's containers from every host."""
        names = {m["model_name"] for m in self._call(self.clipper.get_all_models, True)}
        for name in sorted(names):
            self._call(lambda n=name: self.clipper.stop_models(n))

    def stop_all(self, graceful: bool = True) -> None:
        """Remove every model's containers, then stop the frontend (its state is kept)."""
        self.stop_all_model_containers()
        self._call(self.clipper.stop)

    # ------------------------------------------------------------------ plumbing

    def _call(self, func: Any, *args: Any) -> Any:
        """Run one of our calls; our errors become ``ClipperException`` with our message."""
        try:
            return func(*args)
        except ClipperDeployError as exc:
            raise ClipperException(str(exc)) from exc


def netrc_password(host: str) -> str | None:
    """The password ``~/.netrc`` gives ``host`` (what requests would send), or None."""
    try:
        entry = netrc.netrc().authenticators(host)
    except (FileNotFoundError, netrc.NetrcParseError):
        return None
    return entry[2] if entry else None


__all__ = ["ClipperDeployContainerManager", "netrc_password"]
