"""The management API against a real frontend: every endpoint, its errors, its token."""

from __future__ import annotations

import base64
import stat
import urllib.error
import urllib.request

import pytest
from serving_helpers import post

from clipper_deploy.frontend.client import AdminClient, FrontendError


class TestToken:
    def test_is_generated_at_first_start_with_mode_0600(self, frontend):
        path = frontend.state_dir / "admin.token"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(frontend.token) >= 32

    def test_survives_a_restart(self, frontend):
        before = frontend.token
        frontend.restart()
        assert frontend.token == before

    @pytest.mark.parametrize("token", [None, "wrong-token"])
    def test_is_required_by_every_endpoint_but_ping(self, frontend, token):
        status, doc = post(f"{frontend.admin_url}/admin/get_all_applications", {}, token)
        assert status == 401
        assert doc["error"] == "Unauthorized" and "admin.token" in doc["cause"]
        with pytest.raises(FrontendError, match=r"add_app failed \(HTTP 401\)"):
            AdminClient(frontend.admin_url, token or "").add_app("a", "doubles")

    def test_ping_answers_without_a_token(self, frontend):
        assert AdminClient(frontend.admin_url, "").ping()["status"] == "ok"


def with_authorization(url: str, header: str, body: bytes | None = b"{}") -> int:
    """The HTTP status of a request to ``url`` carrying ``Authorization: header``."""
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    req.add_header("Authorization", header)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class TestBasicCredentials:
    """Clients that send no bearer token (clipper_admin) authenticate with HTTP Basic, the
    admin token as password, which ``requests`` takes from ``~/.netrc``."""

    @pytest.mark.parametrize("user", ["clipper", "", "anyone at all"])
    def test_the_admin_token_as_password_is_accepted_with_any_user_name(self, frontend, user):
        url = f"{frontend.admin_url}/admin/get_all_applications"
        assert with_authorization(url, basic(user, frontend.token)) == 200

    @pytest.mark.parametrize(
        "header",
        [
            "Basic " + base64.b64encode(b"clipper:wrong").decode(),
            "Basic " + base64.b64encode(b"no-colon-at-all").decode(),
            "Basic %%%not-base64",
            "Digest whatever",
        ],
    )
    def test_anything_else_is_a_401(self, frontend, header):
        url = f"{frontend.admin_url}/admin/get_all_applications"
        assert with_authorization(url, header) == 401

    def test_the_token_as_user_name_is_not_enough(self, frontend):
        url = f"{frontend.admin_url}/admin/get_all_applications"
        assert with_authorization(url, basic(frontend.token, "x")) == 401

    def test_opens_metrics_too(self, frontend):
        url = f"{frontend.query_url}/metrics"
        assert with_authorization(url, basic("clipper", frontend.token), body=None) == 200
        assert with_authorization(url, basic("clipper", "wrong"), body=None) == 401


class TestApplications:
    def test_add_get_list_delete(self, frontend):
        admin = frontend.admin()
        admin.add_app("a1", "doubles", "-1.0", 20_000)
        admin.add_app("a2", "strings", None, 100_000)
        assert admin.get_all_applications() == ["a1", "a2"]
        assert admin.get_application("a1") == {
            "name": "a1",
            "input_type": "doubles",
            "default_output": "-1.0",
            "latency_slo_micros": 20_000,
            "linked_models": [],
        }
        assert [a["name"] for a in admin.get_all_applications(verbose=True)] == ["a1", "a2"]
        admin.delete_app("a1")
        assert admin.get_all_applications() == ["a2"]

    def test_duplicate_name_is_a_conflict(self, frontend):
        frontend.admin().add_app("a1", "doubles")
        with pytest.raises(FrontendError) as info:
            frontend.admin().add_app("a1", "doubles")
        assert info.value.status == 409 and "already exists" in info.value.cause

    @pytest.mark.parametrize(
        ("body", "cause"),
        [
            ({"input_type": "doubles"}, "needs the field 'name'"),
            ({"name": "x", "input_type": "tensor"}, "input_type must be one of"),
            ({"name": "x", "input_type": "doubles", "latency_slo_micros": -5}, "positive"),
            ({"name": "x", "input_type": "doubles", "latency_slo_micros": "fast"}, "wrong type"),
            ({"name": "a/b", "input_type": "doubles"}, "may not contain"),
        ],
    )
    def test_invalid_add_app_is_a_400(self, frontend, body, cause):
        status, doc = post(f"{frontend.admin_url}/admin/add_app", body, frontend.token)
        assert status == 400 and cause in doc["cause"]

    def test_non_json_body_is_a_400(self, frontend):
        status, doc = post(f"{frontend.admin_url}/admin/add_app", b"{nope", frontend.token)
        assert status == 400 and doc["error"] == "Json error"

    def test_unknown_app_is_a_404(self, frontend):
        with pytest.raises(FrontendError) as info:
            frontend.admin().get_application("ghost")
        assert info.value.status == 404 and info.value.error == "Unknown application"


class TestModels:
    def test_first_version_becomes_current(self, frontend):
        admin = frontend.admin()
        admin.add_model("m", "1", "doubles", labels=["seed"], container_name="img")
        admin.add_model("m", "2", "doubles")
        assert admin.get_all_models() == ["m:1", "m:2"]
        assert admin.get_model("m", "1")["is_current_version"] is True
        assert admin.get_model("m", "2")["is_current_version"] is False
        assert admin.get_model("m", "1")["labels"] == ["seed"]
        admin.set_model_version("m", "2")
        assert admin.get_model("m", "2")["is_current_version"] is True
        admin.delete_versioned_model("m", "1")
        assert admin.get_all_models() == ["m:2"]
        assert admin.get_all_models(verbose=True)[0]["model_version"] == "2"

    @pytest.mark.parametrize(
        ("call", "args"),
        [
            ("get_model", ("ghost", "1")),
            ("set_model_version", ("ghost", "1")),
            ("delete_versioned_model", ("ghost", "1")),
            ("add_model_links", ("app", ["ghost"])),
        ],
    )
    def test_unknown_model_is_a_404(self, frontend, call, args):
        admin = frontend.admin()
        admin.add_app("app", "doubles")
        with pytest.raises(FrontendError) as info:
            getattr(admin, call)(*args)
        assert info.value.status == 404
        assert info.value.error == "Unknown model" and "ghost" in info.value.cause

    def test_unknown_version_of_a_known_model_is_a_404(self, frontend):
        frontend.admin().add_model("m", "1", "doubles")
        with pytest.raises(FrontendError, match="version '9' of model 'm'"):
            frontend.admin().set_model_version("m", "9")


class TestLinks:
    def test_links_one_model_of_the_same_input_type(self, frontend):
        admin = frontend.admin()
        admin.add_app("app", "doubles")
        admin.add_model("m", "1", "doubles")
        admin.add_model_links("app", ["m"])
        admin.add_model_links("app", ["m"])  # idempotent
        assert admin.get_linked_models("app") == ["m"]
        assert admin.get_application("app")["linked_models"] == ["m"]

    def test_refuses_a_different_input_type(self, frontend):
        admin = frontend.admin()
        admin.add_app("app", "doubles")
        admin.add_model("s", "1", "strings")
        with pytest.raises(FrontendError, match="input types must match") as info:
            admin.add_model_links("app", ["s"])
        assert info.value.status == 400

    def test_refuses_a_second_model(self, frontend):
        admin = frontend.admin()
        admin.add_app("app", "doubles")
        admin.add_model("m", "1", "doubles")
        admin.add_model("n", "1", "doubles")
        admin.add_model_links("app", ["m"])
        with pytest.raises(FrontendError) as info:
            admin.add_model_links("app", ["n"])
        assert info.value.status == 409


class TestUnlinking:
    """``delete_model_links``: Clipper's ``unlink_model_from_app``."""

    def test_removes_the_link_and_the_app_answers_its_default(self, frontend, runtime_factory):
        frontend.setup_app()
        runtime_factory(frontend)
        admin = frontend.admin()
        assert frontend.query().predict("example", [1.0, 2.0, 3.0, 4.0])["default"] is False
        assert admin.delete_model_links("example", ["example_model"]) == {"success": True}
        assert admin.get_linked_models("example") == []
        answer = frontend.query().predict("example", [1.0, 2.0, 3.0, 4.0])
        assert answer["default"] is True and "No model is linked" in answer["default_explanation"]
        admin.add_model_links("example", ["example_model"])  # and it can be linked again
        assert frontend.query().predict("example", [1.0, 2.0, 3.0, 4.0])["default"] is False

    def test_survives_a_restart(self, frontend):
        admin = frontend.admin()
        admin.add_app("app", "doubles")
        admin.add_model("m", "1", "doubles")
        admin.add_model_links("app", ["m"])
        admin.delete_model_links("app", ["m"])
        frontend.restart()
        assert frontend.admin().get_linked_models("app") == []

    def test_a_link_that_is_not_there_is_a_409_and_changes_nothing(self, frontend):
        admin = frontend.admin()
        admin.add_app("app", "doubles")
        admin.add_model("m", "1", "doubles")
        admin.add_model("n", "1", "doubles")
        admin.add_model_links("app", ["m"])
        with pytest.raises(FrontendError) as info:
            admin.delete_model_links("app", ["m", "n"])
        assert info.value.status == 409 and "is linked to 'm'" in info.value.cause
        assert admin.get_linked_models("app") == ["m"]

    def test_an_unknown_app_is_a_404(self, frontend):
        with pytest.raises(FrontendError) as info:
            frontend.admin().delete_model_links("ghost", ["m"])
        assert info.value.status == 404

    def test_model_names_must_be_a_list_of_strings(self, frontend):
        frontend.admin().add_app("app", "doubles")
        body = {"app_name": "app", "model_names": "m"}
        status, doc = post(f"{frontend.admin_url}/admin/delete_model_links", body, frontend.token)
        assert status == 400 and "model_names" in doc["cause"]


class TestContainers:
    def test_lists_each_replica_with_what_monitoring_needs(self, frontend, runtime_factory):
        frontend.setup_app()
        runtime_factory(frontend, replica_id="r-1")
        frontend.query().predict("example", [1.0, 2.0, 3.0, 4.0])
        (replica,) = frontend.admin().get_all_containers()
        assert {
            k: replica[k]
            for k in (
                "model_name",
                "model_version",
                "replica_id",
                "input_type",
                "state",
                "batches_served",
                "queries_served",
                "is_current_version",
            )
        } == {
            "model_name": "example_model",
            "model_version": "1",
            "replica_id": "r-1",
            "input_type": "doubles",
            "state": "idle",
            "batches_served": 1,
            "queries_served": 1,
            "is_current_version": True,
        }
        assert replica["peer"].startswith("127.0.0.1:")
        assert replica["last_heartbeat"] >= replica["connected_since"] > 0
        assert frontend.admin().get_all_containers(verbose=False) == ["example_model:1:r-1"]

    def test_refuses_a_replica_whose_input_type_contradicts_the_model(
        self, frontend, runtime_factory
    ):
        frontend.admin().add_model("example_model", "1", "strings")
        rt = runtime_factory(frontend, wait=False)
        from serving_helpers import wait_for

        wait_for(lambda: any("refused this replica" in x for x in rt.lines), 10, "a refusal")
        assert "registered with strings input" in rt.output
        assert frontend.admin().get_all_containers() == []


class TestWaitForReplicas:
    def test_returns_once_enough_replicas_are_connected(self, frontend, runtime_factory):
        frontend.setup_app()
        runtime_factory(frontend, replica_id="r-1", wait=False)
        (replica,) = frontend.admin().wait_for_replicas("example_model", "1", 1, timeout=20)
        assert replica["replica_id"] == "r-1"

    def test_times_out_saying_how_many_came(self, frontend, runtime_factory):
        frontend.setup_app()
        runtime_factory(frontend)
        with pytest.raises(FrontendError, match="1 of 2 replicas of example_model:1"):
            frontend.admin().wait_for_replicas("example_model", "1", 2, timeout=0.5)


class TestGetContainer:
    def test_finds_one_replica_by_id(self, frontend, runtime_factory):
        frontend.setup_app()
        runtime_factory(frontend, replica_id="7")
        admin = frontend.admin()
        (listed,) = admin.get_all_containers()
        one = admin.get_container("example_model", "1", "7")
        assert one["replica_id"] == "7" and one["peer"] == listed["peer"]
        body = {"model_name": "example_model", "model_version": 1, "replica_id": 7}
        status, doc = post(f"{frontend.admin_url}/admin/get_container", body, frontend.token)
        assert status == 200 and doc["replica_id"] == "7"  # Clipper sends integers

    def test_an_unknown_replica_is_a_404(self, frontend):
        with pytest.raises(FrontendError) as info:
            frontend.admin().get_container("example_model", "1", "nope")
        assert info.value.status == 404 and "get_all_containers" in info.value.cause
