"""Fan-out on the real bed: the client sends each layer once, hosts that hold it pass it on.

h1, h2 and h3 are made fresh Docker hosts (no containers, images or uploads), then the example
goes to all three: the client streams the base image and the bundle to h1 only, and h1 passes
them to h2 and h3 at once (two relays from one holder side by side), over SSH with a key made
for each relay. Then h3 is made fresh again and a relay that cannot be authorized (its
authorized_keys path cannot be written) falls back to the client: the deploy still succeeds.
Last, single relays from h1 to h2, made to fail in one part each, say which part failed and
why, with that part's own message.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from deploy_helpers import CONNECT_TIMEOUT, HostView, Transcript, forget, inventory_variant

from clipper_deploy import Clipper
from clipper_deploy.hosts.connection import connection_for, known_hosts_path
from clipper_deploy.hosts.relay import AUTHORIZED_KEYS_VAR, MARK, RelayError, RelayKey, relay
from clipper_deploy.hosts.transfer import CLIENT, METER
from clipper_deploy.testbed.bed import Testbed

MODEL, APP = "fanout-model", "fanout"
MIB = 2**20


def wipe(view: HostView) -> None:
    """Make a bed host a fresh Docker host again, from the control machine (not over SSH)."""
    ids = view.docker("ps", "-aq").split()
    if ids:
        view.docker("rm", "-f", *ids)
    view.docker("image", "prune", "-af")
    for child in view.upload_dir.iterdir() if view.upload_dir.is_dir() else []:
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def sent(before: dict, after: dict) -> dict[tuple[str, str], int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n - before.get(k, 0)}


def deploy(clipper: Clipper, function: Callable[..., Any], version: int) -> None:
    clipper.deploy_predict_function(
        MODEL, version, function, [APP], "doubles", 3, hosts="h1:h2:h3", mode="auto"
    )


@pytest.fixture(scope="module")
def relayed(
    clipper: Clipper,
    views: dict[str, HostView],
    transcript: Transcript,
    example_function: Callable[..., Any],
) -> Iterator[dict[str, Any]]:
    """Version 1 on fresh h1, h2 and h3: the lines printed and the bytes moved, by sender."""
    for name in ("h1", "h2", "h3"):
        wipe(views[name])
    clipper.register_application(APP, "doubles", "-1.0", 100_000)
    mark, before = transcript.mark(), METER.snapshot()
    deploy(clipper, example_function, 1)
    clipper.link_model_to_app(APP, MODEL)
    yield {"lines": transcript.since(mark), "sent": sent(before, METER.snapshot())}
    forget(clipper, MODEL, APP)


class TestRelay:
    def test_the_client_sends_the_layers_once_and_h1_passes_them_to_both(
        self, relayed: dict
    ) -> None:
        moved = relayed["sent"]
        assert moved[(CLIENT, "h1")] > 120 * MIB  # base image (62 MiB packed) + bundle (89 MiB)
        for receiver in ("h2", "h3"):
            assert moved.get((CLIENT, receiver), 0) < 64 * 1024  # only relay scripts
            assert moved[("h1", receiver)] > 120 * MIB
        client = sum(n for (sender, _), n in moved.items() if sender == CLIENT)
        assert client < moved[(CLIENT, "h1")] + 128 * 1024, moved  # once, not once per host

    def test_the_base_image_goes_on_as_the_compressed_copy_each_host_keeps(
        self, relayed: dict, views: dict[str, HostView]
    ) -> None:
        # Only an import of the client's compressed tarball keeps a copy: h1 got it from the
        # client, h2 and h3 from h1 (not docker save's 168 MiB), and can pass it on in turn.
        for name in ("h1", "h2", "h3"):
            kept = list((views[name].upload_dir / "base").glob("*.tar.gz"))
            assert len(kept) == 1 and kept[0].stat().st_size > 30 * MIB, (name, kept)
        sizes = {
            p.stat().st_size
            for n in ("h1", "h2", "h3")
            for p in (views[n].upload_dir / "base").glob("*.tar.gz")
        }
        assert len(sizes) == 1  # the same bytes everywhere

    def test_both_relays_of_the_one_holder_succeed(self, relayed: dict) -> None:
        lines = relayed["lines"]
        for receiver in ("h2", "h3"):
            got = [line for line in lines if line.startswith(f"[{receiver}] got ")]
            assert any(line.startswith(f"[{receiver}] got clipper-deploy/base:") for line in got)
            assert any(" bundle " in line and "from h1" in line for line in got), lines
        assert not any("relay from" in line or "the client sends it" in line for line in lines)

    def test_the_replicas_on_both_hosts_serve(self, relayed: dict, clipper: Clipper) -> None:
        replies = [clipper.predict(APP, [1.0, 2.0, 3.0, 4.0]) for _ in range(6)]
        assert [r["default"] for r in replies] == [False] * 6

    def test_leaves_no_key_or_relay_file_behind(
        self, relayed: dict, suite_bed: Testbed, views: dict[str, HostView]
    ) -> None:
        assert MARK not in suite_bed.layout.authorized_keys.read_text()
        for name in ("h1", "h2", "h3"):
            relay_dir = views[name].upload_dir / "relay"
            assert not relay_dir.exists() or not list(relay_dir.iterdir())


@pytest.fixture(scope="module")
def fallback(
    relayed: dict,
    suite_bed: Testbed,
    views: dict[str, HostView],
    transcript: Transcript,
    example_function: Callable[..., Any],
) -> dict[str, Any]:
    """h3 fresh again, its authorized_keys named as a file that cannot be written: version 2
    to h1, h2 and h3."""
    wipe(views["h3"])
    inventory = inventory_variant(
        suite_bed,
        {
            f"{AUTHORIZED_KEYS_VAR}={suite_bed.layout.authorized_keys}": (
                f"{AUTHORIZED_KEYS_VAR}=/proc/no-such-dir/authorized_keys"
            )
        },
    )
    clipper = Clipper(inventory, say=transcript, connect_timeout=CONNECT_TIMEOUT)
    mark, before = transcript.mark(), METER.snapshot()
    deploy(clipper, example_function, 2)
    return {"lines": transcript.since(mark), "sent": sent(before, METER.snapshot())}


class TestRelayThatCannotBeAuthorized:
    def test_the_client_sends_instead_and_the_deploy_succeeds(self, fallback: dict) -> None:
        lines = fallback["lines"]
        assert any(
            line.startswith("[h3] relay from h") and "could not authorize" in line for line in lines
        ), lines
        assert f"Model {MODEL}:2 is current: 3 replica(s) serving" in lines
        assert fallback["sent"][(CLIENT, "h3")] > 120 * MIB


class TestRelayFailuresSayWhy:
    """One relay from h1 to h2 over the bed's real SSH, made to fail in one part."""

    def attempt(self, clipper: Clipper, source_command: str, receive_script: str) -> str:
        h1, h2 = clipper.inventory.host("h1"), clipper.inventory.host("h2")
        with (
            connection_for(h1, connect_timeout=CONNECT_TIMEOUT) as source,
            connection_for(h2, connect_timeout=CONNECT_TIMEOUT) as target,
            pytest.raises(RelayError) as caught,
        ):
            relay(
                source,
                h1,
                target,
                h2,
                source_command=source_command,
                receive_script=receive_script,
                key=RelayKey.generate(),
                known_hosts=known_hosts_path(h2.known_hosts),
                nbytes=0,
                what="a test layer",
                timeout=60,
            )
        return str(caught.value)

    def test_a_failing_source_command_is_named_with_its_message(self, clipper: Clipper) -> None:
        why = self.attempt(clipper, "docker save clipper-deploy/no-such:1", "cat > /dev/null")
        assert why.startswith("h1 could not pass a test layer to h2 (exit status 1): ")
        assert why.split(" / ")[-2].endswith("Error response from daemon: reference does not exist")
        assert why.endswith(
            " / clipper-relay: the source command here exited 1: "
            "docker save clipper-deploy/no-such:1"
        )

    def test_a_failing_receive_script_is_named_with_its_message(self, clipper: Clipper) -> None:
        address = clipper.inventory.host("h2").address
        why = self.attempt(
            clipper, "printf layer", "cat > /dev/null; echo disk is full >&2; exit 3"
        )
        assert why == (
            "h1 could not pass a test layer to h2 (exit status 3): disk is full / "
            f"clipper-relay: the receive script on {address} port 22 exited 3"
        )
