"""Fuzz both HTTP APIs with schemathesis from the frontend's own OpenAPI document.

The document is the one the management port serves at ``/openapi.json`` (checked first). Cases
are generated from it, valid and invalid ones (schemathesis' positive and negative modes), and
sent to a real frontend with a real replica: the query operations to the query port (each body
also to three registered apps of different input types, so it meets real validation), the
management operations to the management port with the admin token. No answer may be a 5xx or
anything but JSON (Prometheus text on ``/metrics``), the frontend must stay up, and the replica's
connection must never be touched. Bounded: a few dozen examples per operation, no shrinking
phase beyond Hypothesis' default, well under a minute.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance
from serving_helpers import FrontendProcess, seed_replica

from clipper_deploy.frontend.openapi import document

SCHEMA = schemathesis.openapi.from_dict(document())
SCHEMA.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
QUERY = SCHEMA.include(tag="query")
ADMIN = SCHEMA.include(tag="admin")
REAL_APPS = ("example", "strings-app", "ints-app")
CHECKS = [not_a_server_error, content_type_conformance]
FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
SENT = {"query": 0, "admin": 0}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory, seed_model_dir):
    """A frontend with a doubles app (and a replica), a strings app and an ints app."""
    fe = FrontendProcess(tmp_path_factory.mktemp("fuzz") / "fe").start_fresh()
    fe.setup_app()
    fe.setup_app(app="strings-app", model="strings-model", input_type="strings")
    fe.setup_app(app="ints-app", model="ints-model", input_type="ints")
    rt = seed_replica(fe, seed_model_dir, "fuzzed-replica")
    try:
        rt.wait_serving()
        (fe.replica_before,) = fe.admin().get_all_containers()
        yield fe
    finally:
        rt.stop()
        fe.stop()


def test_the_served_document_is_the_one_fuzzed(fuzzed):
    with urllib.request.urlopen(f"{fuzzed.admin_url}/openapi.json", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        assert json.loads(resp.read()) == document()


@QUERY.parametrize()
@FUZZ
def test_query_api_never_fails(case, fuzzed):
    headers = {"Authorization": f"Bearer {fuzzed.token}"} if case.path == "/metrics" else {}
    response = case.call(base_url=fuzzed.query_url, headers=headers, timeout=10)
    SENT["query"] += 1
    case.validate_response(response, checks=CHECKS)
    if case.path == "/{app}/predict":
        for app in REAL_APPS:
            case.path_parameters = {**(case.path_parameters or {}), "app": app}
            response = case.call(base_url=fuzzed.query_url, timeout=10)
            SENT["query"] += 1
            case.validate_response(response, checks=CHECKS)


@ADMIN.parametrize()
@FUZZ
def test_admin_api_never_fails(case, fuzzed):
    headers = {"Authorization": f"Bearer {fuzzed.token}"}
    response = case.call(base_url=fuzzed.admin_url, headers=headers, timeout=10)
    SENT["admin"] += 1
    case.validate_response(response, checks=CHECKS)


def test_after_fuzzing_the_frontend_serves_and_the_replica_was_never_touched(fuzzed):
    print(f"\nfuzz requests sent: {SENT['query']} query, {SENT['admin']} admin")
    assert SENT["query"] > 100 and SENT["admin"] > 100
    assert fuzzed.proc.poll() is None
    (replica,) = [
        c for c in fuzzed.admin().get_all_containers() if c["replica_id"] == "fuzzed-replica"
    ]
    assert replica["state"] != "disconnected"
    assert replica["connected_since"] == fuzzed.replica_before["connected_since"]
    assert fuzzed.query().predict("example", [0.5, -1.0, 0.25, 2.0])["default"] is False
    assert "Traceback" not in fuzzed.log_path.read_text(errors="replace")
