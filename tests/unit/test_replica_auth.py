"""Replica authentication's pure parts: keys, proofs, the store's secrets, the router's
decision at HELLO, and the once-per-peer refusal log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from clipper_deploy.frontend import protocol
from clipper_deploy.frontend.batching import AIMDController
from clipper_deploy.frontend.metrics import Metrics
from clipper_deploy.frontend.replica_server import REFUSAL_REASONS, RefusalLog, shown
from clipper_deploy.frontend.router import ReplicaLink, Router
from clipper_deploy.frontend.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "container"))
from clipper_runtime import protocol as rt_protocol

NONCE = bytes(range(32))


class TestKeysAndProofs:
    def test_a_key_belongs_to_one_replica_id(self):
        keys = {
            protocol.replica_key("s", "m", "1", "a"),
            protocol.replica_key("s", "m", "1", "b"),
            protocol.replica_key("s", "m", "2", "a"),
            protocol.replica_key("t", "m", "1", "a"),
        }
        assert len(keys) == 4

    def test_fields_cannot_slide_into_each_other(self):
        assert protocol.proof("k", NONCE, "m1", "2", "r") != protocol.proof(
            "k", NONCE, "m", "12", "r"
        )

    def test_the_runtimes_proof_matches(self):
        key = protocol.replica_key("secret", "m", "1", "r")
        given = rt_protocol.proof(key, NONCE, "m", "1", "r")
        assert protocol.proof_matches("secret", NONCE, "m", "1", "r", given)
        assert not protocol.proof_matches("secret", NONCE[::-1], "m", "1", "r", given)
        assert not protocol.proof_matches("secret", NONCE, "m", "1", "other", given)

    def test_the_hello_never_carries_the_key(self):
        key = protocol.replica_key("secret", "m", "1", "r")
        hello = rt_protocol.hello_frame("m", "1", "doubles", "r", key, NONCE)
        assert key.encode() not in hello
        assert protocol.decode_hello(hello[5:])["proof"] == rt_protocol.proof(
            key, NONCE, "m", "1", "r"
        )


class TestStoreSecrets:
    def test_a_version_gets_a_secret_that_survives_reopening(self, tmp_path):
        s = Store.open(tmp_path / "db")
        s.add_model("m", "1", "doubles")
        key = s.replica_key("m", "1", "r")
        s.close()
        assert Store.open(tmp_path / "db").replica_key("m", "1", "r") == key

    def test_versions_have_different_secrets(self):
        s = Store.open(":memory:")
        s.add_model("m", "1", "doubles")
        s.add_model("m", "2", "doubles")
        assert s.secrets[("m", "1")] != s.secrets[("m", "2")]

    def test_deleting_a_version_deletes_its_secret(self, tmp_path):
        s = Store.open(tmp_path / "db")
        s.add_model("m", "1", "doubles")
        s.delete_versioned_model("m", "1")
        s.close()
        s = Store.open(tmp_path / "db")
        assert s.secrets == {}
        assert s.db.execute("SELECT COUNT(*) FROM replica_secrets").fetchone() == (0,)

    def test_a_state_from_before_keys_gets_secrets_when_opened(self, tmp_path):
        s = Store.open(tmp_path / "db")
        s.add_model("m", "1", "doubles")
        s.db.execute("DELETE FROM replica_secrets")
        s.close()
        assert ("m", "1") in Store.open(tmp_path / "db").secrets


def hello(rid="h1/cd-m-1-0", version="1", key=None, input_type="doubles", model="m"):
    fields = {
        "model_name": model,
        "model_version": version,
        "input_type": input_type,
        "replica_id": rid,
        "proof": "",
    }
    if key is not None:
        fields["proof"] = rt_protocol.proof(key, NONCE, model, version, rid)
    return fields


class TestCheckHello:
    @pytest.fixture
    def router(self):
        store = Store.open(":memory:")
        store.add_model("m", "1", "doubles")
        return Router(store, Metrics())

    def key(self, router, rid="h1/cd-m-1-0", version="1"):
        return router.store.replica_key("m", version, rid)

    def reason(self, router, fields):
        problem = router.check_hello(fields, NONCE)
        assert problem is None or problem[0] in REFUSAL_REASONS
        return None if problem is None else problem[0]

    def test_the_right_proof_registers(self, router):
        assert self.reason(router, hello(key=self.key(router))) is None

    def test_an_unregistered_version_is_refused(self, router):
        assert self.reason(router, hello(version="2", key="x")) == "unknown_model"

    def test_no_proof_is_refused(self, router):
        assert self.reason(router, hello()) == "no_proof"

    def test_a_wrong_key_is_refused(self, router):
        assert self.reason(router, hello(key="0" * 64)) == "bad_proof"

    def test_another_replicas_key_is_refused(self, router):
        other = self.key(router, rid="h2/cd-m-1-1")
        assert self.reason(router, hello(key=other)) == "bad_proof"

    def test_another_input_type_is_refused(self, router):
        assert self.reason(router, hello(key=self.key(router), input_type="ints")) == "input_type"

    def test_a_connected_id_is_refused_and_keeps_serving(self, router):
        link = ReplicaLink(
            "m", "1", "doubles", "h1/cd-m-1-0", "peer", print, print, AIMDController.for_slo(0.1)
        )
        router.attach(link)
        assert self.reason(router, hello(key=self.key(router))) == "duplicate_id"
        assert router.queues[("m", "1")].replicas["h1/cd-m-1-0"] is link


class TestRefusalLog:
    def test_one_line_per_address_per_period_with_the_count_of_the_rest(self):
        log = RefusalLog(every_s=60)
        assert log.should_log("10.0.0.5", now=0) == (True, 0)
        assert log.should_log("10.0.0.5", now=1) == (False, 0)
        assert log.should_log("10.0.0.5", now=2) == (False, 0)
        assert log.should_log("10.0.0.6", now=3) == (True, 0)
        assert log.should_log("10.0.0.5", now=61) == (True, 2)

    def test_it_remembers_a_bounded_number_of_addresses(self):
        log = RefusalLog(every_s=60, peers=3)
        for i in range(10):
            log.should_log(f"10.0.0.{i}", now=i)
        assert list(log.seen) == ["10.0.0.7", "10.0.0.8", "10.0.0.9"]


def test_ids_in_logs_are_escaped_and_bounded():
    assert shown("a\nb\x1b[31m") == "'a\\nb\\x1b[31m'"
    assert shown("x" * 1000) == "'" + "x" * 120 + "'..."
