"""Apps, models, links and current versions, kept in SQLite and mirrored in memory.

Each model version also has a random secret (``replica_secrets``), made with the version and
deleted with it, from which every replica key of that version is derived
(:func:`~clipper_deploy.frontend.protocol.replica_key`); versions registered by an older
frontend get one when the store is opened.

The query path reads the in-memory mirror only; every change is written to SQLite first (one
transaction) and then applied in memory, so what survives a restart is exactly what was
acknowledged. All rules of the management API live here (an app links to one model of the same
input type, the first version of a model becomes current, ...); violations raise
:class:`~clipper_deploy.frontend.errors.ClipperError` with the status the API answers.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clipper_deploy.frontend.errors import (
    UNKNOWN_APP,
    UNKNOWN_MODEL,
    ClipperError,
    management_error,
)
from clipper_deploy.frontend.protocol import INPUT_TYPES, replica_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    input_type TEXT NOT NULL,
    default_output TEXT NOT NULL,
    latency_slo_micros INTEGER NOT NULL,
    linked_model TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    input_type TEXT NOT NULL,
    labels TEXT NOT NULL,
    container_name TEXT NOT NULL,
    model_data_path TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS current_versions (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replica_secrets (
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    secret TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
"""

DEFAULT_SLO_MICROS = 100_000
#: Longest latency SLO an application may have: 10 minutes.
MAX_SLO_MICROS = 600_000_000
#: Longest application, model or version name.
MAX_NAME_CHARS = 255


@dataclass
class App:
    """An application: the endpoint ``/{name}/predict`` and what it answers by default."""

    name: str
    input_type: str
    default_output: Any
    latency_slo_micros: int
    linked_model: str | None = None
    created: float = field(default_factory=time.time)

    @property
    def slo_s(self) -> float:
        """The latency SLO in seconds."""
        return self.latency_slo_micros / 1e6

    def to_json(self) -> dict[str, Any]:
        """Clipper's ``get_application`` shape."""
        return {
            "name": self.name,
            "input_type": self.input_type,
            "default_output": self.default_output,
            "latency_slo_micros": self.latency_slo_micros,
            "linked_models": [self.linked_model] if self.linked_model else [],
        }


@dataclass
class Model:
    """One version of a model."""

    name: str
    version: str
    input_type: str
    labels: list[str] = field(default_factory=list)
    container_name: str = ""
    model_data_path: str = ""
    created: float = field(default_factory=time.time)

    def to_json(self, current_version: str | None) -> dict[str, Any]:
        """Clipper's ``get_model`` shape."""
        d = asdict(self)
        return {
            "model_name": d["name"],
            "model_version": d["version"],
            "input_type": d["input_type"],
            "labels": d["labels"],
            "container_name": d["container_name"],
            "model_data_path": d["model_data_path"],
            "is_current_version": current_version == self.version,
        }


def unknown_app(name: str) -> ClipperError:
    return ClipperError(404, UNKNOWN_APP, f"no application named {name!r} is registered")


def unknown_model(name: str, version: str | None = None) -> ClipperError:
    what = f"model {name!r}" if version is None else f"version {version!r} of model {name!r}"
    return ClipperError(404, UNKNOWN_MODEL, f"{what} is not registered (add it with add_model)")


class Store:
    """The frontend's durable state; open with :meth:`open`."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.apps: dict[str, App] = {}
        self.models: dict[tuple[str, str], Model] = {}
        self.current_versions: dict[str, str] = {}
        self.secrets: dict[tuple[str, str], str] = {}
        self._load()

    @classmethod
    def open(cls, path: Path | str) -> Store:
        """Open (creating if needed) the database at ``path``; ``":memory:"`` for tests."""
        db = sqlite3.connect(str(path), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        return cls(db)

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def _load(self) -> None:
        for row in self.db.execute(
            "SELECT name, input_type, default_output, latency_slo_micros, linked_model, created "
            "FROM apps"
        ):
            name, input_type, default_output, slo, linked, created = row
            self.apps[name] = App(
                name, input_type, json.loads(default_output), slo, linked, created
            )
        for row in self.db.execute(
            "SELECT name, version, input_type, labels, container_name, model_data_path, created "
            "FROM models"
        ):
            name, version, input_type, labels, container, data_path, created = row
            self.models[(name, version)] = Model(
                name, version, input_type, json.loads(labels), container, data_path, created
            )
        for name, version in self.db.execute("SELECT name, version FROM current_versions"):
            self.current_versions[name] = version
        for name, version, secret in self.db.execute(
            "SELECT name, version, secret FROM replica_secrets"
        ):
            self.secrets[(name, version)] = secret
        missing = [key for key in self.models if key not in self.secrets]
        if missing:  # versions registered before replicas had keys
            made = {key: new_secret() for key in missing}
            self._write(
                *(
                    ("INSERT INTO replica_secrets VALUES (?, ?, ?)", (*key, secret))
                    for key, secret in made.items()
                )
            )
            self.secrets.update(made)

    def _write(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        with self.db:
            self.db.execute("BEGIN")
            for sql, params in statements:
                self.db.execute(sql, params)

    # ---- applications -------------------------------------------------------------------

    def add_app(
        self, name: str, input_type: str, default_output: Any, latency_slo_micros: int
    ) -> App:
        """Register an application; its name must be new."""
        check_name(name, "application name")
        check_input_type(input_type)
        if (
            not isinstance(latency_slo_micros, int)
            or isinstance(latency_slo_micros, bool)
            or not 0 < latency_slo_micros <= MAX_SLO_MICROS
        ):
            shown = repr(latency_slo_micros)
            if len(shown) > 40:
                shown = f"a number of {len(shown)} digits"
            raise management_error(
                f"latency_slo_micros must be a positive integer of at most {MAX_SLO_MICROS} "
                f"(10 minutes), got {shown}"
            )
        if name in self.apps:
            raise management_error(f"application {name!r} already exists", status=409)
        app = App(name, input_type, default_output, latency_slo_micros)
        self._write(
            (
                "INSERT INTO apps VALUES (?, ?, ?, ?, NULL, ?)",
                (name, input_type, json.dumps(default_output), latency_slo_micros, app.created),
            )
        )
        self.apps[name] = app
        return app

    def delete_app(self, name: str) -> None:
        """Remove an application and its link."""
        self.get_app(name)
        self._write(("DELETE FROM apps WHERE name = ?", (name,)))
        del self.apps[name]

    def get_app(self, name: str) -> App:
        """Return the application ``name`` or raise a 404."""
        app = self.apps.get(name)
        if app is None:
            raise unknown_app(name)
        return app

    def add_model_links(self, app_name: str, model_names: list[str]) -> None:
        """Link ``app_name`` to one model whose input type matches the app's."""
        app = self.get_app(app_name)
        if len(model_names) != 1:
            raise management_error(
                f"an application links to exactly one model; got {len(model_names)} names"
            )
        model_name = model_names[0]
        versions = self.versions_of(model_name)
        if not versions:
            raise unknown_model(model_name)
        input_type = versions[0].input_type
        if input_type != app.input_type:
            raise management_error(
                f"model {model_name!r} takes {input_type} input but application {app_name!r} "
                f"takes {app.input_type}; their input types must match"
            )
        if app.linked_model == model_name:
            return
        if app.linked_model is not None:
            raise management_error(
                f"application {app_name!r} is already linked to model {app.linked_model!r}; "
                "an application links to one model",
                status=409,
            )
        self._write(("UPDATE apps SET linked_model = ? WHERE name = ?", (model_name, app_name)))
        app.linked_model = model_name

    def delete_model_links(self, app_name: str, model_names: list[str]) -> None:
        """Remove ``app_name``'s link to each of ``model_names`` (Clipper's
        ``delete_model_links``); every name must be linked to the app, or nothing changes.
        The app then answers its default output until it is linked again."""
        app = self.get_app(app_name)
        for model_name in model_names:
            if model_name != app.linked_model:
                linked = f"is linked to {app.linked_model!r}" if app.linked_model else "has no link"
                raise management_error(
                    f"cannot remove the link between application {app_name!r} and model "
                    f"{model_name!r}: there is none (the application {linked})",
                    status=409,
                )
        if not model_names:
            return
        self._write(("UPDATE apps SET linked_model = NULL WHERE name = ?", (app_name,)))
        app.linked_model = None

    # ---- models -------------------------------------------------------------------------

    def add_model(
        self,
        name: str,
        version: str,
        input_type: str,
        labels: list[str] | None = None,
        container_name: str = "",
        model_data_path: str = "",
    ) -> Model:
        """Register a model version; the model's first version becomes its current version."""
        check_name(name, "model name")
        check_name(version, "model version")
        check_input_type(input_type)
        if (name, version) in self.models:
            raise management_error(
                f"version {version!r} of model {name!r} already exists", status=409
            )
        others = self.versions_of(name)
        if others and others[0].input_type != input_type:
            raise management_error(
                f"model {name!r} takes {others[0].input_type} input; version {version!r} "
                f"cannot take {input_type}"
            )
        model = Model(
            name, version, input_type, list(labels or []), container_name, model_data_path
        )
        statements: list[tuple[str, tuple[Any, ...]]] = [
            (
                "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    version,
                    input_type,
                    json.dumps(model.labels),
                    container_name,
                    model_data_path,
                    model.created,
                ),
            )
        ]
        secret = new_secret()
        statements.append(
            (
                "INSERT OR REPLACE INTO replica_secrets VALUES (?, ?, ?)",
                (name, version, secret),
            )
        )
        becomes_current = name not in self.current_versions
        if becomes_current:
            statements.append(("INSERT INTO current_versions VALUES (?, ?)", (name, version)))
        self._write(*statements)
        self.models[(name, version)] = model
        self.secrets[(name, version)] = secret
        if becomes_current:
            self.current_versions[name] = version
        return model

    def delete_versioned_model(self, name: str, version: str) -> None:
        """Remove one version; deleting the current version leaves the model without one."""
        self.get_model(name, version)
        statements: list[tuple[str, tuple[Any, ...]]] = [
            ("DELETE FROM models WHERE name = ? AND version = ?", (name, version)),
            ("DELETE FROM replica_secrets WHERE name = ? AND version = ?", (name, version)),
        ]
        was_current = self.current_versions.get(name) == version
        if was_current:
            statements.append(("DELETE FROM current_versions WHERE name = ?", (name,)))
        self._write(*statements)
        del self.models[(name, version)]
        self.secrets.pop((name, version), None)
        if was_current:
            del self.current_versions[name]

    def set_model_version(self, name: str, version: str) -> None:
        """Make ``version`` the one that serves ``name``: one atomic switch."""
        self.get_model(name, version)
        self._write(
            (
                "INSERT INTO current_versions VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET version = excluded.version",
                (name, version),
            )
        )
        self.current_versions[name] = version

    def get_model(self, name: str, version: str) -> Model:
        """Return one model version or raise a 404."""
        model = self.models.get((name, version))
        if model is None:
            if self.versions_of(name):
                raise unknown_model(name, version)
            raise unknown_model(name)
        return model

    def replica_key(self, name: str, version: str, replica_id: str) -> str:
        """The key replica ``replica_id`` of ``name:version`` proves at HELLO (404 if the
        version is not registered)."""
        self.get_model(name, version)
        return replica_key(self.secrets[(name, version)], name, version, replica_id)

    def versions_of(self, name: str) -> list[Model]:
        """All registered versions of ``name``, oldest first."""
        return sorted(
            (m for (n, _), m in self.models.items() if n == name), key=lambda m: m.created
        )

    def apps_linked_to(self, model_name: str) -> list[App]:
        """The applications linked to ``model_name``."""
        return [a for a in self.apps.values() if a.linked_model == model_name]


def new_secret() -> str:
    """A fresh version secret: 256 random bits, hex."""
    return secrets.token_hex(32)


def check_name(value: Any, what: str) -> None:
    """Refuse empty names and names that would not fit in a URL path segment."""
    if not isinstance(value, str) or not value:
        raise management_error(f"{what} must be a non-empty string, got {value!r:.80}")
    if len(value) > MAX_NAME_CHARS:
        raise management_error(
            f"{what} is {len(value)} characters long; at most {MAX_NAME_CHARS} are allowed"
        )
    try:
        value.encode()
    except UnicodeEncodeError:
        raise management_error(
            f"{what} {value!r} holds a lone surrogate, which is not valid Unicode"
        ) from None
    if "/" in value or any(c.isspace() for c in value) or not value.isprintable():
        raise management_error(
            f"{what} {value!r} may not contain '/', whitespace or control characters"
        )


def check_input_type(input_type: Any) -> None:
    """Refuse input types other than Clipper's five."""
    if input_type not in INPUT_TYPES:
        raise management_error(
            f"input_type must be one of {', '.join(INPUT_TYPES)}, got {input_type!r:.80}"
        )
