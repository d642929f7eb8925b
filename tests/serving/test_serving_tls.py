"""TLS on the query and management ports, on loopback: real handshakes with a real frontend.

A CA made with :mod:`clipper_deploy.frontend.certificates` signs the frontend's certificate for
127.0.0.1. A client pinning that CA works; one pinning another CA, or trusting only the
system's CAs, fails with a clear TLS error; plain HTTP to a TLS port gets no HTTP answer; a
missing or mismatched key, and an expired certificate, fail with the messages docs/errors.md
quotes. The frontend's own start through an inventory (``clipper_tls=self-signed``) creates the
CA and pins it. The TLS cost of a predict is printed (medians, same run), not asserted.
"""

from __future__ import annotations

import datetime
import http.client
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from serving_helpers import REPO, FrontendProcess, free_port

from clipper_deploy.frontend import certificates
from clipper_deploy.frontend.client import AdminClient, FrontendError, QueryClient
from clipper_deploy.frontend.tls import TLSConfigError, server_context
from clipper_deploy.hosts.inventory import Inventory
from clipper_deploy.orchestration.frontend_access import FrontendAccess, frontend_host


def write_pair(directory: Path, name: str, pair: certificates.KeyPair) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    cert.write_bytes(pair.cert_pem)
    key.write_bytes(pair.key_pem)
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = certificates.create_ca("127.0.0.1")
    ca_pem, _ = write_pair(d, "ca", ca)
    other_pem, _ = write_pair(d, "other-ca", certificates.create_ca("someone else"))
    cert, key = write_pair(d, "server", certificates.issue_server_certificate(ca, ["127.0.0.1"]))
    return {"dir": d, "ca": ca, "ca_pem": ca_pem, "other_ca": other_pem, "cert": cert, "key": key}


def start_tls_frontend(state_dir: Path, cert: Path, key: Path) -> FrontendProcess:
    """``python -m clipper_deploy.frontend --tls-cert --tls-key`` on free ports (not
    ``FrontendProcess.start``, which waits with a plain HTTP ping)."""
    fe = FrontendProcess(state_dir, ["--tls-cert", str(cert), "--tls-key", str(key)])
    fe.proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "clipper_deploy.frontend",
            "--state-dir",
            str(fe.state_dir),
            "--query-port",
            str(fe.query_port),
            "--admin-port",
            str(fe.admin_port),
            "--replica-port",
            str(fe.replica_port),
            *fe.extra_args,
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    return fe


def wait_answering(fe: FrontendProcess, cafile: Path, timeout: float = 15.0) -> None:
    """Until a client pinning ``cafile`` gets an answer from the admin port."""
    admin = AdminClient(f"https://127.0.0.1:{fe.admin_port}", "", 1.0, cafile=str(cafile))
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.ping()
            return
        except FrontendError:
            if time.monotonic() > deadline or fe.proc.poll() is not None:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="module")
def tls_frontend(pki, tmp_path_factory):
    fe = start_tls_frontend(tmp_path_factory.mktemp("tls") / "fe", pki["cert"], pki["key"])
    wait_answering(fe, pki["ca_pem"])
    yield fe
    fe.stop()


def https(fe, port_kind: str = "admin") -> str:
    port = fe.admin_port if port_kind == "admin" else fe.query_port
    return f"https://127.0.0.1:{port}"


class TestPinnedClient:
    def test_manages_and_queries_over_tls(self, tls_frontend, pki):
        token = tls_frontend.token
        admin = AdminClient(https(tls_frontend), token, cafile=str(pki["ca_pem"]))
        admin.add_app("tls-app", "doubles", -1.0, 100_000)
        assert admin.get_all_applications() == ["tls-app"]
        query = QueryClient(https(tls_frontend, "query"), cafile=str(pki["ca_pem"]))
        answer = query.predict("tls-app", [1.0])
        assert answer["default"] is True  # no model linked: the default, over TLS
        assert (
            "clipper"
            in QueryClient(https(tls_frontend, "query"), token, cafile=str(pki["ca_pem"])).metrics()
        )

    def test_speaks_tls_1_2_or_newer(self, tls_frontend, pki):
        import socket
        import ssl

        context = ssl.create_default_context(cafile=str(pki["ca_pem"]))
        with (
            socket.create_connection(("127.0.0.1", tls_frontend.admin_port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


class TestRefusedClients:
    def test_another_ca_fails_naming_the_pinned_file(self, tls_frontend, pki):
        admin = AdminClient(https(tls_frontend), "x", cafile=str(pki["other_ca"]))
        with pytest.raises(FrontendError) as info:
            admin.get_all_applications()
        assert info.value.error == "TLS failed"
        assert "unable to get local issuer certificate" in info.value.cause
        assert str(pki["other_ca"]) in info.value.cause

    def test_no_pin_fails_against_the_system_cas(self, tls_frontend):
        with pytest.raises(FrontendError, match="the system's trusted CAs"):
            AdminClient(https(tls_frontend), "x").ping()

    def test_plain_http_to_a_tls_port_gets_no_http_answer(self, tls_frontend):
        with pytest.raises(FrontendError) as info:
            AdminClient(f"http://127.0.0.1:{tls_frontend.admin_port}", "x").ping()
        assert info.value.status is None
        assert "use https://" in info.value.cause
        conn = http.client.HTTPConnection("127.0.0.1", tls_frontend.query_port, timeout=5)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.request("GET", "/metrics")
            conn.getresponse()
        conn.close()

    def test_the_frontend_still_serves_after_the_refusals(self, tls_frontend, pki):
        assert tls_frontend.proc.poll() is None
        AdminClient(https(tls_frontend), "", cafile=str(pki["ca_pem"])).ping()


class TestBadFiles:
    def test_missing_certificate(self, tmp_path):
        with pytest.raises(TLSConfigError, match=r"TLS certificate .*nope.pem cannot be read"):
            server_context(str(tmp_path / "nope.pem"), str(tmp_path / "nope.key"))

    def test_a_key_of_another_certificate(self, pki, tmp_path):
        _, other_key = write_pair(
            tmp_path, "x", certificates.issue_server_certificate(pki["ca"], ["127.0.0.1"])
        )
        with pytest.raises(TLSConfigError, match="does not belong to the certificate"):
            server_context(str(pki["cert"]), str(other_key))

    def test_the_frontend_refuses_to_start_and_says_why(self, tmp_path):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "clipper_deploy.frontend",
                "--state-dir",
                str(tmp_path / "fe"),
                "--query-port",
                str(free_port()),
                "--admin-port",
                str(free_port()),
                "--replica-port",
                str(free_port()),
                "--tls-cert",
                str(tmp_path / "missing.pem"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 1
        assert "the frontend could not start: TLS certificate" in out.stderr

    def test_an_expired_certificate_is_refused_by_clients(self, pki, tmp_path):
        old = certificates.issue_server_certificate(
            pki["ca"],
            ["127.0.0.1"],
            days=1,
            not_before=datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3),
        )
        assert "expired on" in certificates.certificate_problem(old.cert_pem, "127.0.0.1")
        cert, key = write_pair(tmp_path, "old", old)
        fe = start_tls_frontend(tmp_path / "fe", cert, key)
        try:
            admin = AdminClient(https(fe), "", 1.0, cafile=str(pki["ca_pem"]))
            deadline = time.monotonic() + 15
            while True:
                try:
                    admin.ping()
                    raise AssertionError("an expired certificate was accepted")
                except FrontendError as exc:
                    if exc.error == "TLS failed":
                        assert "certificate has expired" in exc.cause
                        assert "issue a new one" in exc.cause
                        break
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        finally:
            fe.stop()


class TestSelfSignedThroughTheInventory:
    """``clipper_tls=self-signed`` on a local ``[clipper]`` host: the tool makes the CA and
    the certificate, starts the frontend with them and pins the CA in every client."""

    def test_start_creates_pins_and_serves(self, tmp_path, monkeypatch):
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
        state = tmp_path / "state"
        inventory = tmp_path / "inventory.ini"
        ports = [free_port() for _ in range(3)]
        inventory.write_text(
            "[clipper]\n"
            f"local ansible_connection=local ansible_host=127.0.0.1 clipper_state_dir={state} "
            f"clipper_query_port={ports[0]} clipper_admin_port={ports[1]} "
            f"clipper_replica_port={ports[2]} clipper_tls=self-signed\n"
            "[model_hosts]\n"
        )
        inv = Inventory.from_file(inventory)
        access = FrontendAccess(inv, frontend_host(inv), say=lambda _line: None)
        try:
            status = access.start()
            assert status["admin_url"].startswith("https://127.0.0.1:")
            tls = state / "tls"
            assert oct((tls / "ca.key").stat().st_mode & 0o777) == "0o600"
            assert oct((tls / "server.key").stat().st_mode & 0o777) == "0o600"
            assert oct(tls.stat().st_mode & 0o777) == "0o700"
            assert access.admin.cafile == str(tls / "ca.pem")
            access.register_application("tls-app", "doubles", -1.0)
            assert access.query.predict("tls-app", [1.0])["default"] is True
            with urllib.request.urlopen(
                urllib.request.Request(f"{access.admin_url}/admin/ping"),
                context=__import__("ssl").create_default_context(cafile=str(tls / "ca.pem")),
                timeout=5,
            ) as resp:
                assert resp.status == 200  # what `curl --cacert <state>/tls/ca.pem` does
            ca_before = (tls / "ca.pem").read_bytes()
            access.stop()
            access.start()  # a second start keeps the CA: pinned clients keep working
            assert (tls / "ca.pem").read_bytes() == ca_before
        finally:
            access.stop()


def test_tls_cost_of_a_predict_is_printed(tls_frontend, pki, tmp_path):
    """p50 of 300 sequential predicts over TLS (one connection each, the tool's own clients
    open a connection per call) against a plain frontend in the same run."""
    plain = FrontendProcess(tmp_path / "plain").start_fresh()
    try:
        plain.admin().add_app("cost", "doubles", -1.0, 100_000)
        AdminClient(https(tls_frontend), tls_frontend.token, cafile=str(pki["ca_pem"])).add_app(
            "cost", "doubles", -1.0, 100_000
        )
        clients = {
            "plain": QueryClient(plain.query_url),
            "tls": QueryClient(https(tls_frontend, "query"), cafile=str(pki["ca_pem"])),
        }
        times: dict[str, list[float]] = {"plain": [], "tls": []}
        for _ in range(300):
            for name, client in clients.items():
                t = time.perf_counter()
                client.predict("cost", [1.0])
                times[name].append((time.perf_counter() - t) * 1000)
        p50 = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"\npredict p50 (new connection per call, default answer): plain "
            f"{p50['plain']:.2f} ms, TLS {p50['tls']:.2f} ms ({p50['tls'] / p50['plain']:.2f}x)"
        )
        assert all(len(v) == 300 for v in times.values())
    finally:
        plain.stop()
