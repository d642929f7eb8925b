"""Serialize a prediction function with everything it captures, or say exactly what cannot be.

cloudpickle ships the function's code, the globals it uses and its closure. Modules that are
installed distributions (anything under site-packages, the standard library, or a distribution
known to ``importlib.metadata``) are pickled by reference: the container installs them. Every
other module the interpreter has loaded -- the user's own ``.py`` files next to a notebook, a
package installed in editable mode from a local directory -- is registered with
:func:`cloudpickle.register_pickle_by_value`, so the container needs no copy of the source tree.

The pickle is streamed to a file (``func.pkl``) and hashed while it is written, never held in
memory as one ``bytes``: a function that captures 1 GB of numpy state costs the deploying
process about that 1 GB (the state itself), not two or three copies of it.

When pickling fails, :func:`locate_unpicklable` walks what the function references and names
the first object that cannot be pickled on its own, with the path that leads to it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import importlib.metadata
import os
import site
import stat
import sys
import sysconfig
import threading
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from clipper_deploy.packaging.environment import local_url_of
from clipper_deploy.packaging.errors import BundleWriteError, UnpicklableClosureError
from clipper_deploy.packaging.installed import kept, packages_distributions

_MAX_NODES = 5000
_MAIN_ALIASES = {"__main__", "__mp_main__"}  # cloudpickle already pickles __main__ by value
_PICKLING = threading.Lock()
_MAX_DEPTH = 40


@dataclass(frozen=True)
class Payload:
    """A pickled prediction function, written to ``path`` (what ``func.pkl`` holds): its
    sha256, its size in bytes and the modules pickled by value."""

    path: Path
    sha256: str
    size: int
    by_value: tuple[str, ...]

    def read_bytes(self) -> bytes:
        """The pickle's bytes (for small payloads and tests; deploys never load them)."""
        return self.path.read_bytes()


class _HashingWriter:
    """A binary file that hashes what is written to it (the pickler's ``file``)."""

    def __init__(self, file: Any) -> None:
        self.file = file
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        self.hash.update(data)
        written: int = self.file.write(data)
        self.size += written
        return written


@dataclass(frozen=True)
class Culprit:
    """An object that cannot be pickled, the path to it and the pickling error."""

    where: str
    obj: object
    error: BaseException

    @property
    def type_name(self) -> str:
        t = type(self.obj)
        return t.__qualname__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def installed_roots() -> tuple[str, ...]:
    """Directories whose modules are installed (standard library and site-packages)."""
    roots: set[str] = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(path)
    roots.update(getattr(site, "getsitepackages", list)())
    user_site = getattr(site, "getusersitepackages", lambda: None)()
    if user_site:
        roots.add(user_site)
    return tuple(sorted(os.path.realpath(r) + os.sep for r in roots))


def local_distributions() -> dict[str, str]:
    """Installed distributions that come from a local directory: name -> URL.

    They cannot be downloaded for the container, so their modules are pickled by value.
    """
    return dict(kept("local_distributions", None, _read_local_distributions))


def _read_local_distributions() -> dict[str, str]:
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        url = local_url_of(dist)
        if url is not None:
            out[dist.metadata["Name"]] = url
    return out


def installed_top_levels(
    mapping: Mapping[str, list[str]] | None = None, local: Mapping[str, str] | None = None
) -> frozenset[str]:
    """Top-level import names provided by installed, non-local distributions."""
    mapping = packages_distributions() if mapping is None else mapping
    local_names = {_canon(n) for n in (local_distributions() if local is None else local)}
    return frozenset(
        top for top, dists in mapping.items() if any(_canon(d) not in local_names for d in dists)
    )


def by_value_modules(
    modules: Mapping[str, object],
    *,
    roots: tuple[str, ...],
    installed: frozenset[str],
) -> list[str]:
    """Top-level modules in ``modules`` (like ``sys.modules``) that must be pickled by value.

    A module is pickled by value when it has a file, is not part of the standard library, is not
    provided by an installed distribution, and lives outside every directory in ``roots``.
    """
    stdlib = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    out: list[str] = []
    for name, module in list(modules.items()):
        if "." in name or name in _MAIN_ALIASES or name in stdlib or name in installed:
            continue
        locations = _module_locations(module)
        if not locations:
            continue
        if all(any(loc.startswith(root) for root in roots) for loc in locations):
            continue
        out.append(name)
    return sorted(out)


def _module_locations(module: object) -> list[str]:
    file = getattr(module, "__file__", None)
    if isinstance(file, str) and file:
        return [os.path.realpath(file)]
    path = getattr(module, "__path__", None)
    try:
        return [os.path.realpath(p) + os.sep for p in path] if path is not None else []
    except TypeError:
        return []


def serialize_function(
    func: Any, path: str | os.PathLike[str], label: str | None = None
) -> Payload:
    """Pickle ``func`` with cloudpickle, user modules by value, streaming it to ``path``
    (created or replaced, mode 0644) and hashing it as it is written.

    Raises :class:`UnpicklableClosureError` naming the offending object and where the function
    references it, or :class:`BundleWriteError` when ``path`` cannot be written (a full disk);
    either way ``path`` is removed.
    """
    label = label or function_label(func)
    names = by_value_modules(sys.modules, roots=installed_roots(), installed=installed_top_levels())
    with _PICKLING:  # by-value registration is global to cloudpickle
        return _serialize(func, Path(path), label, names)


def _serialize(func: Any, path: Path, label: str, names: list[str]) -> Payload:
    registered = _register_by_value(names)
    try:
        try:
            writer = _dump(func, path)
        except OSError as exc:
            _remove_partial(path)
            raise BundleWriteError(_write_failure(path, exc)) from exc
        except Exception as exc:
            _remove_partial(path)
            culprit = locate_unpicklable(func, label) or Culprit(label, func, exc)
            raise UnpicklableClosureError(
                unpicklable_message(label, culprit), culprit.where, culprit.type_name
            ) from exc
    finally:
        for name in registered:
            cloudpickle.unregister_pickle_by_value(sys.modules[name])
    return Payload(path, writer.hash.hexdigest(), writer.size, tuple(names))


def _dump(func: Any, path: Path) -> _HashingWriter:
    """Stream the pickle of ``func`` to ``path`` (large buffers such as numpy arrays go to the
    file as they are, without a copy in memory)."""
    with open(path, "wb") as f:
        if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            os.fchmod(f.fileno(), 0o644)  # readable by the containers' user, whatever the umask
        writer = _HashingWriter(f)
        cloudpickle.Pickler(writer, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(func)
    return writer


def _remove_partial(path: Path) -> None:
    """Remove what a failed dump wrote (a regular file or a link, never a device)."""
    if path.is_symlink() or path.is_file():
        with contextlib.suppress(OSError):
            path.unlink()


def _write_failure(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return (
            f"No space left on device while writing the pickled function to {path}; nothing "
            "was kept. Free some space there, or pass bundles_dir= a directory on a file "
            "system with room (the pickle is written next to the bundles)."
        )
    return (
        f"Could not write the pickled function to {path}: {exc}; nothing was kept. Check that "
        "the directory is writable, or pass bundles_dir= another directory."
    )


def _register_by_value(names: list[str]) -> list[str]:
    already = getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", set())
    registered: list[str] = []
    for name in names:
        module = sys.modules.get(name)
        if not isinstance(module, types.ModuleType) or name in already:
            continue
        cloudpickle.register_pickle_by_value(module)
        registered.append(name)
    return registered


def function_label(func: Any) -> str:
    """The name used for ``func`` in messages."""
    for attr in ("__qualname__", "__name__"):
        name = getattr(func, attr, None)
        if isinstance(name, str):
            return name.replace(".<locals>.", ".")
    return type(func).__name__


def unpicklable_message(label: str, culprit: Culprit) -> str:
    """The error text for a closure that cannot be pickled."""
    error = f"{type(culprit.error).__name__}: {culprit.error}"
    return (
        f"Cannot serialize the prediction function {label}: it references a "
        f"{culprit.type_name} object at {culprit.where}, which cannot be pickled ({error}). "
        "Everything the function captures (the globals it uses, its closure variables and "
        "default arguments) is shipped with it and must be picklable: create locks, sockets, "
        "open files, generators and connections inside the function (or lazily on its first "
        "call), or stop capturing them."
    )


def locate_unpicklable(root: object, label: str) -> Culprit | None:
    """Find the deepest object reachable from ``root`` that cannot be pickled on its own."""
    error = _pickle_error(root)
    if error is None:
        return None
    seen: set[int] = {id(root)}
    where, obj, depth, budget = label, root, 0, _MAX_NODES
    while depth < _MAX_DEPTH:
        for step, child in _children(obj):
            if id(child) in seen:
                continue
            seen.add(id(child))
            budget -= 1
            if budget <= 0:
                return Culprit(where, obj, error)
            child_error = _pickle_error(child)
            if child_error is not None:
                where = _join(where, step)
                obj, error = child, child_error
                break
        else:
            return Culprit(where, obj, error)
        depth += 1
    return Culprit(where, obj, error)


def _pickle_error(obj: object) -> BaseException | None:
    try:
        cloudpickle.dumps(obj)
    except Exception as exc:
        return exc
    return None


def _join(where: str, step: str) -> str:
    return where + step if step.startswith((".", "[")) else f"{where} -> {step}"


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def _children(obj: object) -> Iterator[tuple[str, object]]:
    """The objects ``obj`` references, each with the step that reaches it."""
    if isinstance(obj, types.FunctionType):
        yield from _function_children(obj)
    elif isinstance(obj, types.MethodType):
        yield ".__self__", obj.__self__
        yield ".__func__", obj.__func__
    elif isinstance(obj, functools.partial):
        yield ".func", obj.func
        for i, arg in enumerate(obj.args):
            yield f".args[{i}]", arg
        for key, value in obj.keywords.items():
            yield f".keywords[{key!r}]", value
    elif isinstance(obj, dict):
        for key, value in list(obj.items()):
            yield _key_step(key), value
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            yield f"[{i}]", item
    elif isinstance(obj, (set, frozenset)):
        for item in list(obj):
            yield "set item", item
    elif isinstance(obj, type):
        for key, value in list(vars(obj).items()):
            if not (key.startswith("__") and key.endswith("__")):
                yield f".{key}", value
    elif not isinstance(obj, types.ModuleType):
        yield from _attribute_children(obj)


def _function_children(func: types.FunctionType) -> Iterator[tuple[str, object]]:
    code = func.__code__
    for name in sorted(_global_names(code)):
        if name in func.__globals__:
            yield f"global {name!r}", func.__globals__[name]
    for var, cell in zip(code.co_freevars, func.__closure__ or (), strict=False):
        try:
            yield f"closure variable {var!r}", cell.cell_contents
        except ValueError:  # an empty cell
            continue
    for i, value in enumerate(func.__defaults__ or ()):
        yield f"default argument {i}", value
    for key, value in (func.__kwdefaults__ or {}).items():
        yield f"default argument {key!r}", value
    for key, value in vars(func).items():
        yield f".{key}", value


def _attribute_children(obj: object) -> Iterator[tuple[str, object]]:
    attrs = getattr(obj, "__dict__", None)
    if isinstance(attrs, dict):
        for key, value in list(attrs.items()):
            yield f".{key}", value
    for klass in type(obj).__mro__:
        for slot in getattr(klass, "__slots__", ()) if isinstance(klass, type) else ():
            if isinstance(slot, str) and hasattr(obj, slot) and slot != "__dict__":
                yield f".{slot}", getattr(obj, slot)


def _key_step(key: object) -> str:
    if isinstance(key, (str, int, float, bool)) or key is None:
        return f"[{key!r}]"
    return f"[<{type(key).__name__} key>]"


def _canon(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")
