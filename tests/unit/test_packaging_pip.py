"""pip argv builders and output parsing (no pip is run here)."""

from __future__ import annotations

import pytest

from clipper_deploy.packaging.errors import PipResolutionError
from clipper_deploy.packaging.pip_resolve import (
    download_argv,
    looks_unreachable,
    parse_report,
    resolution_key,
    resolve_argv,
    skipped_warning,
    unavailable_requirement,
)
from clipper_deploy.packaging.selection import Selection
from clipper_deploy.packaging.target import Target

REPORT = {
    "install": [
        {
            "metadata": {"name": "numpy", "version": "2.4.6"},
            "download_info": {
                "url": "https://files.example/numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.whl",
                "archive_info": {"hashes": {"sha256": "aa"}},
            },
        },
        {
            "metadata": {"name": "cloudpickle", "version": "3.1.3"},
            "download_info": {
                "url": "file:///mirror/cloudpickle-3.1.3-py3-none-any.whl",
                "archive_info": {"hash": "sha256=bb"},
            },
        },
    ]
}


class TestArgv:
    def test_resolution_describes_the_container_not_this_machine(self) -> None:
        argv = resolve_argv(
            "/py",
            Target(),
            requirements_file="r.txt",
            report_file="o.json",
            target_dir="/tmp/t",
            constraints_file="c",
        )
        assert argv[:4] == ["/py", "-m", "pip", "install"]
        assert argv[argv.index("--target") + 1] == "/tmp/t"  # older pips need it for --platform
        assert "--dry-run" in argv and "--ignore-installed" in argv
        assert "--only-binary=:all:" in argv
        assert argv[argv.index("--python-version") + 1] == "3.11"
        assert argv[argv.index("--abi") + 1] == "cp311"
        platforms = [argv[i + 1] for i, a in enumerate(argv) if a == "--platform"]
        assert platforms[0] == "manylinux_2_36_x86_64"
        assert {"manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(
            platforms
        )
        assert argv[-4:] == ["-r", "r.txt", "-c", "c"]

    def test_download_takes_exact_urls_without_dependencies(self) -> None:
        argv = download_argv("/py", Target(), ["https://x/a.whl"], "/dest", "https://idx/simple")
        assert "--no-deps" in argv and argv[-1] == "https://x/a.whl"
        assert argv[argv.index("--index-url") + 1] == "https://idx/simple"


class TestReport:
    def test_wheels_are_read_with_their_hashes(self) -> None:
        wheels = parse_report(REPORT)
        assert [(w.name, w.sha256) for w in wheels] == [("cloudpickle", "bb"), ("numpy", "aa")]
        assert wheels[1].filename == "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.whl"
        assert wheels[0].requirement == "cloudpickle==3.1.3 --hash=sha256:bb"

    def test_a_source_distribution_is_refused(self) -> None:
        report = {
            "install": [
                {
                    "metadata": {"name": "x", "version": "1"},
                    "download_info": {"url": "https://x/x-1.tar.gz", "archive_info": {}},
                }
            ]
        }
        with pytest.raises(PipResolutionError, match="not a wheel"):
            parse_report(report)


class TestOutput:
    def test_no_matching_distribution_names_the_requirement(self) -> None:
        text = (
            "ERROR: Could not find a version that satisfies the requirement pywin32==306 "
            "(from versions: none)\nERROR: No matching distribution found for pywin32==306\n"
        )
        assert unavailable_requirement(text) == "pywin32==306"
        assert unavailable_requirement("ERROR: ResolutionImpossible") is None

    def test_connection_errors_mean_unreachable(self) -> None:
        assert looks_unreachable(
            "WARNING: Retrying (Retry(total=0, connect=None)) after connection broken by "
            "'NewConnectionError(...)': /simple/six/"
        )
        assert not looks_unreachable("ERROR: No matching distribution found for six==9")

    def test_warning_follows_the_seeds_wording(self) -> None:
        lines = skipped_warning(["pywin32==306"], Target())
        assert lines[1] == "pywin32==306"
        assert lines[-1] == "Removed unavailable packages from supplied environment specifications"


def test_resolution_key_changes_with_pins_and_target() -> None:
    one = Selection("full", ("numpy==2.4.6",))
    assert resolution_key(one, Target(), None) == resolution_key(one, Target(), None)
    assert resolution_key(one, Target(), None) != resolution_key(
        Selection("full", ("numpy==2.4.5",)), Target(), None
    )
    assert resolution_key(one, Target(), None) != resolution_key(one, Target(glibc=(2, 28)), None)
