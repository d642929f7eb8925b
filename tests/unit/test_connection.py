"""Connections: strict host key checking, key loading, local hosts, errors in one line, groups.

SSH behaviour is checked against a Paramiko SSH server running in this process on 127.0.0.1
(not sshd): real handshakes, real host key checks, real exceptions. Tests against real hosts
live with the test bed.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import fabric
import invoke
import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from paramiko.client import RejectPolicy
from paramiko.ssh_exception import (
    AuthenticationException,
    BadAuthenticationType,
    BadHostKeyException,
    NoValidConnectionsError,
    PasswordRequiredException,
    SSHException,
)

from clipper_deploy.hosts.connection import (
    DEFAULT_USER,
    ConnectionSetupError,
    GroupError,
    GroupResult,
    HostGroup,
    LocalConnection,
    connect_error_message,
    connection_for,
    known_hosts_path,
)
from clipper_deploy.hosts.inventory import Host, Inventory

QUIET = {"hide": True, "in_stream": False}


@pytest.fixture(autouse=True)
def isolated_ssh_environment(tmp_path, monkeypatch):
    """No ssh-agent, and an empty home: only the keys a test names are ever offered."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))


def write_key(path: Path, passphrase: bytes | None = None) -> paramiko.PKey:
    """A new Ed25519 private key in OpenSSH format at ``path``; returns it loaded."""
    key = ed25519.Ed25519PrivateKey.generate()
    encryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
        )
    )
    return paramiko.PKey.from_path(path, passphrase=passphrase)


def known_hosts_line(address: str, port: int, key: paramiko.PKey) -> str:
    name = address if port == 22 else f"[{address}]:{port}"
    return f"{name} {key.get_name()} {key.get_base64()}\n"


class _ServerInterface(paramiko.ServerInterface):
    def __init__(self, authorized: paramiko.PKey) -> None:
        self.authorized = authorized

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        if key.get_base64() == self.authorized.get_base64():
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        # Answer in full before accepting: output, exit status, end of output. Closing here
        # would beat the acceptance to the client, and it would see a closed channel.
        channel.sendall(b"ran: " + command + b"\n")
        channel.send_exit_status(0)
        channel.shutdown_write()
        return True


class FakeSSHServer:
    """An SSH server on 127.0.0.1 in this process: one host key, one authorized client key.

    ``exec`` requests answer ``ran: <command>`` and exit 0.
    """

    def __init__(self, authorized: paramiko.PKey) -> None:
        self.host_key = paramiko.ECDSAKey.generate()
        self.authorized = authorized
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.transports: list[paramiko.Transport] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(self.host_key)
            self.transports.append(transport)
            try:
                transport.start_server(server=_ServerInterface(self.authorized))
            except (SSHException, EOFError, OSError):
                transport.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()
        for transport in self.transports:
            transport.close()


@pytest.fixture
def client_key(tmp_path) -> tuple[Path, paramiko.PKey]:
    path = tmp_path / "id_deploy"
    return path, write_key(path)


@pytest.fixture
def server(client_key) -> Iterator[FakeSSHServer]:
    srv = FakeSSHServer(authorized=client_key[1])
    yield srv
    srv.close()


@pytest.fixture
def known_hosts(tmp_path, server) -> Path:
    path = tmp_path / "known_hosts"
    path.write_text(known_hosts_line("127.0.0.1", server.port, server.host_key))
    return path


@pytest.fixture
def server_host(server, client_key) -> Host:
    return Host(
        name="fake", address="127.0.0.1", port=server.port, user="deploy", key_file=client_key[0]
    )


def failure(host: Host, known_hosts: Path, **kwargs) -> BaseException:
    """What connecting to ``host`` and running a command raises."""
    conn = connection_for(host, known_hosts=known_hosts, **kwargs)
    try:
        with pytest.raises(Exception) as info:
            conn.run("true", **QUIET)
    finally:
        conn.close()
    return info.value


class TestConnectionFor:
    def test_builds_a_fabric_connection_for_the_hosts_address_port_and_user(self, tmp_path):
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        host = Host(name="web1", address="10.0.0.5", port=2222, user="deploy")
        conn = connection_for(host, known_hosts=kh)
        assert isinstance(conn, fabric.Connection)
        assert (conn.host, conn.port, conn.user) == ("10.0.0.5", 2222, "deploy")
        assert not conn.is_connected

    def test_user_defaults_to_root(self, tmp_path):
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        conn = connection_for(Host(name="web1", address="web1"), known_hosts=kh)
        assert conn.user == DEFAULT_USER == "root"

    def test_unknown_hosts_are_rejected_by_policy(self, tmp_path):
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        conn = connection_for(Host(name="web1", address="web1"), known_hosts=kh)
        assert isinstance(conn.client._policy, RejectPolicy)

    def test_known_hosts_file_is_loaded_into_the_client(self, tmp_path):
        key = paramiko.ECDSAKey.generate()
        kh = tmp_path / "known_hosts"
        kh.write_text(known_hosts_line("10.0.0.5", 2222, key) + known_hosts_line("b", 22, key))
        host = Host(name="web1", address="10.0.0.5", port=2222)
        conn = connection_for(host, known_hosts=kh)
        keys = conn.client._system_host_keys
        assert keys.lookup("[10.0.0.5]:2222")["ecdsa-sha2-nistp256"] == key
        assert keys.lookup("b") is not None

    def test_default_known_hosts_is_in_the_users_ssh_folder(self, monkeypatch, tmp_path):
        monkeypatch.setenv("HOME", str(tmp_path))
        assert known_hosts_path() == tmp_path / ".ssh" / "known_hosts"
        (tmp_path / ".ssh").mkdir()
        (tmp_path / ".ssh" / "known_hosts").write_text("")
        assert isinstance(connection_for(Host(name="w", address="w")), fabric.Connection)

    def test_missing_known_hosts_is_an_error_naming_the_file(self, tmp_path):
        missing = tmp_path / "nope"
        with pytest.raises(ConnectionSetupError) as info:
            connection_for(Host(name="web1", address="10.0.0.5"), known_hosts=missing)
        assert str(missing) in str(info.value)
        assert "ssh-keyscan -p 22 10.0.0.5" in str(info.value)

    def test_key_file_is_loaded_and_default_keys_are_not_searched(self, tmp_path, client_key):
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        host = Host(name="web1", address="web1", key_file=client_key[0])
        conn = connection_for(host, known_hosts=kh)
        assert conn.connect_kwargs["pkey"] == client_key[1]
        assert conn.connect_kwargs["look_for_keys"] is False

    def test_without_key_file_the_agent_and_default_keys_are_used(self, tmp_path):
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        conn = connection_for(Host(name="web1", address="web1"), known_hosts=kh)
        assert "pkey" not in conn.connect_kwargs
        assert "look_for_keys" not in conn.connect_kwargs

    def test_missing_key_file_is_an_error(self, tmp_path):
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        host = Host(name="web1", address="web1", key_file=tmp_path / "no_key")
        with pytest.raises(ConnectionSetupError, match="no_key does not exist"):
            connection_for(host, known_hosts=kh)

    def test_unreadable_key_file_is_an_error(self, tmp_path):
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        junk = tmp_path / "junk"
        junk.write_text("not a key\n")
        host = Host(name="web1", address="web1", key_file=junk)
        with pytest.raises(ConnectionSetupError, match="not a private key"):
            connection_for(host, known_hosts=kh)

    def test_passphrase_key_without_agent_is_an_error(self, tmp_path):
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        write_key(tmp_path / "locked", passphrase=b"secret")
        host = Host(name="web1", address="web1", key_file=tmp_path / "locked")
        with pytest.raises(ConnectionSetupError, match=r"passphrase.*ssh-add"):
            connection_for(host, known_hosts=kh)

    def test_passphrase_key_is_left_to_a_running_agent(self, tmp_path, monkeypatch):
        monkeypatch.setenv("SSH_AUTH_SOCK", str(tmp_path / "agent.sock"))
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        write_key(tmp_path / "locked", passphrase=b"secret")
        host = Host(name="web1", address="web1", key_file=tmp_path / "locked")
        conn = connection_for(host, known_hosts=kh)
        assert "pkey" not in conn.connect_kwargs

    def test_connect_timeout_applies_to_tcp_banner_and_auth(self, tmp_path):
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        conn = connection_for(Host(name="w", address="w"), known_hosts=kh, connect_timeout=2.5)
        assert conn.connect_timeout == 3  # Fabric takes whole seconds: rounded up, never 0
        assert conn.connect_kwargs["banner_timeout"] == 2.5
        assert conn.connect_kwargs["auth_timeout"] == 2.5

    def test_default_connect_timeout_is_ten_seconds(self, tmp_path):
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        conn = connection_for(Host(name="w", address="w"), known_hosts=kh)
        assert conn.connect_timeout == 10

    def test_timeout_must_be_positive(self, tmp_path):
        with pytest.raises(ValueError, match="connect_timeout"):
            connection_for(Host(name="w", address="w"), connect_timeout=0)

    def test_ssh_config_is_not_read(self, tmp_path, monkeypatch):
        home = tmp_path / "cfg_home"
        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "config").write_text("Host *\n  HostName elsewhere\n  User someone\n")
        monkeypatch.setenv("HOME", str(home))
        kh = tmp_path / "known_hosts"
        kh.write_text("")
        conn = connection_for(Host(name="w", address="10.0.0.5"), known_hosts=kh)
        assert (conn.host, conn.user) == ("10.0.0.5", "root")

    def test_local_hosts_get_a_local_connection(self):
        conn = connection_for(Host(name="ctl", address="localhost", connection="local"))
        assert isinstance(conn, LocalConnection)


class TestAgainstAnInProcessSSHServer:
    def test_runs_a_command_when_the_host_key_is_known(self, server_host, known_hosts):
        with connection_for(server_host, known_hosts=known_hosts) as conn:
            result = conn.run("echo hi", **QUIET)
        assert result.stdout == "ran: echo hi\n"
        assert result.ok

    def test_host_from_an_inventory_file(self, tmp_path, server, client_key, known_hosts):
        inventory = tmp_path / "inventory.ini"
        inventory.write_text(
            f"[model_hosts]\nfake ansible_host=127.0.0.1 ansible_port={server.port}\n"
            f"[model_hosts:vars]\nansible_user=deploy\n"
            f"ansible_ssh_private_key_file={client_key[0].name}\n"
        )
        (host,) = Inventory.from_file(inventory).hosts("model_hosts")
        with connection_for(host, known_hosts=known_hosts) as conn:
            assert conn.run("uptime", **QUIET).stdout == "ran: uptime\n"

    def test_unknown_host_is_refused_and_known_hosts_is_not_written(self, tmp_path, server_host):
        empty = tmp_path / "empty_known_hosts"
        empty.write_text("")
        exc = failure(server_host, empty)
        assert isinstance(exc, SSHException)
        assert empty.read_text() == ""
        message = connect_error_message(server_host, exc, known_hosts=empty)
        assert message.startswith(f"fake (127.0.0.1:{server_host.port}): host key unknown")
        assert f"[127.0.0.1]:{server_host.port} is not in {empty}" in message
        assert f"ssh-keyscan -p {server_host.port} 127.0.0.1 >> {empty}" in message

    def test_changed_host_key_is_refused(self, tmp_path, server, server_host):
        stale = tmp_path / "stale_known_hosts"
        old_key = paramiko.ECDSAKey.generate()
        stale.write_text(known_hosts_line("127.0.0.1", server.port, old_key))
        exc = failure(server_host, stale)
        assert isinstance(exc, BadHostKeyException)
        message = connect_error_message(server_host, exc, known_hosts=stale)
        assert "HOST KEY CHANGED" in message
        assert old_key.fingerprint in message
        assert server.host_key.fingerprint in message
        assert f"ssh-keygen -f {stale} -R '[127.0.0.1]:{server.port}'" in message

    def test_wrong_key_fails_authentication(self, tmp_path, server_host, known_hosts):
        write_key(tmp_path / "other_key")
        host = Host(
            name="fake",
            address="127.0.0.1",
            port=server_host.port,
            user="deploy",
            key_file=tmp_path / "other_key",
        )
        exc = failure(host, known_hosts)
        assert isinstance(exc, AuthenticationException)
        message = connect_error_message(host, exc, known_hosts=known_hosts)
        assert "authentication failed for user deploy" in message
        assert str(tmp_path / "other_key") in message
        assert "authorized_keys" in message

    def test_no_key_at_all(self, server_host, known_hosts):
        host = Host(name="fake", address="127.0.0.1", port=server_host.port)
        exc = failure(host, known_hosts)
        message = connect_error_message(host, exc, known_hosts=known_hosts)
        assert "no key to log in as root with" in message

    def test_closed_port_is_connection_refused(self, known_hosts, client_key):
        probe = socket.create_server(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        host = Host(name="down", address="127.0.0.1", port=port, key_file=client_key[0])
        exc = failure(host, known_hosts)
        assert isinstance(exc, NoValidConnectionsError)
        message = connect_error_message(host, exc, known_hosts=known_hosts)
        assert message.startswith(f"down (127.0.0.1:{port}): connection refused")
        assert "start sshd" in message

    def test_silent_port_fails_within_the_connect_timeout(self, known_hosts, client_key):
        silent = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks SSH
        try:
            port = silent.getsockname()[1]
            host = Host(name="mute", address="127.0.0.1", port=port, key_file=client_key[0])
            started = time.monotonic()
            exc = failure(host, known_hosts, connect_timeout=1)
            assert time.monotonic() - started < 5
        finally:
            silent.close()
        message = connect_error_message(host, exc, known_hosts=known_hosts)
        assert "no SSH session started within the connect timeout" in message

    def test_group_over_ssh_and_local_hosts(self, server_host, known_hosts):
        local = Host(name="ctl", address="localhost", connection="local")
        with HostGroup([server_host, local], known_hosts=known_hosts) as group:
            result = group.run("echo hi")
        assert result[server_host].stdout == "ran: echo hi\n"
        assert result[local].stdout == "hi\n"


class TestConnectErrorMessage:
    host = Host(name="web1", address="10.0.0.5", port=2222, user="deploy")

    def message(self, exc: BaseException, host: Host | None = None) -> str:
        return connect_error_message(host or self.host, exc, known_hosts="/kh")

    def test_timeout_is_unreachable(self):
        message = self.message(TimeoutError("timed out"))
        assert message.startswith("web1 (10.0.0.5:2222): unreachable (timed out)")
        assert "firewall" in message

    def test_socket_timeout_is_the_same(self):
        assert "unreachable (timed out)" in self.message(TimeoutError("timed out"))

    def test_no_route(self):
        exc = OSError(errno.EHOSTUNREACH, "No route to host")
        assert "unreachable (No route to host)" in self.message(exc)

    def test_no_route_through_paramiko(self):
        inner = OSError(errno.EHOSTUNREACH, "No route to host")
        exc = NoValidConnectionsError({("10.0.0.5", 2222): inner})
        assert "unreachable" in self.message(exc)

    def test_connection_refused(self):
        exc = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        assert "connection refused" in self.message(exc)

    def test_name_not_resolved(self):
        exc = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        message = self.message(exc)
        assert "cannot resolve address '10.0.0.5'" in message
        assert "ansible_host" in message

    def test_unknown_host_key_on_port_22_uses_the_bare_address(self):
        host = Host(name="web1", address="10.0.0.5")
        exc = SSHException("Server '10.0.0.5' not found in known_hosts")
        message = self.message(exc, host)
        assert "10.0.0.5 is not in /kh" in message
        assert "ssh-keyscan -p 22 10.0.0.5 >> /kh" in message

    def test_changed_host_key(self):
        got, expected = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
        message = self.message(BadHostKeyException("10.0.0.5", got, expected))
        assert f"/kh has ecdsa-sha2-nistp256 key {expected.fingerprint}" in message
        assert f"offered ecdsa-sha2-nistp256 key {got.fingerprint}" in message
        assert "-R '[10.0.0.5]:2222'" in message

    def test_authentication_failed_without_key_file(self):
        message = self.message(AuthenticationException("Authentication failed."))
        assert "authentication failed for user deploy with the ssh-agent's keys" in message

    def test_authentication_failed_names_root_when_no_user(self):
        host = Host(name="web1", address="10.0.0.5", key_file=Path("/keys/k"))
        message = self.message(AuthenticationException("Authentication failed."), host)
        assert "for user root with key /keys/k" in message

    def test_server_refuses_keys(self):
        exc = BadAuthenticationType("Bad authentication type", ["password"])
        assert "it allows: password" in self.message(exc)

    def test_passphrase_needed(self):
        host = Host(name="web1", address="10.0.0.5", key_file=Path("/keys/k"))
        message = self.message(PasswordRequiredException("Private key file is encrypted"), host)
        assert "ssh-add /keys/k" in message

    def test_setup_error_is_its_own_message(self):
        assert self.message(ConnectionSetupError("web1: no known_hosts")) == "web1: no known_hosts"

    def test_failed_command(self):
        conn = LocalConnection(Host(name="ctl", address="localhost", connection="local"))
        with pytest.raises(invoke.UnexpectedExit) as info:
            conn.run("echo boom >&2; exit 3", **QUIET)
        message = self.message(
            info.value, Host(name="ctl", address="localhost", connection="local")
        )
        assert message == "ctl: `echo boom >&2; exit 3` exited with status 3: boom"

    def test_command_timeout(self):
        conn = LocalConnection(Host(name="ctl", address="localhost", connection="local"))
        with pytest.raises(invoke.CommandTimedOut) as info:
            conn.run("sleep 5", timeout=0.2, **QUIET)
        assert "`sleep 5` did not finish within 0.2 s" in self.message(info.value)

    def test_anything_else_keeps_its_type_and_text(self):
        assert self.message(RuntimeError("odd")) == "web1 (10.0.0.5:2222): RuntimeError: odd"


class TestLocalConnection:
    host = Host(name="ctl", address="localhost", connection="local")

    def test_runs_a_real_command(self):
        result = LocalConnection(self.host).run("echo hello from $0", **QUIET)
        assert result.ok
        assert result.stdout.startswith("hello from")

    def test_failing_command_raises_like_fabric(self):
        with pytest.raises(invoke.UnexpectedExit):
            LocalConnection(self.host).run("false", **QUIET)

    def test_warn_returns_the_failed_result(self):
        result = LocalConnection(self.host).run("exit 4", warn=True, **QUIET)
        assert result.exited == 4

    def test_local_is_run(self):
        assert LocalConnection(self.host).local("echo x", **QUIET).stdout == "x\n"

    def test_put_and_get_copy_files(self, tmp_path):
        source = tmp_path / "a.txt"
        source.write_text("payload")
        remote_dir = tmp_path / "remote"
        remote_dir.mkdir()
        conn = LocalConnection(self.host)
        put = conn.put(source, remote_dir)
        assert put.remote == str(remote_dir / "a.txt")
        assert (remote_dir / "a.txt").read_text() == "payload"
        conn.get(remote_dir / "a.txt", tmp_path / "back.txt")
        assert (tmp_path / "back.txt").read_text() == "payload"

    def test_context_manager_and_attributes(self):
        with LocalConnection(self.host) as conn:
            assert conn.is_connected
            assert conn.host == "localhost"
            assert conn.inventory_host is self.host
            assert conn.user


def local_hosts(count: int) -> list[Host]:
    return [Host(name=f"l{n}", address="localhost", connection="local") for n in range(count)]


class TestHostGroup:
    def test_runs_on_every_host_and_returns_per_host_results(self):
        hosts = local_hosts(3)
        result = HostGroup(hosts).run("echo ok")
        assert isinstance(result, GroupResult)
        assert list(result) == hosts
        assert [r.stdout for r in result.values()] == ["ok\n"] * 3
        assert result.succeeded == result
        assert result.failed == {}

    def test_parallelism_is_bounded(self, tmp_path):
        # Each command counts the commands running when it starts, then lingers.
        running = tmp_path / "running"
        running.mkdir()
        command = f"f=$(mktemp -p {running}); ls {running} | wc -l; sleep 0.3; rm $f"
        bounded = HostGroup(local_hosts(6), max_workers=2).run(command)
        assert max(int(r.stdout) for r in bounded.values()) <= 2
        free = HostGroup(local_hosts(4), max_workers=4).run(command)
        assert max(int(r.stdout) for r in free.values()) > 1

    def test_failures_are_reported_per_host_and_successes_kept(self, tmp_path):
        ok = Host(name="ctl", address="localhost", connection="local")
        unreachable = Host(name="web1", address="10.0.0.5")
        group = HostGroup([ok, unreachable], known_hosts=tmp_path / "missing_known_hosts")
        with pytest.raises(GroupError) as info:
            group.run("echo ok")
        err = info.value
        assert list(err.result.succeeded) == [ok]
        assert list(err.result.failed) == [unreachable]
        assert isinstance(err.result[unreachable], ConnectionSetupError)
        assert str(err).startswith("1 of 2 hosts failed:\n  web1 (10.0.0.5:22): known_hosts")
        assert err.messages[unreachable] in str(err)

    def test_non_zero_exit_is_a_failure_unless_warn(self):
        (host,) = local_hosts(1)
        with pytest.raises(GroupError, match="exited with status 3"):
            HostGroup([host]).run("exit 3")
        assert HostGroup([host]).run("exit 3", warn=True)[host].exited == 3

    def test_duplicate_hosts_run_once(self):
        (host,) = local_hosts(1)
        assert len(HostGroup([host, host])) == 1

    def test_empty_group(self):
        assert HostGroup([]).run("true") == {}

    def test_connections_are_reused_and_closed(self, monkeypatch):
        (host,) = local_hosts(1)
        group = HostGroup([host])
        first = group.connection(host)
        assert group.connection(host) is first
        closed = []
        monkeypatch.setattr(first, "close", lambda: closed.append(True))
        group.close()
        assert closed == [True]
        assert group.connection(host) is not first

    def test_max_workers_must_be_positive(self):
        with pytest.raises(ValueError, match="max_workers"):
            HostGroup([], max_workers=0)
