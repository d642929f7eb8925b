"""Playbooks: a deploy described in YAML, and loading the function it names.

::

    model: example-model            # lowercase letters, digits, _ . -
    version: 1                      # optional; `--version` overrides; default 1
    function: ../examples/centered_predict.py:make()   # file:name, or file:factory()
    input_type: doubles             # doubles, floats, ints, bytes, strings
    labels: [example]
    mode: auto                      # full (ship the whole environment) or auto
    sample_input: [[1.0, 2.0, 3.0, 4.0]]   # optional; run once in a clean Python first
    app:                            # optional; registered and linked when given
      name: example
      default_output: "-1.0"
      slo_micros: 100000
    replicas: 2
    hosts: model_hosts              # inventory group or pattern
    container: {cpus: 1, memory: 512m, env_file: model.env, network: host}
                                    # defaults: 1 CPU, 2g, no env, host network; the
                                    # env_file's values reach the containers in a 0600 file
                                    # on each host (--env-file), never on a command line
    smoke:                          # optional health-gate queries (rollouts)
      - {input: [1.0, 2.0, 3.0, 4.0], expect: 1}
    serial: 1                       # rollouts: batch sizes (Ansible's serial)
    max_fail_percentage: 0
    schedule: "0 3 * * *"           # scheduled redeploys (cron)
    retain: 3                       # versions kept on the hosts for rollbacks

Paths are relative to the playbook's folder. Errors name the file and the key.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.hosts.docker_commands import DEFAULT_NETWORK
from clipper_deploy.orchestration.plan import parse_max_fail_percentage, parse_serial
from clipper_deploy.orchestration.schedule import check_cron
from clipper_deploy.packaging.validation import validate_name
from clipper_deploy.settings import DEFAULT_RETAIN, INPUT_TYPES, MODEL_HOSTS_GROUP, NUMPY_DTYPES


class PlaybookError(ClipperDeployError, ValueError):
    """The playbook is malformed or names something that cannot be loaded."""


@dataclass(frozen=True)
class AppSpec:
    name: str
    default_output: Any = None
    slo_micros: int = 100_000


@dataclass(frozen=True)
class SmokeQuery:
    input: Any
    expect: Any = None


@dataclass(frozen=True)
class Playbook:
    """A parsed playbook; see the module docstring for the keys."""

    path: Path
    model: str
    function: str
    input_type: str
    version: str = "1"
    labels: tuple[str, ...] = ()
    mode: str = "full"
    sample_input: Any = None
    app: AppSpec | None = None
    replicas: int = 1
    hosts: str = MODEL_HOSTS_GROUP
    cpus: float | None = None
    memory: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    network: str = DEFAULT_NETWORK
    smoke: tuple[SmokeQuery, ...] = ()
    serial: Any = None
    max_fail_percentage: float | None = None
    schedule: str | None = None
    retain: int = DEFAULT_RETAIN

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def deploy_settings(self) -> dict[str, Any]:
        """The keywords of ``Clipper.deploy_predict_function`` this playbook sets."""
        return {
            "hosts": self.hosts,
            "mode": self.mode,
            "sample_input": sample_batch(self.input_type, self.sample_input),
            "cpus": self.cpus,
            "memory": self.memory,
            "env": self.env,
            "network": self.network,
            "retain": self.retain,
        }

    @property
    def smoke_checks(self) -> list[Any]:
        """The smoke queries as the rollout's health gate takes them."""
        from clipper_deploy.orchestration.rollout import SmokeCheck

        return [SmokeCheck(q.input, q.expect) for q in self.smoke]

    def load_function(self) -> Callable[..., Any]:
        """Import the file the ``function`` key names and return the function (calling the
        factory when the reference ends in ``()``)."""
        return load_function(self.function, self.base_dir, where=f"{self.path}: function")


def load_playbook(path: str | Path) -> Playbook:
    """Read and check the playbook at ``path``: every key is validated here, before anything
    is packaged or locked, and an error names ``file:line``, the key and what is accepted."""
    path = Path(path).resolve()
    try:
        text = path.read_text()
        doc = yaml.safe_load(text)
    except FileNotFoundError:
        raise PlaybookError(f"playbook {path} does not exist") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise PlaybookError(f"{where}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise PlaybookError(f"{path}:1: a playbook is a YAML mapping (model:, function:, ...)")
    lines = key_lines(text)

    def at(key: str) -> str:
        """``file:line`` of ``key`` (its value's line; the file's first line if absent)."""
        return f"{path}:{lines.get(key, 1)}"

    def need(key: str) -> Any:
        if key not in doc or doc[key] in (None, ""):
            raise PlaybookError(f"{path}: missing required key `{key}`")
        return doc[key]

    known = {
        "model", "version", "function", "input_type", "labels", "mode", "sample_input", "app",
        "replicas", "hosts", "container", "smoke", "serial", "max_fail_percentage", "schedule",
        "retain",
    }  # fmt: skip
    unknown = sorted(set(doc) - known, key=lambda k: lines.get(str(k), 0))
    if unknown:
        raise PlaybookError(
            f"{at(str(unknown[0]))}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"known: {', '.join(sorted(known))}"
        )
    model = str(need("model"))
    try:
        validate_name(model)
    except ClipperDeployError as exc:
        raise PlaybookError(f"{at('model')}: model: {exc}") from None
    input_type = need("input_type")
    if input_type not in INPUT_TYPES:
        raise PlaybookError(
            f"{at('input_type')}: input_type {input_type!r} is not one of {', '.join(INPUT_TYPES)}"
        )
    replicas = doc.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise PlaybookError(
            f"{at('replicas')}: replicas must be a whole number >= 1, not {replicas!r}"
        )
    retain = doc.get("retain", DEFAULT_RETAIN)
    if isinstance(retain, bool) or not isinstance(retain, int) or retain < 1:
        raise PlaybookError(
            f"{at('retain')}: retain (versions kept on each host for rollbacks) must be a "
            f"whole number >= 1, not {retain!r}"
        )
    for key, check in (
        ("serial", parse_serial),
        ("max_fail_percentage", parse_max_fail_percentage),
    ):
        try:
            check(doc.get(key))
        except ClipperDeployError as exc:
            raise PlaybookError(f"{at(key)}: {exc}") from None
    schedule = doc.get("schedule")
    if schedule is not None:
        try:
            check_cron(schedule)
        except ClipperDeployError as exc:
            raise PlaybookError(f"{at('schedule')}: {exc}") from None
    labels = doc.get("labels") or ()
    if not isinstance(labels, list | tuple):
        raise PlaybookError(f"{at('labels')}: labels must be a list of strings, not {labels!r}")
    container = doc.get("container") or {}
    if not isinstance(container, dict):
        raise PlaybookError(
            f"{at('container')}: container must be a mapping (cpus, memory, env_file, network)"
        )
    cpus = container.get("cpus")
    if cpus is not None and (
        isinstance(cpus, bool) or not isinstance(cpus, int | float) or cpus <= 0
    ):
        raise PlaybookError(
            f"{at('container')}: container.cpus must be a number above 0, not {cpus!r}"
        )
    network = container.get("network", DEFAULT_NETWORK)
    if not isinstance(network, str) or not _NETWORK.match(network):
        raise PlaybookError(
            f"{at('container')}: container.network must be a Docker network name such as "
            f"host (the default: replicas dial the frontend) or bridge, not {network!r}"
        )
    env = {}
    if container.get("env_file"):
        env = read_env_file(path.parent / str(container["env_file"]), where=at("container"))
    app = None
    if doc.get("app"):
        raw = doc["app"]
        if not isinstance(raw, dict) or not raw.get("name"):
            raise PlaybookError(f"{at('app')}: app needs at least a name")
        slo = raw.get("slo_micros", 100_000)
        if isinstance(slo, bool) or not isinstance(slo, int) or slo < 1:
            raise PlaybookError(
                f"{at('app')}: app.slo_micros must be a whole number of microseconds >= 1, "
                f"not {slo!r}"
            )
        app = AppSpec(
            name=str(raw["name"]), default_output=raw.get("default_output"), slo_micros=slo
        )
    smoke_entries = doc.get("smoke") or []
    if not isinstance(smoke_entries, list):
        raise PlaybookError(f"{at('smoke')}: smoke must be a list of {{input:, expect:}} entries")
    smoke = tuple(
        SmokeQuery(input=q["input"], expect=q.get("expect"))
        for q in smoke_entries
        if isinstance(q, dict) and "input" in q
    )
    if len(smoke) != len(smoke_entries):
        raise PlaybookError(
            f"{at('smoke')}: each smoke entry needs an `input` (and may have `expect`)"
        )
    return Playbook(
        path=path,
        model=model,
        function=str(need("function")),
        input_type=input_type,
        version=str(doc.get("version", 1)),
        labels=tuple(str(x) for x in labels),
        mode=str(doc.get("mode", "full")),
        sample_input=doc.get("sample_input"),
        app=app,
        replicas=replicas,
        hosts=str(doc.get("hosts", MODEL_HOSTS_GROUP)),
        cpus=float(cpus) if cpus is not None else None,
        memory=str(container["memory"]) if container.get("memory") is not None else None,
        env=env,
        network=network,
        smoke=smoke,
        serial=doc.get("serial"),
        max_fail_percentage=doc.get("max_fail_percentage"),
        schedule=schedule,
        retain=retain,
    )


_NETWORK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def key_lines(text: str) -> dict[str, int]:
    """The 1-based line of each top-level key's value in a YAML mapping ({} if not one)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {
        str(key.value): value.start_mark.line + 1
        for key, value in node.value
        if isinstance(key, yaml.ScalarNode)
    }


def read_env_file(path: Path, where: str) -> dict[str, str]:
    """``KEY=value`` lines (``#`` comments and blank lines skipped), like ``docker --env-file``."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise PlaybookError(f"{where}: env_file {path} does not exist") from None
    env = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise PlaybookError(f"{path}:{number}: expected KEY=value, got {text!r}")
        env[key.strip()] = value
    return env


def load_function(reference: str, base_dir: Path, where: str = "function") -> Callable[..., Any]:
    """``path/to/file.py:name`` or ``path/to/file.py:factory()`` -> the function.

    The file is imported as a module named after it (so cloudpickle pickles it by value: the
    container needs no copy of it) with its folder on ``sys.path`` for its own imports.
    """
    file_part, sep, attr = reference.rpartition(":")
    if not sep or not file_part.endswith(".py") or not attr:
        raise PlaybookError(
            f"{where}: {reference!r} should look like path/to/file.py:name or file.py:make()"
        )
    call = attr.endswith("()")
    attr = attr.removesuffix("()")
    file = (base_dir / file_part).resolve()
    if not file.is_file():
        raise PlaybookError(f"{where}: {file} does not exist")
    module_name = file.stem
    if str(file.parent) not in sys.path:
        sys.path.insert(0, str(file.parent))
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__file__", None) != str(file):
        spec = importlib.util.spec_from_file_location(module_name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise PlaybookError(f"{where}: importing {file} failed: {exc!r}") from exc
    target = getattr(module, attr, None)
    if target is None:
        raise PlaybookError(f"{where}: {file} has no {attr!r}")
    if call:
        try:
            target = target()
        except Exception as exc:
            raise PlaybookError(f"{where}: {attr}() raised {exc!r}") from exc
    if not callable(target):
        raise PlaybookError(f"{where}: {reference} is not callable")
    return target


def sample_batch(input_type: str, sample: Any) -> Any:
    """A playbook's sample inputs shaped as the container will pass them: numeric inputs as a
    2-D numpy array (as Clipper does), others as a list."""
    if sample is None or input_type not in NUMPY_DTYPES:
        return sample
    import numpy as np

    return np.asarray(sample, dtype=NUMPY_DTYPES[input_type])
