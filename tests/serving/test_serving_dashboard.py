"""The dashboard on a real frontend process with a real replica, over real HTTP (loopback).

Sign-in (the form, the cookie's flags, a wrong token, sign-out, a cross-site post), what needs
a session, the JSON document's shape with apps, models, replicas, traffic, the audit log and
a running operation (written with the deployers' own commands), and the static files.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from serving_helpers import FrontendProcess, wait_for

from clipper_deploy.frontend.dashboard import COOKIE, CSP
from clipper_deploy.orchestration.audit import audit_event, encode_event
from clipper_deploy.orchestration.lock import acquire_command

QUERY = [0.5, -1.0, 0.25, 2.0]


class Answer:
    def __init__(self, resp: http.client.HTTPResponse) -> None:
        self.status = resp.status
        self.headers = resp.headers
        self.body = resp.read()

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def call(
    fe: FrontendProcess,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request to the management port; redirects are not followed."""
    conn = http.client.HTTPConnection("127.0.0.1", fe.admin_port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        return Answer(conn.getresponse())
    finally:
        conn.close()


def sign_in(fe: FrontendProcess, token: str, **headers: str) -> Answer:
    return call(
        fe,
        "POST",
        "/dashboard/login",
        urlencode({"token": token}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded", **headers},
    )


def session_cookie(answer: Answer) -> str:
    value = answer.headers["Set-Cookie"].split(";")[0]
    assert value.startswith(f"{COOKIE}=")
    return value


@pytest.fixture(scope="module")
def fe(tmp_path_factory, seed_model_dir):
    from serving_helpers import seed_replica

    fe = FrontendProcess(tmp_path_factory.mktemp("dash") / "fe").start_fresh()
    fe.setup_app()
    rt = seed_replica(fe, seed_model_dir, "h1/cd-example_model-1-1")
    try:
        rt.wait_serving()
        yield fe
    finally:
        rt.stop()
        fe.stop()


class TestSignIn:
    def test_without_a_session_the_page_is_the_sign_in_form(self, fe) -> None:
        page = call(fe, "GET", "/dashboard")
        assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
        assert 'id="login-form"' in page.text and 'method="post"' in page.text
        assert page.headers["Content-Security-Policy"] == CSP
        assert page.headers["X-Content-Type-Options"] == "nosniff"
        assert page.headers["Cache-Control"] == "no-store"

    def test_without_a_session_the_data_is_refused_as_json(self, fe) -> None:
        answer = call(fe, "GET", "/dashboard/api/state")
        assert answer.status == 401 and answer.json()["error"] == "Unauthorized"
        wrong = call(fe, "GET", "/dashboard/api/state", headers={"Cookie": f"{COOKIE}=forged"})
        assert wrong.status == 401

    def test_a_wrong_token_gets_the_form_again_and_no_cookie(self, fe) -> None:
        answer = sign_in(fe, fe.token + "x")
        assert answer.status == 401 and "Set-Cookie" not in answer.headers
        assert 'id="login-error"' in answer.text

    def test_the_token_gives_a_strict_httponly_session_cookie(self, fe) -> None:
        answer = sign_in(fe, fe.token)
        assert answer.status == 303 and answer.headers["Location"] == "/dashboard"
        flags = {f.strip().split("=")[0].lower() for f in answer.headers["Set-Cookie"].split(";")}
        assert {"httponly", "path", "samesite", "max-age"} <= flags
        assert "samesite=strict" in answer.headers["Set-Cookie"].lower()
        assert "path=/dashboard" in answer.headers["Set-Cookie"].lower()
        assert "secure" not in flags  # plain HTTP here; set over HTTPS
        assert fe.token not in answer.headers["Set-Cookie"]
        cookie = session_cookie(answer)
        page = call(fe, "GET", "/dashboard", headers={"Cookie": cookie})
        assert 'src="/dashboard/static/dashboard.js"' in page.text
        assert call(fe, "GET", "/dashboard/api/state", headers={"Cookie": cookie}).status == 200

    def test_sign_out_ends_the_session(self, fe) -> None:
        cookie = session_cookie(sign_in(fe, fe.token))
        out = call(fe, "POST", "/dashboard/logout", b"", {"Cookie": cookie})
        assert out.status == 303 and f"{COOKIE}=" in out.headers["Set-Cookie"]
        assert call(fe, "GET", "/dashboard/api/state", headers={"Cookie": cookie}).status == 401

    def test_a_form_posted_from_another_site_is_refused(self, fe) -> None:
        assert sign_in(fe, fe.token, Origin="http://evil.example").status == 403
        assert sign_in(fe, fe.token, **{"Sec-Fetch-Site": "cross-site"}).status == 403
        origin = f"http://127.0.0.1:{fe.admin_port}"
        assert sign_in(fe, fe.token, Origin=origin).status == 303

    def test_nothing_changes_on_a_get(self, fe) -> None:
        assert call(fe, "GET", "/dashboard/login").status == 405
        assert call(fe, "GET", "/dashboard/logout").status == 405

    def test_the_bearer_token_works_without_a_session(self, fe) -> None:
        auth = {"Authorization": f"Bearer {fe.token}"}
        assert call(fe, "GET", "/dashboard/api/state", headers=auth).status == 200


class TestState:
    def test_the_document_shows_the_fleet(self, fe) -> None:
        state_dir = fe.state_dir
        with open(state_dir / "audit.log", "a") as f:
            event = audit_event("deploy", "example_model", version="1", hosts=["h1"])
            f.write(encode_event(event) + "\n")
        holder = {
            "action": "rollout",
            "version": "2",
            "user": "tester@here",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 5)),
        }
        command = acquire_command(str(state_dir), "example_model", holder)
        subprocess.run(["sh", "-c", command], check=True)
        for _ in range(20):
            assert fe.query().predict("example", QUERY)["default"] is False
        auth = {"Authorization": f"Bearer {fe.token}"}

        def state() -> dict:
            return call(fe, "GET", "/dashboard/api/state", headers=auth).json()

        doc = state()
        assert set(doc) == {
            "time",
            "frontend",
            "apps",
            "models",
            "hosts",
            "metrics",
            "audit",
            "operations",
        }
        assert doc["apps"] == [
            {
                "name": "example",
                "input_type": "doubles",
                "linked_model": "example_model",
                "latency_slo_micros": 1_000_000,
            }
        ]
        (model,) = doc["models"]
        assert model["current_version"] == "1" and model["apps"] == ["example"]
        assert model["versions"] == [
            {
                "version": "1",
                "status": "current",
                "created": model["versions"][0]["created"],
                "connected_replicas": 1,
            }
        ]
        (host,) = doc["hosts"]
        (replica,) = host["replicas"]
        assert host["host"] == "h1" and replica["state"] in ("idle", "busy")
        assert replica["heartbeat_age_s"] < 5 and replica["queries_served"] >= 20
        series = doc["metrics"]["models"]["example_model"]
        assert len(series["t"]) == doc["metrics"]["buckets"] == 90
        assert series["window"]["queries"] >= 20 and series["window"]["p99_ms"] > 0
        assert sum(series["qps"]) > 0
        (event,) = doc["audit"]["events"]
        assert event["action"] == "deploy" and doc["audit"]["error"] is None
        (op,) = doc["operations"]
        assert op["model"] == "example_model" and op["action"] == "rollout"
        assert op["version"] == "2" and op["switched"] is False
        assert op["hosts"] == [{"host": "h1", "state": "waiting", "versions": ["1"]}]
        assert op["elapsed_s"] >= 4
        subprocess.run(["rm", "-rf", str(state_dir / "locks")], check=True)
        wait_for(lambda: state()["operations"] == [], 5, "the operation to end")

    def test_default_outputs_are_counted_apart(self, fe) -> None:
        fe.setup_app(app="lonely", model="lonely_model")  # no replica: default outputs
        for _ in range(3):
            assert fe.query().predict("lonely", QUERY)["default"] is True
        auth = {"Authorization": f"Bearer {fe.token}"}
        doc = call(fe, "GET", "/dashboard/api/state", headers=auth).json()
        window = doc["metrics"]["models"]["lonely_model"]["window"]
        assert (window["queries"], window["defaults"], window["errors"]) == (3, 3, 0)
        served = doc["metrics"]["models"]["example_model"]["window"]
        assert served["defaults"] == 0


class TestStatic:
    @pytest.mark.parametrize("name", ["dashboard.js", "dashboard.css", "favicon.svg"])
    def test_files_are_served_with_an_etag(self, fe, name: str) -> None:
        answer = call(fe, "GET", f"/dashboard/static/{name}")
        assert answer.status == 200 and len(answer.body) > 100
        again = call(
            fe,
            "GET",
            f"/dashboard/static/{name}",
            headers={"If-None-Match": answer.headers["ETag"]},
        )
        assert again.status == 304

    def test_unknown_file_is_a_json_404(self, fe) -> None:
        answer = call(fe, "GET", "/dashboard/static/../admin.token")
        assert answer.status == 404 and "error" in answer.json()
