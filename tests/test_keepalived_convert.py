"""`pyvrrp convert`: lossless both ways for everything in the model, and converting twice
gives the same text. The property test draws whole configs (instances, scripts, tracked
files and processes, sync groups, virtual servers, kept-raw statements) within what both
front ends accept, renders each to keepalived.conf and to YAML, reads them back, and
requires the same model and the same text again.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvsctl.health.config import HttpGet, MiscCheck, SslGet, TcpCheck, Url, status_codes
from ipvsctl.model import RealServer, SorryServer, VirtualServer
from pyvrrp.config.convert import comparable, convert, first_difference, read_back
from pyvrrp.config.diagnostics import ConfigError
from pyvrrp.config.model import (
    Config,
    GlobalDefs,
    Notify,
    Pos,
    RawStatement,
    Track,
    TrackFile,
    TrackProcess,
    VirtualIP,
    VrrpInstance,
    VrrpScript,
    VrrpSyncGroup,
)
from pyvrrp.config.parser import Options
from pyvrrp.config.render import to_keepalived, to_yaml

REPO = Path(__file__).resolve().parents[1]
AT = Pos("gen", 1, 1)
NAME = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,7}", fullmatch=True)
WORD = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,10}", fullmatch=True)
COMMAND = st.lists(WORD, min_size=1, max_size=3).map(lambda w: "/usr/local/bin/" + " ".join(w))
IFACES = ("eth0", "eth1", "bond0", "br-lan")


def ipv4(net: str) -> st.SearchStrategy[IPv4Address]:
    n = IPv4Network(net)
    return st.integers(1, n.num_addresses - 2).map(lambda i: n.network_address + i)


@st.composite
def vips(draw: st.DrawFn, interface: str) -> VirtualIP:
    addr = draw(ipv4("10.20.0.0/16"))
    prefix = draw(st.sampled_from([32, 24, 16]))
    dev = draw(st.sampled_from([None, interface]))
    label = draw(st.sampled_from([None, f"{dev or interface}:{draw(st.integers(0, 9))}"]))
    scope = draw(st.sampled_from(["global", "link", "host"]))
    brd = IPv4Network(f"{addr}/{prefix}", strict=False).broadcast_address \
        if prefix <= 30 and draw(st.booleans()) else None
    return VirtualIP(addr, prefix, dev, label, scope, brd)


def tracks(draw: st.DrawFn, names: list[str], bound: int, weighted: bool,
           fixed: int | None = 0) -> tuple[Track, ...]:
    """Track entries; where weights do not apply (an owner, a sync group member) keepalived
    drops or zeroes weighted ones, so those carry `fixed`."""
    chosen = draw(st.lists(st.sampled_from(names), unique=True, max_size=2)) if names else []
    out = []
    for name in chosen:
        weight = draw(st.one_of(st.none(), st.integers(-bound, bound))) if weighted else fixed
        reverse = weight is not None and draw(st.booleans())
        out.append(Track(name, AT, weight, reverse))
    return tuple(out)


@st.composite
def instances(draw: st.DrawFn, gd: GlobalDefs, vrid: int, name: str, in_group: bool,
              scripts: list[str], files: list[str], procs: list[str]) -> VrrpInstance:
    interface = draw(st.sampled_from(IFACES))
    version = draw(st.sampled_from([None, 2, 3]))
    v3 = (version or gd.vrrp_version) == 3
    priority = draw(st.sampled_from([1, 50, 100, 150, 254, 255]))
    state = draw(st.sampled_from(["MASTER", "BACKUP"]))
    nopreempt = state == "BACKUP" and priority < 255 and draw(st.booleans())
    delay = float(draw(st.sampled_from([0, 2, 30]))) if state == "BACKUP" and not nopreempt \
        and priority < 255 else 0.0
    advert = draw(st.sampled_from([0.5, 0.25, 1.0, 2.0, 40.95])) if v3 else \
        float(draw(st.sampled_from([1, 2, 5])))
    auth = not v3 and draw(st.booleans())
    peers = tuple(draw(st.lists(ipv4("10.30.0.0/24"), unique=True, max_size=2)))
    src = draw(st.one_of(st.none(), ipv4("10.40.0.0/24")))
    weighted = priority < 255 and not in_group
    notify = Notify(**{k: draw(st.one_of(st.none(), COMMAND))
                       for k in ("master", "backup", "fault", "any")})
    return VrrpInstance(
        name=name, interface=interface, virtual_router_id=vrid, pos=AT, state=state,
        priority=priority, advert_int=advert, version=version, nopreempt=nopreempt,
        preempt_delay=delay, auth_type="PASS" if auth else None,
        auth_pass=draw(st.from_regex(r"[A-Za-z0-9]{1,8}", fullmatch=True)) if auth else "",
        virtual_ipaddress=tuple(draw(st.lists(vips(interface), min_size=1, max_size=3,
                                              unique_by=lambda v: v.address))),
        mcast_src_ip=src, unicast_src_ip=src if peers else None, unicast_peer=peers,
        skip_check_adv_addr=draw(st.sampled_from([None, True])),
        lower_prio_no_advert=draw(st.sampled_from([None, True, False])),
        higher_prio_send_advert=draw(st.sampled_from([None, True, False])),
        down_timer_adverts=draw(st.integers(1, 100)),
        garp_master_delay=draw(st.one_of(st.none(), st.integers(0, 1000).map(float))),
        garp_master_repeat=draw(st.one_of(st.none(), st.integers(1, 255))),
        garp_master_refresh=draw(st.one_of(st.none(), st.integers(0, 86400).map(float))),
        garp_master_refresh_repeat=draw(st.one_of(st.none(), st.integers(1, 255))),
        garp_lower_prio_repeat=draw(st.one_of(st.none(), st.integers(0, 255))),
        track_script=tracks(draw, scripts, 253, weighted),
        track_interface=tracks(draw, [i for i in IFACES if i != interface], 253, weighted,
                               None),
        track_file=tracks(draw, files, 254, weighted),
        track_process=tracks(draw, procs, 254, weighted),
        notify=notify, smtp_alert=draw(st.sampled_from([None, True, False])))


@st.composite
def global_defs(draw: st.DrawFn) -> GlobalDefs:
    return GlobalDefs(
        router_id=draw(st.one_of(st.none(), WORD)),
        vrrp_mcast_group4=draw(st.sampled_from([IPv4Address("224.0.0.18"),
                                                IPv4Address("233.6.6.6")])),
        vrrp_version=draw(st.sampled_from([2, 3])),
        vrrp_skip_check_adv_addr=draw(st.booleans()),
        vrrp_garp_master_delay=float(draw(st.integers(0, 1000))),
        vrrp_garp_master_repeat=draw(st.integers(1, 255)),
        vrrp_garp_lower_prio_repeat=draw(st.integers(0, 255)),
        vrrp_min_garp=draw(st.booleans()),
        vrrp_lower_prio_no_advert=draw(st.booleans()),
        notification_email=tuple(draw(st.lists(WORD.map(lambda w: w + "@example.org"),
                                               max_size=2))),
        notification_email_from=draw(st.one_of(st.none(), st.just("ka@example.org"))),
        smtp_server=(server := draw(st.one_of(st.none(), st.just("192.0.2.25")))),
        smtp_port=draw(st.sampled_from([25, 2525])) if server else 25,
        smtp_connect_timeout=float(draw(st.integers(1, 3600))),
        smtp_alert=draw(st.booleans()),
        enable_script_security=draw(st.booleans()),
        script_user=draw(st.one_of(st.none(), st.just("nobody"))),
        vrrp_notify_fifo=draw(st.one_of(st.none(), st.just("/run/vrrp.fifo"))),
        dynamic_interfaces=draw(st.booleans()))


SECS = st.sampled_from([None, 1.0, 2.5, 3.0])
OPT_BOOL = st.sampled_from([None, True, False])


@st.composite
def checkers(draw: st.DrawFn, port: int | None) -> tuple:
    out = []
    for kind in draw(st.lists(st.sampled_from(["HTTP_GET", "SSL_GET", "TCP_CHECK",
                                               "MISC_CHECK"]), max_size=2)):
        common = {"retry": draw(st.one_of(st.none(), st.integers(0, 5))),
                  "delay_before_retry": draw(SECS), "warmup": draw(SECS),
                  "delay_loop": draw(SECS), "alpha": draw(OPT_BOOL)}
        if kind == "MISC_CHECK":
            out.append(MiscCheck(**common, misc_path=draw(COMMAND), misc_timeout=draw(SECS),
                                 misc_dynamic=draw(st.booleans()),
                                 user=draw(st.sampled_from([None, "nobody"]))))
            continue
        conn = {"connect_port": 8443 if port is None else draw(st.sampled_from([None, 81])),
                "connect_timeout": draw(SECS),
                "connect_ip": draw(st.sampled_from([None, "10.50.0.200"]))}
        if kind == "TCP_CHECK":
            out.append(TcpCheck(**common, **conn))
            continue
        urls = tuple(Url(draw(st.sampled_from(["/", "/health", "/index.html"])),
                         status_codes(*draw(st.lists(st.sampled_from(["200", "301-302"]),
                                                     unique=True, max_size=2))),
                         draw(st.sampled_from([None, "0123456789abcdef" * 2])),
                         draw(st.sampled_from([None, "www.example.org"])))
                     for _ in range(draw(st.integers(1, 2))))
        http = {"urls": urls, "virtualhost": draw(st.sampled_from([None, "example.org"])),
                "http_protocol": draw(st.sampled_from(["1.0", "1.1"])),
                "fast_recovery": draw(st.booleans())}
        if kind == "SSL_GET":
            out.append(SslGet(**common, **conn, **http, enable_sni=draw(st.booleans())))
        else:
            out.append(HttpGet(**common, **conn, **http))
    return tuple(out)


@st.composite
def virtual_servers(draw: st.DrawFn, i: int) -> VirtualServer:
    fwmark = draw(st.booleans())
    reals = draw(st.lists(st.tuples(ipv4("10.50.0.0/24"), st.sampled_from([None, 80, 8080])),
                          min_size=1, max_size=3, unique_by=lambda r: r[0]))
    rs = tuple(RealServer(ip, port, weight=draw(st.one_of(st.none(), st.integers(0, 100))),
                          lvs_method=draw(st.sampled_from([None, "DR", "NAT"])),
                          uthreshold=draw(st.sampled_from([0, 100])),
                          checkers=draw(checkers(port if port or not fwmark else None)),
                          notify_up=draw(st.one_of(st.none(), COMMAND)),
                          notify_down=draw(st.one_of(st.none(), COMMAND)),
                          inhibit_on_failure=draw(OPT_BOOL), alpha=draw(OPT_BOOL),
                          retry=draw(st.one_of(st.none(), st.integers(0, 5))),
                          delay_before_retry=draw(SECS), delay_loop=draw(SECS),
                          connect_timeout=draw(SECS), warmup=draw(SECS),
                          virtualhost=draw(st.sampled_from([None, "rs.example.org"])))
               for ip, port in reals)
    weight = 1
    total = sum(weight if r.weight is None else r.weight for r in rs)
    quorum = draw(st.integers(1, total)) if total > 1 else 1
    sorry = draw(st.sampled_from([None, SorryServer(IPv4Address("127.0.0.1"), 80),
                                  SorryServer(IPv4Address("10.50.1.1"))]))
    return VirtualServer(
        ip=None if fwmark else IPv4Address(f"10.60.0.{i + 1}"), port=0 if fwmark else 80,
        fwmark=i + 1 if fwmark else None, protocol="TCP" if fwmark else
        draw(st.sampled_from(["TCP", "UDP"])), lvs_sched=draw(st.sampled_from(["rr", "wlc"])),
        lvs_method=draw(st.sampled_from(["NAT", "DR"])),
        persistence_timeout=draw(st.one_of(st.none(), st.integers(1, 3600))),
        real_server=rs, delay_loop=draw(SECS),
        retry=draw(st.one_of(st.none(), st.integers(0, 5))), delay_before_retry=draw(SECS),
        connect_timeout=draw(SECS), warmup=draw(SECS),
        virtualhost=draw(st.sampled_from([None, "vs.example.org"])),
        alpha=draw(st.booleans()), omega=draw(st.booleans()),
        inhibit_on_failure=draw(st.booleans()), quorum=quorum,
        hysteresis=draw(st.integers(0, quorum - 1)),
        quorum_up=draw(st.one_of(st.none(), COMMAND)),
        quorum_down=draw(st.one_of(st.none(), COMMAND)), sorry_server=sorry,
        sorry_server_lvs_method=draw(st.sampled_from([None, "NAT"])) if sorry else None,
        sorry_server_inhibit=draw(st.booleans()) if sorry else False)


@st.composite
def configs(draw: st.DrawFn) -> Config:
    gd = draw(global_defs())
    scripts = [VrrpScript(n, draw(COMMAND), AT, interval=draw(st.integers(1, 60)),
                          timeout=draw(st.one_of(st.none(), st.integers(1, 60))),
                          weight=draw(st.integers(-253, 253)), weight_reverse=draw(st.booleans()),
                          rise=draw(st.integers(1, 10)), fall=draw(st.integers(1, 10)),
                          init_fail=draw(st.booleans()))
               for n in draw(st.lists(NAME, unique=True, max_size=2))]
    files = [TrackFile(n, "/run/" + n, AT, weight=draw(st.integers(-254, 254)),
                       reverse=draw(st.booleans()),
                       init_file=(init := draw(st.one_of(st.none(), st.integers(-254, 254)))),
                       init_overwrite=init is not None and draw(st.booleans()))
             for n in draw(st.lists(NAME, unique=True, max_size=2))]
    procs = []
    for n in draw(st.lists(NAME, unique=True, max_size=2)):
        params = draw(st.sampled_from(["", "-g daemon"]))
        match = draw(st.sampled_from([None, "initial", "partial"])) if params else None
        procs.append(TrackProcess(n, "nginx", AT, param_match=match, parameters=params,
                                  weight=draw(st.integers(-254, 254)),
                                  quorum=draw(st.integers(1, 5)),
                                  delay=float(draw(st.integers(0, 10))),
                                  full_command=bool(params) or draw(st.booleans())))
    names = draw(st.lists(NAME, unique_by=str.lower, min_size=1, max_size=3))
    grouped = names[:2] if len(names) >= 2 and draw(st.booleans()) else []
    insts = [draw(instances(gd, 10 + k, n, n in grouped, [s.name for s in scripts],
                            [f.name for f in files], [p.name for p in procs]))
             for k, n in enumerate(names)]
    groups = [VrrpSyncGroup("G1", AT, tuple(grouped), notify=Notify(master=draw(COMMAND)),
                            smtp_alert=draw(st.sampled_from([None, True])))] if grouped else []
    raw = [RawStatement("vrrp_garp_interval", ("0.001",), context=("global_defs",), pos=AT),
           RawStatement("use_vmac", context=("vrrp_instance", names[0]), pos=AT),
           RawStatement("virtual_routes", (), (RawStatement("10.9.0.0/16", ("via", "10.0.0.1")),),
                        ("vrrp_instance", names[-1]), AT)]
    servers = draw(st.lists(st.integers(0, 50), unique=True, max_size=2))
    vss = [draw(virtual_servers(i)) for i in servers]
    for vs in vss:
        head = ("virtual_server", "fwmark", str(vs.fwmark)) if vs.fwmark else \
            ("virtual_server", str(vs.ip), str(vs.port))
        raw.append(RawStatement("snmp_name", ("vs1",), context=head, pos=AT))
        rs = vs.real_server[0]
        rs_head = ("real_server", str(rs.ip), *(() if rs.port is None else (str(rs.port),)))
        raw.append(RawStatement("PING_CHECK", (), (RawStatement("connect_timeout", ("1",)),),
                                (*head, *rs_head), AT))
    chosen = draw(st.lists(st.sampled_from(raw), unique_by=id))
    return Config("gen", gd, tuple(insts), tuple(scripts), tuple(files), tuple(procs),
                  tuple(groups), tuple(r for r in raw if r in chosen), tuple(vss))


def same(a: Config, b: Config) -> None:
    diff = first_difference(comparable(a), comparable(b))
    assert diff is None, diff


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_conversion_is_lossless_and_stable(config: Config) -> None:
    conf = to_keepalived(config)
    from_conf = read_back(conf, "keepalived")
    same(config, from_conf)
    assert to_keepalived(from_conf) == conf
    text = to_yaml(config)
    from_yaml = read_back(text, "yaml")
    same(config, from_yaml)
    assert to_yaml(from_yaml) == text
    assert to_yaml(from_conf) == text and to_keepalived(from_yaml) == conf


SEEDS = sorted((REPO / "config" / "keepalived").glob("*/*"))


@pytest.mark.parametrize("root", SEEDS, ids=lambda p: f"{p.parent.name}-{p.name}")
@pytest.mark.parametrize("to", ["yaml", "keepalived"])
def test_seed_converts_both_ways(root: Path, to: str, tmp_path: Path) -> None:
    options = Options(root=root, config_id=root.name)
    text, _ = convert(root / "etc" / "keepalived" / "keepalived.conf", to, options)
    out = tmp_path / f"out.{to}"
    out.write_text(text)
    other = "keepalived" if to == "yaml" else "yaml"
    again, _ = convert(out, other)
    out2 = tmp_path / f"again.{other}"
    out2.write_text(again)
    assert convert(out2, to)[0] == text


def test_yaml_node_config_converts_to_keepalived_and_back(tmp_path: Path) -> None:
    conf, _ = convert(REPO / "config" / "node1.yaml", "keepalived")
    assert "vrrp_instance VI_1 {" in conf and "label eth0:1" in conf
    (tmp_path / "k.conf").write_text(conf)
    back, _ = convert(tmp_path / "k.conf", "yaml")
    assert back == convert(REPO / "config" / "node1.yaml", "yaml")[0]


def test_what_keepalived_cannot_say_fails_loudly(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("vrrp_instance:\n  VI_1:\n    interface: eth0\n    virtual_router_id: 5\n"
                    "    skip_check_adv_addr: false\n    virtual_ipaddress: [10.0.0.1]\n"
                    "global_defs:\n  vrrp_skip_check_adv_addr: true\n")
    with pytest.raises(ConfigError) as err:
        convert(path, "keepalived")
    assert "without loss" in str(err.value) and "skip_check_adv_addr" in str(err.value)
