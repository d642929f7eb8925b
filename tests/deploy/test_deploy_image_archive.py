"""The image made on the client is the image the Dockerfile builds, and custom Dockerfiles build.

A default deploy sends no build to a host: the client makes the image (``docker load``
archive in the bundle) and the host loads it. Here the seed's example is deployed that way
to h3, then the very bundle directory on h3 is built with ``docker build``, as a host would
build it, and the two images are compared: their config (what ``docker run`` uses), every
file under ``/opt`` and ``/model`` with its owner, mode, size and link target (the venv's
``bin/activate*`` scripts aside, which the client-made image leaves out on purpose, and the
runtime's ``__pycache__``, which only it has), ``/etc/passwd`` and ``/etc/group``, and what
the function answers when each image loads it as a replica does. A deploy whose
``template_dir`` overrides the Dockerfile still builds on the host, and serves.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_helpers import CONNECT_TIMEOUT, HostView, Transcript, forget

from clipper_deploy import Clipper
from clipper_deploy.display.lines import LineView
from clipper_deploy.hosts import docker_commands as dc
from clipper_deploy.packaging.bundle import IMAGE_CONFIG, environment_hash

pytestmark = pytest.mark.bed

HOST = "h3"
MODEL, APP = "archive-model", "archive"
CUSTOM, CUSTOM_APP = "custom-model", "custom"
BUILT = "clipper-deploy-test/archive-built:1"
QUERY = [2.5, 1.0, 3.2, 2.2]
CONFIG_KEYS = ("Env", "Cmd", "User", "Labels", "WorkingDir", "Entrypoint")
LISTED = ("/opt", "/model")
LISTING = (
    r"\( -path '/opt/clipper/runtime/*' -name __pycache__ -prune \)"
    r" -o \( -type f -printf '%p f %U:%G %m %s\n' \) -o -printf '%p %y %U:%G %m %l\n'"
)
REPLICA_CALL = (
    "import json, os; from clipper_runtime.loader import load_function; "
    "f = load_function(os.environ['CLIPPER_MODEL_PATH']); "
    f"print(json.dumps([str(x) for x in f([{QUERY!r}, {QUERY[::-1]!r}])]))"
)
CUSTOM_DOCKERFILE = """\
{% extends "base/Dockerfile.j2" %}
{% block extra_setup %}
RUN echo custom-step > /opt/custom-marker
{% endblock %}
"""


def inspect(view: HostView, what: str) -> dict[str, Any]:
    (info,) = json.loads(view.docker("image", "inspect", what))
    return info


def bundle_of(view: HostView, model: str) -> str:
    (bundle,) = {c.bundle for c in view.containers(model) if c.version == "1"}
    return bundle


def bundle_files(directory: Path) -> dict[str, str]:
    """``{path: sha256}`` of every file of a bundle directory on the host."""
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def run_in(view: HostView, image: str, entrypoint: str, *args: str, **kw: str) -> str:
    """``docker run`` of ``image`` with no network and a read-only root, as replicas run."""
    argv = ["run", "--rm", "--network", "none", "--read-only", "--entrypoint", entrypoint]
    for option, value in kw.items():
        argv += [f"--{option}", value]
    return view.docker(*argv, image, *args)


def listing(view: HostView, image: str) -> list[str]:
    out = run_in(view, image, "sh", "-c", f"find {' '.join(LISTED)} {LISTING}", user="0")
    kept = [line for line in out.splitlines() if line]
    return sorted(
        line for line in kept if not re.match(r"/opt/venv/bin/[Aa]ctivate", line.split(" ")[0])
    )


@pytest.fixture(scope="module")
def deployed(
    clipper: Clipper,
    example_function: Callable[[Any], Any],
    transcript: Transcript,
    views: dict[str, HostView],
) -> Iterator[dict[str, Any]]:
    """The seed's example deployed to h3 the default way, and its bundle built by hand there
    (the hand-built image is removed at the end, with the model)."""
    view = views[HOST]
    clipper.register_application(APP, "doubles", default_output="-1.0", slo_micros=5_000_000)
    mark = transcript.mark()
    clipper.deploy_predict_function(
        MODEL, 1, example_function, [APP], "doubles", 1, hosts=HOST, mode="auto"
    )
    clipper.link_model_to_app(APP, MODEL)
    lines = transcript.since(mark)
    bundle = bundle_of(view, MODEL)
    directory = view.upload_dir / "bundles" / bundle
    files = bundle_files(directory)
    labels = {dc.MANAGED: "true", dc.ENVIRONMENT: environment_hash(files)}
    view.docker(*dc.build(str(directory), BUILT, labels)[1:])
    try:
        yield {"lines": lines, "bundle": bundle, "files": files, "directory": directory}
    finally:
        view.docker("image", "rm", BUILT, check=False)
        forget(clipper, MODEL, APP)


@pytest.fixture(scope="module")
def custom(
    clipper: Clipper,
    example_function: Callable[[Any], Any],
    transcript: Transcript,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, list[str]]]:
    """The seed's example deployed to h3 with a template_dir whose Dockerfile adds a step, by
    a Clipper whose progress events go to a line view (as without a terminal): what it said
    and the view's lines."""
    templates = tmp_path_factory.mktemp("custom-templates")
    (templates / "Dockerfile.j2").write_text(CUSTOM_DOCKERFILE)
    clipper.register_application(CUSTOM_APP, "doubles", default_output="-1.0", slo_micros=5_000_000)
    stream = io.StringIO()
    viewed = Clipper(
        clipper.inventory,
        say=transcript,
        progress=LineView(stream),
        connect_timeout=CONNECT_TIMEOUT,
    )
    mark = transcript.mark()
    viewed.deploy_predict_function(
        CUSTOM,
        1,
        example_function,
        [CUSTOM_APP],
        "doubles",
        1,
        hosts=HOST,
        mode="auto",
        template_dir=str(templates),
    )
    clipper.link_model_to_app(CUSTOM_APP, CUSTOM)
    yield {"said": transcript.since(mark), "viewed": stream.getvalue().splitlines()}
    forget(clipper, CUSTOM, CUSTOM_APP)


class TestTheClientMadeImage:
    def test_the_deploy_loaded_or_tagged_it_and_built_nothing(
        self, deployed: dict[str, Any], views: dict[str, HostView]
    ) -> None:
        image = dc.image_name(MODEL, "1")
        said = [x for x in deployed["lines"] if x.startswith(f"[{HOST}] ")]
        assert not [x for x in said if " built " in x], said
        loaded = f"[{HOST}] loaded {image} (made on the client, no build) in "
        tagged = f"[{HOST}] tagged {image} from the environment's image"
        assert [x for x in said if x.startswith((loaded, tagged))], said
        config_sha = deployed["files"][IMAGE_CONFIG]
        assert inspect(views[HOST], image)["Id"] == f"sha256:{config_sha}"

    def test_it_serves(self, deployed: dict[str, Any], clipper: Clipper) -> None:
        reply = clipper.predict(APP, QUERY)
        assert reply["default"] is False, reply

    def test_its_config_is_the_built_images(
        self, deployed: dict[str, Any], views: dict[str, HostView]
    ) -> None:
        made = inspect(views[HOST], dc.image_name(MODEL, "1"))["Config"]
        built = inspect(views[HOST], BUILT)["Config"]
        assert made["Labels"][dc.ENVIRONMENT]  # the label the tag step looks for
        for key in CONFIG_KEYS:
            assert made.get(key) == built.get(key), (key, made.get(key), built.get(key))

    def test_its_files_owners_modes_and_links_are_the_built_images(
        self, deployed: dict[str, Any], views: dict[str, HostView]
    ) -> None:
        made = listing(views[HOST], dc.image_name(MODEL, "1"))
        built = listing(views[HOST], BUILT)
        assert len(made) > 1000, made[:20]  # the environment's packages are all there
        assert any(
            x.startswith("/opt/clipper/runtime/clipper_runtime/main.py f 0:0 ") for x in made
        )
        assert "/model d 0:0 755 " in made
        only_made = sorted(set(made) - set(built))
        only_built = sorted(set(built) - set(made))
        assert (only_made, only_built) == ([], []), (only_made[:40], only_built[:40])

    def test_its_users_and_groups_are_the_built_images(
        self, deployed: dict[str, Any], views: dict[str, HostView]
    ) -> None:
        view = views[HOST]
        for path in ("/etc/passwd", "/etc/group"):
            made = run_in(view, dc.image_name(MODEL, "1"), "cat", path)
            assert made == run_in(view, BUILT, "cat", path), path
            assert re.search(r"^clipper:x:10001:", made, re.M), made

    def test_both_images_load_the_function_and_answer_alike(
        self, deployed: dict[str, Any], views: dict[str, HostView]
    ) -> None:
        view = views[HOST]
        model = f"/var/lib/clipper-deploy/bundles/{deployed['bundle']}/model:/model:ro"
        answers = [
            json.loads(run_in(view, image, "python", "-c", REPLICA_CALL, volume=model))
            for image in (dc.image_name(MODEL, "1"), BUILT)
        ]
        assert answers[0] == answers[1] and len(answers[0]) == 2, answers


class TestACustomDockerfile:
    def test_is_built_on_the_host_not_loaded(self, custom: dict[str, list[str]]) -> None:
        said = [x for x in custom["said"] if x.startswith(f"[{HOST}] ")]
        built = f"[{HOST}] built {dc.image_name(CUSTOM, '1')} in "
        assert [x for x in said if x.startswith(built)], said
        assert not [x for x in said if " loaded " in x or " tagged " in x], said

    def test_its_build_steps_are_shown_as_they_go(self, custom: dict[str, list[str]]) -> None:
        steps = [
            x for x in custom["viewed"] if re.match(rf"^\d\d:\d\d:\d\d \[{HOST}\] build: step ", x)
        ]
        assert any("RUN echo custom-step" in x for x in steps), custom["viewed"]
        assert all(re.search(r" build: step \d+/\d+ ", x) for x in steps), steps

    def test_has_its_step_and_serves(
        self, custom: dict[str, list[str]], clipper: Clipper, views: dict[str, HostView]
    ) -> None:
        marker = run_in(views[HOST], dc.image_name(CUSTOM, "1"), "cat", "/opt/custom-marker")
        assert marker == "custom-step\n"
        reply = clipper.predict(CUSTOM_APP, QUERY)
        assert reply["default"] is False, reply
