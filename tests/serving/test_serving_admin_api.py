"""The management API against a real frontend: every endpoint, its errors, its token."""

from __future__ import annotations

import stat

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
