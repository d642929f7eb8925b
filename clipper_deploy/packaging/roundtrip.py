"""Prove that a payload loads -- and runs on a sample input -- in a clean Python.

A clean Python is ``python -I`` started in an empty directory: no access to the caller's
globals, to ``PYTHONPATH`` or to the directory the user's scripts live in; only installed
distributions. The subprocess also reports what the function needs: the modules its pickle
references (every ``find_class`` and cloudpickle ``subimport``) and the imports its code runs on
the sample input. Those two do not depend on what was imported before, which keeps ``auto``
mode deterministic.

Starting a Python and importing scikit-learn takes about a second here, which would dominate a
warm redeploy. So after a run, a *warm worker* is started in the background: a clean ``python
-I`` that imports the installed modules the last payload used and then waits. The next round
trip forks a child from it; the child loads the new payload and exits. The worker never loads
a payload itself, so every child starts from the same clean state. Workers are keyed by the
interpreter and the modification times of its site-packages, so a package installed or removed
in between gets a fresh worker.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle

from clipper_deploy.packaging.closure import installed_roots
from clipper_deploy.packaging.errors import RoundTripError

_CHILD_SOURCE = (Path(__file__).with_name("_roundtrip_child.py")).read_text(encoding="utf-8")
_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_TRACEBACK_LINES = 20
_READY_WAIT = 60.0
WARM_ENV = "CLIPPER_DEPLOY_WARM_ROUNDTRIP"


@dataclass(frozen=True)
class RoundTripResult:
    """What the clean subprocess saw."""

    refs: tuple[str, ...]
    imports: tuple[str, ...]
    has_output: bool
    output: Any
    seconds: float
    warm: bool

    @property
    def modules(self) -> tuple[str, ...]:
        """Every module the function needed: pickle references and sample-run imports."""
        return tuple(sorted(set(self.refs) | set(self.imports)))


def child_env() -> dict[str, str]:
    """The environment of round-trip processes: the caller's, with one BLAS thread."""
    env = dict(os.environ)
    for var in _THREAD_VARS:
        env.setdefault(var, "1")
    return env


def env_fingerprint() -> tuple[tuple[str, int], ...]:
    """Modification times of the site-packages directories (they change on (un)install)."""
    out: list[tuple[str, int]] = []
    for root in installed_roots():
        with contextlib.suppress(OSError):
            out.append((root, os.stat(root).st_mtime_ns))
    return tuple(out)


class _Worker:
    """A warm ``python -I`` that forks one child per job."""

    def __init__(self, python: str, preload: tuple[str, ...], key: tuple[Any, ...]) -> None:
        self.key = key
        self.preload = preload
        self.dir = tempfile.mkdtemp(prefix="clipper-roundtrip-worker-")
        preload_file = os.path.join(self.dir, "preload.json")
        Path(preload_file).write_text(json.dumps(list(preload)), encoding="utf-8")
        self.proc = subprocess.Popen(
            [python, "-I", "-c", _CHILD_SOURCE, "serve", preload_file],
            cwd=self.dir,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.ready = False

    def _readline(self, timeout: float) -> str | None:
        stdout = self.proc.stdout
        assert stdout is not None
        ready, _, _ = select.select([stdout], [], [], max(timeout, 0))
        if not ready:
            return None
        return stdout.readline()

    def run(self, job: dict[str, str], timeout: float) -> int | None:
        """Run ``job`` in a forked child; its wait status, or ``None`` if the worker failed."""
        if not self.ready:
            if self._readline(min(timeout, _READY_WAIT)) != "ready\n":
                return None  # still importing (or broken): the caller runs a fresh interpreter
            self.ready = True
        deadline = time.monotonic() + timeout
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write(json.dumps(job) + "\n")
            stdin.flush()
        except OSError:
            return None
        line = self._readline(deadline - time.monotonic())
        if line is None:
            return self._timed_out(timeout)
        if not line:
            return None
        return int(json.loads(line)["status"])

    def _timed_out(self, timeout: float) -> int:
        self.close()
        raise RoundTripError(
            f"The round-trip check did not finish within {timeout:.0f} s. Make sure the "
            "function returns promptly on the sample input (or pass a smaller sample).",
            stage="process",
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """Stop the worker and any child it forked (they share its process group)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class RoundTripper:
    """Runs round trips, fresh or through a warm worker (see the module docstring)."""

    def __init__(self, python: str | None = None, *, warm: bool = True) -> None:
        self.python = python or sys.executable
        self.warm = warm
        self._worker: _Worker | None = None
        self._lock = threading.Lock()

    def run(
        self,
        payload: bytes | Path,
        *,
        label: str,
        sample: Any = None,
        has_sample: bool = False,
        by_value: tuple[str, ...] = (),
        timeout: float = 300.0,
    ) -> RoundTripResult:
        """Load ``payload`` (the pickle's bytes, or the file holding it: read in place, never
        copied) in a clean Python (and call it on ``sample``); raise on failure."""
        workdir = Path(tempfile.mkdtemp(prefix="clipper-roundtrip-"))
        try:
            job = self._write_job(workdir, payload, sample if has_sample else None, has_sample)
            with self._lock:
                result, warm = self._execute(job, workdir, timeout)
                if result.get("ok") and self.warm:
                    self._refresh_worker(result, by_value)
            return self._interpret(result, job, label, warm)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    @staticmethod
    def _write_job(
        workdir: Path, payload: bytes | Path, sample: Any, has_sample: bool
    ) -> dict[str, str]:
        job = {
            "payload": str(
                payload.resolve() if isinstance(payload, Path) else workdir / "func.pkl"
            ),
            "sample": "",
            "result": str(workdir / "result.json"),
            "output": str(workdir / "output.pkl"),
            "log": str(workdir / "log.txt"),
        }
        if not isinstance(payload, Path):
            Path(job["payload"]).write_bytes(payload)
        if has_sample:
            job["sample"] = str(workdir / "sample.pkl")
            Path(job["sample"]).write_bytes(cloudpickle.dumps(sample))
        return job

    def _execute(
        self, job: dict[str, str], workdir: Path, timeout: float
    ) -> tuple[dict[str, Any], bool]:
        worker = self._worker
        if worker is not None and worker.key == self._key() and worker.alive():
            status = worker.run(job, timeout)
            if status is not None and os.path.exists(job["result"]):
                return _read_result(job), True
            self._drop_worker()
        return self._run_fresh(job, workdir, timeout), False

    def _run_fresh(self, job: dict[str, str], workdir: Path, timeout: float) -> dict[str, Any]:
        try:
            proc = subprocess.run(
                [self.python, "-I", "-c", _CHILD_SOURCE, "once", json.dumps(job)],
                cwd=workdir,
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RoundTripError(
                f"The round-trip check did not finish within {timeout:.0f} s. Make sure the "
                "function returns promptly on the sample input (or pass a smaller sample).",
                stage="process",
            ) from None
        if not os.path.exists(job["result"]):
            details = (proc.stderr or proc.stdout or "").strip()
            raise RoundTripError(
                f"The clean Python that checks the payload ({self.python}) exited with status "
                f"{proc.returncode} before reporting:\n{_tail(details)}",
                stage="process",
                details=details,
            )
        return _read_result(job)

    def _key(self) -> tuple[Any, ...]:
        return (self.python, env_fingerprint())

    def _refresh_worker(self, result: dict[str, Any], by_value: tuple[str, ...]) -> None:
        skip = set(by_value) | {"__main__"}
        wanted = {
            m
            for m in [*result.get("refs", ()), *result.get("imports", ())]
            if m.split(".")[0] not in skip
        }
        key = self._key()
        worker = self._worker
        if worker is not None and worker.key == key and worker.alive():
            if wanted <= set(worker.preload):
                return
            wanted |= set(worker.preload)
        self._drop_worker()
        self._worker = _Worker(self.python, tuple(sorted(wanted)), key)

    def _drop_worker(self) -> None:
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def close(self) -> None:
        """Stop the warm worker, if any."""
        with self._lock:
            self._drop_worker()

    def _interpret(
        self, result: dict[str, Any], job: dict[str, str], label: str, warm: bool
    ) -> RoundTripResult:
        if not result.get("ok"):
            raise _failure(result, job, label)
        output = None
        if result.get("has_output"):
            with open(job["output"], "rb") as f:
                output = cloudpickle.load(f)
        return RoundTripResult(
            refs=tuple(result.get("refs", ())),
            imports=tuple(result.get("imports", ())),
            has_output=bool(result.get("has_output")),
            output=output,
            seconds=float(result.get("seconds", 0.0)),
            warm=warm,
        )


def _read_result(job: dict[str, str]) -> dict[str, Any]:
    with open(job["result"], encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    log = Path(job["log"])
    if log.exists():
        data.setdefault("log", log.read_text(encoding="utf-8", errors="replace"))
    return data


def _tail(text: str, lines: int = _TRACEBACK_LINES) -> str:
    parts = text.rstrip().splitlines()
    return "\n".join(parts[-lines:])


def _failure(result: dict[str, Any], job: dict[str, str], label: str) -> RoundTripError:
    stage = str(result.get("stage", "load"))
    error = str(result.get("error", "unknown error"))
    tb = str(result.get("traceback", ""))
    if stage == "load":
        missing = result.get("missing_module")
        hint = (
            f"The module {missing!r} is not installed here. If it is your own code, import it "
            "before deploying (modules loaded at deploy time are shipped by value); if it is a "
            "package, install it with pip or conda in the environment you deploy from."
            if missing
            else "Deploy from the same Python and package versions the function was made with."
        )
        message = f"{label} did not load in a clean Python: {error}. {hint}"
    elif stage == "sample":
        message = (
            f"{label} loaded in a clean Python but raised on the sample input: {error}. Fix "
            "the function (or the sample input) so the call succeeds; traceback:\n" + _tail(tb)
        )
    else:
        message = (
            f"{label} ran on the sample input in a clean Python, but its output cannot be "
            f"pickled back ({error}). Return a list or a numpy array of predictions."
        )
    return RoundTripError(message, stage=stage, details=tb)


_default: RoundTripper | None = None
_default_lock = threading.Lock()


def default_roundtripper() -> RoundTripper:
    """The process-wide :class:`RoundTripper` (its warm worker is stopped at exit).

    Set ``CLIPPER_DEPLOY_WARM_ROUNDTRIP=0`` to run every check in a fresh interpreter and keep
    no worker around (it holds the imported libraries in memory between deploys).
    """
    global _default
    with _default_lock:
        if _default is None:
            _default = RoundTripper(warm=os.environ.get(WARM_ENV, "1") != "0")
            atexit.register(_default.close)
        return _default


def shutdown_workers() -> None:
    """Stop the process-wide warm worker (the next round trip starts fresh)."""
    if _default is not None:
        _default.close()
