"""Reading a host's facts in one command: the command line, and parsing what it prints."""

from __future__ import annotations

from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.orchestration.facts import FrontendFacts

PS_LINE = "abc\tcd-m-1-0\trunning\tUp 3 minutes\tm\t1\tb1\th1/cd-m-1-0"


class TestHostFactsCommand:
    def test_reads_containers_image_base_and_bundle_in_one_command(self, tmp_path) -> None:
        import os
        import stat
        import subprocess

        # A stand-in docker: each image query marks that it started and waits (at most 10 s)
        # until all three have: they only all see three if they run at once.
        marks = tmp_path / "marks"
        marks.mkdir()
        docker = tmp_path / "bin" / "docker"
        docker.parent.mkdir()
        rendezvous = (
            f"touch {marks}/$$; i=0; while [ $(ls {marks} | wc -l) -lt 3 ] && [ $i -lt 100 ]; "
            f"do sleep 0.1; i=$((i+1)); done; ls {marks} | wc -l > {marks}.$$"
        )
        docker.write_text(
            "#!/bin/sh\n"
            'case "$1 $2" in\n'
            f"  'image inspect') {rendezvous}; case \"$*\" in *base:t*) echo sha256:b;; "
            "*) echo e1;; esac;;\n"
            f"  'images --quiet') {rendezvous}; echo sha256:env;;\n"
            f"  'ps --all') printf '%s\\n' '{PS_LINE}';;\n"
            "esac\n"
        )
        docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
        (tmp_path / "blobs").mkdir()
        (tmp_path / "blobs" / "aa").write_text("")
        (tmp_path / "bundles" / "b2").mkdir(parents=True)
        script = dc.host_facts(
            "m",
            "clipper-deploy/m:2",
            "base:t",
            str(tmp_path / "bundles" / "b2"),
            environment="e1",
            blobs=["aa", "bb"],
        )
        env = {
            **os.environ,
            "PATH": f"{docker.parent}:{os.environ['PATH']}",
            "TMPDIR": str(tmp_path),
        }
        out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        reading = dc.parse_host_facts(out.stdout)
        assert [c.name for c in reading.containers] == ["cd-m-1-0"]
        assert reading.image_environment == "e1" and reading.base_image_present
        assert reading.bundle_present and reading.blobs == frozenset({"aa"})
        assert reading.environment_image == "sha256:env"
        seen = [int(p.read_text()) for p in tmp_path.glob("marks.*")]
        assert seen == [3, 3, 3]  # the three image queries ran at once
        assert not [p for p in tmp_path.iterdir() if p.name.startswith("tmp")]  # cleaned up

    def test_with_an_environment_it_asks_for_one_image_of_it(self) -> None:
        script = dc.host_facts("m", None, None, None, environment="e1")
        assert (
            "docker images --quiet --no-trunc --filter label=org.clipper-deploy.managed=true "
            "--filter label=org.clipper-deploy.environment=e1 2>/dev/null | head -n 1"
        ) in script
        reading = dc.parse_host_facts(f"{PS_LINE}\n::environment\nsha256:abc\n")
        assert reading.environment_image == "sha256:abc"

    def test_without_an_image_base_or_bundle_only_lists_containers(self) -> None:
        assert dc.host_facts("m", None, None, None) == dc.shell(dc.ps("m")) + " || exit $?"


class TestParseHostFacts:
    def test_parses_each_section(self) -> None:
        reading = dc.parse_host_facts(f"{PS_LINE}\n::image\nb2\n::base\npresent\n::bundle\n")
        assert [c.name for c in reading.containers] == ["cd-m-1-0"]
        assert reading.containers[0].replica == "h1/cd-m-1-0"
        assert (reading.image_environment, reading.base_image_present, reading.bundle_present) == (
            "b2",
            True,
            False,
        )

    def test_a_missing_image_gives_an_empty_bundle(self) -> None:
        reading = dc.parse_host_facts("::image\n::base\n::bundle\npresent\n")
        assert reading.containers == () and reading.image_environment == ""
        assert not reading.base_image_present and reading.bundle_present


class TestDockerFailure:
    def test_docker_not_installed(self) -> None:
        assert dc.docker_failure("h3", 127, "sh: docker: not found") == (
            "docker is not installed on h3 (install docker.io there)"
        )

    def test_engine_not_running(self) -> None:
        stderr = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."
        assert dc.docker_failure("h3", 1, stderr) == (
            "the Docker engine on h3 is not running (start it: systemctl start docker)"
        )


class TestFrontendFacts:
    def test_serving_counts_only_connected_replicas_of_the_version(self) -> None:
        facts = FrontendFacts(
            models=({"model_name": "m", "model_version": "1", "is_current_version": True},),
            replicas=(
                {"replica_id": "a", "model_name": "m", "model_version": "1", "state": "idle"},
                {"replica_id": "b", "model_name": "m", "model_version": "1", "state": "busy"},
                {
                    "replica_id": "c",
                    "model_name": "m",
                    "model_version": "1",
                    "state": "disconnected",
                },
                {"replica_id": "d", "model_name": "m", "model_version": "2", "state": "idle"},
            ),
        )
        assert facts.serving("m", "1") == {"a", "b"}
        assert facts.current_version("m") == "1" and facts.current_version("x") is None


class TestBundlesOfTheContainers:
    """The ``::bundles`` section: which bundles the model's containers mount are still on the
    host. The generated shell runs for real, with ``docker`` answering a fixed ``ps``."""

    def run_facts(self, tmp_path, ps_lines: list[str]) -> dc.HostReading:
        import os
        import stat
        import subprocess

        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        docker = bin_dir / "docker"
        docker.write_text("#!/bin/sh\nprintf '%s\\n' " + " ".join(f"'{x}'" for x in ps_lines))
        docker.chmod(docker.stat().st_mode | stat.S_IEXEC)
        bundles = tmp_path / "bundles"
        (bundles / "b1").mkdir(parents=True)
        script = dc.host_facts("m", None, None, None, str(bundles))
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        out = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return dc.parse_host_facts(out.stdout)

    def test_names_the_bundles_still_there(self, tmp_path) -> None:
        gone = PS_LINE.replace("cd-m-1-0", "cd-m-2-0").replace("\tb1\t", "\tb2\t")
        reading = self.run_facts(tmp_path, [PS_LINE, gone])
        assert [c.name for c in reading.containers] == ["cd-m-1-0", "cd-m-2-0"]
        assert reading.bundles == frozenset({"b1"})

    def test_no_containers_no_bundles(self, tmp_path) -> None:
        reading = self.run_facts(tmp_path, [])
        assert reading.containers == () and reading.bundles == frozenset()

    def test_without_a_bundles_root_they_are_not_read(self) -> None:
        assert dc.parse_host_facts(PS_LINE).bundles is None
