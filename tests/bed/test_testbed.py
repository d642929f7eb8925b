"""The test bed, for real: namespaces, sshd and dockerd per host, reached over SSH.

Needs root. Uses the session's 3-host bed (``suite_bed``) and, for teardown and crash
recovery, a bed of its own with another prefix and subnet.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from clipper_deploy.hosts.base_image import BaseImageShipError, ensure_base_image
from clipper_deploy.hosts.connection import HostGroup, connect_error_message, connection_for
from clipper_deploy.hosts.inventory import Inventory
from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testing import lifecycle_layout


@pytest.fixture(scope="module")
def inventory(suite_bed: Testbed) -> Inventory:
    return Inventory.from_file(suite_bed.layout.inventory)


def docker(inventory: Inventory, host: str, command: str, **kwargs):
    with connection_for(inventory.host(host), connect_timeout=5) as conn:
        return conn.run(f"docker {command}", hide=True, in_stream=False, **kwargs)


def tcp_open(address: str, port: int = 22, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


class TestHosts:
    def test_inventory_lists_the_control_machine_and_three_docker_hosts(
        self, inventory: Inventory, suite_bed: Testbed
    ) -> None:
        assert [h.name for h in inventory.hosts("model_hosts")] == ["h1", "h2", "h3"]
        (control,) = inventory.hosts("clipper")
        assert control.is_local and control.address == suite_bed.layout.bridge_address

    def test_each_host_has_its_own_empty_engine_reached_over_verified_ssh(
        self, inventory: Inventory
    ) -> None:
        with HostGroup(inventory.hosts("model_hosts"), connect_timeout=5) as group:
            result = group.run("hostname; docker info --format '{{.ID}} {{.Images}}'")
        seen = {}
        for host, res in result.items():
            hostname, info = res.stdout.split("\n")[:2]
            engine_id, images = info.split()
            assert hostname == host.name
            assert images == "0", f"{host.name} should start without images"
            seen[host.name] = engine_id
        assert len(set(seen.values())) == 3, f"engines must be distinct: {seen}"

    def test_an_unknown_host_key_is_refused(self, inventory: Inventory, tmp_path) -> None:
        other = tmp_path / "known_hosts"
        other.write_text("")  # exists, but does not know the host
        host = inventory.host("h1")
        with pytest.raises(Exception) as raised:
            connection_for(host, known_hosts=other, connect_timeout=5).run("true", hide=True)
        message = connect_error_message(host, raised.value, known_hosts=other)
        assert "host key unknown" in message and str(other) in message

    def test_a_container_started_on_h1_is_invisible_on_h2(
        self, inventory: Inventory, base_image
    ) -> None:
        spec, tarball = base_image
        with HostGroup(inventory.hosts("h1:h2"), connect_timeout=5) as group:
            ensure_base_image(group, spec, tarball)
        name = "isolation-probe"
        docker(inventory, "h1", f"run -d --rm --network host --name {name} {spec.tag} sleep 60")
        try:
            assert docker(inventory, "h1", f"ps -q --filter name={name}").stdout.strip()
            assert not docker(inventory, "h2", f"ps -aq --filter name={name}").stdout.strip()
        finally:
            docker(inventory, "h1", f"rm -f {name}", warn=True)


class TestBaseImage:
    def test_shipped_once_then_found(self, inventory: Inventory, base_image) -> None:
        spec, tarball = base_image
        with HostGroup(inventory.hosts("h3"), connect_timeout=5) as group:
            docker(inventory, "h3", f"rmi {spec.tag}", warn=True)
            assert ensure_base_image(group, spec, tarball) == {"h3": "shipped"}
            assert ensure_base_image(group, spec, tarball) == {"h3": "found"}
        python = docker(inventory, "h3", f"run --rm --network host {spec.tag} python3 -V")
        assert python.stdout.startswith(f"Python {spec.python}.")


class TestFaults:
    def test_cut_makes_a_host_unreachable_and_heal_brings_it_back(
        self, suite_bed: Testbed, inventory: Inventory
    ) -> None:
        address = inventory.host("h2").address
        suite_bed.cut("h2")
        try:
            assert not tcp_open(address)
            with pytest.raises(Exception) as raised:
                docker(inventory, "h2", "version")
            message = connect_error_message(inventory.host("h2"), raised.value)
            assert "h2" in message
            assert tcp_open(inventory.host("h1").address), "other hosts stay reachable"
        finally:
            suite_bed.heal("h2")
        assert docker(inventory, "h2", "version").ok

    def test_stop_takes_sshd_and_dockerd_down_and_start_restores_them(
        self, suite_bed: Testbed, inventory: Inventory, base_image
    ) -> None:
        spec, tarball = base_image
        with HostGroup(inventory.hosts("h2"), connect_timeout=5) as group:
            ensure_base_image(group, spec, tarball)
        docker(
            inventory,
            "h2",
            f"run -d --restart unless-stopped --network host --name survivor {spec.tag} sleep 600",
        )
        suite_bed.stop("h2")
        (status,) = [s for s in suite_bed.status() if s.name == "h2"]
        assert not status.sshd and not status.dockerd
        with pytest.raises(Exception) as raised:
            docker(inventory, "h2", "version")
        assert "refused" in connect_error_message(inventory.host("h2"), raised.value)
        suite_bed.start("h2")
        try:
            deadline = time.monotonic() + 20
            running = ""
            while time.monotonic() < deadline and not running:
                running = docker(inventory, "h2", "ps -q --filter name=survivor").stdout.strip()
                time.sleep(0.3)
            assert running, "a container with a restart policy comes back with its engine"
        finally:
            docker(inventory, "h2", "rm -f survivor", warn=True)

    def test_a_stopped_host_fails_base_image_shipping_by_name(
        self, suite_bed: Testbed, inventory: Inventory, base_image
    ) -> None:
        spec, tarball = base_image
        suite_bed.stop("h3")
        try:
            with (
                HostGroup(inventory.hosts("model_hosts"), connect_timeout=5) as group,
                pytest.raises(BaseImageShipError) as raised,
            ):
                ensure_base_image(group, spec, tarball)
            assert list(raised.value.failures) == ["h3"]
            assert "refused" in raised.value.failures["h3"]
        finally:
            suite_bed.start("h3")


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


class TestLifecycle:
    """Its own bed (prefix cdtl), so bringing it down does not disturb the session's bed."""

    def test_down_leaves_no_namespace_process_link_or_directory(self) -> None:
        bed = Testbed(lifecycle_layout(2))
        bed.up(fresh=True)
        data = str(bed.layout.directory / "hosts")
        assert _processes_mentioning(data), "the bed's dockerds run with its data root"
        bed.down()
        names = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        netns = subprocess.run(["ip", "netns"], capture_output=True, text=True).stdout
        assert "cdtl" not in names and "cdtl" not in netns
        assert not _processes_mentioning(data)
        assert not (bed.layout.directory / "hosts").exists()
        assert not bed.layout.run_root.exists()
        bed.down()  # idempotent

    def test_up_recovers_from_a_crashed_half_made_bed(self) -> None:
        bed = Testbed(lifecycle_layout(2))
        bed.up(fresh=True)
        try:
            # Simulate a crash: a daemon killed, state lost, a host's sshd gone.
            os.kill(int(bed.layout.host(1).dockerd_pidfile.read_text()), signal.SIGKILL)
            bed.layout.state_file.unlink()
            recovered = Testbed(lifecycle_layout(2))
            recovered.up()
            assert all(s.healthy for s in recovered.status())
            state = json.loads(bed.layout.state_file.read_text())
            assert state["hosts"] == 2
        finally:
            bed.down()

    def test_up_keeps_a_healthy_identical_bed(self) -> None:
        bed = Testbed(lifecycle_layout(1))
        bed.up(fresh=True)
        try:
            pid = int(bed.layout.host(1).dockerd_pidfile.read_text())
            Testbed(lifecycle_layout(1)).up()
            assert int(bed.layout.host(1).dockerd_pidfile.read_text()) == pid
        finally:
            bed.down()
