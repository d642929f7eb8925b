"""Docker command builders: argv lists and shell lines, checked without any Docker."""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest

from clipper_deploy.hosts import docker_commands as dc

SPEC = dc.ReplicaSpec(
    model="example-model",
    version="3",
    bundle="ab" * 32,
    index=1,
    host="h2",
    frontend="10.213.0.1:7000",
    cpus=0.5,
    memory="512m",
    env={"USER_FLAG": "fast"},
    model_dir="/var/lib/clipper-deploy/bundles/" + "ab" * 32 + "/model",
    input_type="floats",
)


class TestNames:
    def test_image_container_and_replica_names(self) -> None:
        assert dc.image_name("example-model", "3") == "clipper-deploy/example-model:3"
        assert SPEC.name == "cd-example-model-3-1"
        assert SPEC.replica_id == "h2/cd-example-model-3-1"


class TestRunReplica:
    def test_dials_the_frontend_on_the_host_network_as_a_non_root_user(self) -> None:
        argv = dc.run_replica(SPEC)
        assert argv[:3] == ["docker", "run", "--detach"]
        assert argv[argv.index("--network") + 1] == "host"
        assert argv[argv.index("--user") + 1] == dc.CONTAINER_USER
        assert argv[argv.index("--restart") + 1] == "unless-stopped"
        for env in ("CLIPPER_IP=10.213.0.1", "CLIPPER_PORT=7000"):
            assert env in argv
        assert f"CLIPPER_REPLICA_ID={SPEC.replica_id}" in argv
        assert argv[-1] == "clipper-deploy/example-model:3"

    def test_carries_limits_and_every_label(self) -> None:
        argv = dc.run_replica(SPEC)
        assert argv[argv.index("--cpus") + 1] == "0.5"
        assert argv[argv.index("--memory") + 1] == "512m"
        labels = {argv[i + 1] for i, a in enumerate(argv) if a == "--label"}
        assert f"{dc.BUNDLE}={SPEC.bundle}" in labels
        assert f"{dc.MODEL}=example-model" in labels and f"{dc.VERSION}=3" in labels


class TestReplicaKey:
    KEY = f"{dc.settings.KEYS_DIR}/example-model/3/cd-example-model-3-1.key"

    def test_is_a_read_only_bind_of_the_hosts_key_file(self) -> None:
        argv = dc.run_replica(SPEC)
        assert SPEC.key_file == self.KEY
        assert argv[argv.index("--mount") + 1] == (
            f"type=bind,source={self.KEY},target=/run/clipper-deploy/replica.key,readonly"
        )

    def test_the_start_script_reads_the_first_input_line_into_it_then_the_env_file(self):
        script = dc.start_unless_running(SPEC)
        receive = (
            f"(umask 077 && mkdir -p {dc.settings.KEYS_DIR}/example-model/3 && IFS= read -r key"
            f" && printf '%s\\n' \"$key\" > {self.KEY}.part && chown 10001:10001 "
            f"{self.KEY}.part && mv {self.KEY}.part {self.KEY})"
        )
        assert receive in script
        assert script.index(receive) < script.index("cat > ") < script.index("docker run")

    def test_prune_and_stop_remove_a_versions_keys(self) -> None:
        assert dc.remove_keys("m", "2") == f"rm -rf {dc.settings.KEYS_DIR}/m/2"


def mounts(argv: list[str]) -> list[str]:
    """The values of every ``--mount`` option of ``argv``."""
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "--mount"]


class TestModelFiles:
    def test_are_bound_read_only_at_model_and_the_model_is_named_by_run(self) -> None:
        argv = dc.run_replica(SPEC)
        assert f"type=bind,source={SPEC.model_dir},target=/model,readonly" in mounts(argv)
        for env in (
            "CLIPPER_MODEL_NAME=example-model",
            "CLIPPER_MODEL_VERSION=3",
            "CLIPPER_INPUT_TYPE=floats",
        ):
            assert argv[argv.index(env) - 1] == "--env"
        assert "--read-only" in argv  # the lockdown stays

    def test_an_image_that_holds_them_gets_no_mount(self) -> None:
        import dataclasses

        argv = dc.run_replica(dataclasses.replace(SPEC, model_dir=""))
        assert not [m for m in mounts(argv) if "target=/model" in m]
        assert len(mounts(argv)) == 1  # the replica's key only

    def test_a_directory_that_cannot_go_in_a_mount_option_is_refused(self) -> None:
        with pytest.raises(ValueError, match="cannot go in a --mount option"):
            dc.model_mount("/var/lib/x,readonly=false")


class TestUserEnvironment:
    def test_goes_through_a_file_never_the_command_line(self) -> None:
        argv = dc.run_replica(SPEC)
        assert not [a for a in argv if "USER_FLAG" in a or "fast" in a]
        assert argv[argv.index("--env-file") + 1] == f"{dc.settings.ENV_DIR}/{SPEC.name}.env"

    def test_the_start_script_writes_the_file_from_its_input_with_mode_0600(self) -> None:
        script = dc.start_unless_running(SPEC)
        assert "fast" not in script
        assert f"umask 077 && mkdir -p {dc.settings.ENV_DIR} && cat > " in script
        assert script.index("cat > ") < script.index("docker run")

    def test_without_environment_there_is_no_file(self) -> None:
        import dataclasses

        spec = dataclasses.replace(SPEC, env={})
        assert "--env-file" not in dc.run_replica(spec)
        assert "cat > " not in dc.start_unless_running(spec)

    def test_file_text_is_one_line_per_variable(self) -> None:
        assert dc.env_file_text({"A": "1", "B": "x y"}) == "A=1\nB=x y\n"
        with pytest.raises(ValueError, match="cannot go in an env file"):
            dc.env_file_text({"A": "two\nlines"})


class TestLockdown:
    def test_by_default_no_capabilities_privileges_writes_or_unbounded_processes(self) -> None:
        argv = dc.run_replica(SPEC)
        assert argv[argv.index("--cap-drop") + 1] == "ALL"
        assert argv[argv.index("--security-opt") + 1] == "no-new-privileges"
        assert "--read-only" in argv
        assert argv[argv.index("--tmpfs") + 1].startswith("/tmp:rw,nosuid,nodev,size=")
        assert int(argv[argv.index("--pids-limit") + 1]) == dc.PIDS_LIMIT

    def test_without_playbook_limits_the_defaults_apply(self) -> None:
        import dataclasses

        argv = dc.run_replica(dataclasses.replace(SPEC, cpus=None, memory=None))
        assert argv[argv.index("--cpus") + 1] == f"{dc.DEFAULT_CPUS:g}"
        assert argv[argv.index("--memory") + 1] == dc.DEFAULT_MEMORY

    def test_the_network_mode_is_the_specs(self) -> None:
        import dataclasses

        argv = dc.run_replica(dataclasses.replace(SPEC, network="bridge"))
        assert argv[argv.index("--network") + 1] == "bridge"


class TestOneRoundTripScripts:
    def test_build_is_skipped_when_the_image_has_the_bundle(self) -> None:
        script = dc.build_unless_current("/b/x", "img:1", {dc.BUNDLE: "sha1", dc.MANAGED: "true"})
        assert script.startswith("if [ ")
        assert "= sha1 ]; then echo" in script and shlex.quote(dc.IMAGE_CURRENT) in script
        assert "else docker build --force-rm --tag img:1" in script

    def test_start_replaces_a_container_that_does_not_run_this_bundle(self) -> None:
        script = dc.start_unless_running(SPEC)
        assert shlex.quote(f"true {SPEC.bundle}") in script
        assert f"docker rm --force {SPEC.name} >/dev/null 2>&1; docker run" in script

    def test_a_container_the_facts_did_not_list_is_only_run(self) -> None:
        script = dc.start_new(SPEC)
        assert script.count("docker ") == 1 and "docker run" in script
        # the same key and environment files, from the same input
        assert script.split("docker run")[0] in dc.start_unless_running(SPEC)


class TestPs:
    def test_filters_on_managed_model_and_version(self) -> None:
        argv = dc.ps("example-model", "3")
        assert f"label={dc.MANAGED}=true" in argv
        assert f"label={dc.MODEL}=example-model" in argv and f"label={dc.VERSION}=3" in argv

    def test_parses_tab_separated_lines_and_skips_blanks(self) -> None:
        line = "\t".join(["id1", "cd-m-1-0", "running", "Up 2s", "m", "1", "sha", "h1/cd-m-1-0"])
        (info,) = dc.parse_ps(f"{line}\n\n")
        assert (info.name, info.state, info.version, info.replica) == (
            "cd-m-1-0",
            "running",
            "1",
            "h1/cd-m-1-0",
        )


class TestBaseRelay:
    """The base image between hosts: the compressed copy a holder kept, else docker save."""

    def run(self, tmp_path, script: str, data: bytes = b"") -> subprocess.CompletedProcess:
        docker = tmp_path / "bin" / "docker"
        docker.parent.mkdir(exist_ok=True)
        docker.write_text(
            "#!/bin/sh\n"
            f"log={tmp_path}/calls\n"
            'echo "$*" >> "$log"\n'
            'case "$1" in\n'
            f"  import) cat > {tmp_path}/imported; ! grep -q BAD {tmp_path}/imported;;\n"
            f"  load) cat > {tmp_path}/loaded;;\n"
            "  save) printf SAVED-TAR;;\n"
            "  image) exit 0;;\n"
            "esac\n"
        )
        docker.chmod(0o755)
        env = {**os.environ, "PATH": f"{docker.parent}:{os.environ['PATH']}"}
        return subprocess.run(["sh", "-c", script], input=data, env=env, capture_output=True)

    def test_a_holder_sends_the_copy_it_kept_else_docker_save(self, tmp_path) -> None:
        keep = tmp_path / "base" / "base.tar.gz"
        out = self.run(tmp_path, dc.base_relay_source("base:t", str(keep)))
        assert out.stdout == b"saved\nSAVED-TAR"
        keep.parent.mkdir()
        keep.write_bytes(b"\x1f\x8bPACKED")
        out = self.run(tmp_path, dc.base_relay_source("base:t", str(keep)))
        assert out.stdout == b"packed\n\x1f\x8bPACKED"

    def test_a_receiver_imports_and_keeps_a_packed_copy(self, tmp_path) -> None:
        keep = tmp_path / "base" / "base.tar.gz"
        script = dc.base_relay_receive("base:t", "msg", str(keep))
        out = self.run(tmp_path, script, b"packed\n\x1f\x8bPACKED")
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "imported").read_bytes() == b"\x1f\x8bPACKED"
        assert keep.read_bytes() == b"\x1f\x8bPACKED"  # to pass on in the next round
        assert not (tmp_path / "loaded").exists()

    def test_a_receiver_loads_what_docker_save_sent(self, tmp_path) -> None:
        keep = tmp_path / "base" / "base.tar.gz"
        script = dc.base_relay_receive("base:t", "msg", str(keep))
        out = self.run(tmp_path, script, b"saved\nSAVED-TAR")
        assert out.returncode == 0, out.stderr
        assert (tmp_path / "loaded").read_bytes() == b"SAVED-TAR"
        assert not keep.exists()

    def test_a_failed_import_keeps_no_copy(self, tmp_path) -> None:
        keep = tmp_path / "base" / "base.tar.gz"
        out = self.run(tmp_path, dc.import_keeping("base:t", "msg", str(keep)), b"BAD")
        assert out.returncode != 0
        assert not list(keep.parent.iterdir())  # neither the copy nor its partial file
