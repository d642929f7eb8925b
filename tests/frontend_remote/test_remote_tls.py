"""TLS on the remote frontend (h1's container), real handshakes from this machine.

In order (one module-scoped bed): ``clipper_tls=self-signed`` makes a CA and a certificate for
h1's address, the CA key stays on h1 (root's, 0600: the container cannot read it), the client
pins ``ca.pem`` (cached 0600) and the seed's flow (deploy to h2 with its readiness and smoke
calls, predict) runs over https; a client that does not pin, pins another CA, or speaks plain
HTTP to the TLS port fails clearly; a second client with an empty cache reads ``ca.pem`` over
SSH; a second start keeps the CA; then a certificate the user provides replaces it (the
container is replaced, clients pin the user's CA); the replica port stays plain TCP.
"""

from __future__ import annotations

import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from remote_helpers import FRONTEND_HOST, write_remote_inventory

from clipper_deploy import Clipper
from clipper_deploy.frontend import certificates
from clipper_deploy.frontend.client import AdminClient, FrontendError, QueryClient

pytestmark = pytest.mark.bed

APP, MODEL = "tls-app", "tls-model"


def doubled(xs: Any) -> list[str]:
    return [str(sum(x) * 2) for x in xs]


def with_vars(inventory: Path, bed: Any, extra: str) -> Path:
    h1 = bed.layout.host(FRONTEND_HOST)
    line = f"{h1.name} ansible_host={h1.address}"
    text = inventory.read_text()
    assert line in text
    inventory.write_text(text.replace(line, f"{line} {extra}"))
    return inventory


def on_h1(clipper: Clipper, command: str) -> str:
    result = clipper.frontend.service.run(command, "run a test command")
    assert result.ok, f"{command}: {result.stderr}"
    return result.stdout.strip()


@pytest.fixture(scope="module")
def tls_clipper(remote_bed, client_dirs):
    inventory = with_vars(
        write_remote_inventory(remote_bed, client_dirs), remote_bed, "clipper_tls=self-signed"
    )
    clipper = Clipper(inventory, connect_timeout=10.0)
    try:
        yield clipper
    finally:
        try:
            clipper.stop()
        except Exception as exc:  # the bed goes down next anyway
            print(f"stopping the remote frontend failed: {exc}")


class TestSelfSignedOnH1:
    def test_start_serves_https_with_a_ca_made_for_h1(self, tls_clipper: Clipper) -> None:
        started = time.monotonic()
        status = tls_clipper.start()
        print(f"\n[timing] cold start() with TLS: {time.monotonic() - started:.1f} s")
        address = tls_clipper.frontend.config.bind
        assert status["admin_url"] == f"https://{address}:1338"
        ca = Path(tls_clipper.frontend.config.tls_ca)
        assert oct(ca.stat().st_mode & 0o777) == "0o600"
        state = tls_clipper.frontend.config.state_dir
        modes = on_h1(tls_clipper, f"stat -c '%n %u:%g %a' {state}/tls/*").splitlines()
        assert f"{state}/tls/ca.key 0:0 600" in modes
        assert f"{state}/tls/server.key 10001:10001 600" in modes
        served = on_h1(tls_clipper, f"cat {state}/tls/server.pem").encode() + b"\n"
        assert certificates.certificate_problem(served, address) is None

    def test_the_seeds_flow_runs_over_https(self, tls_clipper: Clipper) -> None:
        tls_clipper.register_application(APP, "doubles", "-1.0", 100_000)
        assert tls_clipper.deploy_predict_function(
            MODEL, 1, doubled, [APP], "doubles", hosts="h2", mode="auto"
        )
        tls_clipper.link_model_to_app(APP, MODEL)
        assert tls_clipper.query.base_url.startswith("https://")
        reply = tls_clipper.predict(APP, [1.0, 2.0])
        assert reply["output"] == "6.0" and not reply["default"], reply

    def test_curl_style_pinning_with_the_cached_ca(self, tls_clipper: Clipper) -> None:
        context = ssl.create_default_context(cafile=tls_clipper.frontend.config.tls_ca)
        url = f"{tls_clipper.frontend.query_url}/{APP}/predict"
        req = urllib.request.Request(url, data=b'{"input": [2.0]}', method="POST")
        with urllib.request.urlopen(req, context=context, timeout=10) as resp:
            assert resp.status == 200

    def test_an_unpinned_client_fails_clearly(self, tls_clipper: Clipper) -> None:
        with pytest.raises(FrontendError) as info:
            QueryClient(tls_clipper.frontend.query_url).predict(APP, [1.0])
        assert info.value.error == "TLS failed"
        assert "system's trusted CAs" in info.value.cause

    def test_a_client_pinning_another_ca_fails_clearly(
        self, tls_clipper: Clipper, tmp_path: Path
    ) -> None:
        other = tmp_path / "other.pem"
        other.write_bytes(certificates.create_ca("another").cert_pem)
        with pytest.raises(FrontendError, match=str(other)):
            AdminClient(tls_clipper.frontend.admin_url, "x", cafile=str(other)).ping()

    def test_plain_http_to_the_tls_port_fails_clearly(self, tls_clipper: Clipper) -> None:
        config = tls_clipper.frontend.config
        with pytest.raises(FrontendError, match="use https://"):
            QueryClient(f"http://{config.bind}:{config.query_port}").predict(APP, [1.0])

    def test_a_second_client_reads_the_ca_over_ssh(
        self, tls_clipper: Clipper, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config-b"))
        other = Clipper(tls_clipper.inventory.source, connect_timeout=10.0)
        assert not Path(other.frontend.config.tls_ca).exists()
        assert other.predict(APP, [1.0, 2.0])["output"] == "6.0"
        pinned = Path(other.frontend.config.tls_ca).read_bytes()
        assert pinned == Path(tls_clipper.frontend.config.tls_ca).read_bytes()

    def test_a_stale_pinned_ca_is_read_again_over_ssh(self, tls_clipper: Clipper) -> None:
        cache = Path(tls_clipper.frontend.config.tls_ca)
        right = cache.read_bytes()
        cache.write_bytes(certificates.create_ca("a CA made anew elsewhere").cert_pem)
        assert tls_clipper.admin.get_all_applications() == [APP]
        assert cache.read_bytes() == right

    def test_a_second_start_keeps_the_ca(self, tls_clipper: Clipper) -> None:
        before = Path(tls_clipper.frontend.config.tls_ca).read_bytes()
        status = tls_clipper.start()
        assert status["message"].startswith("already running"), status["message"]
        assert Path(tls_clipper.frontend.config.tls_ca).read_bytes() == before
        assert tls_clipper.frontend.service.plan().steps == ()  # --check: nothing to change

    def test_the_replica_port_stays_plain(self, tls_clipper: Clipper) -> None:
        replicas = [
            r for r in tls_clipper.admin.get_all_containers() if r["state"] != "disconnected"
        ]
        assert [r["model_name"] for r in replicas] == [MODEL]


class TestProvidedCertificate:
    def test_the_users_certificate_replaces_the_self_signed_one(
        self, tls_clipper: Clipper, remote_bed: Any, client_dirs: Path, tmp_path: Path
    ) -> None:
        address = tls_clipper.frontend.config.bind
        ca = certificates.create_ca("the user's own CA")
        pair = certificates.issue_server_certificate(ca, [address])
        (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
        (tmp_path / "cert.pem").write_bytes(pair.cert_pem)
        (tmp_path / "key.pem").write_bytes(pair.key_pem)
        inventory = tls_clipper.inventory.source
        text = (
            Path(inventory)
            .read_text()
            .replace(
                "clipper_tls=self-signed",
                f"clipper_tls_cert={tmp_path}/cert.pem clipper_tls_key={tmp_path}/key.pem "
                f"clipper_tls_ca={tmp_path}/ca.pem",
            )
        )
        Path(inventory).write_text(text)
        provided = Clipper(inventory, connect_timeout=10.0)
        status = provided.start()
        assert "start" in status["message"] and "already" not in status["message"], status
        assert provided.frontend.config.tls_ca == f"{tmp_path}/ca.pem"
        deadline = time.monotonic() + 20
        while True:  # the replica dials the new container again
            try:
                reply = provided.predict(APP, [1.0, 2.0])
                if not reply["default"]:
                    break
            except FrontendError:
                pass
            assert time.monotonic() < deadline, "no answer from the model after the restart"
            time.sleep(0.2)
        assert reply["output"] == "6.0"
        with pytest.raises(FrontendError, match="TLS failed"):  # the old CA no longer fits
            AdminClient(
                provided.frontend.admin_url, "x", cafile=tls_clipper.frontend.config.tls_ca
            ).ping()
