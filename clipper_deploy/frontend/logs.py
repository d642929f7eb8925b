"""The frontend's log: ``<state-dir>/frontend.log``, size-capped and rotated.

:func:`configure` sends every log record to a :class:`logging.handlers.RotatingFileHandler`
(``--log-max-bytes``, default 10 MiB, ``--log-backups`` older files kept, default 3: at most
40 MiB on disk). A refused request is one line (see :mod:`~clipper_deploy.frontend.http`), never
a traceback; characters that cannot be written (a lone surrogate in a path) are escaped, so a
hostile request cannot break the log either.
"""

from __future__ import annotations

import logging
import logging.handlers

from clipper_deploy.frontend.config import FrontendConfig

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(config: FrontendConfig) -> logging.Handler:
    """Log to the rotated ``frontend.log`` of ``config``; returns the handler."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        config.log_path,
        maxBytes=config.log_max_bytes,
        backupCount=config.log_backups,
        encoding="utf-8",
        errors="backslashreplace",
    )
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("aiohttp.access").disabled = True
    logging.getLogger("aiohttp.server").setLevel(logging.WARNING)
    return handler
