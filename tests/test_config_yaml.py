"""The YAML front end: the seed configs, keepalived's config fallbacks (cases 36, 37, 40
of section 2.5) and diagnostics that point at the offending YAML node as file:line:col.

Expected positions are found from the text itself (`pos_of`), 1-based like an editor.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from pyvrrp.config.diagnostics import ConfigError, Diagnostic
from pyvrrp.config.loader import load_config
from pyvrrp.config.model import Config, VirtualIP
from pyvrrp.config.resolve import router_config
from pyvrrp.config.yaml_loader import load_yaml
from pyvrrp.core.packet import AUTH_PASS
from pyvrrp.core.state import State

REPO = Path(__file__).resolve().parents[1]
SEED_VIP = VirtualIP(IPv4Address("10.0.0.100"), 24, dev="eth0", label="eth0:1")


def pos_of(text: str, needle: str, occurrence: int = 1) -> tuple[int, int]:
    """1-based (line, column) of the start of the n-th `needle` in `text`."""
    at = -1
    for _ in range(occurrence):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at) + 1
    col = at - (text.rfind("\n", 0, at) + 1) + 1
    return line, col


def value_pos(text: str, key: str) -> tuple[int, int]:
    """Where the value of the (first) `key: value` line starts."""
    line, col = pos_of(text, f"{key}: ")
    return line, col + len(key) + 2


def instance(body: str, top: str = "") -> str:
    """A YAML config with one vrrp_instance VI_1 whose keys are `body`."""
    return top + "vrrp_instance:\n  VI_1:\n" + textwrap.indent(textwrap.dedent(body), "    ")


BASE = """\
interface: eth0
virtual_router_id: 50
virtual_ipaddress:
  - 10.0.0.100/24 dev eth0 label eth0:1
"""


def load(text: str) -> tuple[Config, list[Diagnostic]]:
    return load_yaml("test.yaml", text)


def error_at(text: str) -> tuple[int, int, str]:
    with pytest.raises(ConfigError) as err:
        load(text)
    errors = [d for d in err.value.diagnostics if d.severity == "error"]
    assert len(errors) == 1
    d = errors[0]
    assert d.pos.file == "test.yaml"
    assert str(d).startswith(f"test.yaml:{d.pos.line}:{d.pos.col}: error: ")
    return d.pos.line, d.pos.col, d.message


# -- the seed configs -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "router_id", "state", "priority"), [
    ("node1.yaml", "node1.qinglin.com", "MASTER", 100),
    ("node2.yaml", "node2.qinglin.com", "BACKUP", 80),
])
def test_seed_config(name: str, router_id: str, state: str, priority: int) -> None:
    cfg, diags = load_config(REPO / "config" / name)
    assert diags == []
    gd = cfg.global_defs
    assert gd.router_id == router_id
    assert gd.vrrp_mcast_group4 == IPv4Address("233.6.6.6")
    assert gd.vrrp_version == 2
    (inst,) = cfg.vrrp_instances
    assert inst.name == "VI_1"
    assert (inst.state, inst.interface, inst.virtual_router_id) == (state, "eth0", 50)
    assert inst.priority == priority
    assert inst.advert_int == 1
    assert (inst.auth_type, inst.auth_pass) == ("PASS", "1111")
    assert inst.virtual_ipaddress == (SEED_VIP,)
    assert not inst.nopreempt
    rc = router_config(inst, gd, IPv4Address("10.0.0.1"))
    assert (rc.vrid, rc.priority, rc.version, rc.interval_cs) == (50, priority, 2, 100)
    assert (rc.auth_type, rc.auth_pass) == (AUTH_PASS, "1111")
    assert rc.vips == (IPv4Address("10.0.0.100"),)
    assert rc.initial_state is State[state]
    assert rc.preempt


def test_seed_configs_agree_on_the_virtual_router() -> None:
    (a,), (b,) = (load_config(REPO / "config" / n)[0].vrrp_instances
                  for n in ("node1.yaml", "node2.yaml"))
    for field in ("virtual_router_id", "advert_int", "auth_type", "auth_pass",
                  "virtual_ipaddress"):
        assert getattr(a, field) == getattr(b, field)


# -- keepalived's fallbacks -------------------------------------------------------------------


def test_case36_nopreempt_with_state_master_is_cleared_with_a_warning() -> None:
    text = instance(BASE + "state: MASTER\npriority: 100\nnopreempt: true\n")
    cfg, diags = load(text)
    (inst,) = cfg.vrrp_instances
    assert inst.nopreempt is False
    (w,) = diags
    assert w.severity == "warning"
    assert "nopreempt" in w.message
    assert (w.pos.line, w.pos.col) == pos_of(text, "true")
    assert router_config(inst, cfg.global_defs, IPv4Address("10.0.0.1")).preempt


def test_nopreempt_with_state_backup_is_kept() -> None:
    cfg, diags = load(instance(BASE + "state: BACKUP\npriority: 150\nnopreempt: true\n"))
    assert diags == []
    assert cfg.vrrp_instances[0].nopreempt is True


def test_a_bare_flag_is_true_in_both_halves_of_the_file() -> None:
    """`nopreempt:` (VRRP) and `ops:` (virtual_server, read by ipvsctl) alone, as
    keepalived's bare keywords; one reader judges both."""
    text = instance(BASE + "state: BACKUP\npriority: 150\nnopreempt:\n") + textwrap.dedent("""\
        virtual_server:
          10.0.0.100 53:
            protocol: UDP
            lvs_sched: rr
            ops:
            real_server:
              10.0.0.10 53: {weight: 1}
        """)
    cfg, diags = load(text)
    assert diags == []
    assert cfg.vrrp_instances[0].nopreempt is True and cfg.virtual_servers[0].ops is True
    for bad, where in (("nopreempt: maybe", "maybe"), ("ops: maybe", "maybe")):
        broken = text.replace(bad.split(":")[0] + ":\n", bad + "\n")
        with pytest.raises(ConfigError) as err:
            load(broken)
        (d,) = [d for d in err.value.diagnostics if d.severity == "error"]
        assert "must be true or false, got 'maybe'" in d.message
        assert (d.pos.line, d.pos.col) == pos_of(broken, where)


@pytest.mark.parametrize(("extra", "state", "priority"), [
    ("state: MASTER\n", "MASTER", 255),   # case 37
    ("state: BACKUP\n", "BACKUP", 100),
    ("priority: 255\n", "MASTER", 255),
    ("priority: 100\n", "BACKUP", 100),
    ("", "BACKUP", 100),
])
def test_case37_state_and_priority_defaults(extra: str, state: str, priority: int) -> None:
    """Case 37 ([src vrrp_complete_instance]): without priority, MASTER means 255 and
    BACKUP 100; without state, priority 255 means MASTER."""
    cfg, _ = load(instance(BASE + extra))
    (inst,) = cfg.vrrp_instances
    assert (inst.state, inst.priority) == (state, priority)


def test_case37_owner_starts_master_at_once() -> None:
    cfg, _ = load(instance(BASE + "state: MASTER\n"))
    rc = router_config(cfg.vrrp_instances[0], cfg.global_defs, IPv4Address("10.0.0.1"))
    assert (rc.priority, rc.initial_state) == (255, State.MASTER)


@pytest.mark.parametrize("value", ["0.5", "1.5", "0.92"])
def test_case40_fractional_advert_int_with_v2_is_an_error(value: str) -> None:
    """Case 40: VRRPv2 carries whole seconds; keepalived 2.2.7 would silently send 0 or 1."""
    text = instance(BASE + f"advert_int: {value}\n")
    line, col, message = error_at(text)
    assert (line, col) == pos_of(text, value)
    assert "advert_int" in message


@pytest.mark.parametrize("top", ["", "global_defs:\n  vrrp_version: 3\n"])
def test_sub_second_advert_int_with_v3_is_accepted(top: str) -> None:
    version = "" if top else "version: 3\n"
    cfg, _ = load(instance(BASE + version + "advert_int: 0.5\n", top))
    rc = router_config(cfg.vrrp_instances[0], cfg.global_defs, IPv4Address("10.0.0.1"))
    assert (rc.version, rc.interval_cs) == (3, 50)


def test_v3_advert_int_is_limited_to_12_bits_of_centiseconds() -> None:
    ok, _ = load(instance(BASE + "version: 3\nadvert_int: 40.95\n"))
    assert router_config(ok.vrrp_instances[0], ok.global_defs,
                         IPv4Address("10.0.0.1")).interval_cs == 4095
    text = instance(BASE + "version: 3\nadvert_int: 41\n")
    line, col, _ = error_at(text)
    assert (line, col) == pos_of(text, "41")


# -- errors point at the offending node ---------------------------------------------------------


def test_unknown_key_points_at_the_key() -> None:
    text = instance(BASE + "priorty: 100\n")
    line, col, message = error_at(text)
    assert (line, col) == (7, 5) == pos_of(text, "priorty")
    assert "priorty" in message


def test_priority_out_of_range_points_at_the_value() -> None:
    text = instance(BASE + "priority: 300\n")
    line, col, message = error_at(text)
    assert (line, col) == (7, 15) == pos_of(text, "300")
    assert "300" in message


def test_priority_zero_is_refused() -> None:
    """[man] 'The valid range of values for priority is [1-255]'."""
    text = instance(BASE + "priority: 0\n")
    assert error_at(text)[:2] == value_pos(text, "priority")


@pytest.mark.parametrize("vip", [
    "10.0.0.300/24",
    "10.0.0.100/33",
    "10.0.0.100/24 dev",
    "10.0.0.100/24 frobnicate eth0",
    "10.0.0.100/24 scope galaxy",
    "10.0.0.100/24 dev eth0 label eth1:1",
    "10.0.0.100/24 brd 10.0.0.999",
    "fe80::1",
])
def test_bad_vip_points_at_the_list_item(vip: str) -> None:
    text = instance(f"interface: eth0\nvirtual_router_id: 50\nvirtual_ipaddress:\n"
                    f"  - 10.0.0.101/24\n  - {vip}\n")
    line, col, message = error_at(text)
    assert (line, col) == pos_of(text, vip)
    assert message.startswith("virtual_ipaddress")


def test_yaml_syntax_error_points_at_the_offending_character() -> None:
    tab = "vrrp_instance:\n  VI_1:\n    interface: eth0\n\tvirtual_router_id: 50\n"
    line, col, message = error_at(tab)
    assert (line, col) == (4, 1) == pos_of(tab, "\t")
    assert message.startswith("YAML syntax")
    colon = "vrrp_instance:\n  VI_1:\n    interface: eth0: x\n"
    assert error_at(colon)[:2] == (3, 20) == pos_of(colon, ": x")


def test_missing_interface_points_at_the_instance() -> None:
    text = instance("virtual_router_id: 50\nvirtual_ipaddress: [10.0.0.100]\n")
    line, col, message = error_at(text)
    assert (line, col) == (2, 3) == pos_of(text, "VI_1")
    assert "interface" in message


@pytest.mark.parametrize(("text", "needle"), [
    (instance(BASE + "state: STANDBY\n"), "STANDBY"),
    (instance(BASE + "virtual_router_id: 51\n"), "virtual_router_id: 51"),  # given twice
    (instance(BASE.replace("id: 50", "id: 256")), "256"),
    (instance(BASE + "authentication:\n  auth_type: AH\n  auth_pass: x\n"), "AH"),
    (instance(BASE + "nopreempt: maybe\n"), "maybe"),
    (instance(BASE, "global_defs:\n  vrrp_mcast_group4: 10.1.2.3\n"), "10.1.2.3"),
    (instance(BASE, "global_defs:\n  vrrp_strict: true\n  bogus: 1\n"), "bogus"),
    (instance(BASE, "vrrp_sync_groups: {}\n"), "vrrp_sync_groups"),  # a typo: unknown
])
def test_other_errors_point_at_the_node(text: str, needle: str) -> None:
    assert error_at(text)[:2] == pos_of(text, needle)


def test_duplicate_vrid_on_an_interface() -> None:
    text = instance(BASE) + "  VI_2:\n" + textwrap.indent(BASE, "    ")
    assert error_at(text)[:2] == pos_of(text, "VI_2")


def test_empty_config() -> None:
    assert error_at("# nothing here\n")[:2] == (1, 1)


def test_warnings_travel_with_a_later_error() -> None:
    text = instance(BASE + "state: MASTER\npriority: 100\nnopreempt: true\n") + \
        "  VI_2:\n    interface: eth0\n"
    with pytest.raises(ConfigError) as err:
        load(text)
    assert [d.severity for d in err.value.diagnostics] == ["warning", "error"]


# -- the command line ---------------------------------------------------------------------------

BAD = instance(BASE + "priority: 300\n")


def test_cli_run_reports_config_errors_as_file_line_col(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    line, col = pos_of(BAD, "300")
    proc = subprocess.run([sys.executable, "-m", "pyvrrp.cli", "run", str(bad)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode != 0
    assert f"{bad}:{line}:{col}: error: " in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_config_errors_need_no_privilege(tmp_path: Path) -> None:
    """With every socket refused (EPERM, as for an unprivileged user), a bad config is
    still reported as a config error: nothing privileged happens before validation."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    script = textwrap.dedent("""
        import runpy, socket, sys
        def refuse(*args, **kwargs):
            raise PermissionError(1, "Operation not permitted")
        socket.socket.__init__ = refuse
        sys.argv = ["pyvrrp", "run", sys.argv[1]]
        runpy.run_module("pyvrrp.cli", run_name="__main__")
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(bad)],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode != 0
    line, col = pos_of(BAD, "300")
    assert f"{bad}:{line}:{col}: error: " in proc.stderr
    assert "need root" not in proc.stderr and "Traceback" not in proc.stderr
