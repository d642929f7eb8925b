"""The test bed's pure pieces: layout, command builders and rendered files."""

from __future__ import annotations

from pathlib import Path

import pytest

from clipper_deploy.testbed import commands, files
from clipper_deploy.testbed.layout import BedLayout


@pytest.fixture
def bed(tmp_path: Path) -> BedLayout:
    return BedLayout(directory=tmp_path, hosts=3)


class TestLayout:
    def test_hosts_get_consecutive_addresses_after_the_bridge(self, bed: BedLayout) -> None:
        assert bed.bridge_address == "10.213.0.1"
        assert [h.address for h in bed.all_hosts()] == ["10.213.0.11", "10.213.0.12", "10.213.0.13"]

    def test_every_system_name_starts_with_the_prefix(self, bed: BedLayout) -> None:
        names = [bed.bridge] + [n for h in bed.all_hosts() for n in (h.netns, h.veth)]
        assert all(n.startswith("cdtb") for n in names)
        assert all(len(n) <= 15 for n in names), "Linux interface names are at most 15 bytes"

    def test_host_by_name_and_by_index_agree(self, bed: BedLayout) -> None:
        assert bed.host("h2") == bed.host(2)

    @pytest.mark.parametrize("bad", ["x1", "h0", "h", "2", 0])
    def test_bad_host_names_are_rejected(self, bed: BedLayout, bad: str | int) -> None:
        with pytest.raises(ValueError, match=r"h1, h2|numbered from 1"):
            bed.host(bad)

    def test_docker_socket_path_fits_a_unix_socket(self, tmp_path: Path) -> None:
        deep = tmp_path / ("d" * 150)
        host = BedLayout(directory=deep, hosts=50).host(50)
        assert len(str(host.docker_socket)) < 108

    @pytest.mark.parametrize(
        "kwargs, message",
        [
            ({"hosts": 0}, "1 to 50"),
            ({"hosts": 51}, "1 to 50"),
            ({"prefix": "bad-prefix"}, "prefix"),
            ({"subnet": "10.0.0.0/25"}, "/24 or larger"),
            ({"subnet": "fd00::/64"}, "IPv4"),
        ],
    )
    def test_invalid_layouts_are_refused(self, tmp_path: Path, kwargs: dict, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            BedLayout(directory=tmp_path, **kwargs)


class TestCommands:
    def test_daemons_run_with_nsenter_in_their_own_mount_and_uts_namespace(
        self, bed: BedLayout
    ) -> None:
        argv = commands.in_host(bed.host(1), commands.sshd(bed.host(1)))
        assert argv[:2] == ["nsenter", "--net=/run/netns/cdtb-h1"]
        assert "--mount" in argv and "--uts" in argv
        script = argv[-1]
        assert "hostname h1" in script
        assert f"mount --bind {bed.host(1).run_dir} /var/run" in script
        uploads = bed.host(1).data_dir / "clipper-deploy"
        assert f"mount --bind {uploads} /var/lib/clipper-deploy" in script
        assert script.endswith(f"exec /usr/sbin/sshd -D -e -f {bed.host(1).sshd_config}")

    def test_dockerd_uses_its_own_data_root_and_no_host_networking_rules(
        self, bed: BedLayout
    ) -> None:
        argv = commands.dockerd(bed.host(2))
        assert argv[argv.index("--data-root") + 1] == str(bed.host(2).docker_root)
        assert "--bridge=none" in argv and "--iptables=false" in argv

    def test_host_network_puts_eth0_with_its_address_in_the_namespace(self, bed: BedLayout) -> None:
        argvs = commands.add_host_network(bed, bed.host(3))
        assert ["ip", "netns", "add", "cdtb-h3"] in argvs
        assert ["ip", "-n", "cdtb-h3", "addr", "add", "10.213.0.13/24", "dev", "eth0"] in argvs
        assert ["ip", "link", "set", "cdtb-h3", "master", "cdtb0"] in argvs

    def test_cut_and_heal_toggle_the_root_side_link(self, bed: BedLayout) -> None:
        assert commands.set_link(bed.host(2), up=False) == ["ip", "link", "set", "cdtb-h2", "down"]
        assert commands.set_link(bed.host(2), up=True) == ["ip", "link", "set", "cdtb-h2", "up"]


class TestFiles:
    def test_sshd_allows_keys_only(self, bed: BedLayout) -> None:
        text = files.sshd_config(bed, bed.host(1))
        assert "PasswordAuthentication no" in text
        assert f"AuthorizedKeysFile {bed.authorized_keys}" in text
        assert "ListenAddress 10.213.0.11" in text

    def test_known_hosts_lists_each_host_address_with_its_key(self, bed: BedLayout) -> None:
        text = files.known_hosts([(bed.host(1), "ssh-ed25519 AAAAkey1 comment\n")])
        assert text == "10.213.0.11 ssh-ed25519 AAAAkey1\n"

    def test_inventory_has_the_control_machine_and_every_host(self, bed: BedLayout) -> None:
        text = files.inventory(bed)
        assert "control ansible_host=10.213.0.1 ansible_connection=local" in text
        for host in bed.all_hosts():
            assert f"{host.name} ansible_host={host.address}" in text
        assert f"{files.KNOWN_HOSTS_VAR}=known_hosts" in text
