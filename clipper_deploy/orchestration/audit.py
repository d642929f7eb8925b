"""The audit log: who did what to which model, on which hosts, when, and how it ended.

Every deploy, rollout, rollback, stop and scheduled run appends one JSON line to
``<root>/audit.log`` on the ``[clipper]`` host, so every deployer of a fleet writes to, and
reads, the same history::

    {"action": "rollout", "detail": null, "hosts": ["h1", "h2"], "model": "iris",
     "result": "ok", "time": "2024-05-01T10:00:00Z", "user": "alice@laptop", "version": "7"}

=============  ==================================================================
``time``       when the event was recorded, UTC, ISO 8601 (``...Z``)
``user``       who ran it: ``user@machine`` of the deployer
``action``     ``deploy``, ``rollout``, ``rollback``, ``stop``, ``scheduled-redeploy``...
``model``      the model's name
``version``    the model version acted on, or ``null``
``hosts``      the inventory names of the hosts involved
``result``     ``ok`` or ``failed`` (any short word is kept, e.g. ``partial``)
``detail``     the error text for failures (trimmed to 1000 characters), or ``null``
=============  ==================================================================

A line may also hold ``hosts_omitted`` (how many host names did not fit, see below).

Appending is one ``printf '%s\\n' LINE >> audit.log`` per event: the file is opened with
``O_APPEND`` and bash and dash write a line shorter than 4096 bytes with a single
``write()``, which Linux file systems never interleave with another append. Lines are kept
under :data:`MAX_LINE_BYTES` by trimming ``detail`` and then the host list, so concurrent
deployers never corrupt each other's lines (on a local file system; NFS gives no such
promise). Reading skips lines that are not JSON objects (a disk that filled mid-line, a hand
edit) with an :class:`AuditLogWarning` naming the line, instead of failing.

:func:`format_table` renders events for ``invoke audit [MODEL]``; the builders
(``audit_event``, ``encode_event``, ``*_command``, ``parse_events``) are pure and
:class:`AuditLog` runs the commands.
"""

from __future__ import annotations

import json
import shlex
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from .remote_files import (
    DEFAULT_ROOT,
    Runner,
    StateFileError,
    check_root,
    local_user,
    run_script,
)

__all__ = [
    "FIELDS",
    "MAX_DETAIL_CHARS",
    "MAX_LINE_BYTES",
    "AuditLog",
    "AuditLogWarning",
    "append_command",
    "audit_event",
    "encode_event",
    "format_table",
    "parse_events",
    "read_command",
]

#: The fields of every event, in display order.
FIELDS = ("time", "user", "action", "model", "version", "hosts", "result", "detail")
#: Longest ``detail`` kept; the rest becomes "...".
MAX_DETAIL_CHARS = 1000
#: Longest line written (newline included): one ``write()`` for bash's and dash's printf.
MAX_LINE_BYTES = 4000

_ABSENT_STATUS = 3


class AuditLogWarning(UserWarning):
    """A line of the audit log could not be read and was skipped."""


def audit_event(
    action: str,
    model: str,
    *,
    version: str | None = None,
    hosts: Iterable[Any] = (),
    result: str = "ok",
    detail: str | BaseException | None = None,
    user: str | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """One event as a dict with every field of :data:`FIELDS`.

    ``hosts`` may be names or objects with a ``name`` (inventory hosts); ``detail`` may be an
    exception (its type and message are kept), and is trimmed to :data:`MAX_DETAIL_CHARS`.
    ``user`` defaults to this process's ``user@machine`` and ``time`` to now.
    """
    if not action or not isinstance(action, str):
        raise ValueError(f"an audit event needs an action, not {action!r}")
    if not result or not isinstance(result, str) or any(ch.isspace() for ch in result):
        raise ValueError(f"an audit result is one word such as ok or failed, not {result!r}")
    if isinstance(detail, BaseException):
        detail = f"{type(detail).__name__}: {detail}"
    if detail is not None:
        detail = str(detail).strip()
        if len(detail) > MAX_DETAIL_CHARS:
            detail = detail[: MAX_DETAIL_CHARS - 3].rstrip() + "..."
    moment = time if time is not None else datetime.now(UTC)
    return {
        "time": _iso(moment),
        "user": user if user is not None else local_user(),
        "action": action,
        "model": model,
        "version": None if version is None else str(version),
        "hosts": [_host_name(host) for host in hosts],
        "result": result,
        "detail": detail or None,
    }


def encode_event(event: dict[str, Any]) -> str:
    """``event`` as one JSON line (no newline) of at most :data:`MAX_LINE_BYTES` - 1 bytes.

    Too long a line loses the end of ``detail`` first, then host names from the end of
    ``hosts`` (their number goes to ``hosts_omitted``). Raises ``ValueError`` if even that
    does not fit (enormous model or user names).
    """
    event = dict(event)
    line = _dumps(event)
    limit = MAX_LINE_BYTES - 1
    if len(line) > limit and event.get("detail"):
        excess = len(line) - limit
        detail = str(event["detail"])
        event["detail"] = detail[: max(0, len(detail) - excess - 3)] + "..."
        line = _dumps(event)
    hosts = list(event.get("hosts") or [])
    omitted = int(event.get("hosts_omitted") or 0)
    while len(line) > limit and hosts:
        hosts.pop()
        omitted += 1
        event["hosts"], event["hosts_omitted"] = hosts, omitted
        line = _dumps(event)
    if len(line) > limit:
        raise ValueError(f"audit event does not fit in {MAX_LINE_BYTES} bytes: {line[:200]}...")
    return line


def append_command(root: str, line: str) -> str:
    """The command that appends ``line`` (no newline in it) to ``<root>/audit.log``."""
    if "\n" in line or "\r" in line:
        raise ValueError("an audit line cannot contain a line break")
    root = check_root(root)
    return (
        f"mkdir -p -- {shlex.quote(root)} && "
        f"printf '%s\\n' {shlex.quote(line)} >> {shlex.quote(f'{root}/audit.log')}"
    )


def read_command(root: str) -> str:
    """The command that prints ``<root>/audit.log``; exit status 3 when there is none yet."""
    path = shlex.quote(f"{check_root(root)}/audit.log")
    return f"test -e {path} || exit {_ABSENT_STATUS}; cat -- {path}"


def parse_events(text: str, source: str = "audit.log") -> list[dict[str, Any]]:
    """The events in ``text`` (one JSON object a line), in file order.

    Blank lines are ignored; other lines that are not JSON objects are skipped with an
    :class:`AuditLogWarning` naming ``source`` and the line number.
    """
    events = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            shown = line if len(line) <= 80 else line[:77] + "..."
            warnings.warn(
                f"{source}:{number}: skipped a line that is not an audit event: {shown!r}",
                AuditLogWarning,
                stacklevel=2,
            )
            continue
        events.append(event)
    return events


class AuditLog:
    """The audit log on the host ``connection`` reaches (the ``[clipper]`` host).

    ``connection`` is a ``fabric.Connection`` or ``LocalConnection`` (anything with Fabric's
    ``run()``). ``user`` overrides the recorded ``user@machine``; ``now`` is for tests.
    """

    def __init__(
        self,
        connection: Runner,
        root: str = DEFAULT_ROOT,
        *,
        user: str | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.connection = connection
        self.root = check_root(root)
        self.user = user
        self._now = now

    @property
    def path(self) -> str:
        """The log file on the ``[clipper]`` host."""
        return f"{self.root}/audit.log"

    def record(
        self,
        action: str,
        model: str,
        *,
        version: str | None = None,
        hosts: Iterable[Any] = (),
        result: str = "ok",
        detail: str | BaseException | None = None,
    ) -> dict[str, Any]:
        """Append one event (see :func:`audit_event`) and return it as written.

        Raises :class:`~clipper_deploy.orchestration.remote_files.StateFileError` when the
        log cannot be written.
        """
        event = audit_event(
            action,
            model,
            version=version,
            hosts=hosts,
            result=result,
            detail=detail,
            user=self.user,
            time=self._now(),
        )
        line = encode_event(event)
        run_script(
            self.connection,
            append_command(self.root, line),
            what=f"append to the audit log {self.path}",
        )
        return json.loads(line)

    @contextmanager
    def track(
        self,
        action: str,
        model: str,
        *,
        version: str | None = None,
        hosts: Iterable[Any] = (),
    ) -> Iterator[dict[str, Any]]:
        """Record the ``with`` block's outcome: ``ok``, or ``failed`` with the exception.

        The yielded dict may be updated inside the block (``hosts``, ``version``, ``result``
        such as ``partial``, ``detail``) before the event is written. The block's exception is
        re-raised; a failure to write the log is then only warned about, so it never hides
        the block's own error (nor turns a finished deploy into a failed one).
        """
        fields: dict[str, Any] = {
            "version": version,
            "hosts": list(hosts),
            "result": "ok",
            "detail": None,
        }
        try:
            yield fields
        except BaseException as exc:
            fields["result"] = "failed"
            fields["detail"] = fields["detail"] or exc
            self._record_quietly(action, model, fields)
            raise
        self._record_quietly(action, model, fields)

    def _record_quietly(self, action: str, model: str, fields: dict[str, Any]) -> None:
        try:
            self.record(action, model, **fields)
        except (StateFileError, OSError, ValueError) as exc:
            warnings.warn(
                f"could not write the audit log {self.path}: {exc}", RuntimeWarning, stacklevel=3
            )

    def read(self, model: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The events, oldest first; only ``model``'s if given, only the last ``limit``.

        An absent log gives ``[]``; unreadable lines are skipped with an
        :class:`AuditLogWarning`.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit!r}")
        result = run_script(
            self.connection,
            read_command(self.root),
            what=f"read the audit log {self.path}",
            ok=(0, _ABSENT_STATUS),
        )
        if result.return_code == _ABSENT_STATUS:
            return []
        events = parse_events(result.stdout, source=self.path)
        if model is not None:
            events = [event for event in events if event.get("model") == model]
        if limit is not None:
            events = events[len(events) - limit :] if limit else []
        return events


def format_table(events: Sequence[dict[str, Any]], *, title: str | None = None) -> Any:
    """``events`` as a table for ``invoke audit``, oldest first, fitted to the width it is
    printed at (:func:`clipper_deploy.display.tables.audit_table`)."""
    from clipper_deploy.display.tables import audit_table

    return audit_table(events, title=title)


def _host_name(host: Any) -> str:
    name = getattr(host, "name", None)
    return name if isinstance(name, str) else str(host)


def _dumps(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=False, ensure_ascii=True, separators=(", ", ": "))


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
