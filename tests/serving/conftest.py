"""Fixtures for the serving tests: a real frontend process, real runtime processes, real HTTP.

Every process a test starts is stopped in the fixture's teardown. Ports are picked free on
127.0.0.1; state lives in the test's tmp directory; the client config (token copies) is
redirected there too with ``XDG_CONFIG_HOME``. Helpers live in ``serving_helpers.py``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clipper_deploy.frontend.client import FrontendError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_helpers import (
    FrontendProcess,
    RuntimeProcess,
    keyed_env,
    pickle_function,
    seed_function,
)


@pytest.fixture(scope="session")
def seed_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the seed example's func.pkl."""
    return pickle_function(seed_function(), tmp_path_factory.mktemp("seed-model"))


@pytest.fixture
def model_dir(tmp_path: Path) -> Callable[[Callable[[Any], Any], str], Path]:
    """Factory: pickle a function into a fresh directory of this test."""

    def make(func: Callable[[Any], Any], name: str = "model") -> Path:
        return pickle_function(func, tmp_path / name)

    return make


@pytest.fixture
def client_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the client's config (token copies) at this test's tmp directory."""
    path = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(path))
    return path


@pytest.fixture
def frontend_factory(tmp_path: Path) -> Iterator[Callable[..., FrontendProcess]]:
    """Factory: start frontends (each with its own state dir); all stopped at teardown."""
    started: list[FrontendProcess] = []

    def make(*extra_args: str, name: str = "frontend") -> FrontendProcess:
        fe = FrontendProcess(tmp_path / name, list(extra_args))
        started.append(fe)
        return fe.start_fresh()

    yield make
    for fe in started:
        fe.stop()


@pytest.fixture
def frontend(frontend_factory: Callable[..., FrontendProcess]) -> FrontendProcess:
    """A running frontend with default settings."""
    return frontend_factory()


@pytest.fixture
def runtime_factory(seed_model_dir: Path) -> Iterator[Callable[..., RuntimeProcess]]:
    """Factory: start runtime processes; all killed at teardown."""
    started: list[RuntimeProcess] = []
    counter = iter(range(1, 1000))

    def make(
        frontend: FrontendProcess | None = None,
        *,
        model_dir: Path | None = None,
        name: str = "example_model",
        version: str = "1",
        input_type: str = "doubles",
        replica_id: str | None = None,
        port: int | None = None,
        wait: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> RuntimeProcess:
        env = {
            "CLIPPER_IP": "127.0.0.1",
            "CLIPPER_PORT": str(port if port is not None else frontend.replica_port),  # type: ignore[union-attr]
            "CLIPPER_MODEL_NAME": name,
            "CLIPPER_MODEL_VERSION": version,
            "CLIPPER_INPUT_TYPE": input_type,
            "CLIPPER_MODEL_PATH": str(model_dir or seed_model_dir),
            "CLIPPER_REPLICA_ID": replica_id or f"replica-{next(counter)}",
        }
        env.update(extra_env or {})
        if frontend is not None and "CLIPPER_REPLICA_KEY_FILE" not in env:
            with contextlib.suppress(FrontendError):  # not registered: it will be refused
                env = keyed_env(frontend, env)
        rt = RuntimeProcess(env)
        started.append(rt)
        return rt.wait_serving() if wait else rt

    yield make
    for rt in started:
        rt.stop()
