"""The SQLite-backed store: rules of the management API and persistence."""

from __future__ import annotations

import pytest

from clipper_deploy.frontend.errors import ClipperError
from clipper_deploy.frontend.store import Store


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state.sqlite"


def status_of(call, *args):
    with pytest.raises(ClipperError) as info:
        call(*args)
    return info.value.status


class TestPersistence:
    def test_everything_survives_reopening(self, path):
        s = Store.open(path)
        s.add_app("app", "doubles", {"x": 1}, 5000)
        s.add_model("m", "1", "doubles", ["l"], "img", "/data")
        s.add_model("m", "2", "doubles")
        s.add_model_links("app", ["m"])
        s.set_model_version("m", "2")
        s.close()
        s = Store.open(path)
        assert s.get_app("app").to_json() == {
            "name": "app",
            "input_type": "doubles",
            "default_output": {"x": 1},
            "latency_slo_micros": 5000,
            "linked_models": ["m"],
        }
        assert s.current_versions == {"m": "2"}
        assert s.get_model("m", "1").labels == ["l"]

    def test_deletions_survive_too(self, path):
        s = Store.open(path)
        s.add_app("app", "doubles", None, 5000)
        s.add_model("m", "1", "doubles")
        s.delete_app("app")
        s.delete_versioned_model("m", "1")
        s.close()
        s = Store.open(path)
        assert s.apps == {} and s.models == {} and s.current_versions == {}


class TestRules:
    def test_first_version_is_current_later_ones_are_not(self, path):
        s = Store.open(path)
        s.add_model("m", "1", "doubles")
        s.add_model("m", "2", "doubles")
        assert s.current_versions["m"] == "1"

    def test_versions_of_a_model_share_its_input_type(self, path):
        s = Store.open(path)
        s.add_model("m", "1", "doubles")
        assert status_of(s.add_model, "m", "2", "ints") == 400

    def test_conflicts_and_unknowns(self, path):
        s = Store.open(path)
        s.add_app("app", "doubles", None, 5000)
        s.add_model("m", "1", "doubles")
        assert status_of(s.add_app, "app", "doubles", None, 5000) == 409
        assert status_of(s.add_model, "m", "1", "doubles") == 409
        assert status_of(s.get_app, "nope") == 404
        assert status_of(s.set_model_version, "m", "7") == 404
        assert status_of(s.add_model_links, "app", ["m", "m"]) == 400

    def test_deleting_the_current_version_leaves_none(self, path):
        s = Store.open(path)
        s.add_model("m", "1", "doubles")
        s.delete_versioned_model("m", "1")
        assert "m" not in s.current_versions
