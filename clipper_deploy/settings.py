"""Defaults in one place: inventory groups, state roots, ports, retention, timeouts, inputs.

Every other module reads its defaults from here, so a default changes in one line. Nothing
here does I/O except :func:`default_cache_dir`, which reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path

# ------------------------------------------------------------------ inventory groups

FRONTEND_GROUP = "clipper"
"""The inventory group holding the one host that runs the frontend (and the fleet state)."""

MODEL_HOSTS_GROUP = "model_hosts"
"""The inventory group model containers go to unless a deploy names other hosts."""

# ------------------------------------------------------------------ roots

REMOTE_ROOT = "/var/lib/clipper-deploy"
"""Where each Docker host keeps ``blobs/`` and ``bundles/`` (content-addressed uploads)."""

DEFAULT_STATE_DIR = f"{REMOTE_ROOT}/frontend"
"""The frontend's state (SQLite, tokens), the fleet locks and the audit log, on ``[clipper]``."""
MODEL_DIR = "model"
"""A bundle's directory of model files (the function's pickle and ``model.json``): not built
into the image; hosts mount it read-only into the version's containers."""


def default_cache_dir() -> Path:
    """The client's cache: ``$CLIPPER_DEPLOY_CACHE``, else ``$XDG_CACHE_HOME/clipper-deploy``,
    else ``~/.cache/clipper-deploy``."""
    explicit = os.environ.get("CLIPPER_DEPLOY_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clipper-deploy"


def default_testbed_dir() -> Path:
    """Where ``invoke testbed.up`` keeps the local test bed: ``$CLIPPER_TESTBED_DIR`` or
    ``./.testbed``."""
    return Path(os.environ.get("CLIPPER_TESTBED_DIR") or ".testbed").resolve()


TESTBED_INVENTORY = "inventory.ini"
"""The test bed's inventory file, in its directory; tasks use it by default while a bed is up."""

# ------------------------------------------------------------------ frontend ports

DEFAULT_QUERY_PORT = 1337
DEFAULT_ADMIN_PORT = 1338
DEFAULT_REPLICA_PORT = 7000

# ------------------------------------------------------------------ operations

DEFAULT_RETAIN = 3
"""Versions of a model kept on each host (the current one included), for rollbacks."""

MAX_PARALLEL_HOSTS = 4
"""Hosts worked on at once by one operation."""

RELAY_WIDTH = 2
"""Hosts one holder of a layer (base image, bundle) passes it to at once; 0 turns host-to-host
relays off (the client then sends to every host itself)."""

RELAY_MIN_BYTES = 1 << 20
"""A host that lacks fewer bytes of a bundle than this gets them from the client directly
(a relay costs a few round trips; it pays for layers, not for a new ``func.pkl``)."""

RELAY_KEY_LIFETIME_MIN = 30
"""Minutes a relay's one-operation key stays valid on a host if the client never revokes it."""

DEFAULT_AUTHORIZED_KEYS = "~/.ssh/authorized_keys"
"""The deploy user's authorized_keys on the hosts (``clipper_authorized_keys_file``), where a
relay adds and removes its one-operation key."""

CONNECT_TIMEOUT = 10.0
"""Seconds to wait for an SSH connection (TCP connect, banner, authentication, each)."""

READY_TIMEOUT = 120.0
"""Seconds a new replica has to load its function and register with the frontend."""

DRAIN_TIMEOUT = 10.0
"""Seconds to wait for a retiring replica's batches in flight before it is stopped."""

STOP_TIMEOUT = 10
"""Seconds ``docker stop`` gives a retiring container before it is killed."""

BUILD_TIMEOUT = 1800.0
"""Seconds a ``docker build`` on a host may take."""

LOG_LINES_ON_FAILURE = 30
"""Log lines of a failed replica quoted in the error."""

# ------------------------------------------------------------------ model containers

CONTAINER_USER = "10001:10001"
"""uid:gid model containers run as (never root)."""

DEFAULT_CPUS = 1.0
"""CPU limit of a model container unless the playbook sets ``container.cpus``."""

DEFAULT_MEMORY = "2g"
"""Memory limit of a model container unless the playbook sets ``container.memory``."""

PIDS_LIMIT = 256
"""Processes and threads a model container may have (a fork bomb stops there)."""

TMP_SIZE = "64m"
"""The writable ``/tmp`` (tmpfs) of a model container, whose root file system is read-only."""

DEFAULT_NETWORK = "host"
"""Replicas dial the frontend, so no port is published; ``container.network`` changes it
(a host that runs its engine with a bridge can use ``bridge`` if the frontend's address is
reachable from it)."""

ENV_DIR = f"{REMOTE_ROOT}/env"
"""Each replica's environment file (``--env-file``, mode 0600) on its Docker host."""

KEYS_DIR = f"{REMOTE_ROOT}/keys"
"""Each replica's key on its Docker host: ``<KEYS_DIR>/<model>/<version>/<container>.key``,
mode 0600, owned by :data:`CONTAINER_USER`, in 0700 directories; bind-mounted read-only at
:data:`REPLICA_KEY_PATH`. Kept while the version is retained, removed when it is pruned or
stopped."""

REPLICA_KEY_PATH = "/run/clipper-deploy/replica.key"
"""Where a model container finds its key (the runtime's default ``CLIPPER_REPLICA_KEY_FILE``)."""

# ------------------------------------------------------------------ inputs

INPUT_TYPES = ("doubles", "floats", "ints", "bytes", "strings")
"""Clipper's input types."""

NUMPY_DTYPES = {"doubles": "float64", "floats": "float32", "ints": "int32"}
"""The numpy dtype a numeric input type arrives as in the container (as Clipper does)."""
