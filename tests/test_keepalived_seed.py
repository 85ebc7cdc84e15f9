"""The seed's keepalived.conf files (config/keepalived/, verbatim with their quirks) load
with keepalived's warnings on keepalived's lines, and mean what config/node*.yaml mean.

`keepalived -t` (2.2.7, Debian) said, with each node's files bind-mounted on
/etc/keepalived (see docs/keepalived-conf.md, "The seed"):

    lvs-dr-ipport/node1: vip_nginx.conf Line 15, 16, 17: Unknown keyword 'notify_master',
        'notify_backup', 'notify_fault'; lvs_nginx.conf Line 15, 27: nb_get_retry is
        deprecated - please use 'retry'
    lvs-dr-ipport/node2: lvs_nginx.conf Line 15, 27 (nb_get_retry); vip_nginx.conf Line 2:
        (VI_1) unknown state 'BAKCUP', defaulting to BACKUP
    lvs-dr-fwmark/node*: as above, plus (no line) protocol specified for fwmark - protocol
        will be ignored; real servers 10.0.0.10/.20 and the sorry server have port specified
        - clearing
    nginx-ha/node*: SECURITY VIOLATION - scripts are being executed but script_security not
        enabled (exit 6: the host check)
"""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest

from ipvsctl.checks import health_of
from ipvsctl.config import loads as ipvs_loads
from ipvsctl.desired import table_from
from ipvsctl.health.config import HttpGet, Url, status_codes
from ipvsctl.model import SorryServer
from pyvrrp.config.check import check
from pyvrrp.config.convert import comparable
from pyvrrp.config.host import Host
from pyvrrp.config.keepalived import load_keepalived
from pyvrrp.config.loader import load_config
from pyvrrp.config.model import Config
from pyvrrp.config.parser import Options
from pyvrrp.config.render import to_yaml

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "config" / "keepalived"

NOTIFY_OUTSIDE = [("vip_nginx.conf", 15, "warning", "unknown keyword 'notify_master'"),
                  ("vip_nginx.conf", 16, "warning", "unknown keyword 'notify_backup'"),
                  ("vip_nginx.conf", 17, "warning", "unknown keyword 'notify_fault'")]
NB_GET_RETRY = [("lvs_nginx.conf", 15, "warning", "nb_get_retry is deprecated"),
                ("lvs_nginx.conf", 27, "warning", "nb_get_retry is deprecated")]
BAKCUP = [("vip_nginx.conf", 2, "warning", "(VI_1) unknown state 'BAKCUP', defaulting to BACKUP")]
FWMARK = [("lvs_nginx.conf", 5, "warning", "protocol specified for fwmark - protocol will be "
           "ignored"),
          ("lvs_nginx.conf", 7, "warning", "real server [10.0.0.10]:80 has port specified - "
           "clearing"),
          ("lvs_nginx.conf", 19, "warning", "real server [10.0.0.20]:80 has port specified - "
           "clearing"),
          ("lvs_nginx.conf", 6, "warning", "sorry server has port specified - clearing")]
VS_NOTE: list[tuple[str, int, str, str]] = []  # checkers, delay_loop, sorry_server: lowered

EXPECTED = {
    ("lvs-dr-ipport", "node1"): NOTIFY_OUTSIDE + VS_NOTE + NB_GET_RETRY,
    ("lvs-dr-ipport", "node2"): VS_NOTE + NB_GET_RETRY + BAKCUP,
    ("lvs-dr-fwmark", "node1"): NOTIFY_OUTSIDE + VS_NOTE + NB_GET_RETRY + FWMARK,
    ("lvs-dr-fwmark", "node2"): VS_NOTE + NB_GET_RETRY + FWMARK + BAKCUP,
    ("nginx-ha", "node1"): [],
    ("nginx-ha", "node2"): [],
}


def seed(setup: str, node: str) -> tuple[Path, Options]:
    root = SEED / setup / node
    return root / "etc" / "keepalived" / "keepalived.conf", Options(root=root, config_id=node)


@pytest.mark.parametrize(("setup", "node"), sorted(EXPECTED))
def test_seed_loads_with_keepalived_warnings_on_its_lines(setup: str, node: str) -> None:
    path, options = seed(setup, node)
    _, diags = load_keepalived(path, options=options)
    got = sorted((Path(d.pos.file).name, d.pos.line, d.severity, d.message) for d in diags)
    expected = sorted(EXPECTED[setup, node])
    assert len(got) == len(expected)
    for (name, line, severity, message), want in zip(got, expected, strict=True):
        assert (name, line, severity) == want[:3]
        assert want[3] in message


def _instance_matches_yaml(cfg: Config, node: str) -> None:
    yaml_cfg, _ = load_config(REPO / "config" / f"{node}.yaml")
    (want,) = yaml_cfg.vrrp_instances
    (got,) = cfg.vrrp_instances
    for field in ("name", "state", "interface", "virtual_router_id", "priority", "advert_int",
                  "auth_type", "auth_pass", "virtual_ipaddress", "nopreempt"):
        assert getattr(got, field) == getattr(want, field), field
    for field in ("router_id", "vrrp_mcast_group4", "vrrp_version"):
        assert getattr(cfg.global_defs, field) == getattr(yaml_cfg.global_defs, field)


@pytest.mark.parametrize("node", ["node1", "node2"])
@pytest.mark.parametrize("setup", ["lvs-dr-ipport", "lvs-dr-fwmark"])
def test_seed_means_what_the_yaml_config_means(setup: str, node: str) -> None:
    path, options = seed(setup, node)
    cfg, _ = load_keepalived(path, options=options)
    _instance_matches_yaml(cfg, node)
    gd = cfg.global_defs
    assert gd.vrrp_skip_check_adv_addr and gd.smtp_server == "192.168.200.1"
    assert gd.notification_email == ("acassen@firewall.loc", "failover@firewall.loc",
                                     "sysadmin@firewall.loc")
    notify = cfg.vrrp_instances[0].notify
    # node1's notify_* stand after the instance's '}': keepalived ignores them
    assert (notify.master is None) == (node == "node1")
    (vs,) = cfg.virtual_servers
    assert (vs.lvs_sched, vs.lvs_method) == ("rr", "DR")
    assert [(str(rs.ip), rs.port, rs.weight) for rs in vs.real_server] == \
        [("10.0.0.10", 80, 1), ("10.0.0.20", 80, 1)]  # the fwmark check port is kept
    if setup == "lvs-dr-fwmark":
        assert vs.fwmark == 50
    else:
        assert (vs.ip, vs.port, vs.protocol) == (IPv4Address("10.0.0.100"), 80, "TCP")
    assert cfg.unsupported == ()  # HTTP_GET, delay_loop and sorry_server are lowered
    assert vs.delay_loop == 3 and vs.sorry_server == SorryServer(IPv4Address("127.0.0.1"), 80)
    for rs in vs.real_server:
        assert rs.checkers == (HttpGet(retry=3, delay_before_retry=1, connect_timeout=1,
                                       urls=(Url("/index.html", status_codes(200)),)),)
        health = health_of(vs, rs)
        assert [str(c.target) for c in health.checks] == [f"[{rs.ip}]:80"]
    dests = [d.port for ds in table_from([vs]).dests.values() for d in ds.values()]
    assert dests == ([0, 0] if setup == "lvs-dr-fwmark" else [80, 80])  # IPVS: port 0


@pytest.mark.parametrize("setup", ["lvs-dr-ipport", "lvs-dr-fwmark"])
def test_seed_virtual_servers_round_trip_through_ipvsctl(setup: str) -> None:
    path, options = seed(setup, "node1")
    cfg, _ = load_keepalived(path, options=options)
    text = to_yaml(Config(cfg.source, virtual_servers=cfg.virtual_servers))
    loaded = ipvs_loads(text)
    assert loaded.warnings == ()
    assert comparable(loaded.virtual_servers) == comparable(cfg.virtual_servers)


@pytest.mark.parametrize("node", ["node1", "node2"])
def test_nginx_setup_tracks_its_script(node: str) -> None:
    path, options = seed("nginx-ha", node)
    cfg, _ = load_keepalived(path, options=options)
    (inst,) = cfg.vrrp_instances
    assert (inst.state, inst.priority) == ("BACKUP", {"node1": 100, "node2": 80}[node])
    (script,) = cfg.vrrp_scripts
    assert (script.script, script.interval, script.weight, script.fall, script.rise,
            script.timeout) == ("/etc/keepalived/check_nginx.sh", 1, -30, 3, 5, 2)
    assert [t.name for t in inst.track_script] == ["check_nginx"]
    assert inst.notify.master == "/etc/keepalived/notify.sh master"


def test_nginx_setup_check_finds_the_security_violation() -> None:
    path, options = seed("nginx-ha", "node1")
    result = check(path, options, host=Host(options.root))
    (d,) = [d for d in result.diagnostics if d.severity == "warning"]
    assert d.message.startswith("SECURITY VIOLATION - scripts are being executed")
    assert result.ok


def test_track_script_must_be_defined_before_the_instance(tmp_path: Path) -> None:
    """keepalived resolves track_script while reading the instance: a vrrp_script placed
    after the include of the instance is 'not found'."""
    path, _ = seed("nginx-ha", "node1")
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    include = next(i for i, line in enumerate(lines) if line.startswith("include"))
    script = next(i for i, line in enumerate(lines) if line.startswith("vrrp_script"))
    moved = lines[:script] + [lines[include]] + lines[script:include]
    (tmp_path / "keepalived.conf").write_text("".join(moved), encoding="utf-8")
    root = SEED / "nginx-ha" / "node1"
    _, diags = load_keepalived(tmp_path / "keepalived.conf", options=Options(root=root))
    (d,) = diags
    assert (Path(d.pos.file).name, d.pos.line) == ("vip_nginx.conf", 15)
    assert d.message == "(VI_1) track script check_nginx not found, ignoring..."
