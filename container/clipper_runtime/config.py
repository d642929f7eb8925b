"""The runtime's configuration, read from ``CLIPPER_*`` environment variables.

===============================  ==========================================================
``CLIPPER_IP``                   the frontend's address (default ``127.0.0.1``)
``CLIPPER_PORT``                 the frontend's replica port (default ``7000``)
``CLIPPER_MODEL_NAME``           model name to register (required)
``CLIPPER_MODEL_VERSION``        model version to register (required)
``CLIPPER_INPUT_TYPE``           ``doubles``, ``floats``, ``ints``, ``bytes`` or ``strings``
                                 (default ``doubles``)
``CLIPPER_MODEL_PATH``           directory holding ``func.pkl`` (default ``/model``)
``CLIPPER_REPLICA_ID``           this replica's id (default ``<hostname>-<pid>``)
``CLIPPER_PREDICT_TIMEOUT_S``    seconds one batch may run before the watchdog ends the
                                 process so the container restarts (default 15; 0: off)
``CLIPPER_REPLICA_KEY_FILE``     file holding this replica's key, which it proves at HELLO
                                 (default ``/run/clipper-deploy/replica.key``: the deploy
                                 bind-mounts a 0600 file there, read-only)
===============================  ==========================================================
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from clipper_runtime.protocol import INPUT_TYPES
from clipper_runtime.watchdog import DEFAULT_PREDICT_TIMEOUT_S

DEFAULT_KEY_FILE = "/run/clipper-deploy/replica.key"
MAX_KEY_BYTES = 1024


class ConfigError(Exception):
    """An environment variable is missing or invalid; the message says which and why."""


@dataclass(frozen=True)
class RuntimeConfig:
    """Everything the runtime needs to know, fixed at start."""

    clipper_ip: str
    clipper_port: int
    model_name: str
    model_version: str
    input_type: str
    model_path: str
    replica_id: str
    predict_timeout_s: float = DEFAULT_PREDICT_TIMEOUT_S
    key_file: str = DEFAULT_KEY_FILE

    def read_key(self) -> str | None:
        """This replica's key (the file's text, stripped), or None when there is no readable
        key file (the frontend will then refuse the replica, saying why)."""
        try:
            with open(self.key_file, "rb") as f:
                text = f.read(MAX_KEY_BYTES).decode("ascii", errors="replace").strip()
        except OSError:
            return None
        return text or None

    @property
    def address(self) -> str:
        """The frontend's replica endpoint as ``host:port``."""
        return f"{self.clipper_ip}:{self.clipper_port}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RuntimeConfig:
        """Read the configuration from ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        port_text = env.get("CLIPPER_PORT", "7000")
        try:
            port = int(port_text)
        except ValueError:
            raise ConfigError(f"CLIPPER_PORT must be a port number, got {port_text!r}") from None
        if not 0 < port < 65536:
            raise ConfigError(f"CLIPPER_PORT must be between 1 and 65535, got {port}")
        input_type = env.get("CLIPPER_INPUT_TYPE", "doubles")
        if input_type not in INPUT_TYPES:
            raise ConfigError(
                f"CLIPPER_INPUT_TYPE must be one of {', '.join(INPUT_TYPES)}, got {input_type!r}"
            )
        timeout_text = env.get("CLIPPER_PREDICT_TIMEOUT_S", str(DEFAULT_PREDICT_TIMEOUT_S))
        try:
            predict_timeout_s = float(timeout_text)
        except ValueError:
            raise ConfigError(
                f"CLIPPER_PREDICT_TIMEOUT_S must be a number of seconds, got {timeout_text!r}"
            ) from None
        if not 0 <= predict_timeout_s < float("inf"):
            raise ConfigError(
                "CLIPPER_PREDICT_TIMEOUT_S must be 0 (off) or a positive number of seconds, "
                f"got {timeout_text!r}"
            )
        missing = [k for k in ("CLIPPER_MODEL_NAME", "CLIPPER_MODEL_VERSION") if not env.get(k)]
        if missing:
            raise ConfigError(f"set {' and '.join(missing)}: the model this replica serves")
        return cls(
            clipper_ip=env.get("CLIPPER_IP", "127.0.0.1"),
            clipper_port=port,
            model_name=env["CLIPPER_MODEL_NAME"],
            model_version=env["CLIPPER_MODEL_VERSION"],
            input_type=input_type,
            model_path=env.get("CLIPPER_MODEL_PATH", "/model"),
            replica_id=env.get("CLIPPER_REPLICA_ID") or f"{socket.gethostname()}-{os.getpid()}",
            predict_timeout_s=predict_timeout_s,
            key_file=env.get("CLIPPER_REPLICA_KEY_FILE") or DEFAULT_KEY_FILE,
        )
