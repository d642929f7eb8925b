"""Choose what of the captured environment the container gets.

``full`` ships every pip distribution and every conda record, as the seed does. ``auto`` ships
only the distributions the function uses -- the modules its pickle references and the imports
seen while the round-trip subprocess ran the sample input -- plus what they require: pip's
resolver adds the requirements, pinned by constraints to the versions installed here, and conda
records are closed over their ``depends``. The container runtime's own needs, cloudpickle (the
client's version) and numpy, are always shipped.

Distributions installed from a local directory are never shipped: their modules are pickled by
value with the function. Nor is the deploying tool: clipper-deploy itself (the image gets its
runtime from the installed package instead) and, in ``full`` mode, what is installed only
because clipper-deploy requires it (Fabric, py-rattler, aiohttp...), unless the function was
seen using it or another distribution of the environment requires it too.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from clipper_deploy.packaging.environment import (
    CondaPackage,
    Environment,
    PipPackage,
    canonical_name,
)
from clipper_deploy.packaging.installed import packages_distributions

Mode = Literal["full", "auto"]
MODES: tuple[Mode, ...] = ("full", "auto")
RUNTIME_PACKAGES = ("cloudpickle", "numpy")
TOOL_DISTRIBUTION = "clipper-deploy"


@dataclass(frozen=True)
class Selection:
    """The packages a bundle installs: pip pins (plus constraints) and conda records."""

    mode: Mode
    requirements: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    conda: tuple[CondaPackage, ...] = ()
    local: tuple[PipPackage, ...] = ()
    tool: tuple[PipPackage, ...] = ()
    """What is left out as the deploying tool's own (see the module docstring)."""


def runtime_pins(env: Environment) -> dict[str, str]:
    """``{canonical name: pin}`` for what the runtime always needs, at the client's versions."""
    pins: dict[str, str] = {}
    for name in RUNTIME_PACKAGES:
        version = env.cloudpickle if name == "cloudpickle" else env.pip_version(name)
        if version is None:
            version = _installed_version(name) or _conda_version(env, name)
        pins[name] = f"{name}=={version}" if version else name
    return pins


def _installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _conda_version(env: Environment, name: str) -> str | None:
    return next((c.version for c in env.conda if canonical_name(c.name) == name), None)


def tool_distributions(env: Environment, used: Iterable[str] = ()) -> set[str]:
    """Normalized names of clipper-deploy and of what only it needs in ``env``.

    A distribution counts as the tool's when clipper-deploy requires it (directly or through
    others) and nothing else needs it: no distribution outside that set, not ``used`` (what the
    function was seen importing), not the runtime's own packages, nor what any of those require.
    """
    graph = {p.key: set(p.requires) for p in env.pip}
    if TOOL_DISTRIBUTION not in graph:
        return set()
    tool_side = _closure(graph, {TOOL_DISTRIBUTION})
    roots = (set(graph) - tool_side) | set(used) | set(RUNTIME_PACKAGES)
    return {TOOL_DISTRIBUTION} | (tool_side - _closure(graph, roots - {TOOL_DISTRIBUTION}))


def _closure(graph: Mapping[str, set[str]], roots: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r in graph]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(d for d in graph[name] if d in graph and d not in seen)
    return seen


def select_full(env: Environment, used: Iterable[str] = ()) -> Selection:
    """Everything: every non-local pip distribution and every conda record, but the tool's
    (``used``: distributions the function was seen using, which are always shipped)."""
    tool = tool_distributions(env, used)
    pins = {p.key: p.pin for p in env.pip if not p.local_url and p.key not in tool}
    for key, pin in runtime_pins(env).items():
        pins.setdefault(key, pin)
    return Selection(
        mode="full",
        requirements=tuple(pins[k] for k in sorted(pins)),
        conda=env.conda,
        local=tuple(p for p in env.pip if p.local_url and p.key not in tool),
        tool=tuple(p for p in env.pip if p.key in tool),
    )


def distributions_for_modules(
    modules: Iterable[str], top_level_map: Mapping[str, list[str]]
) -> set[str]:
    """Canonical names of the distributions providing ``modules`` (standard library excluded)."""
    stdlib = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    out: set[str] = set()
    for module in modules:
        top = module.split(".", 1)[0]
        if not top or top in stdlib:
            continue
        out.update(canonical_name(d) for d in top_level_map.get(top, ()))
    return out


def select_auto(
    env: Environment,
    modules: Iterable[str],
    top_level_map: Mapping[str, list[str]] | None = None,
) -> Selection:
    """Only what ``modules`` need (see the module docstring)."""
    mapping = packages_distributions() if top_level_map is None else top_level_map
    used = distributions_for_modules(modules, mapping) - {TOOL_DISTRIBUTION}
    shippable = {p.key: p for p in env.pip if not p.local_url and p.key != TOOL_DISTRIBUTION}
    pins = {key: shippable[key].pin for key in used if key in shippable}
    for key, pin in runtime_pins(env).items():
        pins.setdefault(key, pin)
    constraints = tuple(sorted(p.pin for k, p in shippable.items() if k not in pins))
    conda = conda_closure(env.conda, used)
    local = tuple(p for p in env.pip if p.local_url and p.key in used)
    return Selection(
        mode="auto",
        requirements=tuple(pins[k] for k in sorted(pins)),
        constraints=constraints,
        conda=conda,
        local=local,
        tool=tuple(p for p in env.pip if p.key == TOOL_DISTRIBUTION),
    )


def conda_closure(records: Iterable[CondaPackage], used: set[str]) -> tuple[CondaPackage, ...]:
    """Conda records that own a used distribution, plus everything they depend on."""
    by_name = {r.name: r for r in records}
    wanted = [r.name for r in by_name.values() if set(r.python_dists) & used]
    keep: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in keep or name not in by_name:
            continue
        keep.add(name)
        wanted.extend(dep.split()[0] for dep in by_name[name].depends if dep.strip())
    return tuple(by_name[n] for n in sorted(keep))


def select(
    env: Environment,
    mode: Mode,
    modules: Iterable[str] = (),
    top_level_map: Mapping[str, list[str]] | None = None,
) -> Selection:
    """Dispatch on ``mode``."""
    if mode == "full":
        mapping = (
            importlib.metadata.packages_distributions() if top_level_map is None else top_level_map
        )
        return select_full(env, distributions_for_modules(modules, mapping))
    return select_auto(env, modules, top_level_map)
