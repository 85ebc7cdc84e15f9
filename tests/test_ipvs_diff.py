"""The pure side of ipvsctl: diff ordering and ownership, keepalived's rules, the YAML."""

from __future__ import annotations

import pytest

from ipvsctl.config import ConfigError, loads
from ipvsctl.desired import table_from
from ipvsctl.diff import Kind, diff
from ipvsctl.model import AF_INET6, F_ONEPACKET, F_PERSISTENT, Dest, Service, ServiceKey, Table

A = Service(ServiceKey.inet("TCP", "10.0.0.1", 80), "rr")
B = Service(ServiceKey.inet("TCP", "10.0.0.2", 80), "rr")
FOREIGN = Service(ServiceKey.inet("TCP", "10.9.9.9", 80), "wlc")


def d(host: int, weight: int = 1) -> Dest:
    return Dest(f"10.0.1.{host}", 80, weight=weight)


def test_order_services_then_dest_adds_edits_deletes_then_service_deletes() -> None:
    actual = Table.of([(A, [d(1), d(2)]), (B, [d(5)]), (FOREIGN, [d(9)])])
    desired = Table.of([(Service(A.key, "wlc"), [d(1, 7), d(3)]),
                        (Service(ServiceKey.inet("UDP", "10.0.0.3", 53), "rr"), [d(4)])])
    ops = diff(desired, actual, owned={A.key, B.key})
    assert [(op.kind, op.dest.addr if op.dest else str(op.service.key)) for op in ops] == [
        (Kind.EDIT_SERVICE, "TCP 10.0.0.1:80"),
        (Kind.ADD_SERVICE, "UDP 10.0.0.3:53"),
        (Kind.ADD_DEST, "10.0.1.3"),
        (Kind.ADD_DEST, "10.0.1.4"),
        (Kind.EDIT_DEST, "10.0.1.1"),
        (Kind.DEL_DEST, "10.0.1.2"),
        (Kind.DEL_SERVICE, "TCP 10.0.0.2:80"),  # owned, gone from config; its dests go too
    ]
    assert all(op.service.key != FOREIGN.key for op in ops)  # never ours: left alone


def test_same_table_means_no_ops_and_one_change_means_one_op() -> None:
    table = Table.of([(A, [d(1), d(2)]), (B, [d(3)])])
    assert diff(table, table, set(table.services)) == []
    again = Table.of([(A, [d(1), d(2)]), (B, [d(3)])])  # equal, not identical
    assert diff(again, table, set(table.services)) == []
    changed = Table(table.services, {**table.dests, B.key: {d(3).key: d(3, 5)}})
    ops = diff(changed, table, set(table.services))
    assert [(op.kind, op.dest) for op in ops] == [(Kind.EDIT_DEST, d(3, 5))]


def test_counters_do_not_count_as_changes() -> None:
    busy = Table.of([(A, [Dest("10.0.1.1", 80, active_conns=40, inact_conns=3)])])
    assert diff(Table.of([(A, [Dest("10.0.1.1", 80)])]), busy, {A.key}) == []


def test_plan_renders_as_ipvsadm_restore_lines() -> None:
    svc = Service(ServiceKey.inet("TCP", "10.0.0.1", 80), "sh", F_PERSISTENT | 0x10, 300,
                  0xFFFFFF00)
    v6 = Service(ServiceKey.mark(5, AF_INET6), "rr", F_ONEPACKET, 0, 128)
    ops = diff(Table.of([(svc, [Dest("10.0.1.1", 80, fwd=3, weight=2, u_thresh=9)]),
                         (v6, [])]), Table())
    assert [str(op) for op in ops] == [
        "-A -t 10.0.0.1:80 -s sh -b flag-2 -p 300 -M 255.255.255.0",
        "-A -f 5 -6 -s rr -o",
        "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 2 -x 9",
    ]


CONF = """
global_defs: {router_id: x}          # pyvrrp's part: skipped here
virtual_server:
  10.0.0.100 80:
    lb_algo: rr
    lb_kind: DR
    protocol: TCP
    persistence_granularity: 255.255.0.0
    delay_loop: 6                    # a checker keyword (issue 6): read into the model
    real_server:
      10.0.1.1 8080: {weight: 3}
      10.0.1.2: {lvs_method: NAT}
  fwmark 7:
    lvs_sched: wlc
    lvs_method: DR
    ops: true
    real_server:
      fd00::1 80: {}
  10.0.0.101 0:
    lb_algo: rr
"""


def test_keepalived_rules_from_yaml() -> None:
    loaded = loads(CONF, "s.yaml")
    table = table_from(loaded.virtual_servers)
    vs = ServiceKey.inet("TCP", "10.0.0.100", 80)
    assert table.services[vs] == Service(vs, "rr", F_PERSISTENT, 360, 0xFFFF0000)
    # DR cannot remap ports: the dest takes the service port; NAT without a port too.
    assert set(table.dests_of(vs)) == {("10.0.1.1", 80), ("10.0.1.2", 80)}
    assert table.dests_of(vs)[("10.0.1.1", 80)].weight == 3
    # fwmark: family from its real servers, DR dest port 0, ops kept.
    mark = ServiceKey.mark(7, AF_INET6)
    assert table.services[mark].flags == F_ONEPACKET and table.services[mark].netmask == 128
    assert set(table.dests_of(mark)) == {("fd00::1", 0)}
    # Port 0 without persistence: keepalived forces 360 s; no protocol: UDP.
    zero = ServiceKey.inet("UDP", "10.0.0.101", 0)
    assert table.services[zero].flags == F_PERSISTENT and table.services[zero].timeout == 360
    text = "\n".join(loaded.warnings)
    assert loaded.virtual_servers[0].delay_loop == 6
    assert "no protocol set - defaulting to UDP" in text
    assert "zero port only valid for persistent services" in text


@pytest.mark.parametrize("body, where, message", [
    ("  10.0.0.1 80: {lb_algo: fastest}", "3:26", "'lb_algo' fastest is not one of"),
    ("  10.0.0.1 80: {protocol: TCP, bogus: 1}", "3:32", "unknown keyword 'bogus'"),
    ("  10.0.0.1 99999: {}", "3:3", "port '99999' is not 0..65535"),
    ("  fd00::1 80: {protocol: TCP, persistence_granularity: 255.0.0.0}", "3:56",
     "prefix length 1..128"),
    ("  10.0.0.1 80:\n    real_server: {10.0.1.1 80: {uthreshold: 5, lthreshold: 9}}",
     "4:32", "lthreshold 9 is above uthreshold 5"),
    ("  10.0.0.1 80:\n    real_server: {fd00::1 80: {}}", "3:3", "another address family"),
])
def test_config_errors_name_file_line_and_column(body: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        loads(f"\nvirtual_server:\n{body}\n", "s.yaml")
    assert f"s.yaml:{where}: error: " in str(err.value)
    assert message in str(err.value)
