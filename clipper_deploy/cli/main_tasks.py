"""Top-level tasks: `invoke test` and `invoke demo`."""

from __future__ import annotations

import json
import shlex
import sys

from invoke import Context, Exit, task

from clipper_deploy.cli.common import console, failing, say
from clipper_deploy.testbed.bed import Testbed
from clipper_deploy.testing import all_test_layouts


@task(help={"args": 'extra pytest arguments, e.g. "-k inventory -x"'})
def test(c: Context, args: str = "") -> None:
    """Run the whole test suite: unit tests and real multi-host test-bed tests (needs root)."""
    try:
        result = c.run(f"{shlex.quote(sys.executable)} -m pytest {args}", warn=True, pty=False)
    finally:
        for layout in all_test_layouts():
            Testbed(layout, say=say).down(quiet=True)
    if result is None or result.exited != 0:
        raise Exit(code=result.exited if result else 1)


@task(
    help={
        "playbook": "what to deploy (default playbooks/example.yml)",
        "hosts": "test bed size (default 2)",
    }
)
def demo(c: Context, playbook: str = "playbooks/example.yml", hosts: int = 2) -> None:
    """The main job: a test bed and the frontend, deploy the example, print predictions."""
    from clipper_deploy.clipper import Clipper
    from clipper_deploy.display import view_for
    from clipper_deploy.orchestration.playbook import load_playbook
    from clipper_deploy.testbed.layout import BedLayout

    with failing("Demo"):
        console.rule("1. Test bed: Docker hosts reached over SSH")
        inventory = Testbed(BedLayout.default(hosts=hosts), say=say).up()
        view = view_for(console)  # a live display in a terminal, timestamped lines elsewhere
        clipper = Clipper(inventory, say=view.say, progress=view)
        console.rule("2. Frontend")
        clipper.start()
        console.rule(f"3. Deploy {playbook}")
        book = load_playbook(playbook)
        clipper.deploy_playbook(book)
        console.print("True")
        console.rule("4. Predictions through the frontend")
        if book.app is None:
            console.print("(the playbook names no app: nothing to query)")
            return
        for value in book.sample_input or []:
            reply = clipper.predict(book.app.name, value)
            console.print(f"POST /{book.app.name}/predict {json.dumps({'input': value})}")
            console.print(f"  -> {json.dumps(reply)}")
        if book.sample_input:
            batch = clipper.query.predict_batch(book.app.name, book.sample_input)
            console.print(
                f"POST /{book.app.name}/predict {json.dumps({'input_batch': book.sample_input})}"
            )
            console.print(f"  -> {json.dumps({'batch_predictions': batch})}")
            console.print(
                "(centered_predict centers its inputs on their own mean, as in the seed: "
                "one input alone is always centered to zero; inputs batched together are not)"
            )
    config = clipper.frontend_config
    console.rule("Next")
    console.print(
        f"curl -s {f'--cacert {config.tls_ca} ' if config.tls_ca else ''}-X POST "
        f"{config.scheme}://{config.bind}:{config.query_port}/{book.app.name}/predict "
        f"-d '{{\"input\": {json.dumps((book.sample_input or [[0]])[0])}}}'\n"
        ".venv/bin/invoke status      # apps, models, replicas per host\n"
        f".venv/bin/invoke logs {book.model}\n"
        ".venv/bin/invoke testbed.down   # remove the bed and the frontend"
    )
