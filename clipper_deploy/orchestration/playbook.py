"""Playbooks: a deploy described in YAML, and loading the function it names.

::

    model: example-model            # DNS-1123 label
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
    container: {cpus: 1, memory: 512m, env_file: model.env}
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
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clipper_deploy.errors import ClipperDeployError

INPUT_TYPES = ("doubles", "floats", "ints", "bytes", "strings")


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
    hosts: str = "model_hosts"
    cpus: float | None = None
    memory: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    smoke: tuple[SmokeQuery, ...] = ()
    serial: Any = None
    max_fail_percentage: float | None = None
    schedule: str | None = None
    retain: int = 3

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def load_function(self) -> Callable[..., Any]:
        """Import the file the ``function`` key names and return the function (calling the
        factory when the reference ends in ``()``)."""
        return load_function(self.function, self.base_dir, where=f"{self.path}: function")


def load_playbook(path: str | Path) -> Playbook:
    """Read and check the playbook at ``path``."""
    path = Path(path).resolve()
    try:
        doc = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PlaybookError(f"playbook {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise PlaybookError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise PlaybookError(f"{path}: a playbook is a YAML mapping (model:, function:, ...)")

    def need(key: str) -> Any:
        if key not in doc or doc[key] in (None, ""):
            raise PlaybookError(f"{path}: missing required key `{key}`")
        return doc[key]

    known = {
        "model", "version", "function", "input_type", "labels", "mode", "sample_input", "app",
        "replicas", "hosts", "container", "smoke", "serial", "max_fail_percentage", "schedule",
        "retain",
    }  # fmt: skip
    unknown = sorted(set(doc) - known)
    if unknown:
        raise PlaybookError(
            f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    input_type = need("input_type")
    if input_type not in INPUT_TYPES:
        raise PlaybookError(
            f"{path}: input_type {input_type!r} is not one of {', '.join(INPUT_TYPES)}"
        )
    replicas = doc.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 1:
        raise PlaybookError(f"{path}: replicas must be a whole number >= 1, not {replicas!r}")
    container = doc.get("container") or {}
    if not isinstance(container, dict):
        raise PlaybookError(f"{path}: container must be a mapping (cpus, memory, env_file)")
    env = {}
    if container.get("env_file"):
        env = read_env_file(path.parent / str(container["env_file"]), where=str(path))
    app = None
    if doc.get("app"):
        raw = doc["app"]
        if not isinstance(raw, dict) or not raw.get("name"):
            raise PlaybookError(f"{path}: app needs at least a name")
        app = AppSpec(
            name=str(raw["name"]),
            default_output=raw.get("default_output"),
            slo_micros=int(raw.get("slo_micros", 100_000)),
        )
    smoke = tuple(
        SmokeQuery(input=q["input"], expect=q.get("expect"))
        for q in (doc.get("smoke") or [])
        if isinstance(q, dict) and "input" in q
    )
    if len(smoke) != len(doc.get("smoke") or []):
        raise PlaybookError(f"{path}: each smoke entry needs an `input` (and may have `expect`)")
    return Playbook(
        path=path,
        model=str(need("model")),
        function=str(need("function")),
        input_type=input_type,
        version=str(doc.get("version", 1)),
        labels=tuple(str(x) for x in doc.get("labels") or ()),
        mode=str(doc.get("mode", "full")),
        sample_input=doc.get("sample_input"),
        app=app,
        replicas=replicas,
        hosts=str(doc.get("hosts", "model_hosts")),
        cpus=float(container["cpus"]) if container.get("cpus") is not None else None,
        memory=str(container["memory"]) if container.get("memory") is not None else None,
        env=env,
        smoke=smoke,
        serial=doc.get("serial"),
        max_fail_percentage=doc.get("max_fail_percentage"),
        schedule=doc.get("schedule"),
        retain=int(doc.get("retain", 3)),
    )


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
