"""The settings the tasks read from Invoke's configuration instead of a flag on every call.

With the ``clipper-deploy`` command they come, lowest first, from the defaults below,
``/etc/clipper-deploy.yaml``, ``~/.clipper-deploy.yaml``, ``./clipper-deploy.yaml`` (the
working directory), ``CLIPPER_DEPLOY_*`` environment variables, ``-f FILE``, and then the
task's own flags::

    # clipper-deploy.yaml
    inventory: hosts/production.ini
    lock_wait: 60

    $ CLIPPER_DEPLOY_LOCK_WAIT=30 clipper-deploy deploy --playbook playbooks/example.yml

(YAML, JSON and ``.py`` files are read, as Invoke does.)
"""

from __future__ import annotations

from typing import Any

from invoke import Context, Exit

CLI_DEFAULTS: dict[str, Any] = {
    "inventory": None,
    "lock_wait": 0.0,
}
"""``inventory``: the inventory file (None: the test bed's when one is up, else
``./inventory.ini``). ``lock_wait``: seconds a deploy, rollout or rollback waits for another
one of the same model (0: fail at once, naming the holder)."""


def setting(c: Context, name: str, given: Any = None) -> Any:
    """``given`` (a flag the user passed) if not None, else the configured ``name``."""
    if given is not None:
        return given
    return c.config.get(name, CLI_DEFAULTS.get(name))


def seconds_setting(c: Context, name: str, given: Any = None) -> float:
    """A setting that holds seconds, as a float; a bad value ends the task saying where."""
    value = setting(c, name, given)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if seconds < 0:
        source = f"--{name.replace('_', '-')}" if given is not None else f"the {name} setting"
        raise Exit(f"error: {source} must be a number of seconds >= 0, not {value!r}", code=1)
    return seconds
