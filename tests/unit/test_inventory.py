"""Ansible INI inventories: the constructs Ansible accepts, its precedence, and clear errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from clipper_deploy.hosts.inventory import Group, Host, Inventory, InventoryError


def write(tmp_path: Path, text: str, name: str = "inventory.ini") -> Path:
    """``text`` dedented into a file; its first line is line 1."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def load(tmp_path: Path, text: str) -> Inventory:
    return Inventory.from_file(write(tmp_path, text))


def names(hosts: list[Host]) -> list[str]:
    return [host.name for host in hosts]


def error(tmp_path: Path, text: str) -> tuple[InventoryError, Path]:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as info:
        Inventory.from_file(path)
    return info.value, path


def assert_points_at(err: InventoryError, path: Path, lineno: int, text: str) -> None:
    """The message names the file, the line number and the offending text."""
    message = str(err)
    assert message.startswith(f"{path}:{lineno}: ")
    assert f"`{text}`" in message
    assert err.source == str(path)
    assert err.lineno == lineno
    assert err.hint, "every syntax error says how to fix it"


class TestHostLines:
    def test_hosts_before_any_section_are_ungrouped(self, tmp_path):
        inv = load(tmp_path, "alpha\nbeta\n[web]\ngamma\n")
        assert inv.groups["ungrouped"].hosts == ("alpha", "beta")
        assert names(inv.hosts("ungrouped")) == ["alpha", "beta"]

    def test_hosts_in_a_section_belong_to_that_group(self, tmp_path):
        inv = load(tmp_path, "[web]\nweb1\nweb2\n")
        assert names(inv.hosts("web")) == ["web1", "web2"]
        assert inv.host("web1").groups == ("web",)

    def test_inline_variables(self, tmp_path):
        inv = load(tmp_path, "[web]\nweb1 role=front  tier=1\n")
        assert inv.host("web1").vars["role"] == "front"
        assert inv.host("web1").vars["tier"] == "1"

    def test_double_and_single_quoted_values_may_hold_spaces(self, tmp_path):
        inv = load(tmp_path, """[web]\nweb1 a="two words" b='it is' c="x # not a comment"\n""")
        assert inv.host("web1").vars["a"] == "two words"
        assert inv.host("web1").vars["b"] == "it is"
        assert inv.host("web1").vars["c"] == "x # not a comment"

    def test_values_are_strings_as_written_where_ansible_would_give_a_non_string(self, tmp_path):
        inv = load(tmp_path, "[web]\nweb1 n=5 flag=True items=[1,2] empty=\n")
        assert inv.host("web1").vars == {"n": "5", "flag": "True", "items": "[1,2]", "empty": ""}

    def test_a_quoted_python_string_literal_is_unquoted_as_ansible_does(self, tmp_path):
        inv = load(tmp_path, """[web]\nweb1 secret="'03#pa33w0rd'"\n""")
        assert inv.host("web1").vars["secret"] == "03#pa33w0rd"

    def test_values_may_contain_equals_signs(self, tmp_path):
        inv = load(tmp_path, """[web]\nweb1 opts="-o A=b" raw=x=y\n""")
        assert inv.host("web1").vars["opts"] == "-o A=b"
        assert inv.host("web1").vars["raw"] == "x=y"

    def test_comment_after_host_variables_is_ignored(self, tmp_path):
        inv = load(tmp_path, "[web]\nweb1 ansible_user=deploy # the deploy user\n")
        assert inv.host("web1").vars == {"ansible_user": "deploy"}
        assert inv.host("web1").user == "deploy"

    def test_hash_starts_a_comment_even_inside_a_word_as_in_ansible(self, tmp_path):
        inv = load(tmp_path, """[web]\nweb1 pw=a#b quoted="a#b"\n""")
        assert inv.host("web1").vars == {"pw": "a"}
        inv = load(tmp_path, """[web]\nweb1 quoted="a#b"\n""")
        assert inv.host("web1").vars == {"quoted": "a#b"}

    def test_host_colon_port_sets_the_port(self, tmp_path):
        inv = load(tmp_path, "[web]\nweb1:2222\n")
        assert inv.host("web1").port == 2222
        assert inv.host("web1").vars["ansible_port"] == "2222"

    def test_inline_ansible_port_beats_host_colon_port(self, tmp_path):
        inv = load(tmp_path, "[web]\nweb1:2222 ansible_port=2200\n")
        assert inv.host("web1").port == 2200

    def test_bare_ipv6_address_is_a_name_not_a_port(self, tmp_path):
        inv = load(tmp_path, "[web]\nfe80::1\n")
        assert inv.host("fe80::1").port == 22

    def test_same_host_on_several_lines_merges_variables_later_line_wins(self, tmp_path):
        inv = load(tmp_path, "[a]\nh1 x=1 y=1\n[b]\nh1 y=2\n")
        assert inv.host("h1").vars["x"] == "1"
        assert inv.host("h1").vars["y"] == "2"
        assert inv.host("h1").groups == ("a", "b")

    def test_a_host_listed_twice_in_one_group_appears_once(self, tmp_path):
        inv = load(tmp_path, "[a]\nh1\nh1\n")
        assert inv.groups["a"].hosts == ("h1",)


class TestConnectionVariables:
    def test_defaults(self, tmp_path):
        host = load(tmp_path, "web1\n").host("web1")
        assert host == Host(name="web1", address="web1", groups=("ungrouped",))
        assert (host.address, host.port, host.user, host.key_file) == ("web1", 22, None, None)
        assert host.connection == "ssh"
        assert not host.is_local

    def test_ansible_host_port_and_user(self, tmp_path):
        line = "web1 ansible_host=10.0.0.5 ansible_port=2222 ansible_user=deploy\n"
        host = load(tmp_path, line).host("web1")
        assert (host.name, host.address, host.port, host.user) == (
            "web1",
            "10.0.0.5",
            2222,
            "deploy",
        )

    def test_relative_key_file_resolves_from_the_inventory_folder(self, tmp_path):
        host = load(tmp_path, "web1 ansible_ssh_private_key_file=keys/deploy\n").host("web1")
        assert host.key_file == tmp_path / "keys" / "deploy"

    def test_relative_key_file_from_group_vars_also_resolves_from_the_inventory(self, tmp_path):
        text = "[web]\nweb1\n[web:vars]\nansible_ssh_private_key_file=../k\n"
        host = load(tmp_path, text).host("web1")
        assert host.key_file == tmp_path / ".." / "k"

    def test_absolute_key_file_is_kept(self, tmp_path):
        host = load(tmp_path, "web1 ansible_ssh_private_key_file=/etc/k\n").host("web1")
        assert host.key_file == Path("/etc/k")

    def test_home_in_key_file_is_expanded(self, tmp_path, monkeypatch):
        monkeypatch.setenv("HOME", "/home/someone")
        host = load(tmp_path, "web1 ansible_ssh_private_key_file=~/.ssh/id\n").host("web1")
        assert host.key_file == Path("/home/someone/.ssh/id")

    def test_parsed_text_without_base_dir_keeps_relative_key_files(self):
        inv = Inventory.parse("web1 ansible_ssh_private_key_file=keys/k\n")
        assert inv.host("web1").key_file == Path("keys/k")

    def test_known_hosts_file_from_all_vars_resolves_from_the_inventory_folder(self, tmp_path):
        text = "[web]\nweb1\n[all:vars]\nclipper_known_hosts_file=known_hosts\n"
        host = load(tmp_path, text).host("web1")
        assert host.known_hosts == tmp_path / "known_hosts"

    def test_no_known_hosts_file_by_default(self, tmp_path):
        assert load(tmp_path, "web1\n").host("web1").known_hosts is None

    def test_parsed_text_with_base_dir(self):
        inv = Inventory.parse("web1 ansible_ssh_private_key_file=k\n", base_dir="/srv")
        assert inv.host("web1").key_file == Path("/srv/k")

    def test_local_connection(self, tmp_path):
        host = load(tmp_path, "control ansible_connection=local\n").host("control")
        assert host.connection == "local"
        assert host.is_local

    @pytest.mark.parametrize("kind", ["ssh", "paramiko", "smart"])
    def test_ssh_like_connections_are_ssh(self, tmp_path, kind):
        host = load(tmp_path, f"web1 ansible_connection={kind}\n").host("web1")
        assert host.connection == "ssh"

    def test_older_ansible_ssh_names_are_read(self, tmp_path):
        line = (
            "web1 ansible_ssh_host=10.0.0.7 ansible_ssh_port=2200 ansible_ssh_user=ops "
            "ansible_private_key_file=/k\n"
        )
        host = load(tmp_path, line).host("web1")
        assert (host.address, host.port, host.user, host.key_file) == (
            "10.0.0.7",
            2200,
            "ops",
            Path("/k"),
        )

    def test_ansible_ssh_names_win_over_the_short_names_as_in_ansible(self, tmp_path):
        text = "web1 ansible_host=a ansible_ssh_host=b ansible_user=u1 ansible_ssh_user=u2\n"
        host = load(tmp_path, text).host("web1")
        assert (host.address, host.user) == ("b", "u2")

    def test_empty_ansible_host_falls_back_to_the_name(self, tmp_path):
        assert load(tmp_path, "web1 ansible_host=\n").host("web1").address == "web1"

    def test_hosts_are_hashable_and_compare_by_value(self):
        one = Inventory.parse("web1 x=1\n").host("web1")
        two = Inventory.parse("web1 x=1\n").host("web1")
        assert one == two
        assert {one: "a"}[two] == "a"


class TestRanges:
    def test_numeric_range(self, tmp_path):
        assert names(load(tmp_path, "[g]\nh[1:3]\n").hosts("g")) == ["h1", "h2", "h3"]

    def test_zero_padding_is_kept(self, tmp_path):
        hosts = names(load(tmp_path, "[g]\nweb[01:10]\n").hosts("g"))
        assert hosts == [f"web{n:02d}" for n in range(1, 11)]

    def test_letter_range_with_text_around_it(self, tmp_path):
        hosts = names(load(tmp_path, "[g]\ndb-[a:c].example.com\n").hosts("g"))
        assert hosts == ["db-a.example.com", "db-b.example.com", "db-c.example.com"]

    def test_stride(self, tmp_path):
        assert names(load(tmp_path, "[g]\nh[1:10:2]\n").hosts("g")) == [
            "h1",
            "h3",
            "h5",
            "h7",
            "h9",
        ]

    def test_letter_range_with_stride(self, tmp_path):
        assert names(load(tmp_path, "[g]\nh[a:e:2]\n").hosts("g")) == ["ha", "hc", "he"]

    def test_several_ranges_in_one_name(self, tmp_path):
        hosts = names(load(tmp_path, "[g]\nr[1:2]-n[a:b]\n").hosts("g"))
        assert hosts == ["r1-na", "r1-nb", "r2-na", "r2-nb"]

    def test_missing_start_means_zero_as_in_ansible(self, tmp_path):
        assert names(load(tmp_path, "[g]\nh[:2]\n").hosts("g")) == ["h0", "h1", "h2"]

    def test_range_with_port_and_variables_applies_to_every_host(self, tmp_path):
        inv = load(tmp_path, "[g]\nh[1:2]:2222 ansible_user=ops\n")
        assert [(h.name, h.port, h.user) for h in inv.hosts("g")] == [
            ("h1", 2222, "ops"),
            ("h2", 2222, "ops"),
        ]


class TestGroupVars:
    def test_group_vars_apply_to_the_groups_hosts(self, tmp_path):
        inv = load(tmp_path, "[web]\nweb1\n[web:vars]\nansible_user=deploy\nport_http=8080\n")
        assert inv.host("web1").user == "deploy"
        assert inv.host("web1").vars["port_http"] == "8080"
        assert inv.groups["web"].vars == {"ansible_user": "deploy", "port_http": "8080"}

    def test_spaces_around_equals_are_ignored(self, tmp_path):
        inv = load(tmp_path, "[web]\nweb1\n[web:vars]\ncolour = blue\n")
        assert inv.host("web1").vars["colour"] == "blue"

    def test_the_value_is_everything_after_the_first_equals(self, tmp_path):
        inv = load(tmp_path, "[web]\nweb1\n[web:vars]\nmsg = hello big world\nopts=-o A=b\n")
        assert inv.host("web1").vars["msg"] == "hello big world"
        assert inv.host("web1").vars["opts"] == "-o A=b"

    def test_quotes_around_the_value_are_removed(self, tmp_path):
        text = """[web]\nweb1\n[web:vars]\na="two words"\nb='it is'\nc="x # y"\nd="\\"q\\""\n"""
        vars = load(tmp_path, text).host("web1").vars
        assert (vars["a"], vars["b"], vars["c"], vars["d"]) == (
            "two words",
            "it is",
            "x # y",
            '"q"',
        )

    def test_comment_after_a_value_is_dropped(self, tmp_path):
        text = '[web]\nweb1\n[web:vars]\nhttp_port=8080 # comment\nq="v" # comment\n'
        inv = load(tmp_path, text)
        assert inv.host("web1").vars["http_port"] == "8080"
        assert inv.host("web1").vars["q"] == "v"

    def test_a_vars_section_may_come_before_the_group_section(self, tmp_path):
        inv = load(tmp_path, "[web:vars]\nx=1\n[web]\nweb1\n")
        assert inv.host("web1").vars["x"] == "1"

    def test_all_vars_apply_to_every_host(self, tmp_path):
        inv = load(tmp_path, "lone\n[web]\nweb1\n[all:vars]\nntp=pool\n")
        assert [h.vars["ntp"] for h in inv] == ["pool", "pool"]

    def test_ungrouped_vars_apply_to_ungrouped_hosts(self, tmp_path):
        inv = load(tmp_path, "lone\n[web]\nweb1\n[ungrouped:vars]\nx=1\n")
        assert inv.host("lone").vars["x"] == "1"
        assert "x" not in inv.host("web1").vars


class TestChildren:
    def test_child_hosts_are_in_the_parent(self, tmp_path):
        inv = load(tmp_path, "[a]\na1\n[b]\nb1\n[both:children]\na\nb\n")
        assert names(inv.hosts("both")) == ["a1", "b1"]
        assert inv.groups["both"].children == ("a", "b")

    def test_children_may_be_declared_later_in_the_file(self, tmp_path):
        inv = load(tmp_path, "[dc:children]\nweb\n[web]\nweb1\n")
        assert names(inv.hosts("dc")) == ["web1"]

    def test_grandchildren(self, tmp_path):
        text = "[top:children]\nmid\n[mid:children]\nleaf\n[leaf]\nh1\n"
        inv = load(tmp_path, text)
        assert names(inv.hosts("top")) == ["h1"]
        assert inv.host("h1").groups == ("top", "mid", "leaf")

    def test_a_children_section_declares_its_group(self, tmp_path):
        inv = load(tmp_path, "[dc:children]\nempty\n[empty:children]\n")
        assert inv.groups["empty"].hosts == ()
        assert inv.hosts("dc") == []

    def test_a_parent_may_also_have_its_own_hosts(self, tmp_path):
        inv = load(tmp_path, "[dc]\nd1\n[dc:children]\nweb\n[web]\nw1\n")
        assert names(inv.hosts("dc")) == ["d1", "w1"]

    def test_a_group_may_have_several_parents(self, tmp_path):
        inv = load(tmp_path, "[p1:children]\nc\n[p2:children]\nc\n[c]\nh\n")
        assert inv.host("h").groups == ("p1", "p2", "c")

    def test_comment_after_a_child_name(self, tmp_path):
        inv = load(tmp_path, "[dc:children]\nweb # the web tier\n[web]\nw1\n")
        assert names(inv.hosts("dc")) == ["w1"]


class TestImplicitGroups:
    def test_all_holds_every_host_in_file_order(self, tmp_path):
        inv = load(tmp_path, "z1\n[b]\nb1\n[a]\na1\nb1\n")
        assert inv.groups["all"].hosts == ("z1", "b1", "a1")
        assert names(inv.hosts("all")) == ["z1", "b1", "a1"]
        assert names(list(inv)) == ["z1", "b1", "a1"]

    def test_a_host_listed_ungrouped_and_in_a_group_is_not_ungrouped(self, tmp_path):
        inv = load(tmp_path, "h1\nh2\n[web]\nh1\n")
        assert inv.groups["ungrouped"].hosts == ("h2",)
        assert inv.host("h1").groups == ("web",)

    def test_hosts_listed_under_all_are_ungrouped(self, tmp_path):
        inv = load(tmp_path, "[all]\nh1\n")
        assert inv.groups["ungrouped"].hosts == ("h1",)

    def test_all_and_ungrouped_exist_in_an_empty_inventory(self, tmp_path):
        inv = load(tmp_path, "# nothing yet\n")
        assert set(inv.groups) == {"all", "ungrouped"}
        assert len(inv) == 0
        assert inv.hosts("all") == []

    def test_groups_mapping(self, tmp_path):
        inv = load(tmp_path, "[web]\nw1\n[web:vars]\nx=1\n")
        assert list(inv.groups) == ["all", "ungrouped", "web"]
        assert inv.groups["web"] == Group(name="web", hosts=("w1",), children=(), vars={"x": "1"})


class TestPrecedence:
    text = """
        [all:vars]
        level=all
        only_all=yes

        [parent:children]
        child

        [parent:vars]
        level=parent
        only_parent=yes

        [child]
        h1
        h2 level=host

        [child:vars]
        level=child
    """

    def test_child_group_beats_parent_group_beats_all(self, tmp_path):
        inv = load(tmp_path, self.text)
        assert inv.host("h1").vars["level"] == "child"
        assert inv.host("h1").vars["only_parent"] == "yes"
        assert inv.host("h1").vars["only_all"] == "yes"

    def test_host_vars_beat_group_vars_even_when_the_group_vars_come_later(self, tmp_path):
        assert load(tmp_path, self.text).host("h2").vars["level"] == "host"

    def test_host_in_two_groups_gets_the_vars_of_both(self, tmp_path):
        text = "[a]\nh\n[b]\nh\n[a:vars]\nx=1\n[b:vars]\ny=2\n"
        vars = load(tmp_path, text).host("h").vars
        assert (vars["x"], vars["y"]) == ("1", "2")

    def test_same_depth_groups_apply_in_name_order(self, tmp_path):
        text = "[zeta]\nh\n[alpha]\nh\n[zeta:vars]\nx=zeta\n[alpha:vars]\nx=alpha\n"
        assert load(tmp_path, text).host("h").vars["x"] == "zeta"

    def test_ansible_group_priority_orders_same_depth_groups(self, tmp_path):
        text = (
            "[zeta]\nh\n[alpha]\nh\n[zeta:vars]\nx=zeta\n"
            "[alpha:vars]\nx=alpha\nansible_group_priority=10\n"
        )
        assert load(tmp_path, text).host("h").vars["x"] == "alpha"

    def test_deeper_group_wins_regardless_of_name(self, tmp_path):
        text = "[a:children]\nz\n[z]\nh\n[a]\nh\n[a:vars]\nx=a\n[z:vars]\nx=z\n"
        assert load(tmp_path, text).host("h").vars["x"] == "z"

    def test_connection_fields_follow_precedence(self, tmp_path):
        text = "[g]\nh1\nh2 ansible_user=root\n[g:vars]\nansible_user=deploy\n"
        inv = load(tmp_path, text)
        assert (inv.host("h1").user, inv.host("h2").user) == ("deploy", "root")


class TestComments:
    def test_comment_lines_and_blank_lines_are_skipped(self, tmp_path):
        text = """
            # a comment
            ; another comment

               # indented comment
            [web]   # comment after a header
            ; between
            web1
        """
        assert names(load(tmp_path, text).hosts("web")) == ["web1"]

    def test_byte_order_mark_is_ignored(self, tmp_path):
        path = tmp_path / "inventory.ini"
        path.write_bytes("\ufeff[web]\nweb1\n".encode())
        assert names(Inventory.from_file(path).hosts("web")) == ["web1"]


class TestPatterns:
    text = """
        lone
        [web]
        web1
        web2
        [db]
        db1
        web2
        [prod:children]
        web
        db
        [staging]
        stage1
    """

    @pytest.fixture
    def inv(self, tmp_path):
        return load(tmp_path, self.text)

    def test_all(self, inv):
        assert names(inv.hosts("all")) == ["lone", "web1", "web2", "db1", "stage1"]
        assert names(inv.hosts()) == names(inv.hosts("all"))

    def test_group(self, inv):
        assert names(inv.hosts("db")) == ["web2", "db1"]

    def test_host(self, inv):
        assert names(inv.hosts("db1")) == ["db1"]

    def test_glob_matches_group_and_host_names(self, inv):
        assert names(inv.hosts("web*")) == ["web1", "web2"]
        assert names(inv.hosts("*1")) == ["web1", "db1", "stage1"]
        assert names(inv.hosts("stag*")) == ["stage1"]

    def test_regex(self, inv):
        assert names(inv.hosts("~(web|db)1")) == ["web1", "db1"]

    def test_union(self, inv):
        assert names(inv.hosts("db:staging")) == ["web2", "db1", "stage1"]
        assert names(inv.hosts("db,staging")) == ["web2", "db1", "stage1"]

    def test_intersection(self, inv):
        assert names(inv.hosts("web:&db")) == ["web2"]

    def test_exclusion(self, inv):
        assert names(inv.hosts("prod:!db")) == ["web1"]

    def test_exclusion_alone_starts_from_all(self, inv):
        assert names(inv.hosts("!prod")) == ["lone", "stage1"]

    def test_operators_apply_union_then_intersection_then_exclusion(self, inv):
        assert names(inv.hosts("!web1:&prod:web:staging:db")) == ["web2", "db1"]

    def test_results_are_in_file_order(self, inv):
        assert names(inv.hosts("staging:web1")) == ["web1", "stage1"]

    def test_glob_matching_nothing_is_empty(self, inv):
        assert inv.hosts("nothing*") == []

    def test_unknown_name_is_an_error(self, inv):
        with pytest.raises(InventoryError, match=r"no group or host named 'webb'.*Known groups"):
            inv.hosts("webb:db")

    def test_unknown_name_after_an_operator_is_an_error(self, inv):
        with pytest.raises(InventoryError, match="'dbb'"):
            inv.hosts("all:!dbb")

    def test_empty_pattern_is_an_error(self, inv):
        with pytest.raises(InventoryError, match="empty host pattern"):
            inv.hosts(" ")

    def test_operator_without_a_name_is_an_error(self, inv):
        with pytest.raises(InventoryError, match="empty name after"):
            inv.hosts("web:!")

    def test_subscripts_are_refused_rather_than_misread(self, inv):
        with pytest.raises(InventoryError, match="subscripts"):
            inv.hosts("web[0]")

    def test_bad_regex_is_an_error(self, inv):
        with pytest.raises(InventoryError, match="bad regular expression"):
            inv.hosts("~web(")

    def test_unknown_host_lookup_is_an_error(self, inv):
        with pytest.raises(InventoryError, match="no host named 'nope'"):
            inv.host("nope")

    def test_membership(self, inv):
        assert "db1" in inv
        assert "db" not in inv


class TestSyntaxErrors:
    @pytest.mark.parametrize(
        "header",
        ["[web servers]", "[]", "[web", "[web]x", "[web:vars", "[a[b]]"],
    )
    def test_bad_section_header(self, tmp_path, header):
        err, path = error(tmp_path, f"[ok]\nh1\n{header}\nh2\n")
        assert_points_at(err, path, 3, header)
        assert "bad section header" in str(err)
        assert "[group:vars]" in str(err)

    @pytest.mark.parametrize("header", ["[web:var]", "[web:host_vars]", "[web:]", "[web:a:b]"])
    def test_unknown_section_suffix(self, tmp_path, header):
        err, path = error(tmp_path, f"{header}\n")
        assert_points_at(err, path, 1, header)
        assert "unknown section type" in str(err)
        assert "[web:children]" in str(err)

    def test_host_line_starting_with_a_variable(self, tmp_path):
        err, path = error(tmp_path, "[web]\nweb1\nansible_user=deploy\n")
        assert_points_at(err, path, 3, "ansible_user=deploy")
        assert "[web:vars]" in str(err)

    def test_host_variable_without_a_name(self, tmp_path):
        err, path = error(tmp_path, "[web]\nweb1 =deploy\n")
        assert_points_at(err, path, 2, "web1 =deploy")
        assert "without a name" in str(err)

    def test_host_variable_without_equals(self, tmp_path):
        err, path = error(tmp_path, "[web]\nweb1 deploy\n")
        assert_points_at(err, path, 2, "web1 deploy")
        assert "expected key=value" in str(err)

    def test_vars_line_without_equals(self, tmp_path):
        err, path = error(tmp_path, "[web]\nweb1\n[web:vars]\nansible_user deploy\n")
        assert_points_at(err, path, 4, "ansible_user deploy")
        assert "expected key=value" in str(err)

    def test_vars_line_without_a_key(self, tmp_path):
        err, path = error(tmp_path, "[web]\nweb1\n[web:vars]\n= deploy\n")
        assert_points_at(err, path, 4, "= deploy")
        assert "without a name" in str(err)

    def test_vars_key_with_spaces(self, tmp_path):
        err, path = error(tmp_path, "[web]\n[web:vars]\nmy var=1\n")
        assert_points_at(err, path, 3, "my var=1")

    def test_unbalanced_quotes_in_a_host_line(self, tmp_path):
        err, path = error(tmp_path, "[web]\nweb1 motd='hello\n")
        assert_points_at(err, path, 2, "web1 motd='hello")
        assert "no closing quotation" in str(err)
        assert "Close the quote" in str(err)

    def test_unbalanced_quotes_in_a_vars_value(self, tmp_path):
        err, path = error(tmp_path, '[web]\n[web:vars]\nmotd="hello\n')
        assert_points_at(err, path, 3, 'motd="hello')
        assert "unbalanced quotes" in str(err)

    def test_text_after_a_quoted_vars_value(self, tmp_path):
        err, path = error(tmp_path, '[web]\n[web:vars]\nmotd="hello"world\n')
        assert_points_at(err, path, 3, 'motd="hello"world')

    def test_bad_child_line(self, tmp_path):
        err, path = error(tmp_path, "[web]\n[dc:children]\nweb db\n")
        assert_points_at(err, path, 3, "web db")
        assert "one group name" in str(err)

    def test_all_as_a_child(self, tmp_path):
        err, path = error(tmp_path, "[dc:children]\nall\n")
        assert_points_at(err, path, 2, "all")

    def test_yaml_file(self, tmp_path):
        err, path = error(tmp_path, "---\nall:\n")
        assert_points_at(err, path, 1, "---")
        assert "YAML" in str(err)


class TestRangeErrors:
    @pytest.mark.parametrize(
        ("name", "problem"),
        [
            ("h[3:1]", "starts after it ends"),
            ("h[c:a]", "starts after it ends"),
            ("web[01:9]", "different widths"),
            ("h[1:10:0]", "bad step"),
            ("h[1:10:x]", "bad step"),
            ("h[1:a]", "bad host range"),
            ("h[aa:ab]", "bad host range"),
            ("h[1]", "bad host range"),
            ("h[1:2:3:4]", "bad host range"),
            ("h[1:]", "has no end"),
            ("h[1:2", "unbalanced brackets"),
            ("h1:2]", "unbalanced brackets"),
            ("h]1:2[", "unbalanced brackets"),
        ],
    )
    def test_bad_range(self, tmp_path, name, problem):
        err, path = error(tmp_path, f"[web]\n{name} ansible_user=x\n")
        assert_points_at(err, path, 2, f"{name} ansible_user=x")
        assert problem in str(err)

    @pytest.mark.parametrize("token", ["web1:", "web1:ssh", "web1:70000", ":22"])
    def test_bad_host_colon_port(self, tmp_path, token):
        err, path = error(tmp_path, f"[web]\n{token}\n")
        assert_points_at(err, path, 2, token)


class TestDeclarationErrors:
    def test_undeclared_child_group_as_in_ansible(self, tmp_path):
        err, path = error(tmp_path, "[dc:children]\nweb\ndb\n[web]\nw1\n")
        assert_points_at(err, path, 3, "db")
        assert "never declared" in str(err)
        assert "Add a [db] section" in str(err)

    def test_vars_for_an_undeclared_group_as_in_ansible(self, tmp_path):
        err, path = error(tmp_path, "[web]\nw1\n[wbe:vars]\nx=1\n")
        assert_points_at(err, path, 3, "[wbe:vars]")
        assert "never declared" in str(err)

    def test_cycle(self, tmp_path):
        err, path = error(tmp_path, "[a:children]\nb\n[b:children]\nc\n[c:children]\na\n")
        assert_points_at(err, path, 6, "a")
        assert "c -> a -> b -> c" in str(err)

    def test_group_as_its_own_child(self, tmp_path):
        err, path = error(tmp_path, "[a:children]\na\n")
        assert_points_at(err, path, 2, "a")
        assert "would contain itself" in str(err)


class TestValueErrors:
    def test_non_numeric_port_points_at_the_line_that_set_it(self, tmp_path):
        err, path = error(tmp_path, "[web]\nw1\n[web:vars]\nansible_port=ssh\n")
        assert_points_at(err, path, 4, "ansible_port=ssh")
        assert "'w1'" in str(err)

    def test_port_out_of_range(self, tmp_path):
        err, path = error(tmp_path, "w1 ansible_port=0\n")
        assert_points_at(err, path, 1, "w1 ansible_port=0")

    def test_unsupported_connection(self, tmp_path):
        err, path = error(tmp_path, "w1 ansible_connection=winrm\n")
        assert_points_at(err, path, 1, "w1 ansible_connection=winrm")
        assert "ansible_connection=local" in str(err)

    def test_templates_are_refused_not_used_as_addresses(self, tmp_path):
        err, path = error(tmp_path, 'w1 ansible_host="{{ name }}.lan"\n')
        assert_points_at(err, path, 1, 'w1 ansible_host="{{ name }}.lan"')

    def test_non_integer_group_priority(self, tmp_path):
        err, path = error(tmp_path, "[web]\nw1\n[web:vars]\nansible_group_priority=high\n")
        assert_points_at(err, path, 4, "ansible_group_priority=high")


class TestFiles:
    def test_missing_file(self, tmp_path):
        path = tmp_path / "nope.ini"
        with pytest.raises(InventoryError) as info:
            Inventory.from_file(path)
        assert str(info.value).startswith(f"{path}: inventory file not found.")
        assert info.value.lineno is None

    def test_directory(self, tmp_path):
        with pytest.raises(InventoryError, match="is a directory"):
            Inventory.from_file(tmp_path)

    def test_not_utf8_names_the_line(self, tmp_path):
        path = tmp_path / "inventory.ini"
        path.write_bytes(b"[web]\nweb1\nw\xff2\n")
        with pytest.raises(InventoryError) as info:
            Inventory.from_file(path)
        assert str(info.value).startswith(f"{path}:3: file is not valid UTF-8")

    def test_parse_names_its_source_in_errors(self):
        with pytest.raises(InventoryError, match=r"^<string>:1: bad section header"):
            Inventory.parse("[bad header]\n")
        with pytest.raises(InventoryError, match=r"^inline:2: "):
            Inventory.parse("[g]\nh[2:1]\n", source="inline")


class TestRepositoryExample:
    """The example inventory at the top of the repository stays valid."""

    path = Path(__file__).resolve().parents[2] / "inventory.ini"

    def test_it_parses(self):
        inv = Inventory.from_file(self.path)
        assert len(inv.hosts("clipper")) == 1
        assert len(inv.hosts("model_hosts")) >= 2

    def test_model_hosts_have_a_user_and_a_key(self):
        for host in Inventory.from_file(self.path).hosts("model_hosts"):
            assert host.user
            assert host.key_file is not None and host.key_file.is_absolute()
