"""Argument checks of build_bundle: names as the seed and Docker take them, input types,
Python versions."""

from __future__ import annotations

import pytest

from clipper_deploy.packaging.errors import (
    InvalidModelError,
    NotCallableError,
    PythonVersionMismatchError,
)
from clipper_deploy.packaging.validation import (
    check_python,
    is_name,
    suggest_name,
    validate_base_image,
    validate_callable,
    validate_input_type,
    validate_labels,
    validate_name,
    validate_version,
)


class TestNames:
    @pytest.mark.parametrize(
        "name",
        ["example_model", "example-model", "m", "a1", "1a", "a.b", "a__b", "a--b", "a" * 63],
    )
    def test_the_seeds_and_dockers_names_are_accepted(self, name: str) -> None:
        assert validate_name(name) == name

    @pytest.mark.parametrize(
        "name",
        ["Example", "-a", "a-", "_a", "a.", "a..b", "a._b", "a___b", "a b", "a/b", "a" * 64, "", 3],
    )
    def test_names_no_docker_host_takes_are_refused_with_the_rule(self, name: object) -> None:
        with pytest.raises(InvalidModelError, match="lowercase letters, digits and the separators"):
            validate_name(name)

    def test_the_message_suggests_a_valid_name(self) -> None:
        with pytest.raises(InvalidModelError, match="Try 'my_model-2'"):
            validate_name("My_Model 2")

    def test_suggestions_are_valid_names(self) -> None:
        for text in ["My_Model", "---", "x" * 100, "é", "a._b", "..a..", "_x_"]:
            assert is_name(suggest_name(text)), text


class TestVersions:
    def test_ints_become_strings(self) -> None:
        assert validate_version(1) == "1"

    @pytest.mark.parametrize("version", ["1.0", "v2_1", "2026.12.01"])
    def test_dotted_and_underscored_versions_are_accepted(self, version: str) -> None:
        assert validate_version(version) == version

    @pytest.mark.parametrize("version", ["1..0", "V1", ".1", True, None, 1.5])
    def test_non_labels_are_refused(self, version: object) -> None:
        with pytest.raises(InvalidModelError):
            validate_version(version)


class TestOtherArguments:
    @pytest.mark.parametrize("kind", ["doubles", "floats", "ints", "bytes", "strings"])
    def test_the_five_input_types(self, kind: str) -> None:
        assert validate_input_type(kind) == kind

    def test_unknown_input_type_lists_the_valid_ones(self) -> None:
        with pytest.raises(InvalidModelError, match="doubles, floats, ints, bytes, strings"):
            validate_input_type("double")

    def test_labels_must_be_a_list_of_strings(self) -> None:
        assert validate_labels(["a", "b"]) == ("a", "b")
        with pytest.raises(InvalidModelError, match=r"write \['example'\]"):
            validate_labels("example")
        with pytest.raises(InvalidModelError):
            validate_labels(["ok", ""])

    def test_base_image_must_be_an_image_reference(self) -> None:
        assert validate_base_image("python:3.11-slim") == "python:3.11-slim"
        with pytest.raises(InvalidModelError):
            validate_base_image("python:3.11\nRUN rm -rf /")

    def test_not_callable(self) -> None:
        with pytest.raises(NotCallableError, match="got a int"):
            validate_callable(3)


class TestPython:
    def test_same_minor_passes(self) -> None:
        check_python("3.11.7", "3.11", "img")

    def test_mismatch_names_both_versions(self) -> None:
        with pytest.raises(PythonVersionMismatchError) as info:
            check_python("3.11.7", "3.12", "python:3.12-slim")
        assert (info.value.client, info.value.target) == ("3.11", "3.12")
        assert "Python 3.11" in str(info.value) and "Python is 3.12" in str(info.value)
        assert "python:3.12-slim" in str(info.value)
