"""Steps and plans: what an operation will do, as data, before anything is done.

A :class:`Step` is one change on one host (or on the frontend): its kind, what it acts on, the
shell command that makes it (built by :mod:`~clipper_deploy.hosts.docker_commands`), and a
one-line reason read off the facts. A :class:`Plan` is the ordered steps of one operation;
``--check`` prints it (:meth:`Plan.describe`), the executor (:mod:`.apply`) runs it.

Kinds, in the order a deploy runs them::

    register   frontend   publish the version (not yet current)
    ship-base  host       stream the base image into ``docker import`` (or pull it), or
                          have a host that holds it pass it on (``... from h1``)
    upload     host       send the bundle's missing blobs and assemble it (or relayed)
    build      host       ``docker build`` the version's image (its environment)
    tag        host       ``docker tag`` an image of the same environment for the version
    start      host       start a replica (``docker run``; ``docker start`` for a retained one)
    wait       host       until the host's new replicas serve (they dial the frontend)
    switch     frontend   make the version current
    retire     host       drain, then ``docker stop`` other versions (kept for rollback)
    prune      host       remove an old version's containers and image (beyond ``retain``)
    remove     host       ``docker rm --force`` containers (``stop``)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

FRONTEND = "frontend"
"""The ``host`` of steps that are calls to the frontend's admin API."""

KINDS = (
    "register",
    "ship-base",
    "upload",
    "build",
    "load",
    "tag",
    "start",
    "wait",
    "switch",
    "retire",
    "prune",
    "remove",
)

CHANGES_TO_SERVING = (
    "register",
    "ship-base",
    "upload",
    "build",
    "load",
    "tag",
    "start",
    "wait",
    "switch",
)
"""Kinds that bring a version into service (a deploy without them is already serving)."""


@dataclass(frozen=True)
class Step:
    """One change: ``kind`` (see :data:`KINDS`) on ``host`` (or :data:`FRONTEND`), acting on
    ``subject``, made by ``command`` (a shell line; "" for frontend calls and uploads),
    because of ``reason``. ``payload`` carries what the executor needs (replica specs,
    container records) and takes no part in comparisons."""

    kind: str
    host: str
    subject: str
    reason: str
    command: str = ""
    payload: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown step kind {self.kind!r}; known: {', '.join(KINDS)}")

    @property
    def line(self) -> str:
        """``host: kind subject``: the step in one line, without its reason."""
        return f"{self.host}: {self.kind} {self.subject}"

    def describe(self) -> str:
        return f"{self.line}  ({self.reason})"


@dataclass(frozen=True)
class Plan:
    """The ordered steps of one operation; ``unreadable`` names hosts whose facts could not be
    read (the executor fails them with that reason), ``notes`` are lines for the user."""

    operation: str
    steps: tuple[Step, ...] = ()
    unreadable: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def lines(self) -> list[str]:
        return [s.line for s in self.steps]

    def of_kind(self, *kinds: str) -> list[Step]:
        return [s for s in self.steps if s.kind in kinds]

    def on_host(self, host: str, kinds: Iterable[str] | None = None) -> list[Step]:
        wanted = set(kinds) if kinds is not None else None
        return [s for s in self.steps if s.host == host and (wanted is None or s.kind in wanted)]

    @property
    def changes_serving(self) -> bool:
        """True when the plan has a step that brings a version into service."""
        return bool(self.of_kind(*CHANGES_TO_SERVING))

    def describe(self) -> str:
        """The plan per host, for ``--check``: each step with its reason; "nothing to change"
        when there are no steps."""
        lines = [f"{self.operation}: {note}" for note in self.notes]
        for host, why in self.unreadable.items():
            lines.append(f"{host}: cannot be read: {why}")
        if not self.steps:
            lines.append(f"{self.operation}: nothing to change")
            return "\n".join(lines)
        hosts: list[str] = []
        for step in self.steps:
            if step.host not in hosts:
                hosts.append(step.host)
        count = len(self.steps)
        lines.append(f"{self.operation}: {count} step{'s' if count != 1 else ''}")
        for host in hosts:
            lines.append(f"  {host}:")
            lines += [
                f"    {s.kind} {s.subject}  ({s.reason})" for s in self.steps if s.host == host
            ]
        return "\n".join(lines)
