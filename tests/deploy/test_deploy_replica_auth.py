"""Replicas prove who they are, on the real bed: a deployed replica's key is a 0600 file
bind-mounted read-only (nowhere else), and replicas started by hand from the project's own
runtime and image on a bed host are refused unless they prove the key of their replica id.

The rogues are what an attacker on the same network would run: the model's own image (so the
project's own runtime and function), told by environment variables to register as a replica
of the current version of a live model. Each is refused, gets no query, and the refusal is
counted in ``/metrics`` by reason; one reusing the live replica's id does not displace it,
even holding a copy of its key; a 200 MB frame before registration costs the frontend nothing.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import HostView, forget

from clipper_deploy import Clipper
from clipper_deploy.frontend.client import QueryClient
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.settings import KEYS_DIR, REPLICA_KEY_PATH

pytestmark = pytest.mark.bed

MODEL, APP, HOST = "auth-model", "auth", "h2"
REAL = f"{HOST}/cd-{MODEL}-1-0"
REFUSED_WITHIN_S = 20.0


def answer(xs: Any) -> list[str]:
    return ["real" for _ in xs]


@pytest.fixture(scope="module")
def deployed(clipper: Clipper, views: dict[str, HostView]) -> Iterator[HostView]:
    clipper.register_application(APP, "doubles", "none", 1_000_000)
    assert clipper.deploy_predict_function(
        MODEL, 1, answer, [APP], "doubles", hosts=HOST, mode="auto"
    )
    clipper.link_model_to_app(APP, MODEL)
    yield views[HOST]
    forget(clipper, MODEL, APP)


def metrics(clipper: Clipper) -> str:
    query = QueryClient(clipper.frontend.query.base_url, token=clipper.admin.token)
    return query.metrics()


def refusals(clipper: Clipper, reason: str) -> float:
    found = re.search(
        rf'^clipper_replica_refusals_total{{reason="{reason}"}} (\S+)$', metrics(clipper), re.M
    )
    return float(found.group(1)) if found else 0.0


def replica(clipper: Clipper, replica_id: str) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in clipper.admin.get_all_containers()
            if r["replica_id"] == replica_id and r["state"] != "disconnected"
        ),
        None,
    )


@contextlib.contextmanager
def rogue(
    clipper: Clipper, view: HostView, name: str, replica_id: str, key_file: Path | None = None
) -> Iterator[None]:
    """The model's own image started by hand on the host, registering as version 1 with
    ``replica_id`` (and ``key_file`` mounted where the runtime reads its key); removed after."""
    address = clipper.frontend.replica_address
    ip, _, port = address.rpartition(":")
    argv = ["run", "--detach", "--name", name, "--network", "host", "--user", "10001:10001"]
    # The version's own model files, mounted as a deploy mounts them into its replicas.
    (record,) = json.loads(view.docker("inspect", f"cd-{MODEL}-1-0"))
    model_dir = next(m["Source"] for m in record["Mounts"] if m["Destination"] == "/model")
    argv += ["--mount", f"type=bind,source={model_dir},target=/model,readonly"]
    if key_file is not None:
        argv += ["--mount", f"type=bind,source={key_file},target={REPLICA_KEY_PATH},readonly"]
    for key, value in {
        "CLIPPER_IP": ip,
        "CLIPPER_PORT": port,
        "CLIPPER_MODEL_NAME": MODEL,
        "CLIPPER_MODEL_VERSION": "1",
        "CLIPPER_INPUT_TYPE": "doubles",
        "CLIPPER_REPLICA_ID": replica_id,
    }.items():
        argv += ["--env", f"{key}={value}"]
    view.docker(*argv, dc.image_name(MODEL, "1"))
    try:
        yield
    finally:
        view.docker("rm", "--force", name, check=False)


def wait_refused(clipper: Clipper, view: HostView, name: str, reason: str, before: float) -> str:
    """Until the rogue's log says it was refused and the metric counted it; its log."""
    deadline = time.monotonic() + REFUSED_WITHIN_S
    while True:
        logs = view.docker("logs", name, check=False)
        if "refused this replica" in logs and refusals(clipper, reason) > before:
            return logs
        assert time.monotonic() < deadline, f"{name} was not refused ({reason}):\n{logs}"
        time.sleep(0.3)


def host_key_file(view: HostView, container: str) -> Path:
    return view.upload_dir / "keys" / MODEL / "1" / f"{container}.key"


class TestTheKey:
    def test_is_a_0600_file_of_the_container_user_bind_mounted_read_only(
        self, deployed: HostView
    ) -> None:
        key_file = host_key_file(deployed, f"cd-{MODEL}-1-0")
        st = key_file.stat()
        assert (st.st_mode & 0o777, st.st_uid) == (0o600, 10001)
        assert key_file.parent.stat().st_mode & 0o777 == 0o700
        (record,) = json.loads(deployed.docker("inspect", f"cd-{MODEL}-1-0"))
        mounts = [m for m in record["Mounts"] if m["Destination"] == REPLICA_KEY_PATH]
        assert mounts == [
            {
                "Type": "bind",
                "Source": f"{KEYS_DIR}/{MODEL}/1/cd-{MODEL}-1-0.key",
                "Destination": REPLICA_KEY_PATH,
                "Mode": "",
                "RW": False,
                "Propagation": "rprivate",
            }
        ]

    def test_is_nowhere_else(self, deployed: HostView) -> None:
        key = host_key_file(deployed, f"cd-{MODEL}-1-0").read_text().strip()
        assert len(key) == 64
        inspect = deployed.docker("inspect", f"cd-{MODEL}-1-0")
        history = deployed.docker("history", "--no-trunc", dc.image_name(MODEL, "1"))
        assert key not in inspect and key not in history  # not in Env, Args, Cmd or a layer
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert key not in ps


class TestRogueReplicas:
    def test_without_the_key_it_gets_no_query_and_is_counted(
        self, clipper: Clipper, deployed: HostView
    ) -> None:
        before = refusals(clipper, "no_proof")
        with rogue(clipper, deployed, "rogue-nokey", f"{HOST}/rogue"):
            logs = wait_refused(clipper, deployed, "rogue-nokey", "no_proof", before)
            print(f"\n[rogue log] {logs.strip().splitlines()[-1]}")
            assert "Serving predictions" not in logs
            assert replica(clipper, f"{HOST}/rogue") is None
            replies = [clipper.predict(APP, [1.0]) for _ in range(30)]
            assert all(r["output"] == "real" and not r["default"] for r in replies)
            assert f'replica="{HOST}/rogue"' not in metrics(clipper)

    def test_a_key_of_its_own_making_is_refused(self, clipper: Clipper, deployed: HostView) -> None:
        forged = deployed.upload_dir / "forged.key"
        forged.write_text("0" * 64 + "\n")
        forged.chmod(0o644)
        before = refusals(clipper, "bad_proof")
        with rogue(clipper, deployed, "rogue-badkey", f"{HOST}/forger", forged):
            wait_refused(clipper, deployed, "rogue-badkey", "bad_proof", before)
            assert replica(clipper, f"{HOST}/forger") is None

    def test_reusing_the_live_replica_id_does_not_displace_it(
        self, clipper: Clipper, deployed: HostView
    ) -> None:
        real = replica(clipper, REAL)
        assert real is not None
        before = refusals(clipper, "no_proof")
        with rogue(clipper, deployed, "rogue-sameid", REAL):
            wait_refused(clipper, deployed, "rogue-sameid", "no_proof", before)
            after = replica(clipper, REAL)
            assert after is not None and after["connected_since"] == real["connected_since"]
            assert after["peer"] == real["peer"]

    def test_even_a_copy_of_its_key_does_not_displace_it(
        self, clipper: Clipper, deployed: HostView
    ) -> None:
        real = replica(clipper, REAL)
        assert real is not None
        before = refusals(clipper, "duplicate_id")
        stolen = host_key_file(deployed, f"cd-{MODEL}-1-0")
        with rogue(clipper, deployed, "rogue-stolen", REAL, stolen):
            logs = wait_refused(clipper, deployed, "rogue-stolen", "duplicate_id", before)
            assert "already connected" in logs
            after = replica(clipper, REAL)
            assert after is not None and after["connected_since"] == real["connected_since"]
            assert clipper.predict(APP, [1.0])["output"] == "real"

    def test_an_oversized_first_frame_is_refused_unread(
        self, clipper: Clipper, deployed: HostView, suite_bed: Any
    ) -> None:
        pid = clipper.frontend.status()["pid"]
        rss_before = rss_kib(pid)
        before = refusals(clipper, "oversized")
        ip, _, port = clipper.frontend.replica_address.rpartition(":")
        sender = (
            "import socket, struct, time\n"
            f"s = socket.create_connection(({ip!r}, {port}), timeout=10)\n"
            "t = time.monotonic()\n"
            "try:\n"
            "    s.sendall(struct.pack('>IB', 200 * 1024 * 1024, 1))\n"
            "    for _ in range(64):\n"
            "        s.sendall(b'{' * 65536)\n"
            "except OSError as exc:\n"
            "    print('send stopped:', type(exc).__name__)\n"
            "print('closed after %.2f s' % (time.monotonic() - t))\n"
        )
        netns = suite_bed.layout.host("h3").netns
        out = subprocess.run(
            ["ip", "netns", "exec", netns, "python3", "-c", sender],
            capture_output=True,
            text=True,
            timeout=60,
        )
        print(f"\n[oversized] {out.stdout.strip()} {out.stderr.strip()[-200:]}")
        deadline = time.monotonic() + 10
        while refusals(clipper, "oversized") <= before:
            assert time.monotonic() < deadline, "the oversized frame was not counted"
            time.sleep(0.2)
        rss_after = rss_kib(pid)
        print(f"[oversized] frontend RSS {rss_before / 1024:.1f} -> {rss_after / 1024:.1f} MiB")
        assert rss_after - rss_before < 16 * 1024
        assert clipper.predict(APP, [1.0])["output"] == "real"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")
