"""keepalived.conf reading: the lexer's rules (comments, quotes, braces, columns), includes,
definitions, conditional lines, and the structure keepalived's keyword table gives a file.

Expectations come from keepalived 2.2.7's lib/parser.c and were checked with `keepalived -t`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvrrp.config.diagnostics import ConfigError, Diagnostic
from pyvrrp.config.keepalived import load_keepalived
from pyvrrp.config.lexer import Text, decomment, split_braces, split_quoted_escaped, split_words
from pyvrrp.config.model import Config
from pyvrrp.config.parser import MAX_CONFIG_BYTES, Options, Stmt, parse
from pyvrrp.config.report import Report

INSTANCE = """vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 50
    virtual_ipaddress {
        10.0.0.100/24
    }
}
"""


def words(line: str) -> list[tuple[str, int]]:
    t, _ = decomment(Text.of(line))
    return [(w, c + 1) for part in split_braces(t) for w, c in split_words(part)[0]]


def load(text: str, path: str = "k.conf", **opts: object) -> tuple[Config, list[Diagnostic]]:
    return load_keepalived(path, text, Options(config_id="node1", **opts))  # type: ignore[arg-type]


def diags_of(text: str, path: str = "k.conf") -> list[Diagnostic]:
    try:
        return load(text, path)[1]
    except ConfigError as err:
        return err.diagnostics


def tree(text: str) -> list[Stmt]:
    return parse("k.conf", Report(), Options(config_id="node1"), text).statements


# -- the lexer ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "expected"), [
    ("router_id node1 # a comment", [("router_id", 1), ("node1", 11)]),
    ("router_id node1 ! a comment", [("router_id", 1), ("node1", 11)]),
    ("auth_pass ab#cd", [("auth_pass", 1), ("ab", 11)]),  # a comment starts mid-word
    ("auth_pass ab\\#cd", [("auth_pass", 1), ("ab#cd", 11)]),  # escaped
    ('script "/bin/check # not a comment"', [("script", 1), ("/bin/check # not a comment", 8)]),
    ("  interface\teth0", [("interface", 3), ("eth0", 13)]),
    ("vrrp_instance VI_1 {", [("vrrp_instance", 1), ("VI_1", 15), ("{", 20)]),
    ("a{b}c", [("a", 1), ("{", 2), ("b", 3), ("}", 4), ("c", 5)]),
    ('x "a{b}"', [("x", 1), ("a{b}", 3)]),
    ('x ab"cd"', [("x", 1), ("ab", 3), ("cd", 5)]),  # a quote ends a word
    ("router_id 节点一 #中文注释", [("router_id", 1), ("节点一", 11)]),
])
def test_words_and_columns(line: str, expected: list[tuple[str, int]]) -> None:
    assert words(line) == expected


def test_an_open_quote_is_reported_with_its_column() -> None:
    _, quote = decomment(Text.of('router_id "abc # still inside'))
    assert quote == 10
    found, unmatched = split_words(Text.of('router_id "abc'))
    assert found == [("router_id", 0)] and unmatched == 10


def test_script_lines_reparse_with_quotes_and_escapes() -> None:
    assert split_quoted_escaped('script "/bin/sh -c \'killall -0 nginx\'"') == \
        ["script", "/bin/sh -c 'killall -0 nginx'"]
    assert split_quoted_escaped(r'notify "/x.sh \"a b\"" root') == ["notify", '/x.sh "a b"',
                                                                      "root"]
    assert split_quoted_escaped(r"x \x41\t") == ["x", "A\t"]
    assert split_quoted_escaped('x "open') is None


# -- structure ---------------------------------------------------------------------------------


def test_blocks_values_and_positions() -> None:
    (inst,) = tree(INSTANCE)
    assert (inst.name, inst.arg(0), inst.pos.line, inst.pos.col) == ("vrrp_instance", "VI_1", 1, 1)
    assert [s.name for s in inst.block or []] == ["interface", "virtual_router_id",
                                                  "virtual_ipaddress"]
    vips = (inst.block or [])[2].values or []
    assert [(v.first.text, v.first.line, v.first.col) for v in vips] == [("10.0.0.100/24", 5, 9)]


def test_a_block_may_open_on_the_next_line_and_close_on_the_same() -> None:
    cfg, diags = load("vrrp_instance VI_1\n{\n interface eth0\n virtual_router_id 5\n"
                      " virtual_ipaddress { 10.0.0.1 }\n}\n")
    assert cfg.vrrp_instances[0].virtual_ipaddress[0].prefixlen == 32
    assert [d for d in diags if d.severity != "note"] == []


def test_unknown_keyword_warns_and_parsing_goes_on() -> None:
    cfg, diags = load("global_defs {\n  router_id a\n  bogus 1\n}\n" + INSTANCE)
    (d,) = [d for d in diags if d.severity == "warning"]
    assert (d.pos.line, d.pos.col, d.message) == (3, 3, "unknown keyword 'bogus' in global_defs")
    assert cfg.global_defs.router_id == "a" and cfg.vrrp_instances


def test_unknown_keyword_with_a_block_is_read_as_keepalived_reads_it() -> None:
    """keepalived does not skip an unknown keyword's braces: its '}' closes the instance,
    so virtual_router_id lands at the top level and the instance has none (an error)."""
    text = ("vrrp_instance V {\n interface eth0\n foo {\n  bar 1\n }\n"
            " virtual_router_id 5\n virtual_ipaddress {\n 10.1.1.1\n }\n}\n")
    diags = diags_of(text)
    assert "keepalived does not skip its '{ }'" in diags[0].message
    assert (diags[0].pos.line, diags[0].pos.col) == (3, 2)
    assert any(d.severity == "error" and "virtual router id must be set" in d.message
               for d in diags)


def test_missing_parameter_is_an_error_keepalived_stops_on() -> None:
    diags = diags_of("vrrp_instance V {\n interface eth0\n virtual_router_id\n}\n")
    d = next(d for d in diags if d.severity == "error")
    assert (d.pos.line, d.pos.col) == (3, 2) and "missing its value" in d.message


def test_stray_and_missing_braces() -> None:
    stray = diags_of("global_defs {\n router_id x\n}\n}\n")
    assert [(d.pos.line, d.message) for d in stray if d.severity == "warning"] == \
        [(4, "'}' without a matching '{'")]
    unclosed = diags_of(INSTANCE.rstrip("}\n") + "\n")
    (d,) = [d for d in unclosed if d.severity == "warning"]
    assert (d.pos.line, d.pos.col) == (1, 1) and "not closed at the end" in d.message


def test_a_skipped_block_is_not_read() -> None:
    """A second vrrp_instance of the same name: keepalived skips its whole block."""
    text = INSTANCE + INSTANCE.replace("interface eth0", "bogus_inside 1")
    diags = diags_of(text)
    assert [d.message for d in diags if d.severity == "warning"] == \
        ["vrrp instance VI_1 already defined - skipping it"]


def test_long_lines_are_split_as_keepalived_reads_them() -> None:
    text = "global_defs {\n router_id " + "x" * 1100 + "\n}\n" + INSTANCE
    diags = diags_of(text)
    (d,) = [d for d in diags if d.severity == "warning"]
    assert (d.pos.line, d.pos.col) == (2, 1024) and "1111 characters" in d.message


# -- definitions and conditional lines -----------------------------------------------------------


def test_definitions_expand_with_the_column_of_the_reference() -> None:
    text = "$IF=eth0\n$VRID=50\n" + INSTANCE.replace("eth0", "$IF").replace("50", "${VRID}")
    cfg, _ = load(text)
    (inst,) = cfg.vrrp_instances
    assert (inst.interface, inst.virtual_router_id) == ("eth0", 50)


def test_multi_line_definition() -> None:
    text = ("$VIPS=10.0.0.1 \\\n 10.0.0.2\n"
            "vrrp_instance V {\n interface eth0\n virtual_router_id 5\n"
            " virtual_ipaddress {\n  $VIPS\n }\n}\n")
    cfg, _ = load(text)
    assert [str(v.address) for v in cfg.vrrp_instances[0].virtual_ipaddress] == \
        ["10.0.0.1", "10.0.0.2"]


def test_conditional_lines_follow_the_config_id() -> None:
    text = INSTANCE.replace("    virtual_router_id 50\n",
                            "@node1 virtual_router_id 51\n@^node1 virtual_router_id 52\n")
    assert load(text)[0].vrrp_instances[0].virtual_router_id == 51
    cfg, _ = load_keepalived("k.conf", text, Options(config_id="node2"))
    assert cfg.vrrp_instances[0].virtual_router_id == 52


# -- includes ----------------------------------------------------------------------------------


def test_include_globs_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "b.conf").write_text("include ../more/*.conf\n")
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "vi.conf").write_text(INSTANCE)
    (tmp_path / "conf.d" / "a.conf").write_text("global_defs {\n router_id r\n}\n")
    top = tmp_path / "keepalived.conf"
    top.write_text("include conf.d/*.conf\n")
    cfg, diags = load_keepalived(top, options=Options(config_id="x"))
    assert cfg.global_defs.router_id == "r" and cfg.vrrp_instances[0].name == "VI_1"
    assert cfg.vrrp_instances[0].pos.file == str(tmp_path / "more" / "vi.conf")
    assert [d for d in diags if d.severity != "note"] == []
    assert os.getcwd() != str(tmp_path)  # no chdir


def test_absolute_includes_resolve_under_root(tmp_path: Path) -> None:
    etc = tmp_path / "etc" / "keepalived"
    etc.mkdir(parents=True)
    (etc / "vi.conf").write_text(INSTANCE)
    top = tmp_path / "top.conf"
    top.write_text("include /etc/keepalived/{vi,other}.conf\n")
    cfg, _ = load_keepalived(top, options=Options(root=tmp_path, config_id="x"))
    assert cfg.vrrp_instances[0].name == "VI_1"


def test_include_that_matches_nothing_warns_once(tmp_path: Path) -> None:
    top = tmp_path / "k.conf"
    top.write_text("include nothing/*.conf\n" + INSTANCE)
    _, diags = load_keepalived(top, options=Options(config_id="x"))
    (d,) = diags
    assert (d.severity, d.pos.line, d.pos.col) == ("warning", 1, 1)
    assert d.message == "include nothing/*.conf matches no file"


def test_include_cycle_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("include a.conf\n")
    with pytest.raises(ConfigError) as err:
        load_keepalived(tmp_path / "a.conf", options=Options(config_id="x"))
    (d,) = [d for d in err.value.diagnostics if d.severity == "error"]
    assert d.pos.file == str(tmp_path / "b.conf") and "include cycle" in d.message


def test_included_binary_and_executable_files(tmp_path: Path) -> None:
    (tmp_path / "bin.conf").write_bytes(b"\x7fELF\0\0\1")
    exe = tmp_path / "exe.conf"
    exe.write_text(INSTANCE)
    exe.chmod(0o755)
    top = tmp_path / "k.conf"
    top.write_text("include exe.conf\ninclude bin.conf\n")
    with pytest.raises(ConfigError) as err:
        load_keepalived(top, options=Options(config_id="x"))
    msgs = [(d.severity, d.pos.line, d.message) for d in err.value.diagnostics]
    assert ("warning", 1, f"include: {exe} is executable; keepalived skips executable config "
            "files") in msgs
    assert ("error", 2, f"{tmp_path / 'bin.conf'} is a binary file, not a config") in msgs


def test_too_big_an_include(tmp_path: Path) -> None:
    big = tmp_path / "big.conf"
    with big.open("w") as f:
        f.truncate(MAX_CONFIG_BYTES + 1)
    (tmp_path / "k.conf").write_text("include big.conf\n")
    with pytest.raises(ConfigError) as err:
        load_keepalived(tmp_path / "k.conf", options=Options(config_id="x"))
    (d,) = err.value.diagnostics
    assert d.severity == "error" and "8 MiB" in d.message and d.pos.line == 1


# -- no input makes it fall over ----------------------------------------------------------------

TOKENS = ["vrrp_instance", "VI_1", "global_defs", "virtual_ipaddress", "interface", "eth0",
          "virtual_router_id", "50", "priority", "track_script", "vrrp_script", "chk",
          "script", "virtual_server", "real_server", "HTTP_GET", "url", "path", "fwmark",
          "10.0.0.1", "10.0.0.1/24", "dev", "label", "include", "$X", "$X=1", "${X}", "@h",
          "@^h", "{", "}", '"', "'", "#", "!", "\\", "\n", " ", "\t", "~SEQ", "weight", "-5",
          "notify_master", "vrrp_sync_group", "group", "unicast_peer", "authentication",
          "auth_type", "AH", "PASS", "auth_pass", "state", "MASTER", "nopreempt", "é", "\x0b"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=60).map(" ".join))
def test_any_token_soup_gives_diagnostics_not_exceptions(text: str) -> None:
    try:
        _, diags = load_keepalived("soup.conf", text, Options(config_id="h"))
    except ConfigError as err:
        diags = err.diagnostics
    for d in diags:
        assert d.pos.file == "soup.conf" and d.pos.line >= 1 and d.pos.col >= 1
        assert d.severity in ("error", "warning", "note")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_text_gives_diagnostics_not_exceptions(text: str) -> None:
    try:
        load_keepalived("text.conf", text, Options(config_id="h"))
    except ConfigError:
        pass
