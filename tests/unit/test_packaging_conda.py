"""Conda checks without a solver: specs, the seed's messages, channel defaults."""

from __future__ import annotations

from clipper_deploy.packaging.conda_resolve import (
    CondaResolution,
    SolvedPackage,
    default_channels,
    missing_warning,
    resolution_key,
    spec_for,
    unsatisfiable_message,
)
from clipper_deploy.packaging.environment import CondaPackage
from clipper_deploy.packaging.target import Target

NLTK = CondaPackage("nltk", "3.2.1", "py27_0", "https://conda.anaconda.org/conda-forge")


class TestSpecs:
    def test_exact_build_when_the_channel_has_it(self) -> None:
        assert spec_for(NLTK, [("3.2.1", "py27_0")]) == "nltk ==3.2.1 py27_0"

    def test_version_only_when_the_build_differs(self) -> None:
        assert spec_for(NLTK, [("3.2.1", "py27_1"), ("3.3", "0")]) == "nltk ==3.2.1"

    def test_missing_when_the_version_is_absent(self) -> None:
        assert spec_for(NLTK, [("3.3", "0")]) is None


class TestSeedMessages:
    def test_missing_packages(self) -> None:
        other = CondaPackage("libsodium", "1.0.10", "0", "https://conda.anaconda.org/conda-forge")
        assert missing_warning([NLTK, other]) == [
            "The following packages in your conda environment aren't available in the "
            "linux-64 conda channel the container will use:",
            "conda-forge::nltk 3.2.1 py27_0, conda-forge::libsodium 1.0.10 0",
            "We will skip their installation when deploying your function. If your function "
            "uses these packages, the container will experience a runtime error when queried.",
            "Removed unavailable packages from supplied environment specifications",
        ]

    def test_unsatisfiable(self) -> None:
        text = unsatisfiable_message("liba ==1.0 conflicts with libb -> liba >=2\n")
        assert text == (
            "Your conda dependencies are unsatisfiable (see error text below). Please resolve "
            "these issues and call `deploy_predict_func` again.\n"
            "UnsatisfiableError: liba ==1.0 conflicts with libb -> liba >=2"
        )


class TestKeys:
    def test_default_channels_are_the_records_own_most_used_first(self) -> None:
        records = [
            CondaPackage("a", "1", "0", "file:///b"),
            CondaPackage("b", "1", "0", "file:///a"),
            CondaPackage("c", "1", "0", "file:///a"),
        ]
        assert default_channels(records) == ["file:///a", "file:///b"]

    def test_resolution_key_ignores_record_order(self) -> None:
        a, b = CondaPackage("a", "1", "0", "c"), CondaPackage("b", "1", "0", "c")
        assert resolution_key([a, b], ["c"], Target()) == resolution_key([b, a], ["c"], Target())

    def test_layer_key_depends_only_on_the_solved_archives(self) -> None:
        one = SolvedPackage("a", "1", "0", "linux-64", "file:///c/a.tar.bz2", "11")
        two = SolvedPackage("b", "1", "0", "noarch", "file:///c/b.tar.bz2", "22")
        first = CondaResolution((one, two), (), ("c",), ())
        second = CondaResolution((two, one), (NLTK,), ("d",), ("x",))
        assert first.key == second.key
