"""Ansible INI inventories: which hosts exist, how to reach them, and their variables.

The file format is Ansible's INI inventory, read with Ansible's semantics so an inventory that
works with ``ansible -i inventory.ini`` works here unchanged::

    frontend ansible_host=10.0.0.5            # before any section: group "ungrouped"

    [clipper]
    frontend

    [model_hosts]
    gpu[01:04].example.com ansible_port=2222  # a range: gpu01 .. gpu04

    [model_hosts:vars]
    ansible_user=deploy
    ansible_ssh_private_key_file=keys/deploy  # relative to this file's directory

    [datacenter:children]
    model_hosts

What is understood:

* ``[group]`` sections of host lines ``name key=value key2="quoted value" # comment``. The
  name may be ``name:port`` and may hold ranges: ``h[1:3]``, ``web[01:10]`` (zero padding is
  kept), ``db-[a:c]``, with an optional stride ``[1:10:2]`` and several ranges in one name.
  Host lines before any section belong to ``ungrouped``.
* ``[group:vars]`` sections of ``key=value`` lines (one per line, everything after ``=`` is
  the value, surrounding quotes are removed), and ``[group:children]`` sections of child group
  names. A child may be declared further down the file; a child that is never declared with a
  ``[child]`` or ``[child:children]`` section is an error, as is ``[group:vars]`` for a group that
  is never declared and a group that is its own ancestor (all three as in Ansible).
* The implicit groups ``all`` (every host) and ``ungrouped`` (hosts in no other group).
* Comments: lines starting with ``#`` or ``;``, and `` # ...`` after a host line, a section
  header or a child name.
* Variable precedence as Ansible: ``[all:vars]`` < parent group vars < child group vars <
  host-line vars. Groups at the same depth are applied by ``ansible_group_priority`` and then by
  name; a host listed in several groups gets the variables of all of them, and host-line vars
  given on several lines are merged (the later line wins).

Variable values are kept as strings. Ansible evaluates values as Python literals (``port=22``
becomes the integer 22); here the value is the string Ansible would produce when that is a
string (``"'a b'"`` -> ``a b``) and otherwise the text as written (``22``, ``True``, ``[1, 2]``).
Two deliberate differences from Ansible: a `` # comment`` after an unquoted ``:vars`` value is
dropped (Ansible keeps it as part of a string value) and an unterminated quote in a ``:vars``
value is an error. Jinja2 templates (``{{ ... }}``) are not evaluated.

The variables the tool reads become fields of :class:`Host`:

=================================  ==========================================================
``ansible_host``                   ``Host.address`` (default: the inventory name)
``ansible_port``                   ``Host.port`` (default 22)
``ansible_user``                   ``Host.user`` (default ``None``: the connection picks root)
``ansible_ssh_private_key_file``   ``Host.key_file``, relative paths from the inventory's folder
``ansible_connection``             ``Host.connection``: ``ssh`` (also ``paramiko``, ``smart``)
                                   or ``local`` (run commands on this machine, no SSH)
=================================  ==========================================================

As in Ansible's ssh connection plugin, the older names ``ansible_ssh_host``,
``ansible_ssh_port``, ``ansible_ssh_user`` and ``ansible_private_key_file`` are read too; when a
host has both spellings, ``ansible_ssh_*`` wins.

Selecting hosts (:meth:`Inventory.hosts`) takes Ansible patterns: a group or host name, ``all``,
a glob (``web*``), a regular expression (``~web\\d+``), and ``a:b`` (union, also ``a,b``),
``a:&b`` (intersection) and ``a:!b`` (exclusion). Unions apply first, then intersections, then
exclusions, as in Ansible. Hosts come back in the order they first appear in the file.

This module is pure: no I/O beyond reading the inventory file in :meth:`Inventory.from_file`.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import re
import shlex
import string
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from clipper_deploy.errors import ClipperDeployError

__all__ = ["Group", "Host", "Inventory", "InventoryError"]

DEFAULT_SSH_PORT = 22

# Ansible's ssh plugin reads these names; later names win when several are set.
_ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
_PORT_VARS = ("ansible_port", "ansible_ssh_port")
_USER_VARS = ("ansible_user", "ansible_ssh_user")
_KEY_FILE_VARS = ("ansible_private_key_file", "ansible_ssh_private_key_file")
_CONNECTION_VARS = ("ansible_connection",)
_KNOWN_HOSTS_VARS = ("clipper_known_hosts_file",)
_SSH_CONNECTIONS = {"ssh", "paramiko", "smart"}

_SECTION = re.compile(
    r"""^\[
        ([^:\[\]\s]+)        # group name
        (?::([^\]\s]*))?     # optional :suffix
    \]
    \s*(?:[#;].*)?$          # trailing comment
    """,
    re.X,
)
_GROUP_NAME_LINE = re.compile(r"^([^:\[\]\s=]+)\s*(?:[#;].*)?$")
_IPV6 = re.compile(r"^[0-9A-Fa-f:.]+(?:%[\w.]+)?$")
_DIGITS = re.compile(r"^[0-9]+$")
_SUBSCRIPT = re.compile(r"^(.+)\[(-?[0-9]*)(?::(-?[0-9]*))?\]$")
_SECTION_HINT = (
    "A section header is [group], [group:vars] or [group:children]: one group name without "
    "spaces, colons or brackets"
)


class InventoryError(ClipperDeployError, ValueError):
    """An inventory that cannot be read, or a host pattern that matches nothing.

    The message names the file and, for syntax errors, the line number and the offending text,
    and says how to fix it. The parts are kept as attributes for callers that format their own.
    """

    def __init__(
        self,
        problem: str,
        *,
        source: str,
        lineno: int | None = None,
        text: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.source = source
        self.lineno = lineno
        self.text = text
        self.hint = hint
        where = source if lineno is None else f"{source}:{lineno}"
        message = f"{where}: {problem}"
        if text is not None:
            message += f" (`{text}`)"
        message += "."
        if hint:
            message += f" {hint}."
        super().__init__(message)


@dataclass(frozen=True)
class Host:
    """One inventory host and how to reach it.

    ``known_hosts`` is the host's ``clipper_known_hosts_file`` (resolved like the key file):
    the known_hosts file its key is checked against, when not ``~/.ssh/known_hosts``.
    ``vars`` holds every variable that applies to the host after precedence (group and host
    variables, ``ansible_*`` included), as strings. ``groups`` lists the groups the host is in,
    directly or through child groups, ``all`` excluded, shallowest first. Hosts are hashable
    and compare by value; treat ``vars`` as read-only.
    """

    name: str
    address: str
    port: int = DEFAULT_SSH_PORT
    user: str | None = None
    key_file: Path | None = None
    connection: Literal["ssh", "local"] = "ssh"
    known_hosts: Path | None = None
    vars: Mapping[str, str] = field(default_factory=dict, hash=False, repr=False)
    groups: tuple[str, ...] = ()

    @property
    def is_local(self) -> bool:
        """True for ``ansible_connection=local``: commands run on this machine, not over SSH."""
        return self.connection == "local"


@dataclass(frozen=True)
class Group:
    """One inventory group.

    ``hosts`` are the names of every host in the group, directly or through child groups, in
    file order; ``children`` the direct child groups; ``vars`` the variables set on this group
    itself (``[group:vars]``), before any precedence.
    """

    name: str
    hosts: tuple[str, ...]
    children: tuple[str, ...]
    vars: Mapping[str, str] = field(default_factory=dict, hash=False)


class Inventory:
    """A parsed inventory: hosts, groups, and host selection by Ansible pattern.

    Build one with :meth:`from_file` or :meth:`parse`; it is read-only afterwards.
    """

    def __init__(self, hosts: Mapping[str, Host], groups: Mapping[str, Group], source: str):
        self._hosts = dict(hosts)
        self._groups = dict(groups)
        #: Where the inventory came from (a file path or ``"<string>"``), used in messages.
        self.source = source

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Inventory:
        """Read and parse the INI inventory at ``path``.

        Relative ``ansible_ssh_private_key_file`` paths resolve against the file's directory.
        Raises :class:`InventoryError` when the file is missing, unreadable or malformed.
        """
        path = Path(path)
        source = str(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise InventoryError(
                "inventory file not found",
                source=source,
                hint="Pass the path of an Ansible INI inventory with --inventory or the "
                "`inventory` setting (the README's Quick start shows one; `clipper-deploy "
                "testbed.up` writes .testbed/inventory.ini)",
            ) from None
        except IsADirectoryError:
            raise InventoryError(
                "is a directory, not an inventory file",
                source=source,
                hint="Pass the path of one INI file, e.g. inventory.ini",
            ) from None
        except OSError as exc:
            raise InventoryError(
                f"cannot read inventory file: {exc.strerror or exc}",
                source=source,
                hint="Check the file's permissions",
            ) from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            lineno = data[: exc.start].count(b"\n") + 1
            raise InventoryError(
                "file is not valid UTF-8",
                source=source,
                lineno=lineno,
                hint="Save the inventory as UTF-8 text",
            ) from None
        return cls.parse(text, source=source, base_dir=path.absolute().parent)

    @classmethod
    def parse(
        cls,
        text: str,
        source: str = "<string>",
        base_dir: str | os.PathLike[str] | None = None,
    ) -> Inventory:
        """Parse inventory ``text``; ``source`` names it in error messages.

        Relative key file paths resolve against ``base_dir``; without one they stay relative.
        Raises :class:`InventoryError` on malformed input.
        """
        return _Parser(text, source, Path(base_dir) if base_dir is not None else None).parse()

    @property
    def groups(self) -> Mapping[str, Group]:
        """Every group by name, ``all`` and ``ungrouped`` included, in declaration order."""
        return self._groups

    def host(self, name: str) -> Host:
        """The host called ``name``; raises :class:`InventoryError` if there is none."""
        try:
            return self._hosts[name]
        except KeyError:
            raise InventoryError(
                f"no host named {name!r}",
                source=self.source,
                hint=f"Known hosts: {_names(self._hosts)}",
            ) from None

    def hosts(self, pattern: str = "all") -> list[Host]:
        """The hosts matching an Ansible host ``pattern``, in file order of first appearance.

        ``pattern`` is ``all``, a group or host name, a glob (``web*``, matched against group
        and host names), ``~regex`` (matched from the start of the names), or several of those
        joined with ``:`` (or ``,``), where ``&name`` intersects and ``!name`` excludes. A plain
        name that is neither a group nor a host raises :class:`InventoryError` (a typo must not
        silently select nothing); globs and regexes may match nothing. Subscripts such as
        ``web[0]`` are not supported.
        """
        pattern = pattern.strip()
        if not pattern:
            raise InventoryError(
                "empty host pattern", source=self.source, hint="Name a group, a host, or 'all'"
            )
        if pattern in self._hosts or pattern in self._groups:
            terms = [pattern]
        elif "," in pattern:
            terms = pattern.split(",")
        else:
            terms = pattern.split(":")
        terms = [term.strip() for term in terms if term.strip()]
        regular = [t for t in terms if t[0] not in "&!"]
        intersect = [t[1:] for t in terms if t[0] == "&"]
        exclude = [t[1:] for t in terms if t[0] == "!"]
        if not regular:
            regular = ["all"]
        selected: dict[str, Host] = {}
        for term in regular:
            for host in self._match(term, pattern):
                selected.setdefault(host.name, host)
        for term in intersect:
            keep = {h.name for h in self._match(term, pattern)}
            selected = {n: h for n, h in selected.items() if n in keep}
        for term in exclude:
            drop = {h.name for h in self._match(term, pattern)}
            selected = {n: h for n, h in selected.items() if n not in drop}
        order = {name: index for index, name in enumerate(self._hosts)}
        return sorted(selected.values(), key=lambda h: order[h.name])

    def _match(self, term: str, pattern: str) -> list[Host]:
        """Hosts matched by one pattern term (no ``&``/``!`` prefix)."""
        if not term:
            raise InventoryError(
                f"empty name after '&' or '!' in host pattern {pattern!r}",
                source=self.source,
                hint="Write a group or host name after the operator, e.g. all:!db",
            )
        if term in self._hosts:
            return [self._hosts[term]]
        if term in self._groups:
            return [self._hosts[name] for name in self._groups[term].hosts]
        if term.startswith("~"):
            try:
                regex = re.compile(term[1:])
            except re.error as exc:
                raise InventoryError(
                    f"bad regular expression {term[1:]!r} in host pattern {pattern!r}: {exc}",
                    source=self.source,
                    hint="Fix the expression after '~'",
                ) from None
            matches = regex.match
        elif any(ch in term for ch in "*?["):
            subscript = _SUBSCRIPT.match(term)
            if subscript and subscript.group(1) in self._groups:
                raise InventoryError(
                    f"subscripts like {term!r} are not supported",
                    source=self.source,
                    hint="Name the hosts instead, e.g. "
                    + ":".join(self._groups[subscript.group(1)].hosts[:2] or ("host1", "host2")),
                )
            matches = re.compile(fnmatch.translate(term)).match
        else:
            raise InventoryError(
                f"no group or host named {term!r} (host pattern {pattern!r})",
                source=self.source,
                hint=f"Known groups: {_names(self._groups)}",
            )
        found: dict[str, Host] = {}
        for group in self._groups.values():
            if matches(group.name):
                for name in group.hosts:
                    found.setdefault(name, self._hosts[name])
        for name, host in self._hosts.items():
            if matches(name):
                found.setdefault(name, host)
        return list(found.values())

    def __iter__(self) -> Iterator[Host]:
        """Every host, in file order."""
        return iter(self._hosts.values())

    def __len__(self) -> int:
        return len(self._hosts)

    def __contains__(self, name: object) -> bool:
        return name in self._hosts

    def __repr__(self) -> str:
        return f"<Inventory {self.source}: {len(self._hosts)} hosts, {len(self._groups)} groups>"


def _names(items: Mapping[str, object]) -> str:
    names = list(items)
    shown = ", ".join(names[:12]) or "(none)"
    return shown + (f" and {len(names) - 12} more" if len(names) > 12 else "")


# --------------------------------------------------------------------------- parsing


@dataclass
class _Var:
    value: str
    lineno: int


@dataclass
class _GroupDraft:
    name: str
    declared: bool = False
    vars_lineno: int | None = None  # first [name:vars] header, to report undeclared groups
    hosts: list[str] = field(default_factory=list)  # direct members
    children: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    vars: dict[str, _Var] = field(default_factory=dict)


@dataclass
class _HostDraft:
    name: str
    groups: list[str] = field(default_factory=list)  # direct groups
    vars: dict[str, _Var] = field(default_factory=dict)


class _LineError(Exception):
    """A problem on the current line; the parser adds file, line number and text."""

    def __init__(self, problem: str, hint: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint


class _Parser:
    def __init__(self, text: str, source: str, base_dir: Path | None) -> None:
        self.lines = text.removeprefix("\ufeff").splitlines()
        self.source = source
        self.base_dir = base_dir
        self.groups: dict[str, _GroupDraft] = {
            "all": _GroupDraft("all", declared=True),
            "ungrouped": _GroupDraft("ungrouped", declared=True),
        }
        self.hosts: dict[str, _HostDraft] = {}
        self.edges: list[tuple[str, str, int]] = []  # (parent, child, lineno)

    def error(self, problem: str, lineno: int | None = None, hint: str | None = None):
        text = self.lines[lineno - 1].strip() if lineno is not None else None
        return InventoryError(problem, source=self.source, lineno=lineno, text=text, hint=hint)

    def parse(self) -> Inventory:
        group, kind = "ungrouped", "hosts"
        for lineno, raw in enumerate(self.lines, start=1):
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            try:
                if line.startswith("["):
                    group, kind = self.section(line, lineno)
                elif kind == "hosts":
                    self.host_line(line, group, lineno)
                elif kind == "vars":
                    self.vars_line(line, group, lineno)
                else:
                    self.children_line(line, group, lineno)
            except _LineError as exc:
                raise self.error(exc.problem, lineno, exc.hint) from None
        self.check_declarations()
        self.link_children()
        return self.build()

    # ------------------------------------------------------------------ line kinds

    def section(self, line: str, lineno: int) -> tuple[str, str]:
        match = _SECTION.match(line)
        if not match:
            raise _LineError("bad section header", _SECTION_HINT)
        name, suffix = match.group(1), match.group(2)
        kind = "hosts" if suffix in (None, "hosts") else suffix
        if kind not in ("hosts", "vars", "children"):
            raise _LineError(
                f"unknown section type ':{suffix}'",
                f"Use [{name}] for hosts, [{name}:vars] for variables or "
                f"[{name}:children] for child groups",
            )
        draft = self.groups.setdefault(name, _GroupDraft(name))
        if kind == "vars":
            if draft.vars_lineno is None:
                draft.vars_lineno = lineno
        else:
            draft.declared = True
        return name, kind

    def host_line(self, line: str, group: str, lineno: int) -> None:
        tokens = _shell_split(line)
        if "=" in tokens[0]:
            raise _LineError(
                "expected a host name before the variables",
                f"Host lines are `name key=value ...`; to set a variable for the whole group "
                f"put it under [{group}:vars]",
            )
        names, port = _expand_host_pattern(tokens[0])
        variables = {key: _Var(value, lineno) for key, value in map(_host_var, tokens[1:])}
        if port is not None:
            variables = {"ansible_port": _Var(str(port), lineno), **variables}
        for name in names:
            host = self.hosts.setdefault(name, _HostDraft(name))
            if group not in host.groups:
                host.groups.append(group)
                self.groups[group].hosts.append(name)
            host.vars.update(variables)

    def vars_line(self, line: str, group: str, lineno: int) -> None:
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            raise _LineError(
                "expected key=value",
                f"Each line of [{group}:vars] sets one variable, e.g. ansible_user=deploy; "
                "hosts go under a [group] section",
            )
        _check_var_name(key)
        self.groups[group].vars[key] = _Var(_vars_value(value), lineno)

    def children_line(self, line: str, group: str, lineno: int) -> None:
        match = _GROUP_NAME_LINE.match(line)
        if not match:
            raise _LineError(
                "expected one group name",
                f"Each line of [{group}:children] names one child group; hosts go under a "
                "[group] section",
            )
        child = match.group(1)
        if child == "all":
            raise _LineError("'all' cannot be a child group", "Every group is already inside 'all'")
        self.groups.setdefault(child, _GroupDraft(child))
        self.edges.append((group, child, lineno))

    # ------------------------------------------------------------------ whole file

    def check_declarations(self) -> None:
        for parent, child, lineno in self.edges:
            if not self.groups[child].declared:
                raise self.error(
                    f"[{parent}:children] names group {child!r}, which is never declared",
                    lineno,
                    f"Add a [{child}] section (it may be empty) or remove the line",
                )
        for draft in self.groups.values():
            if not draft.declared:
                raise self.error(
                    f"[{draft.name}:vars] is for group {draft.name!r}, which is never declared",
                    draft.vars_lineno,
                    f"Add a [{draft.name}] section with its hosts, or fix the group name",
                )

    def link_children(self) -> None:
        for parent, child, lineno in self.edges:
            if child in self.groups[parent].children:
                continue
            path = self._path(child, parent)
            if path is not None:
                cycle = " -> ".join([parent, *path])
                raise self.error(
                    f"group {parent!r} would contain itself: {cycle}",
                    lineno,
                    "Remove one of the [...:children] lines that form the loop",
                )
            self.groups[parent].children.append(child)
            self.groups[child].parents.append(parent)

    def _path(self, start: str, goal: str) -> list[str] | None:
        """A child path from ``start`` down to ``goal`` (inclusive), if there is one."""
        if start == goal:
            return [start]
        for child in self.groups[start].children:
            rest = self._path(child, goal)
            if rest is not None:
                return [start, *rest]
        return None

    def build(self) -> Inventory:
        groups = self.groups
        for host in self.hosts.values():
            real = [g for g in host.groups if g not in ("all", "ungrouped")]
            if real and "ungrouped" in host.groups:
                host.groups.remove("ungrouped")
                groups["ungrouped"].hosts.remove(host.name)
            elif not real and "ungrouped" not in host.groups:
                host.groups.append("ungrouped")
                groups["ungrouped"].hosts.append(host.name)

        depth: dict[str, int] = {}

        def depth_of(name: str) -> int:
            if name not in depth:
                parents = [p for p in groups[name].parents if p != "all"]
                depth[name] = 0 if name == "all" else 1 + max(map(depth_of, parents), default=0)
            return depth[name]

        def ancestors(name: str) -> set[str]:
            found = {name}
            for parent in groups[name].parents:
                found |= ancestors(parent)
            return found

        priority = {name: self._priority(draft) for name, draft in groups.items()}
        members: dict[str, list[str]] = {name: [] for name in groups}
        hosts: dict[str, Host] = {}
        for draft in self.hosts.values():
            names = {"all"}
            for direct in draft.groups:
                names |= ancestors(direct)
            ordered = sorted(names, key=lambda g: (depth_of(g), priority[g], g))
            merged: dict[str, _Var] = {}
            for name in ordered:
                merged.update(groups[name].vars)
                members[name].append(draft.name)
            merged.update(draft.vars)
            in_groups = tuple(g for g in ordered if g != "all")
            hosts[draft.name] = self._host(draft.name, merged, in_groups)

        result = {
            name: Group(
                name=name,
                hosts=tuple(members[name]),
                children=tuple(draft.children),
                vars={key: var.value for key, var in draft.vars.items()},
            )
            for name, draft in groups.items()
        }
        return Inventory(hosts, result, self.source)

    def _priority(self, draft: _GroupDraft) -> int:
        var = draft.vars.get("ansible_group_priority")
        if var is None:
            return 1
        try:
            return int(var.value)
        except ValueError:
            raise self.error(
                f"ansible_group_priority must be an integer, not {var.value!r}",
                var.lineno,
                "Use a whole number; groups with higher numbers win",
            ) from None

    def _path_var(self, var: _Var | None) -> Path | None:
        """A path variable, ``~`` expanded, relative to the inventory's folder."""
        if var is None or not var.value:
            return None
        path = Path(var.value).expanduser()
        if not path.is_absolute() and self.base_dir is not None:
            path = self.base_dir / path
        return path

    def _host(self, name: str, merged: dict[str, _Var], groups: tuple[str, ...]) -> Host:
        def pick(names: tuple[str, ...]) -> _Var | None:
            found = [merged[n] for n in names if n in merged]
            if not found:
                return None
            var = found[-1]
            if "{{" in var.value:
                raise self.error(
                    f"templates are not evaluated, so host {name!r} cannot use {var.value!r}",
                    var.lineno,
                    "Write the value literally",
                )
            return var

        address = pick(_ADDRESS_VARS)
        port = pick(_PORT_VARS)
        user = pick(_USER_VARS)
        key_file = pick(_KEY_FILE_VARS)
        connection = pick(_CONNECTION_VARS)
        known_hosts = pick(_KNOWN_HOSTS_VARS)

        port_number = DEFAULT_SSH_PORT
        if port is not None:
            if not _DIGITS.match(port.value) or not 0 < int(port.value) < 65536:
                raise self.error(
                    f"port of host {name!r} must be a number from 1 to 65535, not {port.value!r}",
                    port.lineno,
                    "Fix ansible_port",
                )
            port_number = int(port.value)

        kind: Literal["ssh", "local"] = "ssh"
        if connection is not None:
            if connection.value == "local":
                kind = "local"
            elif connection.value not in _SSH_CONNECTIONS:
                raise self.error(
                    f"host {name!r} uses ansible_connection={connection.value}, which "
                    "clipper-deploy does not support",
                    connection.lineno,
                    "Use ansible_connection=ssh (the default) or ansible_connection=local",
                )

        key_path = self._path_var(key_file)
        known_hosts_path = self._path_var(known_hosts)

        return Host(
            name=name,
            address=address.value if address is not None and address.value else name,
            port=port_number,
            user=user.value if user is not None and user.value else None,
            key_file=key_path,
            connection=kind,
            known_hosts=known_hosts_path,
            vars={key: var.value for key, var in merged.items()},
            groups=groups,
        )


# --------------------------------------------------------------------------- tokens


def _shell_split(line: str) -> list[str]:
    """Split a host line like a POSIX shell, dropping a trailing ``# comment`` (as Ansible)."""
    try:
        tokens = shlex.split(line, comments=True)
    except ValueError as exc:
        raise _LineError(
            f"cannot split the host line: {str(exc).lower()}",
            "Close the quote, or escape a literal quote or backslash with a backslash",
        ) from None
    if not tokens:  # only possible for a line like `"" # x`; keep the message useful
        raise _LineError("expected a host name", "Write the host name first on the line")
    return tokens


def _host_var(token: str) -> tuple[str, str]:
    key, sep, value = token.partition("=")
    if not sep:
        raise _LineError(
            f"expected key=value after the host name, got {token!r}",
            'Write variables as key=value, and quote values that contain spaces: key="two words"',
        )
    _check_var_name(key)
    return key, _literal_string(value)


def _check_var_name(key: str) -> None:
    if not key:
        raise _LineError("variable without a name before '='", "Write key=value")
    if any(ch.isspace() for ch in key):
        raise _LineError(
            f"variable name {key!r} contains spaces", "Variable names are single words"
        )


def _vars_value(raw: str) -> str:
    """The string value of a ``[group:vars]`` line's right-hand side."""
    raw = raw.strip()
    if raw[:1] in ("'", '"'):
        quote, index = raw[0], 1
        while index < len(raw) and raw[index] != quote:
            index += 2 if raw[index] == "\\" else 1
        if index >= len(raw):
            raise _LineError(
                "unbalanced quotes in the value",
                f"Close the value with {quote}, or escape a literal quote with a backslash",
            )
        rest = raw[index + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise _LineError(
                f"unexpected text {rest!r} after the quoted value",
                "Quote the whole value, or put a space before a # comment",
            )
        quoted = raw[: index + 1]
        value = _literal_string(quoted)
        # A quoted value Python cannot read (a bad escape like "\\x"): keep what is inside.
        return quoted[1:-1] if value == quoted else value
    return re.split(r"\s+#", raw, maxsplit=1)[0]


def _literal_string(text: str) -> str:
    """``text`` read like Ansible does: the string it evaluates to, else ``text`` itself."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text
    return value if isinstance(value, str) else text


def _expand_host_pattern(token: str) -> tuple[list[str], int | None]:
    """Split ``name[:port]`` and expand the ranges in ``name``."""
    if token == "---":
        raise _LineError(
            "this looks like a YAML inventory", "Only the INI inventory format is supported"
        )
    depth, colons = 0, []
    for index, char in enumerate(token):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == ":" and depth == 0:
            colons.append(index)
        if depth not in (0, 1):
            break
    if depth != 0:
        raise _LineError(
            f"unbalanced brackets in host name {token!r}",
            "A range looks like web[1:3] or web[01:10]",
        )
    name, port = token, None
    if len(colons) == 1:
        name, port_text = token[: colons[0]], token[colons[0] + 1 :]
        if not name:
            raise _LineError("missing host name before ':'", "Write name:port, e.g. web1:2222")
        if not _DIGITS.match(port_text) or not 0 < int(port_text) < 65536:
            raise _LineError(
                f"bad port {port_text!r} after the host name",
                "Write name:port with a port from 1 to 65535, e.g. web1:2222, or use ansible_port=",
            )
        port = int(port_text)
    elif len(colons) > 1 and not _IPV6.match(token):
        raise _LineError(
            f"cannot tell the host name from a port in {token!r}",
            "Write name:port with a single colon, or set ansible_port=",
        )
    return _expand_ranges(name), port


def _expand_ranges(name: str) -> list[str]:
    """Expand every ``[start:end(:step)]`` in ``name``, left to right."""
    start = name.find("[")
    end = name.find("]")
    if start == -1 and end == -1:
        return [name]
    if start == -1 or end == -1 or end < start:
        raise _LineError(
            f"unbalanced brackets in host name {name!r}",
            "A range looks like web[1:3] or web[01:10]",
        )
    head, body, tail = name[:start], name[start + 1 : end], name[end + 1 :]
    names: list[str] = []
    for item in _range_items(body):
        names.extend(_expand_ranges(head + item + tail))
    return names


def _range_items(body: str) -> list[str]:
    parts = body.split(":")
    example = "e.g. [1:3], [01:10], [a:c] or [1:10:2]"
    if len(parts) not in (2, 3):
        raise _LineError(
            f"bad host range [{body}]", f"Write [start:end] or [start:end:step], {example}"
        )
    first, last = parts[0] or "0", parts[1]
    if not last:
        raise _LineError(f"host range [{body}] has no end", f"Write the last value, {example}")
    step = 1
    if len(parts) == 3:
        if not _DIGITS.match(parts[2]) or int(parts[2]) == 0:
            raise _LineError(
                f"host range [{body}] has a bad step {parts[2]!r}",
                "The step is a positive whole number, e.g. [1:10:2]",
            )
        step = int(parts[2])
    if _DIGITS.match(first) and _DIGITS.match(last):
        width = len(first) if first.startswith("0") and len(first) > 1 else 0
        if width and len(last) != width:
            raise _LineError(
                f"zero-padded host range [{body}] has bounds of different widths",
                "Pad both bounds to the same width, e.g. [01:10]",
            )
        low, high = int(first), int(last)
        if low > high:
            raise _LineError(
                f"host range [{body}] starts after it ends",
                f"Write the smaller bound first, e.g. [{last}:{first}]",
            )
        return [str(number).zfill(width) for number in range(low, high + 1, step)]
    letters = string.ascii_letters
    if len(first) == 1 and len(last) == 1 and first in letters and last in letters:
        low, high = letters.index(first), letters.index(last)
        if low > high:
            raise _LineError(
                f"host range [{body}] starts after it ends",
                f"Write the earlier letter first, e.g. [{last}:{first}]",
            )
        return list(letters[low : high + 1 : step])
    raise _LineError(
        f"bad host range [{body}]",
        f"Both bounds must be numbers or both single letters, {example}",
    )
