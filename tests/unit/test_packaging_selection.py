"""full and auto: what of the environment a bundle ships."""

from __future__ import annotations

from clipper_deploy.packaging.environment import CondaPackage, Environment, PipPackage
from clipper_deploy.packaging.selection import (
    conda_closure,
    distributions_for_modules,
    select_auto,
    select_full,
)

ENV = Environment(
    python="3.11.7",
    cloudpickle="3.1.3",
    platform="linux-x86_64",
    pip=(
        PipPackage("cloudpickle", "3.1.3"),
        PipPackage("numpy", "2.4.6"),
        PipPackage("scikit-learn", "1.9.1"),
        PipPackage("requests", "2.34.2"),
        PipPackage("my-project", "0.1", local_url="file:///home/me/project"),
    ),
    conda=(
        CondaPackage("pandas", "2.2", "0", "c", depends=("libx >=1",), python_dists=("pandas",)),
        CondaPackage("libx", "1.0", "0", "c"),
        CondaPackage("unrelated", "1.0", "0", "c"),
    ),
)
MAPPING = {
    "numpy": ["numpy"],
    "sklearn": ["scikit-learn"],
    "requests": ["requests"],
    "pandas": ["pandas"],
    "my_project": ["my-project"],
}


class TestFull:
    def test_ships_every_non_local_distribution_and_every_conda_record(self) -> None:
        selection = select_full(ENV)
        assert selection.requirements == (
            "cloudpickle==3.1.3",
            "numpy==2.4.6",
            "requests==2.34.2",
            "scikit-learn==1.9.1",
        )
        assert selection.conda == ENV.conda
        assert [p.name for p in selection.local] == ["my-project"]


class TestAuto:
    def test_ships_what_the_function_uses_plus_the_runtimes_needs(self) -> None:
        selection = select_auto(ENV, ["sklearn.linear_model._logistic", "json"], MAPPING)
        assert selection.requirements == (
            "cloudpickle==3.1.3",
            "numpy==2.4.6",
            "scikit-learn==1.9.1",
        )
        assert selection.constraints == ("requests==2.34.2",)
        assert selection.conda == ()

    def test_conda_records_come_with_their_dependencies(self) -> None:
        selection = select_auto(ENV, ["pandas.core"], MAPPING)
        assert [c.name for c in selection.conda] == ["libx", "pandas"]

    def test_modules_map_to_distributions_without_the_standard_library(self) -> None:
        assert distributions_for_modules(["os.path", "sklearn", "nothing"], MAPPING) == {
            "scikit-learn"
        }

    def test_conda_closure_ignores_unknown_dependencies(self) -> None:
        records = [CondaPackage("a", "1", "0", "c", depends=("b", "virtual-thing >=1"))]
        assert [r.name for r in conda_closure(records, set())] == []
        records.append(CondaPackage("b", "1", "0", "c", python_dists=("b",)))
        assert [r.name for r in conda_closure(records, {"b"})] == ["b"]


def _pkg(name: str, *requires: str, local: str | None = None) -> PipPackage:
    return PipPackage(name, "1.0", local_url=local, requires=requires)


TOOL_ENV = Environment(
    python="3.11.7",
    cloudpickle="3.1.3",
    platform="linux-x86_64",
    pip=(
        _pkg("clipper-deploy", "fabric", "numpy", "cloudpickle", "requests", "docker"),
        _pkg("fabric", "paramiko", "invoke"),
        _pkg("paramiko", "cryptography"),
        _pkg("cryptography", "cffi"),
        _pkg("cffi"),
        _pkg("invoke"),
        _pkg("docker", "requests", "urllib3"),
        _pkg("requests", "urllib3", "idna"),
        _pkg("urllib3"),
        _pkg("idna"),
        _pkg("numpy"),
        _pkg("cloudpickle"),
        _pkg("scikit-learn", "numpy", "scipy"),
        _pkg("scipy", "numpy"),
        _pkg("my-app", "invoke"),  # the user's own package also needs invoke
    ),
)


class TestTheDeployingToolIsNotShipped:
    def test_full_leaves_out_clipper_deploy_and_what_only_it_needs(self) -> None:
        selection = select_full(TOOL_ENV)
        shipped = {r.split("==")[0] for r in selection.requirements}
        assert shipped == {"numpy", "cloudpickle", "scikit-learn", "scipy", "my-app", "invoke"}
        assert {p.name for p in selection.tool} == {
            "clipper-deploy",
            "fabric",
            "paramiko",
            "cryptography",
            "cffi",
            "docker",
            "requests",
            "urllib3",
            "idna",
        }

    def test_what_the_function_uses_is_shipped_with_its_requirements(self) -> None:
        selection = select_full(TOOL_ENV, used={"requests"})
        shipped = {r.split("==")[0] for r in selection.requirements}
        assert {"requests", "urllib3", "idna"} <= shipped
        assert "docker" not in shipped and "clipper-deploy" not in shipped

    def test_an_editable_clipper_deploy_is_not_called_a_local_package(self) -> None:
        pip = tuple(
            _pkg("clipper-deploy", local="file:///src/clipper-deploy")
            if p.key == "clipper-deploy"
            else p
            for p in TOOL_ENV.pip
        )
        env = Environment("3.11.7", "3.1.3", "linux-x86_64", pip=pip)
        selection = select_full(env)
        assert not selection.local
        assert "clipper-deploy" in {p.name for p in selection.tool}

    def test_auto_never_ships_clipper_deploy(self) -> None:
        mapping = {"clipper_deploy": ["clipper-deploy"], "numpy": ["numpy"]}
        selection = select_auto(TOOL_ENV, ["clipper_deploy", "numpy"], mapping)
        assert not any(r.startswith("clipper-deploy") for r in selection.requirements)
        assert not any(c.startswith("clipper-deploy") for c in selection.constraints)

    def test_without_clipper_deploy_installed_nothing_is_left_out(self) -> None:
        selection = select_full(ENV)
        assert not selection.tool
