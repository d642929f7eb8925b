"""Choose what of the captured environment the container gets.

``full`` ships every pip distribution and every conda record, as the seed does. ``auto`` ships
only the distributions the function uses -- the modules its pickle references and the imports
seen while the round-trip subprocess ran the sample input -- plus what they require: pip's
resolver adds the requirements, pinned by constraints to the versions installed here, and conda
records are closed over their ``depends``. The container runtime's own needs, cloudpickle (the
client's version) and numpy, are always shipped.

Distributions installed from a local directory are never shipped: their modules are pickled by
value with the function.
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

Mode = Literal["full", "auto"]
MODES: tuple[Mode, ...] = ("full", "auto")
RUNTIME_PACKAGES = ("cloudpickle", "numpy")


@dataclass(frozen=True)
class Selection:
    """The packages a bundle installs: pip pins (plus constraints) and conda records."""

    mode: Mode
    requirements: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    conda: tuple[CondaPackage, ...] = ()
    local: tuple[PipPackage, ...] = ()


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


def select_full(env: Environment) -> Selection:
    """Everything: every non-local pip distribution and every conda record."""
    pins = {p.key: p.pin for p in env.pip if not p.local_url}
    for key, pin in runtime_pins(env).items():
        pins.setdefault(key, pin)
    return Selection(
        mode="full",
        requirements=tuple(pins[k] for k in sorted(pins)),
        conda=env.conda,
        local=tuple(p for p in env.pip if p.local_url),
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
    mapping = (
        importlib.metadata.packages_distributions() if top_level_map is None else top_level_map
    )
    used = distributions_for_modules(modules, mapping)
    shippable = {p.key: p for p in env.pip if not p.local_url}
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
        return select_full(env)
    return select_auto(env, modules, top_level_map)
