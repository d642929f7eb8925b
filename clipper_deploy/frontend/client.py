"""Python clients of a frontend: :class:`AdminClient` (management API) and :class:`QueryClient`.

Both speak HTTP with the standard library (https with ``cafile``, the CA to pin; an
``https://`` URL without it verifies against the system's trusted CAs), return plain data, and
raise :class:`FrontendError` naming the endpoint and carrying the server's ``error`` and
``cause``::

    admin = AdminClient("http://127.0.0.1:1338")        # token from the client's config
    admin.add_app("example", "doubles", default_output=-1.0, latency_slo_micros=100_000)
    QueryClient("http://127.0.0.1:1337").predict("example", [1.0, 2.0, 3.0, 4.0])
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from clipper_deploy.errors import ClipperDeployError
from clipper_deploy.frontend.tls import client_context, describe_tls_failure
from clipper_deploy.frontend.tokens import load_client_token


class FrontendError(ClipperDeployError):
    """A call to the frontend failed; ``endpoint``, ``status``, ``error`` and ``cause`` say how.

    ``status`` is ``None`` when the frontend could not be reached at all.
    """

    def __init__(self, endpoint: str, status: int | None, error: str, cause: str) -> None:
        where = f"HTTP {status}" if status is not None else "unreachable"
        super().__init__(f"{endpoint} failed ({where}): {error}: {cause}")
        self.endpoint = endpoint
        self.status = status
        self.error = error
        self.cause = cause


class _HTTPClient:
    def __init__(
        self, base_url: str, token: str | None, timeout: float, cafile: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.cafile = str(cafile) if cafile else None
        self.context = client_context(self.cafile) if base_url.startswith("https:") else None

    def open(self, req: urllib.request.Request) -> Any:
        """``urlopen`` with this client's timeout and TLS context."""
        return urllib.request.urlopen(req, timeout=self.timeout, context=self.context)

    def _request(self, endpoint: str, path: str, body: Any | None, method: str = "POST") -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self.open(req) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                doc = json.loads(raw)
                error, cause = str(doc.get("error")), str(doc.get("cause"))
            except (ValueError, AttributeError):
                error, cause = exc.reason, raw.decode(errors="replace")
            raise FrontendError(endpoint, exc.code, error, cause) from None
        except (urllib.error.URLError, OSError) as exc:
            tls = describe_tls_failure(exc, self.base_url, self.cafile)
            if tls is not None:
                raise FrontendError(endpoint, None, "TLS failed", tls) from None
            reason = getattr(exc, "reason", exc)
            hint = ""
            if self.base_url.startswith("http:") and isinstance(
                reason, (ConnectionResetError, http.client.RemoteDisconnected)
            ):
                hint = " (if the frontend's ports speak TLS, use https:// and its CA)"
            raise FrontendError(
                endpoint, None, "Connection failed", f"{self.base_url}: {reason}{hint}"
            ) from None
        return json.loads(raw) if raw else None


class AdminClient(_HTTPClient):
    """The management API, one method per ``/admin/`` endpoint.

    ``token`` defaults to the client's stored copy for this address (see
    :mod:`clipper_deploy.frontend.tokens`).
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:1338",
        token: str | None = None,
        timeout: float = 10.0,
        cafile: str | None = None,
    ) -> None:
        if token is None:
            parts = urlsplit(base_url)
            token = load_client_token(parts.hostname or "127.0.0.1", parts.port or 80)
        super().__init__(base_url, token, timeout, cafile)

    def _call(self, endpoint: str, body: dict[str, Any] | None = None) -> Any:
        return self._request(endpoint, f"/admin/{endpoint}", body or {})

    def ping(self) -> dict[str, Any]:
        """Liveness (needs no token)."""
        return self._request("ping", "/admin/ping", None, method="GET")

    def add_app(
        self,
        name: str,
        input_type: str,
        default_output: Any = None,
        latency_slo_micros: int = 100_000,
    ) -> Any:
        """Register an application."""
        return self._call(
            "add_app",
            {
                "name": name,
                "input_type": input_type,
                "default_output": default_output,
                "latency_slo_micros": latency_slo_micros,
            },
        )

    def delete_app(self, name: str) -> Any:
        """Remove an application."""
        return self._call("delete_app", {"name": name})

    def add_model(
        self,
        model_name: str,
        model_version: str,
        input_type: str,
        labels: list[str] | None = None,
        container_name: str = "",
        model_data_path: str = "",
    ) -> Any:
        """Register a model version (the model's first version becomes current)."""
        return self._call(
            "add_model",
            {
                "model_name": model_name,
                "model_version": str(model_version),
                "input_type": input_type,
                "labels": labels or [],
                "container_name": container_name,
                "model_data_path": model_data_path,
            },
        )

    def delete_versioned_model(self, model_name: str, model_version: str) -> Any:
        """Remove one model version."""
        return self._call(
            "delete_versioned_model",
            {"model_name": model_name, "model_version": str(model_version)},
        )

    def add_model_links(self, app_name: str, model_names: list[str]) -> Any:
        """Link an application to its model (a list of one name, as in Clipper)."""
        return self._call("add_model_links", {"app_name": app_name, "model_names": model_names})

    def delete_model_links(self, app_name: str, model_names: list[str]) -> Any:
        """Remove an application's link to its model (it answers its default output then)."""
        return self._call("delete_model_links", {"app_name": app_name, "model_names": model_names})

    def set_model_version(self, model_name: str, model_version: str) -> Any:
        """Switch the version that serves ``model_name``."""
        return self._call(
            "set_model_version", {"model_name": model_name, "model_version": str(model_version)}
        )

    def get_all_applications(self, verbose: bool = False) -> list[Any]:
        """Application names, or full objects when ``verbose``."""
        return self._call("get_all_applications", {"verbose": verbose})

    def get_application(self, name: str) -> dict[str, Any]:
        """One application."""
        return self._call("get_application", {"name": name})

    def get_linked_models(self, app_name: str) -> list[str]:
        """The model linked to an application (a list of at most one name)."""
        return self._call("get_linked_models", {"app_name": app_name})

    def get_all_models(self, verbose: bool = False) -> list[Any]:
        """``"name:version"`` strings, or full objects when ``verbose``."""
        return self._call("get_all_models", {"verbose": verbose})

    def get_model(self, model_name: str, model_version: str) -> dict[str, Any]:
        """One model version."""
        return self._call(
            "get_model", {"model_name": model_name, "model_version": str(model_version)}
        )

    def smoke_predict(
        self, model_name: str, model_version: str, value: Any, timeout_s: float = 5.0
    ) -> dict[str, Any]:
        """Try one input on a model version's replicas, current or not (rollout health gate):
        ``{"output": ..., "default": bool, "explanation": ...}``."""
        return self._call(
            "smoke_predict",
            {
                "model_name": model_name,
                "model_version": str(model_version),
                "input": value,
                "timeout_s": timeout_s,
            },
        )

    def replica_keys(
        self, model_name: str, model_version: str, replica_ids: list[str]
    ) -> dict[str, str]:
        """The key each of ``replica_ids`` of a model version proves at HELLO."""
        doc = self._call(
            "replica_keys",
            {
                "model_name": model_name,
                "model_version": str(model_version),
                "replica_ids": list(replica_ids),
            },
        )
        return dict(doc["keys"])

    def get_all_containers(self, verbose: bool = True) -> list[Any]:
        """One object per replica (connected or recently gone), or id strings if not verbose."""
        return self._call("get_all_containers", {"verbose": verbose})

    def get_container(
        self, model_name: str, model_version: str, replica_id: str | int
    ) -> dict[str, Any]:
        """One replica of a model version, by its replica id."""
        return self._call(
            "get_container",
            {
                "model_name": model_name,
                "model_version": str(model_version),
                "replica_id": replica_id,
            },
        )

    def wait_for_replicas(
        self,
        model_name: str,
        model_version: str,
        count: int = 1,
        timeout: float = 60.0,
        poll_s: float = 0.2,
    ) -> list[dict[str, Any]]:
        """Wait until ``count`` replicas of a model version are connected; return them.

        Raise :class:`FrontendError` (endpoint ``get_all_containers``) after ``timeout``
        seconds, saying how many were connected.
        """
        deadline = time.monotonic() + timeout
        while True:
            connected = [
                c
                for c in self.get_all_containers()
                if c["model_name"] == model_name
                and c["model_version"] == str(model_version)
                and c["state"] != "disconnected"
            ]
            if len(connected) >= count:
                return connected
            if time.monotonic() > deadline:
                raise FrontendError(
                    "get_all_containers",
                    None,
                    "Timeout",
                    f"{len(connected)} of {count} replicas of {model_name}:{model_version} "
                    f"connected after {timeout:.0f} s",
                )
            time.sleep(poll_s)


class QueryClient(_HTTPClient):
    """The query API: ``POST /{app}/predict``."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:1337",
        token: str | None = None,
        timeout: float = 10.0,
        cafile: str | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout, cafile)

    def predict(self, app: str, value: Any) -> dict[str, Any]:
        """One prediction: ``{"query_id", "output", "default"[, "default_explanation"]}``."""
        return self._request(f"{app}/predict", f"/{app}/predict", {"input": value})

    def predict_batch(self, app: str, values: list[Any]) -> list[dict[str, Any]]:
        """Several predictions in one request."""
        doc = self._request(f"{app}/predict", f"/{app}/predict", {"input_batch": values})
        return doc["batch_predictions"]

    def metrics(self) -> str:
        """The Prometheus text of ``GET /metrics``."""
        req = urllib.request.Request(self.base_url + "/metrics")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with self.open(req) as resp:
            return resp.read().decode()
