"""`invoke rollout | rollback | redeploy | audit` and `invoke lock.status|release`."""

from __future__ import annotations

import json as json_module
import threading
import time

from invoke import Collection, Context, task

from clipper_deploy.cli.common import (
    CHECK_HELP,
    INVENTORY_HELP,
    LOCK_WAIT_HELP,
    console,
    failing,
    open_clipper,
)
from clipper_deploy.cli.settings import seconds_setting
from clipper_deploy.display.tables import audit_table, lock_table
from clipper_deploy.orchestration.playbook import load_playbook


@task(
    help={
        "playbook": "the YAML plan (serial, max_fail_percentage, smoke queries)",
        "version": "version to roll out (default: the playbook's)",
        "lock_wait": LOCK_WAIT_HELP,
        "check": CHECK_HELP,
        "inventory": INVENTORY_HELP,
    }
)
def rollout(
    c: Context,
    playbook: str,
    version: str | None = None,
    lock_wait: float | None = None,
    check: bool = False,
    inventory: str | None = None,
) -> None:
    """Roll a new version out host batch by batch with health gates; reverts all on failure."""
    clipper = open_clipper(c, inventory, progress=not check)
    started = time.monotonic()
    with failing("Rollout"):
        book = load_playbook(playbook)
        if check:
            clipper.rollout_playbook(book, version, check=True)
            return
        clipper.start()
        wait = seconds_setting(c, "lock_wait", lock_wait)
        result = clipper.rollout_playbook(book, version, lock_wait=wait)
    tolerated = (
        f"; left on the old version: {', '.join(result.failed)}" if result and result.failed else ""
    )
    console.print(f"Rolled out in {time.monotonic() - started:.1f} s{tolerated}", markup=False)


@task(
    positional=["model"],
    help={
        "model": "the model to roll back",
        "to": "version to go back to (default: the one before the current)",
        "lock_wait": LOCK_WAIT_HELP,
        "check": CHECK_HELP,
        "inventory": INVENTORY_HELP,
    },
)
def rollback(
    c: Context,
    model: str,
    to: str | None = None,
    lock_wait: float | None = None,
    check: bool = False,
    inventory: str | None = None,
) -> None:
    """Switch a model back to a retained version in seconds (its containers are kept)."""
    clipper = open_clipper(c, inventory, progress=not check)
    started = time.monotonic()
    with failing("Rollback"):
        wait = seconds_setting(c, "lock_wait", lock_wait)
        version = clipper.rollback(model, to, lock_wait=wait, check=check)
    if check:
        return
    console.print(f"{model}:{version} serves ({time.monotonic() - started:.1f} s)", markup=False)


@task(
    help={
        "playbook": "a playbook whose function is a factory (file.py:train_and_build())",
        "schedule": "keep running: redeploy at every tick of the playbook's `schedule` (cron)",
        "max_runs": "with --schedule: stop after this many runs (default: run until Ctrl-C)",
        "lock_wait": LOCK_WAIT_HELP,
        "inventory": INVENTORY_HELP,
    }
)
def redeploy(
    c: Context,
    playbook: str,
    schedule: bool = False,
    max_runs: int | None = None,
    lock_wait: float | None = None,
    inventory: str | None = None,
) -> None:
    """Build a fresh function (e.g. retrain), bump the version and roll it out; or on a schedule."""
    clipper = open_clipper(c, inventory, progress=True)
    with failing("Redeploy"):
        book = load_playbook(playbook)
        clipper.start()
        if not schedule:
            wait = seconds_setting(c, "lock_wait", lock_wait)
            version = clipper.redeploy(book, lock_wait=wait)
            console.print(f"{book.model}:{version} serves", markup=False)
            return
        stop = threading.Event()
        console.print(f"Scheduler for {book.model}: `{book.schedule}` (Ctrl-C to stop)")
        try:
            clipper.schedule_redeploys(book, max_runs=max_runs, stop_event=stop)
        except KeyboardInterrupt:
            stop.set()


JSON_HELP = "print JSON for scripts (shape: docs/architecture.md, --json output)"


@task(
    help={
        "model": "only this model's events (Invoke has no optional positional arguments)",
        "limit": "only the last N events",
        "json": JSON_HELP,
        "inventory": INVENTORY_HELP,
    },
)
def audit(
    c: Context,
    model: str | None = None,
    limit: int | None = None,
    json: bool = False,
    inventory: str | None = None,
) -> None:
    """Who deployed, rolled out, rolled back or stopped what, when, where, and the result."""
    clipper = open_clipper(c, inventory)
    with failing("Audit"):
        log = clipper.audit_log()
        events = log.read(model, limit)
    if json:
        print(json_module.dumps({"log": log.path, "events": events}))
        return
    console.print(audit_table(events, title=f"Audit log {log.path}"))


@task(
    positional=["model"],
    help={"model": "the model", "json": JSON_HELP, "inventory": INVENTORY_HELP},
)
def lock_status(c: Context, model: str, json: bool = False, inventory: str | None = None) -> None:
    """Who holds a model's fleet lock, since when, for what."""
    with failing("Lock status"):
        lock = open_clipper(c, inventory).lock(model)
        holder = lock.status()
    if json:
        doc = {"model": model, "path": lock.path, "locked": holder is not None, "holder": holder}
        print(json_module.dumps(doc))
        return
    console.print(lock_table(model, holder))


@task(positional=["model"], help={"model": "the model", "inventory": INVENTORY_HELP})
def lock_release(c: Context, model: str, inventory: str | None = None) -> None:
    """Release a stale fleet lock (its holder died); check `lock.status` first."""
    holder = open_clipper(c, inventory).lock(model).force_release()
    console.print(f"released {holder}" if holder else f"{model} was not locked", markup=False)


lock = Collection("lock")
lock.add_task(lock_status, name="status")
lock.add_task(lock_release, name="release")
