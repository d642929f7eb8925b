"""The frontend as a Docker service on a remote ``[clipper]`` host: start, stop, status, logs,
the admin token.

Starting has the shape of every fleet operation (facts -> plan -> apply), kept in this module
because the fleet's :class:`~.apply.Executor` is about one model's replicas:

1. **facts**: one SSH command (:func:`~clipper_deploy.hosts.docker_commands.frontend_facts`)
   reads the frontend's container, its wanted image's bundle label, whether the base image and
   the bundle directory are there, and the state directory's owner and mode;
2. **plan**: :func:`plan_start` (pure) compares them with the wanted container and yields only
   the steps needed: ``ship-base``, ``upload``, ``build``, ``start`` (no step: "already
   running");
3. **apply**: :meth:`FrontendService.apply` runs them in order, then waits until the admin
   port answers (any HTTP answer, from the client to the host's address) with the container
   running, and caches the admin token.

The image is ``clipper-deploy/frontend:<version>-<sha12>``, built on the host from the bundle
of :mod:`clipper_deploy.packaging.frontend_bundle`; a new clipper-deploy is a new image, so the
container is replaced and the state directory (bound at its own path) is kept.

The admin token is read over SSH only (``<state>/admin.token``, created by the frontend) and
cached by the client mode 0600 (:func:`~clipper_deploy.frontend.tokens.remote_token_path`).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clipper_deploy
from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.frontend.client import AdminClient, FrontendError
from clipper_deploy.frontend.config import FrontendConfig
from clipper_deploy.frontend.tls import client_context
from clipper_deploy.frontend.tokens import remote_token_path, write_private
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.hosts import frontend_files as ff
from clipper_deploy.hosts.base_image import HostImageError, ship_to_host
from clipper_deploy.hosts.connection import connect_error_message, connection_for
from clipper_deploy.hosts.inventory import Host
from clipper_deploy.hosts.upload import bundle_dir, upload_bundle
from clipper_deploy.images.configured import BaseImage
from clipper_deploy.orchestration import frontend_tls
from clipper_deploy.orchestration.steps import Plan, Step
from clipper_deploy.settings import BUILD_TIMEOUT, CONNECT_TIMEOUT

START_TIMEOUT = 60.0
"""Seconds the frontend's container has to answer on its admin port after ``docker run``."""
RUN_FORMAT = 1
"""Bumped when :func:`~clipper_deploy.hosts.docker_commands.run_frontend` changes, so running
containers are replaced by ones with the new settings."""


class FrontendServiceError(ClipperDeployError, RuntimeError):
    """The remote frontend could not be started, reached or read; the message says what, on
    which host, and what to do."""


@dataclass(frozen=True)
class FrontendWanted:
    """The container that should run: its spec, bundle and the base image it builds FROM."""

    spec: dc.FrontendContainerSpec
    base_image: str

    @property
    def image(self) -> str:
        return self.spec.image


def config_hash(args: list[str] | tuple[str, ...], tls_served: str = "") -> str:
    """Hash of the frontend's flags, the container settings' format and (with TLS) the
    served certificate's sha256, so a new certificate restarts the container."""
    doc: dict[str, Any] = {"format": RUN_FORMAT, "args": list(args)}
    if tls_served:
        doc["tls"] = tls_served
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:16]


def wanted_container(
    config: FrontendConfig, bundle_sha: str, base_image: str, tls_served: str = ""
) -> FrontendWanted:
    """The frontend's container for ``config`` (whose ``state_dir`` is the host's path);
    ``tls_served`` is the sha256 of the certificate it serves (empty: no TLS)."""
    args = tuple(config.argv())
    version = clipper_deploy.__version__
    spec = dc.FrontendContainerSpec(
        image=dc.frontend_image(version, bundle_sha),
        state_dir=str(config.state_dir),
        args=args,
        bundle=bundle_sha,
        tool_version=version,
        config_hash=config_hash(args, tls_served),
    )
    return FrontendWanted(spec, base_image)


def start_command(spec: dc.FrontendContainerSpec) -> str:
    """Prepare the state directory, stop (gracefully) and remove any container of the
    frontend's name, run it."""
    return (
        f"{ff.prepare_state_dir(spec.state_dir)} && "
        f"{{ {dc.stop_and_remove_frontend(spec.name)}; "
        f"{dc.shell(dc.run_frontend(spec))}; }}"
    )


def plan_start(host: str, facts: dc.FrontendHostReading, wanted: FrontendWanted) -> Plan:
    """The steps that make ``wanted`` run on ``host``, read off ``facts`` (pure)."""
    spec = wanted.spec
    running = facts.container
    if (
        running is not None
        and running.running
        and running.image == spec.image
        and running.config_hash == spec.config_hash
        and ff.state_dir_ready(facts.state_dir)
    ):
        return Plan("frontend.start", notes=(f"already running {spec.image} on {host}",))
    steps: list[Step] = []
    if facts.image_bundle != spec.bundle:
        if not facts.base_image_present:
            steps.append(Step("ship-base", host, wanted.base_image, "the base image is missing"))
        if not facts.bundle_present:
            steps.append(
                Step("upload", host, f"frontend bundle {spec.bundle[:12]}", "not on the host")
            )
        labels = {dc.BUNDLE: spec.bundle, dc.FRONTEND: "true"}
        context = bundle_dir(spec.bundle)
        steps.append(
            Step(
                "build",
                host,
                spec.image,
                "the image is missing",
                command=dc.build_unless_current(context, spec.image, labels),
            )
        )
    if running is None:
        reason = "no frontend container"
    elif running.image != spec.image:
        reason = f"replaces {running.image} (clipper-deploy {running.tool_version or '?'})"
    elif running.config_hash != spec.config_hash:
        reason = "the frontend's settings changed"
    elif not running.running:
        reason = f"the container is {running.state}"
    else:
        reason = "the state directory's owner or mode is wrong"
    steps.append(Step("start", host, spec.name, reason, command=start_command(spec)))
    return Plan("frontend.start", tuple(steps))


def http_answers(url: str, timeout: float = 1.0, context: Any = None) -> bool:
    """True when ``url`` gives any HTTP answer (a 401 counts: something serves there)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


class FrontendService:
    """The frontend's container on ``host``, configured by ``config`` (host paths)."""

    def __init__(
        self,
        host: Host,
        config: FrontendConfig,
        inventory_source: str | Path,
        base_image: Callable[[], BaseImage],
        say: Callable[[str], None] = print,
        connect_timeout: float = CONNECT_TIMEOUT,
        tls: frontend_tls.TLSSettings | None = None,
    ) -> None:
        self.host = host
        self.config = config
        self.tls = tls or frontend_tls.TLSSettings()
        self.inventory_source = inventory_source
        self.base_image = base_image
        self.say = say
        self.connect_timeout = connect_timeout
        self._connection: Any = None

    # ------------------------------------------------------------------ plumbing

    @property
    def state_dir(self) -> str:
        return str(self.config.state_dir)

    @property
    def admin_url(self) -> str:
        return f"{self.config.scheme}://{self.config.bind}:{self.config.admin_port}"

    @property
    def query_url(self) -> str:
        return f"{self.config.scheme}://{self.config.bind}:{self.config.query_port}"

    def client_context(self) -> Any:
        """The TLS context this machine's clients use (None without TLS)."""
        return client_context(self.config.tls_ca) if self.config.tls_enabled else None

    def connection(self) -> Any:
        if self._connection is None:
            self._connection = connection_for(self.host, connect_timeout=self.connect_timeout)
        return self._connection

    def run(
        self, command: str, what: str, timeout: float | None = None, stdin: str | None = None
    ) -> Any:
        """Run ``command`` on the host (``stdin`` on its input, if given); an unreachable host
        raises FrontendServiceError naming ``what``."""
        in_stream = io.StringIO(stdin) if stdin is not None else False
        try:
            result = self.connection().run(
                command, hide=True, warn=True, in_stream=in_stream, timeout=timeout
            )
        except Exception as exc:
            self._connection = None
            raise FrontendServiceError(
                f"frontend host unreachable: cannot {what}: "
                f"{connect_error_message(self.host, exc, known_hosts=self.host.known_hosts)}"
            ) from exc
        return result

    def check(self, result: Any, what: str) -> Any:
        if not result.ok:
            raise FrontendServiceError(
                f"could not {what} on {self.host.name}: "
                f"{dc.docker_failure(self.host.name, result.return_code, result.stderr)}"
            )
        return result

    # ------------------------------------------------------------------ facts, plan, apply

    def read_facts(self, wanted: FrontendWanted) -> dc.FrontendHostReading:
        command = dc.frontend_facts(
            wanted.image, wanted.base_image, bundle_dir(wanted.spec.bundle), self.state_dir
        )
        result = self.check(self.run(command, "read the frontend's state"), "read docker's state")
        return dc.parse_frontend_facts(result.stdout)

    def wanted(self, tls_served: str = "") -> tuple[FrontendWanted, Any]:
        """The wanted container and the frontend's bundle (built on the client if needed)."""
        from clipper_deploy.packaging.frontend_bundle import build_frontend_bundle

        base = self.base_image()
        bundle = build_frontend_bundle(base.name, say=self.say)
        return wanted_container(self.config, bundle.sha256, base.name, tls_served), bundle

    def fetch_ca(self) -> None:
        """Read a self-signed frontend's ``ca.pem`` over SSH and pin it (cached 0600)."""
        names = (frontend_tls.CA_CERT,)
        result = self.run(frontend_tls.read_remote_command(self.state_dir, names), "read ca.pem")
        found = frontend_tls.split_remote(result.stdout, names).get(frontend_tls.CA_CERT)
        if not found or not self.config.tls_ca:
            raise FrontendServiceError(
                f"the frontend's TLS CA ({self.state_dir}/tls/ca.pem) is not on "
                f"{self.host.name}: start the frontend (`invoke frontend.start`), which creates it"
            )
        write_private(Path(self.config.tls_ca), found.decode())

    def prepare_tls(self) -> str:
        """Put the certificate the frontend serves on the host (see :mod:`.frontend_tls`);
        return its sha256 ("" without TLS)."""
        if not self.tls.enabled:
            return ""

        def run(command: str, what: str, stdin: str | None = None) -> str:
            return self.check(self.run(command, what, stdin=stdin), what).stdout

        ca_cache = Path(self.config.tls_ca) if self.tls.mode == "self-signed" else None
        return frontend_tls.prepare_remote(
            run, self.tls, self.state_dir, self.config.bind, ca_cache
        )

    def served_tls_digest(self) -> str:
        """The sha256 of the certificate the frontend serves now ("" without TLS or when
        ``start`` would issue or send a new one): what ``--check`` compares, changing nothing."""
        if not self.tls.enabled:
            return ""

        def run(command: str, what: str) -> str:
            return self.check(self.run(command, what), what).stdout

        return frontend_tls.served_digest(run, self.tls, self.state_dir, self.config.bind)

    def plan(self) -> Plan:
        """What :meth:`start` would do (reads the host, changes nothing)."""
        wanted, _ = self.wanted(self.served_tls_digest())
        return plan_start(self.host.name, self.read_facts(wanted), wanted)

    def start(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """Make the frontend's container run the current clipper-deploy (idempotent); wait
        until it answers; cache the admin token. Returns the status."""
        started = time.monotonic()
        wanted, bundle = self.wanted(self.prepare_tls())
        plan = plan_start(self.host.name, self.read_facts(wanted), wanted)
        self.apply(plan, bundle)
        self.wait_until_answering(timeout)
        self.refresh_token()
        status = self.status()
        if plan.steps:
            status["message"] = (
                f"started {wanted.image} on {self.host.name} "
                f"in {time.monotonic() - started:.1f} s ({', '.join(s.kind for s in plan)})"
            )
        else:
            status["message"] = f"already running {wanted.image} on {self.host.name}"
        self.say(f"Frontend {status['message']}: queries at {self.query_url}")
        return status

    def apply(self, plan: Plan, bundle: Any) -> None:
        """Run ``plan``'s steps in order; the first failure raises, naming the step."""
        for step in plan:
            self.say(f"{step.host}: {step.kind} {step.subject} ({step.reason})")
            if step.kind == "ship-base":
                base = self.base_image()
                try:
                    ship_to_host(
                        self.connection(),
                        self.host.name,
                        base.name,
                        base.shipping_file,
                        base.spec,
                        say=self.say,
                    )
                except HostImageError as exc:
                    raise FrontendServiceError(str(exc)) from exc
            elif step.kind == "upload":
                report = upload_bundle(self.connection(), bundle.path, bundle.files, bundle.sha256)
                self.say(
                    f"Copied the frontend's bundle to {self.host.name} "
                    f"({report.uploaded} file(s), {report.uploaded_bytes / 2**20:.1f} MiB)"
                )
            else:
                what = f"{step.kind} {step.subject}"
                timeout = BUILD_TIMEOUT if step.kind == "build" else 120.0
                self.check(self.run(step.command, what, timeout=timeout), what)

    def container(self) -> dc.FrontendContainer | None:
        """The frontend's container as ``docker inspect`` sees it (None: there is none)."""
        result = self.run(
            dc.shell(dc.inspect_frontend()) + " 2>/dev/null || true", "inspect the frontend"
        )
        return dc.parse_frontend_inspect(result.stdout)

    def wait_until_answering(self, timeout: float = START_TIMEOUT) -> None:
        """Until the admin port answers and the container runs; a crash fails at once."""
        deadline = time.monotonic() + timeout
        ping = f"{self.admin_url}/admin/ping"
        next_inspect = 0.0
        while time.monotonic() < deadline:
            if http_answers(ping, context=self.client_context()):
                record = self.container()
                if record is not None and record.running:
                    return
            if time.monotonic() >= next_inspect:
                record = self.container()
                if record is None or record.state in ("exited", "dead"):
                    raise FrontendServiceError(
                        f"the frontend's container on {self.host.name} is "
                        f"{record.state if record else 'gone'}; its output:\n{self.logs(20)}"
                    )
                next_inspect = time.monotonic() + 1.0
            time.sleep(0.1)
        raise FrontendServiceError(
            f"frontend host unreachable: the frontend on {self.host.name} does not answer at "
            f"{ping} within {timeout:.0f} s; check that the client can reach "
            f"{self.config.bind}:{self.config.admin_port} (firewall) and read "
            f"`invoke frontend.logs`:\n{self.logs(20)}"
        )

    # ------------------------------------------------------------------ stop, status, logs

    def stop(self) -> dict[str, Any]:
        """Stop the frontend's container gracefully (``docker stop``: the queries in progress
        are answered), then remove it; its state (apps, models, token, replica secrets) stays
        on the host. Model containers keep running and reconnect when it is back."""
        record = self.container()
        if record is None:
            status = self.status()
            status["message"] = f"the frontend was not running on {self.host.name}"
            return status
        stop = f"{dc.shell(dc.stop_frontend())} >/dev/null && {dc.shell(dc.remove_frontend())}"
        self.check(self.run(stop, "stop the frontend"), "stop it")
        status = self.status()
        status["message"] = f"stopped and removed {dc.FRONTEND_CONTAINER} on {self.host.name}"
        self.say(f"Frontend {status['message']} (state kept in {self.state_dir})")
        return status

    def status(self) -> dict[str, Any]:
        """Where the frontend runs, its clipper-deploy version, state and uptime."""
        record = self.container()
        doc: dict[str, Any] = {
            "running": bool(record and record.running),
            "where": f"container {dc.FRONTEND_CONTAINER} on {self.host.name}",
            "host": self.host.name,
            "state_dir": self.state_dir,
            "query_url": self.query_url,
            "admin_url": self.admin_url,
            "replica_address": f"{self.config.bind}:{self.config.replica_port}",
            "token_path": str(self.token_path),
            "image": record.image if record else None,
            "version": record.tool_version if record else None,
            "container_state": record.state if record else "absent",
            "started_at": record.started_at if record else None,
            "uptime_s": None,
        }
        if record and record.running:
            try:
                admin = AdminClient(self.admin_url, "", timeout=2.0, cafile=self.config.tls_ca)
                doc["uptime_s"] = admin.ping()["uptime_s"]
            except FrontendError as exc:
                doc["message"] = f"the container runs but does not answer: {exc}"
        doc.setdefault(
            "message",
            f"runs as {doc['where']}" if doc["running"] else f"not running on {self.host.name}",
        )
        return doc

    def logs(self, lines: int = 50) -> str:
        """The container's output (crashes outside the log) and the frontend's own log."""
        out = self.run(dc.shell(dc.logs(dc.FRONTEND_CONTAINER, lines)) + " 2>&1", "read logs")
        own = self.run(ff.log_tail(self.state_dir, lines) + " 2>&1", "read frontend.log")
        return (
            f"--- docker logs {dc.FRONTEND_CONTAINER} on {self.host.name}\n{out.stdout}"
            f"--- {self.state_dir}/frontend.log\n{own.stdout}"
        )

    # ------------------------------------------------------------------ the admin token

    @property
    def token_path(self) -> Path:
        return remote_token_path(self.inventory_source, self.config.bind, self.config.admin_port)

    def cached_token(self) -> str | None:
        try:
            return self.token_path.read_text().strip() or None
        except FileNotFoundError:
            return None

    def refresh_token(self) -> str:
        """Read ``<state>/admin.token`` over SSH and cache it (0600); returns it."""
        result = self.run(ff.read_token(self.state_dir), "read the admin token")
        token = result.stdout.strip() if result.ok else ""
        if not token:
            raise FrontendServiceError(
                f"admin token missing: {self.state_dir}/admin.token on {self.host.name} cannot "
                f"be read ({result.stderr.strip()[-300:] or 'empty'}); the frontend creates it "
                "at its first start: run `invoke frontend.start` (the SSH user must be root "
                "or in the docker group)"
            )
        write_private(self.token_path, token + "\n")
        return token

    def token(self) -> str:
        """The cached admin token, fetched over SSH when the cache is empty."""
        return self.cached_token() or self.refresh_token()

    def rotate_token(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """A new admin token: removed on the host, the frontend restarted (it creates a new
        one), the client's cache refreshed. Other clients re-read it over SSH on their next
        401."""
        if self.container() is None:
            raise FrontendServiceError(
                f"the frontend does not run on {self.host.name}: start it first "
                "(`invoke frontend.start`)"
            )
        self.check(self.run(ff.rotate_token(self.state_dir), "rotate the token"), "rotate it")
        self.wait_until_answering(timeout)
        self.refresh_token()
        status = self.status()
        status["message"] = f"rotated the admin token on {self.host.name}"
        self.say(f"Frontend: {status['message']}; cached in {self.token_path}")
        return status


class RefreshingAdminClient(AdminClient):
    """An :class:`AdminClient` that, on a 401, re-reads the token over SSH once and retries
    (the token may have been rotated); with ``clipper_tls=self-signed``, a failed TLS
    verification re-reads the CA's ``ca.pem`` over SSH once and retries (the CA may have been
    made anew on the host)."""

    def __init__(
        self,
        base_url: str,
        service: FrontendService,
        timeout: float = 10.0,
        cafile: str | None = None,
    ) -> None:
        super().__init__(base_url, service.token(), timeout, cafile)
        self.service = service

    def _request(self, endpoint: str, path: str, body: Any | None, method: str = "POST") -> Any:
        try:
            return self._pinned_request(endpoint, path, body, method)
        except FrontendError as exc:
            if exc.status != 401:
                raise
            fresh = self.service.refresh_token()
            if fresh == self.token:
                raise FrontendError(
                    endpoint,
                    401,
                    "admin token rotated or wrong",
                    f"{self.service.token_path} holds the token read from "
                    f"{self.service.host.name} and the frontend refuses it; rotate it "
                    "(`invoke frontend.rotate-token`) or restart the frontend",
                ) from exc
            self.token = fresh
            return self._pinned_request(endpoint, path, body, method)

    def _pinned_request(
        self, endpoint: str, path: str, body: Any | None, method: str = "POST"
    ) -> Any:
        try:
            return super()._request(endpoint, path, body, method)
        except FrontendError as exc:
            if exc.error != "TLS failed" or self.service.tls.mode != "self-signed":
                raise
            before = Path(self.cafile).read_bytes() if self.cafile else b""
            self.service.fetch_ca()
            if not self.cafile or Path(self.cafile).read_bytes() == before:
                raise  # the pinned CA is the host's: the failure is not a stale pin
            self.context = client_context(self.cafile)
            return super()._request(endpoint, path, body, method)
