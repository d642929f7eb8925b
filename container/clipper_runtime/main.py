"""The runtime's entry point: log the seed's stages, load the function, serve it.

The log lines are the seed's, exactly::

    Starting PythonContainer container
    Connecting to Clipper with <host:port>
    Loading provided Python prediction function
    Serving predictions for <input_type> input type.

(the last one once the function is loaded and the frontend has accepted the replica). A load
failure prints the traceback and a hint, and exits with status 1; a configuration error exits with
status 2; a prediction stuck beyond ``CLIPPER_PREDICT_TIMEOUT_S`` exits with status 3 (the
watchdog: the restart policy brings the container back). SIGTERM stops the runtime with status 0.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from types import FrameType

from clipper_runtime.config import ConfigError, RuntimeConfig
from clipper_runtime.loader import LoadError, load_function
from clipper_runtime.replica import Log, Replica, log_line

EXIT_LOAD_FAILED = 1
EXIT_BAD_CONFIG = 2


class Shutdown(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT; not an ``Exception``, so no handler eats it."""


def _shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown(signal.Signals(signum).name)


def main(env: Mapping[str, str] | None = None, log: Log = log_line) -> int:
    """Run the runtime; return the process exit status."""
    log("Starting PythonContainer container")
    try:
        config = RuntimeConfig.from_env(env)
    except ConfigError as exc:
        log(f"Configuration error: {exc}")
        return EXIT_BAD_CONFIG
    log(f"Connecting to Clipper with {config.address}")
    log("Loading provided Python prediction function")
    try:
        func = load_function(config.model_path)
    except LoadError as exc:
        log(f"Failed to load the prediction function from {config.model_path}:\n{exc}")
        return EXIT_LOAD_FAILED
    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    try:
        Replica(config, func, log).serve_forever()
    except Shutdown as exc:
        log(f"Stopping the container: received {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
