"""TLS and credentials, the pure parts: inventory settings, tokens in Basic credentials, the
frontend's TLS flags, certificate checks, the remote file commands and the config hash."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import pytest

from clipper_deploy.frontend import certificates
from clipper_deploy.frontend.config import FrontendConfig, from_args
from clipper_deploy.frontend.tokens import presented_token, token_matches
from clipper_deploy.hosts.inventory import Inventory
from clipper_deploy.orchestration import frontend_tls
from clipper_deploy.orchestration.frontend_access import FrontendAccess, frontend_host
from clipper_deploy.orchestration.frontend_service import wanted_container


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


class TestPresentedToken:
    @pytest.mark.parametrize(
        ("header", "token"),
        [
            ("Bearer abc", b"abc"),
            ("bearer  abc ", b"abc"),
            (basic("clipper:abc"), b"abc"),
            (basic(":abc"), b"abc"),
            (basic("u:a:b"), b"a:b"),
            (basic("no-colon"), None),
            ("Basic !!!", None),
            ("Digest abc", None),
            ("", None),
            (None, None),
        ],
    )
    def test_reads_bearer_and_basic(self, header, token):
        assert presented_token(header) == token

    def test_the_user_name_is_not_the_secret(self):
        assert not token_matches(basic("abc:"), ("abc",))
        assert token_matches(basic("anyone:abc"), ("abc",))


def inventory(tmp_path: Path, clipper_vars: str, local: bool = False) -> FrontendAccess:
    path = tmp_path / "inventory.ini"
    connection = "ansible_connection=local " if local else ""
    path.write_text(f"[clipper]\nfe ansible_host=10.0.0.5 {connection}{clipper_vars}\n")
    inv = Inventory.from_file(path)
    return FrontendAccess(inv, frontend_host(inv), say=lambda _line: None)


class TestSettings:
    def test_off_by_default(self, tmp_path):
        access = inventory(tmp_path, "")
        assert not access.tls.enabled
        assert access.config.tls_cert is None and access.admin_url == "http://10.0.0.5:1338"

    def test_a_certificate_means_provided_relative_to_the_inventory(self, tmp_path):
        access = inventory(tmp_path, "clipper_tls_cert=c.pem clipper_tls_key=k.pem")
        assert access.tls == frontend_tls.TLSSettings(
            "provided", tmp_path / "c.pem", tmp_path / "k.pem", None
        )
        config = access.config
        assert config.tls_cert == "/var/lib/clipper-deploy/frontend/tls/server.pem"
        assert access.query_url == "https://10.0.0.5:1337"
        assert config.tls_ca is None  # the system's CAs

    def test_self_signed_on_a_local_host_pins_the_state_ca(self, tmp_path):
        access = inventory(tmp_path, f"clipper_tls=self-signed clipper_state_dir={tmp_path}", True)
        assert access.config.tls_ca == str(tmp_path / "tls" / "ca.pem")
        assert access.config.tls_cert == str(tmp_path / "tls" / "server.pem")

    def test_self_signed_on_a_remote_host_pins_a_cached_copy(self, tmp_path, monkeypatch):
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
        access = inventory(tmp_path, "clipper_tls=self-signed")
        ca = Path(access.config.tls_ca)
        assert ca.parent == tmp_path / "cfg" / "clipper-deploy" / "tls"
        assert ca.name.startswith("10.0.0.5_1338-") and ca.name.endswith(".ca.pem")

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("clipper_tls=maybe", "must be one of off, self-signed, provided"),
            ("clipper_tls=provided", "needs clipper_tls_cert and clipper_tls_key"),
            ("clipper_tls=self-signed clipper_tls_cert=c.pem", "creates its own certificate"),
        ],
    )
    def test_contradictions_are_refused(self, tmp_path, text, message):
        with pytest.raises(frontend_tls.FrontendTLSError, match=message):
            inventory(tmp_path, text).tls  # noqa: B018


class TestFrontendFlags:
    def test_round_trip(self, tmp_path):
        config = FrontendConfig(state_dir=tmp_path, tls_cert="/c.pem", tls_key="/k.pem")
        again = from_args(config.argv())
        assert (again.tls_cert, again.tls_key, again.scheme) == ("/c.pem", "/k.pem", "https")

    def test_the_key_defaults_to_the_certificate_file(self, tmp_path):
        config = from_args(["--state-dir", str(tmp_path), "--tls-cert", "/both.pem"])
        assert config.tls_key == "/both.pem"

    def test_plain_by_default(self, tmp_path):
        assert "--tls-cert" not in FrontendConfig(state_dir=tmp_path).argv()


class TestCertificateProblem:
    ca = certificates.create_ca("test")

    def test_a_fresh_certificate_for_the_address_is_fine(self):
        pair = certificates.issue_server_certificate(self.ca, ["10.0.0.5", "fe.example"])
        assert certificates.certificate_problem(pair.cert_pem, "10.0.0.5") is None
        assert certificates.certificate_problem(pair.cert_pem, "fe.example") is None

    def test_another_address(self):
        pair = certificates.issue_server_certificate(self.ca, ["10.0.0.5"])
        assert "not 10.0.0.6" in certificates.certificate_problem(pair.cert_pem, "10.0.0.6")

    def test_expired_and_expiring(self):
        now = datetime.datetime.now(datetime.UTC)
        old = certificates.issue_server_certificate(
            self.ca, ["h"], days=1, not_before=now - datetime.timedelta(days=2)
        )
        assert "expired on" in certificates.certificate_problem(old.cert_pem, "h")
        soon = certificates.issue_server_certificate(self.ca, ["h"], days=10)
        assert certificates.certificate_problem(soon.cert_pem, "h") is None
        assert "within 30 days" in certificates.certificate_problem(
            soon.cert_pem, "h", renew_days=30
        )

    def test_not_pem(self):
        assert "not a PEM certificate" in certificates.certificate_problem(b"nope", "h")


class TestRemoteFiles:
    def test_read_and_split(self):
        command = frontend_tls.read_remote_command("/s", ("ca.pem", "server.pem"))
        assert command == (
            "echo ::clipper-deploy-tls::; cat /s/tls/ca.pem 2>/dev/null; "
            "echo ::clipper-deploy-tls::; cat /s/tls/server.pem 2>/dev/null; true"
        )
        out = "::clipper-deploy-tls::\nCA\n::clipper-deploy-tls::\n"
        assert frontend_tls.split_remote(out, ("ca.pem", "server.pem")) == {"ca.pem": b"CA\n"}

    def test_write_is_0600_and_owned(self):
        assert frontend_tls.write_remote_command("/s", "ca.key", "0:0") == (
            "install -d -o 10001 -g 10001 -m 700 /s/tls && "
            "(umask 077 && cat > /s/tls/.ca.key.part && chown 0:0 /s/tls/.ca.key.part "
            "&& mv /s/tls/.ca.key.part /s/tls/ca.key)"
        )

    def test_a_new_certificate_replaces_the_container(self, tmp_path):
        config = FrontendConfig(state_dir=tmp_path, tls_cert="/c", tls_key="/k")
        a = wanted_container(config, "ab" * 32, "base", tls_served="1" * 64)
        b = wanted_container(config, "ab" * 32, "base", tls_served="2" * 64)
        assert a.spec.config_hash != b.spec.config_hash
        plain = wanted_container(FrontendConfig(state_dir=tmp_path), "ab" * 32, "base")
        assert (
            plain.spec.config_hash
            == wanted_container(
                FrontendConfig(state_dir=tmp_path), "ab" * 32, "base", ""
            ).spec.config_hash
        )


class TestServedDigest:
    """What ``frontend.start --check`` compares with the running container, read only."""

    def test_provided_is_the_local_files_digest(self, tmp_path):
        pair = certificates.issue_server_certificate(certificates.create_ca("x"), ["10.0.0.5"])
        (tmp_path / "c.pem").write_bytes(pair.cert_pem)
        (tmp_path / "k.pem").write_bytes(pair.key_pem)
        settings = frontend_tls.TLSSettings("provided", tmp_path / "c.pem", tmp_path / "k.pem")
        digest = frontend_tls.served_digest(None, settings, "/s", "10.0.0.5")
        assert digest == __import__("hashlib").sha256(pair.cert_pem).hexdigest()

    def test_self_signed_reads_the_hosts_certificate(self):
        pair = certificates.issue_server_certificate(certificates.create_ca("x"), ["10.0.0.5"])
        sep = frontend_tls.SEPARATOR
        settings = frontend_tls.TLSSettings("self-signed")
        on_host = f"{sep}\n{pair.cert_pem.decode()}"
        assert frontend_tls.served_digest(lambda c, w: on_host, settings, "/s", "10.0.0.5")
        # another address, or nothing there: start would issue a new one
        assert frontend_tls.served_digest(lambda c, w: on_host, settings, "/s", "10.0.0.6") == ""
        assert frontend_tls.served_digest(lambda c, w: f"{sep}\n", settings, "/s", "x") == ""


class TestLocalPreparation:
    def test_self_signed_makes_the_files_once_0600(self, tmp_path):
        settings = frontend_tls.TLSSettings("self-signed")
        frontend_tls.prepare_local(settings, tmp_path, "127.0.0.1")
        tls = tmp_path / "tls"
        first = {p.name: p.read_bytes() for p in tls.iterdir()}
        assert set(first) == {"ca.pem", "ca.key", "server.pem", "server.key"}
        assert all((tls / n).stat().st_mode & 0o777 == 0o600 for n in first)
        frontend_tls.prepare_local(settings, tmp_path, "127.0.0.1")
        assert {p.name: p.read_bytes() for p in tls.iterdir()} == first

    def test_a_new_address_gets_a_new_server_certificate_from_the_same_ca(self, tmp_path):
        settings = frontend_tls.TLSSettings("self-signed")
        frontend_tls.prepare_local(settings, tmp_path, "127.0.0.1")
        ca = (tmp_path / "tls" / "ca.pem").read_bytes()
        frontend_tls.prepare_local(settings, tmp_path, "127.0.0.2")
        assert (tmp_path / "tls" / "ca.pem").read_bytes() == ca
        served = (tmp_path / "tls" / "server.pem").read_bytes()
        assert certificates.certificate_problem(served, "127.0.0.2") is None

    def test_a_wildcard_bind_gets_a_certificate_for_the_address_clients_dial(self, tmp_path):
        frontend_tls.prepare_local(frontend_tls.TLSSettings("self-signed"), tmp_path, "0.0.0.0")
        served = (tmp_path / "tls" / "server.pem").read_bytes()
        assert certificates.certificate_problem(served, "127.0.0.1") is None

    def test_a_provided_certificate_for_another_address_is_refused(self, tmp_path):
        pair = certificates.issue_server_certificate(certificates.create_ca("x"), ["10.9.9.9"])
        (tmp_path / "c.pem").write_bytes(pair.cert_pem)
        (tmp_path / "k.pem").write_bytes(pair.key_pem)
        settings = frontend_tls.TLSSettings("provided", tmp_path / "c.pem", tmp_path / "k.pem")
        with pytest.raises(frontend_tls.FrontendTLSError, match=r"cannot serve 127\.0\.0\.1"):
            frontend_tls.prepare_local(settings, tmp_path, "127.0.0.1")

    def test_a_missing_provided_file_is_named(self, tmp_path):
        settings = frontend_tls.TLSSettings("provided", tmp_path / "c.pem", tmp_path / "k.pem")
        with pytest.raises(frontend_tls.FrontendTLSError, match=r"c\.pem: No such file"):
            frontend_tls.prepare_local(settings, tmp_path, "127.0.0.1")
