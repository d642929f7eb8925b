"""The query API against a real frontend and runtime: answers, defaults, metrics, tokens."""

from __future__ import annotations

import time

import pytest
from serving_helpers import post

from clipper_deploy.frontend.client import FrontendError

SEED_INPUT = [0.5, -1.0, 0.25, 2.0]


def _slow(inputs):
    import time

    time.sleep(0.5)
    return [1.0 for _ in inputs]


class TestPredictions:
    def test_answers_clippers_json(self, frontend, runtime_factory):
        frontend.setup_app()
        runtime_factory(frontend)
        status, doc = post(f"{frontend.query_url}/example/predict", {"input": SEED_INPUT})
        assert status == 200
        assert set(doc) == {"query_id", "output", "default"}
        assert doc["output"] in (0, 1) and doc["default"] is False

    def test_answers_an_input_batch(self, frontend, runtime_factory):
        frontend.setup_app()
        runtime_factory(frontend)
        status, doc = post(
            f"{frontend.query_url}/example/predict", {"input_batch": [SEED_INPUT] * 3}
        )
        assert status == 200
        preds = doc["batch_predictions"]
        assert len(preds) == 3
        assert len({p["query_id"] for p in preds}) == 3
        assert all(p["default"] is False for p in preds)

    def test_metrics_count_requests_batches_and_replicas(self, frontend, runtime_factory):
        frontend.setup_app()
        runtime_factory(frontend, replica_id="r-metrics")
        frontend.query().predict("example", SEED_INPUT)
        text = frontend.query(frontend.token).metrics()
        assert 'clipper_requests_total{app="example",status="200"} 1.0' in text
        assert 'clipper_request_latency_seconds_count{app="example"} 1.0' in text
        assert 'replica="r-metrics"' in text and "clipper_batch_size_bucket" in text
        assert 'clipper_connected_replicas{model="example_model",version="1"} 1.0' in text


class TestDefaultOutput:
    def test_no_connected_replica_answers_default_at_once(self, frontend):
        frontend.setup_app(default_output="-1.0")
        started = time.monotonic()
        status, doc = post(f"{frontend.query_url}/example/predict", {"input": SEED_INPUT})
        assert time.monotonic() - started < 1.0
        assert (status, doc["output"], doc["default"]) == (200, -1.0, True)
        assert "No connected replica" in doc["default_explanation"]

    def test_no_linked_model_answers_default(self, frontend):
        frontend.admin().add_app("lonely", "doubles", "x", 100_000)
        _, doc = post(f"{frontend.query_url}/lonely/predict", {"input": SEED_INPUT})
        assert doc["default"] is True and doc["output"] == "x"
        assert "No model is linked" in doc["default_explanation"]

    def test_a_query_slower_than_the_slo_answers_default_within_the_slo(
        self, frontend, runtime_factory, model_dir
    ):
        frontend.setup_app(slo_micros=50_000, default_output={"label": "unknown"})
        runtime_factory(frontend, model_dir=model_dir(_slow))
        started = time.monotonic()
        _, doc = post(f"{frontend.query_url}/example/predict", {"input": SEED_INPUT})
        elapsed = time.monotonic() - started
        assert doc["default"] is True and doc["output"] == {"label": "unknown"}
        assert doc["default_explanation"] == (
            "Failed to retrieve a prediction response within the specified latency SLO"
        )
        assert elapsed < 0.4


class TestQueryToken:
    @pytest.fixture
    def guarded(self, frontend_factory, runtime_factory):
        fe = frontend_factory("--require-query-token")
        fe.setup_app()
        runtime_factory(fe)
        return fe

    def test_refuses_a_query_without_the_token(self, guarded):
        status, doc = post(f"{guarded.query_url}/example/predict", {"input": SEED_INPUT})
        assert status == 401 and doc["error"] == "Unauthorized"

    def test_refuses_a_wrong_token(self, guarded):
        status, _ = post(f"{guarded.query_url}/example/predict", {"input": SEED_INPUT}, "nope")
        assert status == 401

    def test_accepts_the_query_token(self, guarded):
        token = (guarded.state_dir / "query.token").read_text().strip()
        assert (guarded.state_dir / "query.token").stat().st_mode & 0o777 == 0o600
        assert guarded.query(token).predict("example", SEED_INPUT)["default"] is False

    def test_guards_metrics_too(self, guarded):
        with pytest.raises(Exception, match="401"):
            guarded.query().metrics()

    def test_open_frontend_needs_no_token(self, frontend):
        frontend.setup_app()
        assert frontend.query().predict("example", SEED_INPUT)["default"] is True
        with pytest.raises(FrontendError, match="Unknown application"):
            frontend.query().predict("nope", SEED_INPUT)
