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
