"""The frontend's bounds, each on a real frontend: timeouts, queue cap, batch cap, metrics
token, log rotation."""

from __future__ import annotations

import socket
import threading
import time

from serving_helpers import http_request, post, raw_exchange, wait_for

SEED_INPUT = [0.5, -1.0, 0.25, 2.0]


def _slow(inputs):
    import time

    time.sleep(0.3)
    return [1.0 for _ in inputs]


def _closed_within(port: int, data: bytes, seconds: float) -> float:
    """Send ``data`` and return how long the server took to close the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds + 5) as s:
        started = time.monotonic()
        s.sendall(data)
        while s.recv(4096):
            pass
        return time.monotonic() - started


class TestConnectionTimeouts:
    def test_half_sent_headers_are_closed_after_the_idle_timeout_on_both_ports(
        self, frontend_factory
    ):
        fe = frontend_factory("--idle-timeout", "1")
        for port in (fe.query_port, fe.admin_port):
            took = _closed_within(port, b"POST /example/predict HTTP/1.1\r\nHost: x\r\nX-A", 10)
            assert 0.5 < took < 4.0

    def test_a_silent_connection_is_closed_too(self, frontend_factory):
        fe = frontend_factory("--idle-timeout", "1")
        assert _closed_within(fe.query_port, b"", 10) < 4.0

    def test_an_idle_keep_alive_connection_is_closed(self, frontend_factory):
        fe = frontend_factory("--idle-timeout", "1")
        with socket.create_connection(("127.0.0.1", fe.admin_port), timeout=10) as s:
            s.sendall(b"GET /admin/ping HTTP/1.1\r\nHost: x\r\n\r\n")
            first = s.recv(4096)
            assert first.startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            while s.recv(4096):
                pass
            assert time.monotonic() - started < 4.0

    def test_a_body_that_does_not_arrive_gets_408(self, frontend_factory):
        fe = frontend_factory("--body-timeout", "1")
        fe.setup_app()
        data = http_request(
            "POST",
            "/example/predict",
            b'{"input": [1',
            {"Content-Type": "application/json", "Content-Length": "100"},
        )
        resp = raw_exchange(fe.query_port, data, timeout=10)
        assert resp.status == 408 and 0.9 < resp.seconds < 4.0
        assert "did not arrive within 1 s" in resp.json()["cause"]


class TestConnectionCap:
    def test_one_connection_beyond_the_cap_gets_a_503_and_the_others_keep_working(
        self, frontend_factory
    ):
        import json

        fe = frontend_factory("--max-connections", "8")
        address = ("127.0.0.1", fe.admin_port)
        held = [socket.create_connection(address, timeout=10) for _ in range(8)]
        try:
            time.sleep(0.2)
            with socket.create_connection(address, timeout=10) as extra:
                answer = b""
                while chunk := extra.recv(4096):
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 503") and b"Retry-After: 1" in head
            assert "max_connections" in json.loads(body)["cause"]
            held[0].sendall(b"GET /admin/ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert held[0].recv(4096).startswith(b"HTTP/1.1 200")
        finally:
            for s in held:
                s.close()
        time.sleep(0.2)  # closed connections free their places
        resp = raw_exchange(fe.admin_port, http_request("GET", "/admin/ping", b"", {}), timeout=10)
        assert resp.status == 200


class TestQueueCap:
    def test_a_full_queue_answers_default_at_once(
        self, frontend_factory, runtime_factory, model_dir
    ):
        fe = frontend_factory("--max-queue", "3")
        fe.setup_app(slo_micros=5_000_000)
        runtime_factory(fe, model_dir=model_dir(_slow))
        url = f"{fe.query_url}/example/predict"
        answers: list[tuple[float, dict]] = []

        def one() -> None:
            started = time.monotonic()
            doc = post(url, {"input": SEED_INPUT})[1]
            answers.append((time.monotonic() - started, doc))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        full = [(s, d) for s, d in answers if "is full" in (d.get("default_explanation") or "")]
        assert full, answers
        assert all(d["default"] is True and s < 0.25 for s, d in full)
        assert "--max-queue" in full[0][1]["default_explanation"]
        assert sum(1 for _, d in answers if d["default"] is False) >= 1
        metrics = fe.query(fe.token).metrics()
        assert 'reason="queue_full"' in metrics


class TestBatchCap:
    def test_an_input_batch_over_the_cap_is_a_400(self, frontend_factory):
        fe = frontend_factory("--max-batch-inputs", "5")
        fe.setup_app()
        url = f"{fe.query_url}/example/predict"
        status, doc = post(url, {"input_batch": [SEED_INPUT] * 6})
        assert status == 400 and "at most 5 per request (--max-batch-inputs)" in doc["cause"]
        assert post(url, {"input_batch": [SEED_INPUT] * 5})[0] == 200


class TestMetricsAccess:
    def test_needs_the_admin_token_by_default(self, frontend):
        status = raw_exchange(frontend.query_port, http_request("GET", "/metrics")).status
        assert status == 401
        assert "clipper_requests" in frontend.query(frontend.token).metrics()

    def test_the_query_token_is_not_enough(self, frontend_factory):
        fe = frontend_factory("--require-query-token")
        query_token = (fe.state_dir / "query.token").read_text().strip()
        data = http_request("GET", "/metrics", headers={"Authorization": f"Bearer {query_token}"})
        assert raw_exchange(fe.query_port, data).status == 401

    def test_open_when_configured(self, frontend_factory):
        fe = frontend_factory("--metrics-open")
        assert "clipper_requests" in fe.query().metrics()


class TestLog:
    def test_one_line_per_refusal_no_traceback_and_rotated(self, frontend_factory):
        fe = frontend_factory("--log-max-bytes", "20000", "--log-backups", "2")
        fe.setup_app()
        url = f"{fe.query_url}/example/predict"
        bad = b'{"input": [' + b"[" * 5000 + b"]}"
        for _ in range(150):
            assert post(url, bad)[0] == 400
        for _ in range(50):
            raw_exchange(fe.query_port, b"\x16\x03\x01 not http\r\n\r\n")
        wait_for(lambda: (fe.state_dir / "frontend.log.1").exists(), 5, "a rotation")
        logs = [fe.state_dir / n for n in ("frontend.log", "frontend.log.1", "frontend.log.2")]
        assert not (fe.state_dir / "frontend.log.3").exists()
        assert all(p.stat().st_size <= 20000 + 1000 for p in logs if p.exists())
        text = "".join(p.read_text() for p in logs if p.exists())
        assert "Traceback" not in text
        lines = text.splitlines()
        refused = [x for x in lines if "refused POST /example/predict" in x]
        assert refused and all(len(x) < 700 for x in lines)
        assert any("refused malformed HTTP" in x for x in lines)
