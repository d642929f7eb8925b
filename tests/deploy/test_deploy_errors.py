"""Errors you can encounter, each provoked for real on the test bed (``docs/errors.md`` quotes
the messages these tests check).

Version 1 of ``guard-model`` serves the app ``guard`` from h1 and h2. Each test class tries
to deploy a failing version N+1 -- a fault injected into a host, a broken function, a wrong
setting -- and checks the message the user sees, then the "nothing lost" rule
(:class:`NothingLost`): version 1 still answers with ``"default": false`` from the very same
containers, the frontend does not know the failed version, and no container, image,
intermediate build container or partial upload of it is left on any host.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import (
    CONNECT_TIMEOUT,
    CondaWorld,
    Failure,
    HostView,
    Transcript,
    forget,
    inventory_variant,
    leftovers,
    provoke,
)

from clipper_deploy import Clipper
from clipper_deploy.hosts.connection import connection_for
from clipper_deploy.orchestration.deploy import DeployError
from clipper_deploy.packaging import (
    CondaUnsatisfiableError,
    PythonVersionMismatchError,
    UnavailablePackagesError,
    UnpicklableClosureError,
    capture_environment,
)
from clipper_deploy.packaging.environment import PipPackage
from clipper_deploy.packaging.image_archive import RUNTIME_LAYER
from clipper_deploy.packaging.selection import RUNTIME_PACKAGES
from clipper_deploy.testbed import faults
from clipper_deploy.testbed.bed import Testbed

MODEL = "guard-model"
APP = "guard"
QUERY = [2.5, 1.0, 3.2, 2.2]
V1_REPLICAS = {"h1": "cd-guard-model-1-0", "h2": "cd-guard-model-1-1"}
WRONG_PORT = 7999
"""A replica port nothing listens on (readiness timeout)."""
READY_TIMEOUT = 8.0


# ----------------------------------------------------------------------------- deployed functions


def predict_lengths(xs: Any) -> list[float]:
    return [float(len(x)) for x in xs]


def predict_with_tinypkg(xs: Any) -> list[float]:
    import tinypkg  # type: ignore[import-not-found]  # in the client's conda prefix only

    return [float(tinypkg.VALUE) for _ in xs]


LOCK = threading.Lock()


def predict_locked(xs: Any) -> list[float]:
    """One call at a time, with a lock held in a global: the lock cannot be shipped."""
    with LOCK:
        return predict_lengths(xs)


class _LoadsOnlyOnTheClient:
    """Wraps a function; unpickling it fails inside a model container (``CLIPPER_REPLICA_ID``
    is set there), as a model whose weights file exists only on the client would. The
    client's own round-trip check loads it fine."""

    def __init__(self, predict: Callable[[Any], Any]) -> None:
        self.predict = predict

    def __getstate__(self) -> dict[str, Any]:
        return {"predict": self.predict}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if os.environ.get("CLIPPER_REPLICA_ID"):
            raise RuntimeError("cannot load the model weights inside the container")
        self.predict = state["predict"]


@dataclasses.dataclass(frozen=True)
class Guarded:
    """Version 1, serving: the function, and the ids of its containers."""

    function: Callable[[Any], Any]
    containers: dict[str, str]


@pytest.fixture(scope="module")
def guarded(
    clipper: Clipper,
    example_function: Callable[[Any], Any],
    views: dict[str, HostView],
) -> Iterator[Guarded]:
    """Version 1 of ``guard-model`` (the seed's example) on h1 and h2, linked to ``guard``."""
    clipper.register_application(APP, "doubles", default_output="-1.0", slo_micros=100_000)
    clipper.deploy_predict_function(
        MODEL, 1, example_function, [APP], "doubles", 2, hosts="h1:h2", mode="auto"
    )
    clipper.link_model_to_app(APP, MODEL)
    ids = {n: i for h in V1_REPLICAS for n, i in views[h].running_ids(MODEL, "1").items()}
    yield Guarded(example_function, ids)
    forget(clipper, MODEL, APP)


def attempt(
    clipper: Clipper, transcript: Transcript, version: int, function: Callable[..., Any], **kw: Any
) -> Failure:
    """Deploy ``function`` as version ``version`` of the guarded model (one replica on h1
    unless ``hosts``/``replicas`` say otherwise) and return how it failed."""
    kw.setdefault("hosts", "h1")
    return provoke(clipper, transcript, MODEL, version, function, kw.pop("replicas", 1), **kw)


class NothingLost:
    """The rule every failed deploy keeps: version 1 serves on, nothing of N+1 is left."""

    def test_version_1_keeps_serving_from_the_same_containers(
        self, failure: Failure, guarded: Guarded, clipper: Clipper, views: dict[str, HostView]
    ) -> None:
        connected = clipper.admin.wait_for_replicas(MODEL, "1", count=2, timeout=30)
        replies = [clipper.predict(APP, QUERY) for _ in range(4)]
        assert [r["default"] for r in replies] == [False] * 4, replies
        assert clipper.admin.get_model(MODEL, "1")["is_current_version"] is True
        assert {c["replica_id"] for c in connected} == {f"{h}/{n}" for h, n in V1_REPLICAS.items()}
        now = {n: i for h in V1_REPLICAS for n, i in views[h].running_ids(MODEL, "1").items()}
        assert now == guarded.containers

    def test_leaves_nothing_of_the_failed_version_behind(
        self, failure: Failure, clipper: Clipper, views: dict[str, HostView]
    ) -> None:
        assert f"{MODEL}:{failure.version}" not in clipper.get_all_models()
        assert leftovers(views.values(), MODEL, failure.version) == []


class NothingShipped(NothingLost):
    """Failures found while packaging, on the client: no host was even contacted."""

    @pytest.fixture(scope="class")
    @classmethod
    def blobs_before(cls, guarded: Guarded, views: dict[str, HostView]) -> dict[str, set[str]]:
        return {name: view.blobs() for name, view in views.items()}

    def test_nothing_is_copied_to_any_host(
        self,
        blobs_before: dict[str, set[str]],
        failure: Failure,
        views: dict[str, HostView],
    ) -> None:
        assert {name: view.blobs() for name, view in views.items()} == blobs_before
        assert "Published model to Clipper" not in failure.lines


# ----------------------------------------------------------------------------- packaging


def conda_environment() -> Any:
    """The environment seen inside the prefix, with pip cut down to the runtime's needs."""
    env = capture_environment()
    return dataclasses.replace(env, pip=tuple(p for p in env.pip if p.key in RUNTIME_PACKAGES))


class TestCondaConflict(NothingShipped):
    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls,
        blobs_before: object,
        conda_world: CondaWorld,
        clipper: Clipper,
        transcript: Transcript,
    ) -> Failure:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("CONDA_PREFIX", str(conda_world.prefix))
            return attempt(
                clipper,
                transcript,
                2,
                predict_lengths,
                mode="full",
                environment=conda_environment(),
                conda_channels=[conda_world.conflict],
            )

    def test_prints_the_seeds_unsatisfiable_message_with_the_solvers_reason(
        self, failure: Failure
    ) -> None:
        assert isinstance(failure.error, CondaUnsatisfiableError)
        assert failure.message.splitlines()[:2] == [
            "Your conda dependencies are unsatisfiable (see error text below). Please resolve "
            "these issues and call `deploy_predict_func` again.",
            "UnsatisfiableError: Cannot solve the request because of: libb ==1.0 0 cannot be "
            "installed because there are no viable options:",
        ]
        assert "liba >=2" in failure.message
        assert failure.lines[-2:] == [
            "Fetching package metadata .........",
            "Solving package specifications: ..........",
        ]


class TestUnavailableCondaPackage:
    """The seed's behaviour: skipped with a warning, and the deploy goes on; the function
    fails when queried (the app answers its default output, saying why)."""

    @pytest.fixture(scope="class")
    @classmethod
    def deployed(
        cls, conda_world: CondaWorld, clipper: Clipper, transcript: Transcript
    ) -> Iterator[list[str]]:
        mark = transcript.mark()
        clipper.register_application("tiny", "doubles", default_output="-1.0")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("CONDA_PREFIX", str(conda_world.prefix))
            clipper.deploy_predict_function(
                "tiny-model",
                1,
                predict_with_tinypkg,
                ["tiny"],
                "doubles",
                hosts="h1",
                mode="full",
                environment=conda_environment(),
                conda_channels=[conda_world.container],
            )
        clipper.link_model_to_app("tiny", "tiny-model")
        yield transcript.since(mark)
        forget(clipper, "tiny-model", "tiny")

    def test_prints_the_seeds_warning_and_deploys(
        self, deployed: list[str], conda_world: CondaWorld
    ) -> None:
        head = deployed.index(
            "The following packages in your conda environment aren't available in the "
            "linux-64 conda channel the container will use:"
        )
        assert deployed[head + 1 : head + 4] == [
            f"{conda_world.client}::tinypkg 0.1 py_0",
            "We will skip their installation when deploying your function. If your function "
            "uses these packages, the container will experience a runtime error when queried.",
            "Removed unavailable packages from supplied environment specifications",
        ]
        assert "Model tiny-model:1 is current: 1 replica(s) serving" in deployed

    def test_the_conda_prefix_is_in_the_loaded_image_at_its_path(
        self, deployed: list[str], views: dict[str, HostView]
    ) -> None:
        assert "[h1] loaded clipper-deploy/tiny-model:1 (made on the client, no build)" in " ".join(
            deployed
        )
        listed = views["h1"].docker(
            *("run", "--rm", "--network", "none", "--entrypoint", "ls"),
            *("clipper-deploy/tiny-model:1", "/opt/conda/conda-meta"),
        )
        assert {"liba-1.0-0.json", "libb-1.0-0.json"} <= set(listed.split()), listed

    def test_the_function_fails_when_queried_with_the_default_output(
        self, deployed: list[str], clipper: Clipper
    ) -> None:
        reply = clipper.predict("tiny", [1.0, 2.0])
        assert reply["default"] is True and reply["output"] == -1.0
        assert reply["default_explanation"] == (
            "The model failed on this query: the prediction function raised "
            "ModuleNotFoundError: No module named 'tinypkg'"
        )


class TestUnavailablePipPackageInStrictMode(NothingShipped):
    @pytest.fixture(scope="class")
    @classmethod
    def failure(cls, blobs_before: object, clipper: Clipper, transcript: Transcript) -> Failure:
        env = capture_environment(conda_prefix="")
        runtime = tuple(p for p in env.pip if p.key in RUNTIME_PACKAGES)
        windows_only = dataclasses.replace(env, pip=(*runtime, PipPackage("pywin32", "306")))
        return attempt(
            clipper,
            transcript,
            3,
            predict_lengths,
            mode="full",
            environment=windows_only,
            pip_strict=True,
        )

    def test_names_the_package_and_the_platform(self, failure: Failure) -> None:
        assert isinstance(failure.error, UnavailablePackagesError)
        assert failure.message == (
            "These pip packages have no build for the container's platform (Linux x86_64, "
            "glibc 2.36, CPython 3.11): pywin32==306. pip_strict is set, so nothing was "
            "skipped. Uninstall them from the environment you deploy from (or use auto mode "
            "if the function does not need them), or deploy without pip_strict to skip them "
            "with a warning."
        )


class TestPythonMismatch(NothingShipped):
    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls, blobs_before: object, guarded: Guarded, clipper: Clipper, transcript: Transcript
    ) -> Failure:
        return attempt(clipper, transcript, 4, guarded.function, target_python="3.12")

    def test_fails_before_packaging_and_says_which_pythons(self, failure: Failure) -> None:
        assert isinstance(failure.error, PythonVersionMismatchError)
        assert failure.message.startswith(
            "Python version mismatch: this client runs Python 3.11 but the container's Python "
            "is 3.12 (base image clipper-deploy/base:py3.11-bookworm-"
        )
        assert "Supplied environment details" not in failure.lines


class TestUnpicklableClosure(NothingShipped):
    @pytest.fixture(scope="class")
    @classmethod
    def failure(cls, blobs_before: object, clipper: Clipper, transcript: Transcript) -> Failure:
        return attempt(clipper, transcript, 5, predict_locked)

    def test_names_the_lock_and_the_path_to_it_and_says_what_to_do(self, failure: Failure) -> None:
        assert isinstance(failure.error, UnpicklableClosureError)
        assert failure.message == (
            "Cannot serialize the prediction function predict_locked: it references a "
            "_thread.lock object at predict_locked -> global 'LOCK', which cannot be pickled "
            "(TypeError: cannot pickle '_thread.lock' object). Everything the function "
            "captures (the globals it uses, its closure variables and default arguments) is "
            "shipped with it and must be picklable: create locks, sockets, open files, "
            "generators and connections inside the function (or lazily on its first call), "
            "or stop capturing them."
        )


# ----------------------------------------------------------------------------- SSH


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly generated key that no bed host authorizes."""
    key = tmp_path_factory.mktemp("other-key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def h3_line(bed: Testbed) -> str:
    return f"h3 ansible_host={bed.layout.host('h3').address}"


def clipper_for(
    bed: Testbed, transcript: Transcript, replace: dict[str, str], **kw: Any
) -> Clipper:
    return Clipper(
        inventory_variant(bed, replace),
        say=transcript,
        connect_timeout=CONNECT_TIMEOUT,
        **kw,
    )


class TestHostUnreachable(NothingLost):
    """h3's cable is pulled while version 6 goes to all three hosts: h1 and h2 build and start
    it, h3 cannot be reached, and what h1 and h2 made is removed."""

    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls, guarded: Guarded, suite_bed: Testbed, clipper: Clipper, transcript: Transcript
    ) -> Failure:
        suite_bed.cut("h3")
        try:
            return attempt(
                clipper, transcript, 6, guarded.function, hosts="model_hosts", replicas=3
            )
        finally:
            suite_bed.heal("h3")

    def test_names_the_host_and_its_address(self, failure: Failure, suite_bed: Testbed) -> None:
        address = suite_bed.layout.host("h3").address
        assert isinstance(failure.error, DeployError)
        head, why = failure.message.splitlines()
        assert head == "deploy failed on 1 of 3 host(s); the previous version keeps serving"
        # "(timed out)" or "(No route to host)", as the kernel's neighbour cache has it
        assert why.startswith(f"  h3: h3 ({address}:22): unreachable (")
        assert why.endswith(
            "); check that the host is up, that ansible_host is its address, and that no "
            "firewall drops SSH"
        )

    def test_the_reachable_hosts_started_it_before_it_was_undone(self, failure: Failure) -> None:
        assert "[h1] started cd-guard-model-6-0" in failure.lines
        assert "Deploy of guard-model:6 failed; removing what it made" in failure.lines


class TestSshdDown(NothingLost):
    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls, guarded: Guarded, suite_bed: Testbed, clipper: Clipper, transcript: Transcript
    ) -> Failure:
        suite_bed.stop("h3")
        try:
            return attempt(clipper, transcript, 7, guarded.function, hosts="h3")
        finally:
            suite_bed.start("h3")

    def test_says_connection_refused(self, failure: Failure, suite_bed: Testbed) -> None:
        address = suite_bed.layout.host("h3").address
        assert failure.message.splitlines()[1] == (
            f"  h3: h3 ({address}:22): connection refused: nothing listens for SSH on that "
            "port; start sshd on the host or fix ansible_port in the inventory"
        )


class TestSshAuthenticationFailure(NothingLost):
    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls,
        guarded: Guarded,
        other_key: Path,
        suite_bed: Testbed,
        transcript: Transcript,
    ) -> Failure:
        wrong_key = {
            h3_line(suite_bed): f"{h3_line(suite_bed)} ansible_ssh_private_key_file={other_key}"
        }
        clipper = clipper_for(suite_bed, transcript, wrong_key)
        return attempt(clipper, transcript, 8, guarded.function, hosts="h3")

    def test_names_the_user_and_the_key(
        self, failure: Failure, other_key: Path, suite_bed: Testbed
    ) -> None:
        address = suite_bed.layout.host("h3").address
        assert failure.message.splitlines()[1] == (
            f"  h3: h3 ({address}:22): authentication failed for user root with key "
            f"{other_key} (and any ssh-agent keys); check that the public key is in "
            "~root/.ssh/authorized_keys on the host, or fix ansible_user / "
            "ansible_ssh_private_key_file in the inventory"
        )


class TestUnknownHostKey(NothingLost):
    @pytest.fixture(scope="class")
    @classmethod
    def known_hosts(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        empty = tmp_path_factory.mktemp("known-hosts") / "empty"
        empty.write_text("")
        return empty

    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls, guarded: Guarded, known_hosts: Path, suite_bed: Testbed, transcript: Transcript
    ) -> Failure:
        other = {"clipper_known_hosts_file=known_hosts": f"clipper_known_hosts_file={known_hosts}"}
        clipper = clipper_for(suite_bed, transcript, other)
        return attempt(clipper, transcript, 9, guarded.function, hosts="h3")

    def test_says_how_to_add_the_key_after_checking_it(
        self, failure: Failure, known_hosts: Path, suite_bed: Testbed
    ) -> None:
        address = suite_bed.layout.host("h3").address
        assert failure.message.splitlines()[1] == (
            f"  h3: h3 ({address}:22): host key unknown: {address} is not in {known_hosts}; "
            "after checking the host's fingerprint, add it with "
            f"`ssh-keyscan -p 22 {address} >> {known_hosts}`"
        )


class TestChangedHostKey(NothingLost):
    @pytest.fixture(scope="class")
    @classmethod
    def known_hosts(
        cls, tmp_path_factory: pytest.TempPathFactory, other_key: Path, suite_bed: Testbed
    ) -> Path:
        """A known_hosts that holds another key for every bed host."""
        wrong = tmp_path_factory.mktemp("known-hosts") / "wrong"
        kind, data = Path(f"{other_key}.pub").read_text().split()[:2]
        wrong.write_text(
            "".join(f"{h.address} {kind} {data}\n" for h in suite_bed.layout.all_hosts())
        )
        return wrong

    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls, guarded: Guarded, known_hosts: Path, suite_bed: Testbed, transcript: Transcript
    ) -> Failure:
        other = {"clipper_known_hosts_file=known_hosts": f"clipper_known_hosts_file={known_hosts}"}
        clipper = clipper_for(suite_bed, transcript, other)
        return attempt(clipper, transcript, 10, guarded.function, hosts="h3")

    def test_warns_of_interception_and_says_how_to_replace_the_entry(
        self, failure: Failure, known_hosts: Path, suite_bed: Testbed
    ) -> None:
        address = suite_bed.layout.host("h3").address
        line = failure.message.splitlines()[1]
        assert line.startswith(f"  h3: h3 ({address}:22): HOST KEY CHANGED: {known_hosts} has ")
        assert "Someone may be intercepting the connection" in line
        assert line.endswith(
            f"`ssh-keygen -f {known_hosts} -R '{address}' && "
            f"ssh-keyscan -p 22 {address} >> {known_hosts}`"
        )


# ----------------------------------------------------------------------------- Docker hosts


class TestDockerEngineStopped(NothingLost):
    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls, guarded: Guarded, suite_bed: Testbed, clipper: Clipper, transcript: Transcript
    ) -> Failure:
        with faults.dockerd_stopped(suite_bed, "h3"):
            return attempt(clipper, transcript, 11, guarded.function, hosts="h3")

    def test_says_the_engine_is_not_running(self, failure: Failure) -> None:
        assert failure.message == (
            "deploy failed on 1 of 1 host(s); the previous version keeps serving\n"
            "  h3: the Docker engine on h3 is not running (start it: systemctl start docker)"
        )


class TestDockerNotInstalled(NothingLost):
    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls, guarded: Guarded, suite_bed: Testbed, clipper: Clipper, transcript: Transcript
    ) -> Failure:
        with faults.docker_missing(suite_bed, "h3"):
            return attempt(clipper, transcript, 12, guarded.function, hosts="h3")

    def test_says_to_install_docker(self, failure: Failure) -> None:
        assert failure.message == (
            "deploy failed on 1 of 1 host(s); the previous version keeps serving\n"
            "  h3: docker is not installed on h3 (install docker.io there)"
        )


class TestDiskFull(NothingLost):
    """h2's upload directory is full while version 13 goes to h1 and h2."""

    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls, guarded: Guarded, suite_bed: Testbed, clipper: Clipper, transcript: Transcript
    ) -> Failure:
        with faults.disk_full(suite_bed, "h2"):
            failure = attempt(clipper, transcript, 13, guarded.function, hosts="h1:h2", replicas=2)
            # The full directory as the deploy saw it (over SSH), before the fault goes.
            with connection_for(clipper.inventory.host("h2"), connect_timeout=5) as conn:
                found = conn.run("find /var/lib/clipper-deploy", hide=True, in_stream=False)
        failure.facts["in the full directory"] = found.stdout.split()
        return failure

    def test_says_how_much_room_there_is_and_how_much_is_needed(self, failure: Failure) -> None:
        why = failure.message.splitlines()[1]
        assert why.startswith("  h2: no space left in /var/lib/clipper-deploy: ")
        assert " free, this upload needs " in why
        assert why.endswith(
            "free space on the host (`docker system prune`; old bundles in "
            "/var/lib/clipper-deploy/bundles) or grow its file system, then deploy again"
        )

    def test_removes_the_partial_upload_from_the_full_disk(self, failure: Failure) -> None:
        assert failure.facts["in the full directory"] == [
            "/var/lib/clipper-deploy",
            "/var/lib/clipper-deploy/blobs",
        ]


BROKEN_STEP = """\
{% extends "base/Dockerfile.j2" %}
{% block extra_setup %}
RUN echo broken-step && exit 3
{% endblock %}
"""


class TestImageBuildFailure(NothingLost):
    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls,
        guarded: Guarded,
        tmp_path_factory: pytest.TempPathFactory,
        clipper: Clipper,
        transcript: Transcript,
    ) -> Failure:
        templates = tmp_path_factory.mktemp("broken-templates")
        (templates / "Dockerfile.j2").write_text(BROKEN_STEP)
        return attempt(
            clipper,
            transcript,
            14,
            guarded.function,
            hosts="h1:h2",
            replicas=2,
            template_dir=str(templates),
        )

    def test_shows_the_failing_step_and_its_output_for_each_host(self, failure: Failure) -> None:
        lines = failure.message.splitlines()
        assert lines[0] == "deploy failed on 2 of 2 host(s); the previous version keeps serving"
        for host in ("h1", "h2"):
            start = lines.index(
                f"  {host}: docker build of clipper-deploy/{MODEL}:14 failed on {host}:"
            )
            assert re.fullmatch(
                r"    Step \d+/\d+ : RUN echo broken-step && exit 3", lines[start + 1]
            )
            assert lines[start + 2 : start + 4] == [
                "    broken-step",
                "    The command '/bin/sh -c echo broken-step && exit 3' returned a non-zero "
                "code: 3",
            ]
            assert lines[start + 4].startswith(
                "    Fix that step (your template_dir's Dockerfile.j2, or the base image) and "
                "deploy again; to retry by hand: `docker build /var/lib/clipper-deploy/bundles/"
            )


def corrupted(data: bytes) -> bytes:
    """``data`` with one byte flipped in its middle: the same size, another sha256."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]


class TestImageLoadFailure(NothingLost):
    """Version 18, a new environment, goes to h3, whose copy of the runtime layer (a blob
    every client-made image shares, here planted under its name) is corrupt: the upload
    trusts the blob it has, and ``docker load`` refuses the layer."""

    @pytest.fixture(scope="class")
    @classmethod
    def failure(
        cls,
        guarded: Guarded,
        clipper: Clipper,
        transcript: Transcript,
        views: dict[str, HostView],
    ) -> Iterator[Failure]:
        (bundle,) = {c.bundle for c in views["h1"].containers(MODEL) if c.version == "1"}
        good = (views["h1"].upload_dir / "bundles" / bundle / RUNTIME_LAYER).read_bytes()
        blob = views["h3"].upload_dir / "blobs" / hashlib.sha256(good).hexdigest()
        had = blob.exists()
        blob.parent.mkdir(parents=True, exist_ok=True)
        planted = blob.with_name(blob.name + ".planted")
        planted.write_bytes(corrupted(good))
        planted.replace(blob)  # a new file: bundles that link the good one keep it
        try:
            failure = attempt(clipper, transcript, 18, predict_lengths, hosts="h3")
            print(failure.message)  # docs/errors.md quotes it
            yield failure
        finally:
            bad = blob.stat().st_ino
            for layer in (views["h3"].upload_dir / "bundles").glob(f"*/{RUNTIME_LAYER}"):
                if layer.stat().st_ino == bad:  # the failed version's bundle
                    shutil.rmtree(layer.parent.parent)
            if had:
                planted.write_bytes(good)
                planted.replace(blob)
            else:
                blob.unlink()

    def test_names_the_image_and_the_host_and_shows_dockers_reason(self, failure: Failure) -> None:
        lines = failure.message.splitlines()
        assert lines[0] == "deploy failed on 1 of 1 host(s); the previous version keeps serving"
        head = f"  h3: docker load of the image of clipper-deploy/{MODEL}:18 (made on the client) "
        assert lines[1].startswith(head + "failed on h3: "), lines
        assert "invalid diffID for layer" in lines[1], lines  # docker's own words
        assert lines[-1] == (
            "    Check the host's free disk space (`df /var/lib/docker`) and that dockerd runs, "
            "then deploy again. `invalid diffID` means a file in the host's blobs is not what "
            "its name says: remove the files of /var/lib/clipper-deploy/blobs whose sha256 "
            'differs from their name, and the bundle (docs/errors.md, "Image load failure").'
        )

    def test_it_loaded_nothing_and_built_nothing(self, failure: Failure) -> None:
        assert not [x for x in failure.lines if x.startswith(("[h3] loaded ", "[h3] built "))]


class TestContainerCrashWhileLoading(NothingLost):
    @pytest.fixture(scope="class")
    @classmethod
    def failure(cls, guarded: Guarded, clipper: Clipper, transcript: Transcript) -> Failure:
        box = _LoadsOnlyOnTheClient(guarded.function)

        def predict_from_box(xs: Any) -> Any:
            return box.predict(xs)

        return attempt(clipper, transcript, 15, predict_from_box, hosts="h1:h2", replicas=2)

    def test_names_the_replica_and_its_host(self, failure: Failure) -> None:
        first = failure.message.splitlines()[0]
        assert first.startswith("replica cd-guard-model-15-")
        assert " crashed while loading (" in first
        assert first.endswith("); the previous version keeps serving")
        host = first.split(" on ")[1].split()[0]
        assert failure.message.splitlines()[1] == f"  {host}: its last log lines:"

    def test_shows_the_containers_last_log_lines_with_the_traceback(self, failure: Failure) -> None:
        logs = [line.strip() for line in failure.message.splitlines()[2:]]
        assert logs[0] == "Starting PythonContainer container"
        assert logs[1].startswith("Connecting to Clipper with ")
        assert logs[2:4] == [
            "Loading provided Python prediction function",
            "Failed to load the prediction function from /model:",
        ]
        assert "Traceback (most recent call last):" in logs
        assert "RuntimeError: cannot load the model weights inside the container" in logs

    def test_never_reports_success(self, failure: Failure) -> None:
        assert not [line for line in failure.lines if "is current" in line or " serving" in line]


class TestReadinessTimeout(NothingLost):
    """The replicas are told a frontend port nothing listens on (``clipper_replica_port``),
    so they never register: the deploy gives up after ``ready_timeout``."""

    @pytest.fixture(scope="class")
    @classmethod
    def failure(cls, guarded: Guarded, suite_bed: Testbed, transcript: Transcript) -> Failure:
        state_dir = "clipper_state_dir=frontend"
        wrong_port = {state_dir: f"{state_dir} clipper_replica_port={WRONG_PORT}"}
        clipper = clipper_for(suite_bed, transcript, wrong_port, ready_timeout=READY_TIMEOUT)
        return attempt(clipper, transcript, 16, guarded.function)

    def test_names_the_replica_address_and_the_timeout(
        self, failure: Failure, suite_bed: Testbed
    ) -> None:
        address = f"{suite_bed.layout.bridge_address}:{WRONG_PORT}"
        assert failure.message.splitlines()[:2] == [
            f"replicas of {MODEL}:16 not serving within {READY_TIMEOUT:.0f} s: check that the "
            f"hosts reach the frontend's replica port at {address} (clipper_replica_port; "
            "firewalls), or raise ready_timeout for a model that loads slowly; the previous "
            "version keeps serving",
            f"  h1: cd-{MODEL}-16-0 did not connect to the frontend within "
            f"{READY_TIMEOUT:.0f} s; its last log lines:",
        ]

    def test_shows_the_replicas_attempts_to_reach_the_frontend(
        self, failure: Failure, suite_bed: Testbed
    ) -> None:
        address = f"{suite_bed.layout.bridge_address}:{WRONG_PORT}"
        assert (
            f"    Could not reach Clipper at {address} (ConnectionRefusedError: [Errno 111] "
            "Connection refused); retrying in 0.1 s"
        ) in failure.message.splitlines()


class TestFrontendUnreachable(NothingLost):
    """The frontend is stopped during the deploy (and started again afterwards: the
    replicas of version 1 reconnect by themselves)."""

    @pytest.fixture(scope="class")
    @classmethod
    def failure(cls, guarded: Guarded, clipper: Clipper, transcript: Transcript) -> Failure:
        clipper.stop()
        try:
            return attempt(clipper, transcript, 17, guarded.function)
        finally:
            clipper.start()

    def test_says_where_it_was_expected_and_how_to_start_it(
        self, failure: Failure, suite_bed: Testbed
    ) -> None:
        assert isinstance(failure.error, DeployError)
        assert failure.message == (
            f"cannot reach the frontend at http://{suite_bed.layout.bridge_address}:1338 "
            "([Errno 111] Connection refused): start it with clipper.start() or "
            "`invoke frontend.start`; nothing was deployed"
        )

    def test_fails_before_packaging(self, failure: Failure) -> None:
        assert failure.lines == []
