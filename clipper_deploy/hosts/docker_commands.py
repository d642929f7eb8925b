"""Docker command lines for model containers: argv builders only, nothing runs here.

Every container and image clipper-deploy makes carries labels, so the truth about what runs
where can always be read back from the hosts themselves::

    org.clipper-deploy.managed=true
    org.clipper-deploy.model=<name>     org.clipper-deploy.version=<version>
    org.clipper-deploy.bundle=<sha256>  org.clipper-deploy.replica=<replica id>

Names: image ``clipper-deploy/<model>:<version>``; container ``cd-<model>-<version>-<n>``.

A version's image holds only its environment and is labelled with its hash
(:data:`ENVIRONMENT`): a host that has an image of that environment tags it for the next
version instead of building (:func:`tag`). The version's model files (the function's pickle
and ``model.json``) stay in the bundle directory on the host and are mounted read-only at
``/model`` (:func:`run_replica`).
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from clipper_deploy import settings

LABEL = "org.clipper-deploy"
MANAGED = f"{LABEL}.managed"
MODEL = f"{LABEL}.model"
VERSION = f"{LABEL}.version"
BUNDLE = f"{LABEL}.bundle"
REPLICA = f"{LABEL}.replica"
INPUT_TYPE = f"{LABEL}.input-type"
ENVIRONMENT = f"{LABEL}.environment"
"""On a model image: the hash of the build context it was made from (the bundle without its
model files); every version of a function in one environment can run on that image."""
MODEL_MOUNT = "/model"
"""Where a replica's model files are mounted (the runtime's ``CLIPPER_MODEL_PATH``)."""

CONTAINER_USER = settings.CONTAINER_USER
DEFAULT_CPUS = settings.DEFAULT_CPUS
DEFAULT_MEMORY = settings.DEFAULT_MEMORY
PIDS_LIMIT = settings.PIDS_LIMIT
TMP_SIZE = settings.TMP_SIZE
DEFAULT_NETWORK = settings.DEFAULT_NETWORK
"""Model containers run as this non-root user (made by the bundle's Dockerfile)."""

PS_FORMAT = (
    "{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Status}}\t"
    f'{{{{.Label "{MODEL}"}}}}\t{{{{.Label "{VERSION}"}}}}\t'
    f'{{{{.Label "{BUNDLE}"}}}}\t{{{{.Label "{REPLICA}"}}}}'
)
"""``docker ps --format`` giving one tab-separated line per container (see :func:`parse_ps`)."""


def image_name(model: str, version: str) -> str:
    return f"clipper-deploy/{model}:{version}"


def container_name(model: str, version: str, index: int) -> str:
    return f"cd-{model}-{version}-{index}"


def replica_id(host: str, container: str) -> str:
    """How the frontend knows a replica: the host it runs on and its container name."""
    return f"{host}/{container}"


def keys_dir(model: str, version: str) -> str:
    """The host directory holding the keys of ``model:version``'s replicas."""
    return f"{settings.KEYS_DIR}/{model}/{version}"


def image_exists(image: str) -> list[str]:
    return ["docker", "image", "inspect", "--format", "{{.Id}}", image]


def tag(source: str, image: str) -> list[str]:
    """Name the existing image ``source`` (an ID) ``image`` too: no build, no new layer."""
    return ["docker", "tag", source, image]


def image_label(image: str, label: str) -> list[str]:
    """The value of ``label`` on ``image``."""
    return [
        "docker",
        "image",
        "inspect",
        "--format",
        f'{{{{index .Config.Labels "{label}"}}}}',
        image,
    ]


def images_of_environment(environment: str) -> list[str]:
    """IDs of the managed images built from ``environment`` (see :data:`ENVIRONMENT`)."""
    return [
        "docker",
        "images",
        "--quiet",
        "--no-trunc",
        "--filter",
        f"label={MANAGED}=true",
        "--filter",
        f"label={ENVIRONMENT}={environment}",
    ]


def build(context_dir: str, image: str, labels: Mapping[str, str]) -> list[str]:
    """Build ``context_dir`` as ``image``; ``--label`` pins bundle and model on the image.
    ``--force-rm``: a failed step leaves no stopped intermediate container behind. Not
    ``--quiet``: the steps stream back as the build goes (progress views show them)."""
    argv = ["docker", "build", "--force-rm", "--tag", image]
    for key, value in labels.items():
        argv += ["--label", f"{key}={value}"]
    return [*argv, context_dir]


@dataclass(frozen=True)
class ReplicaSpec:
    """One model container to start on a host.

    ``frontend`` is ``host:port`` of the frontend's replica port as seen from the host;
    ``model_dir`` is the host directory of the version's model files (the bundle's ``model/``),
    mounted read-only at :data:`MODEL_MOUNT` ("" for an image that holds them itself).
    """

    model: str
    version: str
    bundle: str
    index: int
    host: str
    frontend: str
    model_dir: str = ""
    input_type: str = "doubles"
    cpus: float | None = None
    memory: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    restart: str = "unless-stopped"
    network: str = DEFAULT_NETWORK

    @property
    def name(self) -> str:
        return container_name(self.model, self.version, self.index)

    @property
    def replica_id(self) -> str:
        return replica_id(self.host, self.name)

    @property
    def key_file(self) -> str:
        """The host file holding this replica's key (bind-mounted read-only)."""
        return f"{keys_dir(self.model, self.version)}/{self.name}.key"

    @property
    def env_file(self) -> str | None:
        """The host file holding the user's environment (``--env-file``), if there is one."""
        return f"{settings.ENV_DIR}/{self.name}.env" if self.env else None

    @property
    def labels(self) -> dict[str, str]:
        return {
            MANAGED: "true",
            MODEL: self.model,
            VERSION: self.version,
            BUNDLE: self.bundle,
            REPLICA: self.replica_id,
        }


LOCKED_DOWN = (
    "--user",
    CONTAINER_USER,
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--read-only",
    "--tmpfs",
    f"/tmp:rw,nosuid,nodev,size={TMP_SIZE}",
)
"""``docker run`` options of every container clipper-deploy starts (replicas and the
frontend): non-root, no capabilities, no privilege gain, a read-only root with a small tmpfs
``/tmp``."""

BOUNDED_LOGS = ("--log-opt", "max-size=10m", "--log-opt", "max-file=3")
"""The engine keeps at most 30 MiB of a container's output."""


def run_replica(spec: ReplicaSpec) -> list[str]:
    """``docker run`` for one replica, locked down by default: no capabilities, no privilege
    gain, a read-only root file system with a small tmpfs ``/tmp``, bounded processes, CPU and
    memory limits (the playbook's, else :data:`DEFAULT_CPUS` and :data:`DEFAULT_MEMORY`), a
    non-root user, bounded logs, labels; the network is the spec's (host by default: it dials
    the frontend, no inbound port). The version's model files are bound read-only at
    :data:`MODEL_MOUNT` (``--mount``, so a missing directory is an error, never an empty
    directory made by the engine), and the model's name, version and input type are set here,
    not in the image."""
    frontend_ip, _, frontend_port = spec.frontend.rpartition(":")
    argv = [
        "docker",
        "run",
        "--detach",
        "--name",
        spec.name,
        "--network",
        spec.network,
        "--restart",
        spec.restart,
        *LOCKED_DOWN,
        "--pids-limit",
        str(PIDS_LIMIT),
        *BOUNDED_LOGS,
    ]
    for key, value in spec.labels.items():
        argv += ["--label", f"{key}={value}"]
    argv += ["--cpus", f"{spec.cpus if spec.cpus is not None else DEFAULT_CPUS:g}"]
    argv += ["--memory", spec.memory if spec.memory is not None else DEFAULT_MEMORY]
    # The replica's key: a file, never the command line, the environment or an image layer.
    argv += [
        "--mount",
        f"type=bind,source={spec.key_file},target={settings.REPLICA_KEY_PATH},readonly",
    ]
    if spec.model_dir:
        argv += ["--mount", model_mount(spec.model_dir)]
    if spec.env_file:  # the user's values (secrets too) never appear on a command line
        argv += ["--env-file", spec.env_file]
    env = {
        "CLIPPER_IP": frontend_ip,
        "CLIPPER_PORT": frontend_port,
        "CLIPPER_REPLICA_ID": spec.replica_id,
        "CLIPPER_MODEL_NAME": spec.model,
        "CLIPPER_MODEL_VERSION": spec.version,
        "CLIPPER_INPUT_TYPE": spec.input_type,
    }
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    return [*argv, image_name(spec.model, spec.version)]


def model_mount(model_dir: str) -> str:
    """``--mount`` value binding ``model_dir`` read-only at :data:`MODEL_MOUNT`."""
    if "," in model_dir or "=" in model_dir:
        raise ValueError(f"model directory {model_dir!r} cannot go in a --mount option")
    return f"type=bind,source={model_dir},target={MODEL_MOUNT},readonly"


IMAGE_CURRENT = "clipper-deploy: image is current"
ALREADY_RUNNING = "clipper-deploy: already running"


def build_unless_current(context_dir: str, image: str, labels: Mapping[str, str]) -> str:
    """One shell command: build ``image`` unless it already carries ``labels``' bundle hash
    (then print :data:`IMAGE_CURRENT`). Saves a round trip on every deploy."""
    check = shlex.join(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{BUNDLE}"}}}}',
            image,
        ]
    )
    wanted = shlex.quote(labels[BUNDLE])
    return (
        f'if [ "$({check} 2>/dev/null)" = {wanted} ]; then echo {shlex.quote(IMAGE_CURRENT)}; '
        f"else {shell(build(context_dir, image, labels))}; fi"
    )


def start_unless_running(spec: ReplicaSpec) -> str:
    """One shell command: leave the replica alone if it already runs this bundle (print
    :data:`ALREADY_RUNNING`), else replace any container of that name with a fresh one."""
    check = shlex.join(
        [
            "docker",
            "inspect",
            "--format",
            f'{{{{.State.Running}}}} {{{{index .Config.Labels "{BUNDLE}"}}}}',
            spec.name,
        ]
    )
    wanted = shlex.quote(f"true {spec.bundle}")
    remove = shell(remove_containers([spec.name]))
    return (
        f'if [ "$({check} 2>/dev/null)" = {wanted} ]; then '
        f"echo {shlex.quote(ALREADY_RUNNING)}; "
        f"else {_write_files(spec)}{remove} >/dev/null 2>&1; {shell(run_replica(spec))}; fi"
    )


def start_new(spec: ReplicaSpec) -> str:
    """One shell command: start the replica whose name the host's facts did not list (no
    look for a running one, no removal: two docker calls fewer than
    :func:`start_unless_running`). If a container took the name since, ``docker run``
    refuses with a name conflict and changes nothing."""
    return f"{_write_files(spec)}{shell(run_replica(spec))}"


def _write_files(spec: ReplicaSpec) -> str:
    """The replica's key file, then its environment file, from standard input."""
    write_key = f"{receive_key_file(spec.key_file)} && "
    write_env = f"{receive_env_file(spec.env_file)} && " if spec.env_file else ""
    return write_key + write_env


def receive_key_file(path: str) -> str:
    """Shell: write the first line of standard input to ``path``, mode 0600, owned by the
    container's user (its directories 0700), created so and then renamed into place. Only
    that line is read (``read`` takes one byte at a time), so the rest of the input is left
    for :func:`receive_env_file`. The key passes through a shell variable and ``printf``, a
    builtin: it never appears on a command line."""
    directory, tmp = path.rsplit("/", 1)[0], f"{path}.part"
    q = shlex.quote
    return (
        f"(umask 077 && mkdir -p {q(directory)} && IFS= read -r key && "
        f"printf '%s\\n' \"$key\" > {q(tmp)} && chown {CONTAINER_USER} {q(tmp)} && "
        f"mv {q(tmp)} {q(path)})"
    )


def remove_keys(model: str, version: str) -> str:
    """Shell: remove the keys of ``model:version``'s replicas from the host."""
    return f"rm -rf {shlex.quote(keys_dir(model, version))}"


def receive_env_file(path: str) -> str:
    """Shell: write standard input to ``path`` with mode 0600 (created so, then renamed)."""
    directory, tmp = path.rsplit("/", 1)[0], f"{path}.part"
    return (
        f"(umask 077 && mkdir -p {shlex.quote(directory)} && cat > {shlex.quote(tmp)} "
        f"&& mv {shlex.quote(tmp)} {shlex.quote(path)})"
    )


def env_file_text(env: Mapping[str, str]) -> str:
    """``KEY=value`` lines as ``docker --env-file`` reads them (values on one line)."""
    for key, value in env.items():
        if "\n" in key or "\n" in value or "=" in key or not key:
            raise ValueError(f"environment variable {key!r} cannot go in an env file")
    return "".join(f"{key}={value}\n" for key, value in env.items())


def ps(model: str | None = None, version: str | None = None) -> list[str]:
    """Every managed container (running or not), optionally of one model/version."""
    argv = ["docker", "ps", "--all", "--no-trunc", "--filter", f"label={MANAGED}=true"]
    if model is not None:
        argv += ["--filter", f"label={MODEL}={model}"]
    if version is not None:
        argv += ["--filter", f"label={VERSION}={version}"]
    return [*argv, "--format", PS_FORMAT]


@dataclass(frozen=True)
class ContainerInfo:
    """One line of :func:`ps` output."""

    id: str
    name: str
    state: str
    status: str
    model: str
    version: str
    bundle: str
    replica: str


def parse_ps(output: str) -> list[ContainerInfo]:
    """Parse :func:`ps` output; blank lines are skipped."""
    containers = []
    for line in output.splitlines():
        if line.strip():
            fields = (line.split("\t") + [""] * 8)[:8]
            containers.append(ContainerInfo(*fields))
    return containers


def inspect_state(container: str) -> list[str]:
    """State, exit code, restart count and error of a container, tab-separated."""
    return [
        "docker",
        "inspect",
        "--format",
        "{{.State.Status}}\t{{.State.ExitCode}}\t{{.RestartCount}}\t{{.State.Error}}",
        container,
    ]


def replica_probe(container: str) -> str:
    """One shell command: :func:`inspect_state`'s line, then the container's latest log line
    (what a progress view shows while the replica loads)."""
    tail = shell(logs(container, 1, timestamps=False))
    return f"{shell(inspect_state(container))} && {{ {tail} 2>&1 | tail -n 1; }}"


def logs(
    container: str, tail: int | None = 50, follow: bool = False, timestamps: bool = True
) -> list[str]:
    """The container's recent log lines (``tail``), optionally following new ones."""
    argv = ["docker", "logs", "--timestamps"] if timestamps else ["docker", "logs"]
    if tail is not None:
        argv += ["--tail", str(tail)]
    if follow:
        argv.append("--follow")
    return [*argv, container]


def remove_containers(names: Sequence[str]) -> list[str]:
    return ["docker", "rm", "--force", *names]


def remove_image(image: str) -> list[str]:
    return ["docker", "image", "rm", "--force", image]


def start_containers(names: Sequence[str]) -> list[str]:
    """Start stopped (retained) containers again, with their image and settings."""
    return ["docker", "start", *names]


def stop_containers(names: Sequence[str], timeout: int = 10) -> list[str]:
    """Stop containers, keeping them (and their images) for a rollback."""
    return ["docker", "stop", "--time", str(timeout), *names]


def pull(image: str) -> list[str]:
    return ["docker", "pull", "--quiet", image]


def save(image: str) -> list[str]:
    """``image`` as a tar on standard output (a relay's source of the base image)."""
    return ["docker", "save", image]


def load_bundle_image(bundle_dir: str, files: Sequence[str], image_id: str, image: str) -> str:
    """One shell command: stream the bundle's image archive (``files``, relative to
    ``bundle_dir``: manifest, config, layers) into ``docker load``, which skips the layers the
    host has (the base image's), then name the image ``image`` by its ID. No build."""
    archive = shlex.join(["tar", "-C", bundle_dir, "--hard-dereference", "-cf", "-", *files])
    load = shell(["docker", "load", "--quiet"])
    return f"{archive} | {load} >/dev/null && {shell(tag(image_id, image))}"


def import_keeping(tag: str, message: str, keep: str) -> str:
    """Shell: ``docker import`` standard input (the client's compressed base tarball) as
    ``tag`` while keeping a copy of it at ``keep`` (renamed into place only when it was all
    written), so this host can pass the same 62 MiB on to others (:func:`base_relay_source`)
    instead of ``docker save``'s 168 MiB. A copy that could not be written is dropped; the
    import stands."""
    q = shlex.quote
    part = f"{keep}.part"
    imported = (
        f"{{ tee {q(part)} || rm -f {q(part)}; }} | {shell(import_image(tag, message))} "
        f"&& {{ [ -f {q(part)} ] && mv -f {q(part)} {q(keep)} || true; }}"
    )
    return (
        f"mkdir -p {q(posixpath.dirname(keep))} && {{ {imported}; }} "
        f"|| {{ rm -f {q(part)}; exit 1; }}"
    )


PACKED = "packed"
SAVED = "saved"


def base_relay_source(tag: str, keep: str) -> str:
    """Shell, on a holder: the base image for a relay, after a first line saying what
    follows: :data:`PACKED` and the compressed tarball it kept (:func:`import_keeping`), else
    :data:`SAVED` and ``docker save`` (a holder that got the image another way)."""
    q = shlex.quote
    return (
        f"if [ -f {q(keep)} ]; then echo {PACKED}; cat {q(keep)}; "
        f"else echo {SAVED}; {shell(save(tag))}; fi"
    )


def base_relay_receive(tag: str, message: str, keep: str) -> str:
    """Shell, on a receiver: what :func:`base_relay_source` sends, imported (and kept, to pass
    on in the next round) or loaded, then checked to be there."""
    return (
        "IFS= read -r kind && "
        f'if [ "$kind" = {PACKED} ]; then {{ {import_keeping(tag, message, keep)}; }} >/dev/null; '
        f"else {shell(['docker', 'load', '--quiet'])} >/dev/null; fi && "
        f"{shell(image_exists(tag))}"
    )


def import_image(tag: str, message: str, source: str = "-") -> list[str]:
    """``docker import`` a root file system tarball (``-`` = standard input) as ``tag``."""
    return ["docker", "import", "--message", message, source, tag]


def image_bundle(image: str) -> list[str]:
    """The bundle hash an image was built from (its :data:`BUNDLE` label)."""
    return [
        "docker",
        "image",
        "inspect",
        "--format",
        f'{{{{index .Config.Labels "{BUNDLE}"}}}}',
        image,
    ]


FACTS_IMAGE = "::image"
FACTS_BASE = "::base"
FACTS_BUNDLE = "::bundle"
FACTS_BUNDLES = "::bundles"
FACTS_ENVIRONMENT = "::environment"
FACTS_BLOBS = "::blobs"


def host_facts(
    model: str | None,
    image: str | None,
    base_image: str | None,
    bundle_dir: str | None,
    bundles_root: str | None = None,
    environment: str | None = None,
    blobs: Sequence[str] = (),
) -> str:
    """One shell command reading what an operation needs to know of a host, in sections:
    the model's managed containers (:func:`ps`; a failing ``docker`` ends the command with its
    status and stderr), then the :data:`ENVIRONMENT` label of ``image``, whether
    ``base_image`` is there, whether ``bundle_dir`` exists and which of ``blobs`` (hashes, in
    the blobs directory next to the bundles directory) the host holds, (with
    ``bundles_root``, the hosts' ``bundles/``) which of the bundles the listed containers were
    started from are still there (their model files are mounted from them), and (with
    ``environment``) the ID of an image of that environment. The image queries run while the
    containers are listed. Parse the output with :func:`parse_host_facts`."""
    queries: list[tuple[str, str, str]] = []  # (section, file, command): run at once
    if image is not None:
        label = shell(image_label(image, ENVIRONMENT))
        queries.append((FACTS_IMAGE, "image", f"{label} 2>/dev/null"))
    if base_image is not None:
        probe = shell(image_exists(base_image))
        queries.append((FACTS_BASE, "base", f"{probe} >/dev/null 2>&1 && echo present"))
    if environment:
        found = shell(images_of_environment(environment))
        queries.append((FACTS_ENVIRONMENT, "environment", f"{found} 2>/dev/null | head -n 1"))
    lines: list[str] = []
    if queries:
        # Each docker call is a client start and an API round trip: the image queries run
        # beside the container listing, into files of a private directory, printed after it.
        lines += ["facts=$(mktemp -d) || exit 1", "trap 'rm -rf \"$facts\"' EXIT"]
        lines += [f'{{ {command}; }} > "$facts/{name}" &' for _, name, command in queries]
    if bundles_root is None:
        lines.append(shell(ps(model)) + " || exit $?")
    else:
        root = shlex.quote(bundles_root)
        lines += [
            f"ps_out=$({shell(ps(model))}) || exit $?",
            'printf "%s\\n" "$ps_out"',
            f"echo {FACTS_BUNDLES}",
            'for b in $(printf "%s\\n" "$ps_out" | cut -f7 | sort -u); do '
            f'[ -d {root}/"$b" ] && echo "$b"; done; true',
        ]
    if queries:
        lines.append("wait")
    printed = {section: f'echo {section}; cat "$facts/{name}"' for section, name, _ in queries}
    if image is not None:
        lines.append(printed[FACTS_IMAGE])
    if base_image is not None:
        lines.append(printed[FACTS_BASE])
    if bundle_dir is not None:
        lines.append(
            f"echo {FACTS_BUNDLE}; [ -d {shlex.quote(bundle_dir)} ] && echo present || true"
        )
        if blobs:
            store = shlex.quote(
                posixpath.join(posixpath.dirname(posixpath.dirname(bundle_dir)), "blobs")
            )
            listed = " ".join(shlex.quote(b) for b in blobs)
            lines.append(
                f"echo {FACTS_BLOBS}; for h in {listed}; do "
                f'[ -e {store}/"$h" ] && echo "$h"; done; true'
            )
    if environment:
        lines.append(printed[FACTS_ENVIRONMENT])
    return "\n".join(lines)


@dataclass(frozen=True)
class HostReading:
    """:func:`host_facts` output, parsed: containers, ``image``'s environment hash ("" when
    the image is missing or has none), whether the base image and the bundle directory are
    there, the bundles of the containers still there, an image ID of the environment."""

    containers: tuple[ContainerInfo, ...]
    image_environment: str = ""
    base_image_present: bool = False
    bundle_present: bool = False
    bundles: frozenset[str] | None = None
    """Bundles of the listed containers still on the host (None: not read)."""
    environment_image: str = ""
    """ID of an image built from the requested environment ("" when there is none)."""
    blobs: frozenset[str] = frozenset()
    """Of the blobs asked about, those in the host's blobs directory."""


def parse_host_facts(output: str) -> HostReading:
    """Split :func:`host_facts` output into its sections."""
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in output.splitlines():
        if line.strip() in (
            FACTS_IMAGE,
            FACTS_BASE,
            FACTS_BUNDLE,
            FACTS_BUNDLES,
            FACTS_ENVIRONMENT,
            FACTS_BLOBS,
        ):
            current = line.strip()
            sections[current] = []
        else:
            sections[current].append(line)
    return HostReading(
        containers=tuple(parse_ps("\n".join(sections[""]))),
        image_environment="".join(sections.get(FACTS_IMAGE, [])).strip(),
        base_image_present="present" in sections.get(FACTS_BASE, []),
        bundle_present="present" in sections.get(FACTS_BUNDLE, []),
        environment_image="".join(sections.get(FACTS_ENVIRONMENT, [])).strip(),
        bundles=frozenset(b.strip() for b in sections[FACTS_BUNDLES] if b.strip())
        if FACTS_BUNDLES in sections
        else None,
        blobs=frozenset(line.strip() for line in sections.get(FACTS_BLOBS, []) if line.strip()),
    )


def docker_failure(host: str, return_code: int, stderr: str) -> str:
    """Why ``docker`` failed on ``host``, and what to do, from its status and stderr."""
    if return_code == 127:
        return f"docker is not installed on {host} (install docker.io there)"
    if "Cannot connect to the Docker daemon" in stderr:
        return f"the Docker engine on {host} is not running (start it: systemctl start docker)"
    return f"docker failed on {host} (exit status {return_code}): {stderr.strip()[-500:]}"


def shell(argv: Sequence[str]) -> str:
    """One argv as a shell command line (Fabric runs strings through the login shell)."""
    return shlex.join(argv)


# ------------------------------------------------------------------ the frontend's container

FRONTEND_CONTAINER = "clipper-frontend"
"""The frontend's container on a remote ``[clipper]`` host (one per host)."""
FRONTEND_IMAGE = "clipper-deploy/frontend"
FRONTEND = f"{LABEL}.frontend"
TOOL_VERSION = f"{LABEL}.tool-version"
FRONTEND_CONFIG = f"{LABEL}.frontend-config"
"""Hash of the frontend's flags and container settings: a changed inventory replaces it."""
FRONTEND_STOP_TIMEOUT = 10
"""Seconds ``docker stop``/``restart`` give the frontend to close its connections."""


def frontend_image(tool_version: str, bundle_sha: str) -> str:
    """``clipper-deploy/frontend:<clipper-deploy version>-<bundle sha12>``."""
    return f"{FRONTEND_IMAGE}:{tool_version}-{bundle_sha[:12]}"


@dataclass(frozen=True)
class FrontendContainerSpec:
    """The frontend's container: its image, the host directory holding its state (mounted at
    the same path), the frontend's flags (``FrontendConfig.argv()``) and the labels."""

    image: str
    state_dir: str
    args: tuple[str, ...]
    bundle: str
    tool_version: str
    config_hash: str
    name: str = FRONTEND_CONTAINER

    @property
    def labels(self) -> dict[str, str]:
        return {
            FRONTEND: "true",
            BUNDLE: self.bundle,
            TOOL_VERSION: self.tool_version,
            FRONTEND_CONFIG: self.config_hash,
        }


def run_frontend(spec: FrontendContainerSpec) -> list[str]:
    """``docker run`` of the frontend: restarted by the engine unless stopped, the host's
    network (it listens on the host's address, replicas dial it), non-root, no capabilities,
    no privilege gain, a read-only root file system with a small tmpfs ``/tmp``, the state
    directory bound at its own path, bounded logs."""
    argv = [
        "docker",
        "run",
        "--detach",
        "--name",
        spec.name,
        "--restart",
        "unless-stopped",
        "--network",
        "host",
        *LOCKED_DOWN,
        "--volume",
        f"{spec.state_dir}:{spec.state_dir}",
        "--stop-timeout",
        str(FRONTEND_STOP_TIMEOUT),
        *BOUNDED_LOGS,
    ]
    for key, value in spec.labels.items():
        argv += ["--label", f"{key}={value}"]
    return [*argv, spec.image, *spec.args]


FRONTEND_INSPECT_FORMAT = (
    "{{.State.Status}}\t{{.State.StartedAt}}\t{{.Config.Image}}\t"
    f'{{{{index .Config.Labels "{BUNDLE}"}}}}\t{{{{index .Config.Labels "{TOOL_VERSION}"}}}}\t'
    f'{{{{index .Config.Labels "{FRONTEND_CONFIG}"}}}}'
)


def inspect_frontend(name: str = FRONTEND_CONTAINER) -> list[str]:
    """State, start time, image, bundle, clipper-deploy version and config hash of the
    frontend's container, tab-separated (see :func:`parse_frontend_inspect`)."""
    return ["docker", "inspect", "--type", "container", "--format", FRONTEND_INSPECT_FORMAT, name]


@dataclass(frozen=True)
class FrontendContainer:
    """:func:`inspect_frontend` output, parsed."""

    state: str
    started_at: str
    image: str
    bundle: str
    tool_version: str
    config_hash: str

    @property
    def running(self) -> bool:
        return self.state == "running"


def parse_frontend_inspect(output: str) -> FrontendContainer | None:
    """The container's record, or None when the output is empty (no such container)."""
    line = next((ln for ln in output.splitlines() if ln.strip()), "")
    if not line:
        return None
    fields = (line.split("\t") + [""] * 6)[:6]
    return FrontendContainer(*fields)


def restart_frontend(name: str = FRONTEND_CONTAINER) -> list[str]:
    return ["docker", "restart", "--time", str(FRONTEND_STOP_TIMEOUT), name]


def stop_frontend(name: str = FRONTEND_CONTAINER) -> list[str]:
    """Stop the frontend's container gracefully: SIGTERM (it stops listening, answers the
    queries in progress, closes its replica connections), SIGKILL only after
    :data:`FRONTEND_STOP_TIMEOUT` seconds."""
    return ["docker", "stop", "--time", str(FRONTEND_STOP_TIMEOUT), name]


def remove_frontend(name: str = FRONTEND_CONTAINER) -> list[str]:
    """Remove the frontend's container (``--force``: killed if it still runs); its state
    directory stays. Run :func:`stop_frontend` first (:func:`stop_and_remove_frontend`)."""
    return ["docker", "rm", "--force", name]


def stop_and_remove_frontend(name: str = FRONTEND_CONTAINER) -> str:
    """Shell: stop the frontend's container gracefully, then remove it (quietly, and without
    failing when there is none)."""
    return f"{{ {shell(stop_frontend(name))}; {shell(remove_frontend(name))}; }} >/dev/null 2>&1"


FACTS_CONTAINER = "::container"
FACTS_STATE = "::state"


def frontend_facts(image: str, base_image: str | None, bundle_dir: str, state_dir: str) -> str:
    """One shell command reading what starting the frontend needs to know of its host: the
    container (:func:`inspect_frontend`; a failing ``docker`` ends the command with its status
    and stderr), ``image``'s bundle hash, whether ``base_image`` and ``bundle_dir`` are there,
    and the state directory's ``uid:gid mode``. Parse with :func:`parse_frontend_facts`."""
    probe = shell(["docker", "ps", "--quiet", "--filter", f"name=^{FRONTEND_CONTAINER}$"])
    lines = [
        f"{probe} >/dev/null || exit $?",
        f"echo {FACTS_CONTAINER}; {shell(inspect_frontend())} 2>/dev/null || true",
        f"echo {FACTS_IMAGE}; {shell(image_bundle(image))} 2>/dev/null || true",
    ]
    if base_image is not None:
        probe = shell(image_exists(base_image))
        lines.append(f"echo {FACTS_BASE}; {probe} >/dev/null 2>&1 && echo present || true")
    q = shlex.quote
    lines.append(f"echo {FACTS_BUNDLE}; [ -d {q(bundle_dir)} ] && echo present || true")
    lines.append(f"echo {FACTS_STATE}; stat -c '%u:%g %a' {q(state_dir)} 2>/dev/null || true")
    return "\n".join(lines)


@dataclass(frozen=True)
class FrontendHostReading:
    """:func:`frontend_facts` output, parsed."""

    container: FrontendContainer | None
    image_bundle: str = ""
    base_image_present: bool = False
    bundle_present: bool = False
    state_dir: str = ""
    """``uid:gid mode`` of the state directory ("" when it does not exist)."""


def parse_frontend_facts(output: str) -> FrontendHostReading:
    """Split :func:`frontend_facts` output into its sections."""
    names = (FACTS_CONTAINER, FACTS_IMAGE, FACTS_BASE, FACTS_BUNDLE, FACTS_STATE)
    sections: dict[str, list[str]] = {"": []}
    current = ""
    for line in output.splitlines():
        if line.strip() in names:
            current = line.strip()
            sections[current] = []
        else:
            sections[current].append(line)
    return FrontendHostReading(
        container=parse_frontend_inspect("\n".join(sections.get(FACTS_CONTAINER, []))),
        image_bundle="".join(sections.get(FACTS_IMAGE, [])).strip(),
        base_image_present="present" in sections.get(FACTS_BASE, []),
        bundle_present="present" in sections.get(FACTS_BUNDLE, []),
        state_dir="".join(sections.get(FACTS_STATE, [])).strip(),
    )
