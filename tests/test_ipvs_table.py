"""The table logic (ipvsctl/table.py), pure and table-driven from keepalived 2.2.7's
sequence (reference ipvs-checker-semantics.md 1.4; ipwrapper.c perform_svr_state,
update_quorum_state, perform_quorum_state). Each scenario is a list of steps: an event, then
the dests every virtual server must have, as {"ip:port": weight}, and the scripts run."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvsctl.config import loads
from ipvsctl.health.config import RsKey
from ipvsctl.health.state import Event, RealServerDown, RealServerUp, WeightChange
from ipvsctl.model import RealServer, SorryServer, VirtualServer
from ipvsctl.table import Log, LvsState, Script

VIP = ip_address("10.0.0.100")


def rs(last: int, weight: int = 1, **kw: Any) -> RealServer:
    return RealServer(ip_address(f"10.0.0.{last}"), 80, weight=weight, **kw)


def seed_vs(**kw: Any) -> VirtualServer:
    """The seed's setup 1: 10.0.0.100:80 rr DR, two real servers, sorry 127.0.0.1:80."""
    base = VirtualServer(ip=VIP, port=80, lvs_sched="rr", lvs_method="DR",
                         sorry_server=SorryServer(ip_address("127.0.0.1"), 80),
                         real_server=(rs(10), rs(20)))
    return replace(base, **kw)


def key(vs: VirtualServer, last: int) -> RsKey:
    return RsKey(vs.name, f"10.0.0.{last}", 80)


def down(vs: VirtualServer, last: int) -> Event:
    return RealServerDown(key(vs, last), "connection refused", "HTTP_GET")


def up(vs: VirtualServer, last: int) -> Event:
    return RealServerUp(key(vs, last), "HTTP status 200", "HTTP_GET")


def dests(state: LvsState) -> dict[str, int]:
    """The one service's dests as {"addr:port": weight}."""
    table = state.table()
    assert len(table.services) == 1
    (svc,) = table.services
    return {f"{a}:{p}": d.weight for (a, p), d in table.dests_of(svc).items()}


def scripts(actions: list[Any]) -> list[str]:
    return [a.command for a in actions if isinstance(a, Script)]


def run(state: LvsState, steps: list[tuple[Event | None, dict[str, int], list[str]]]) -> None:
    for i, (event, want, want_scripts) in enumerate(steps):
        actions = state.start() if event is None else state.handle(event)
        assert dests(state) == want, f"step {i}: {event}"
        assert scripts(actions) == want_scripts, f"step {i}: {event}"


RS1, RS2, SORRY = "10.0.0.10:80", "10.0.0.20:80", "127.0.0.1:80"
VS = seed_vs(quorum_up="/bin/qup", quorum_down="/bin/qdown",
             real_server=(rs(10, notify_up="/bin/up 1", notify_down="/bin/down 1"), rs(20)))


def test_seed_sequence_rs_fail_all_fail_recover() -> None:
    """1.4 steps 1-4 with the seed's quorum 1: the sorry server only when all are down."""
    run(LvsState([VS]), [
        (None, {RS1: 1, RS2: 1}, []),
        (down(VS, 10), {RS2: 1}, ["/bin/down 1"]),
        (down(VS, 20), {SORRY: 1}, ["/bin/qdown"]),  # lost quorum: the sorry server in
        (up(VS, 10), {RS1: 1}, ["/bin/up 1", "/bin/qup"]),  # regained: sorry out, rs1 in
        (up(VS, 20), {RS1: 1, RS2: 1}, []),
    ])


def test_repeated_events_change_nothing() -> None:
    state = LvsState([VS])
    state.handle(down(VS, 20))
    assert state.handle(down(VS, 20)) == []
    assert state.handle(up(VS, 10)) == []


def test_inhibit_on_failure_weight_zero_and_absolute_restore() -> None:
    vs = seed_vs(inhibit_on_failure=True, real_server=(rs(10, 3), rs(20, 2)))
    run(LvsState([vs]), [
        (None, {RS1: 3, RS2: 2}, []),
        (down(vs, 10), {RS1: 0, RS2: 2}, []),
        (up(vs, 10), {RS1: 3, RS2: 2}, []),  # the configured weight, not 0 + 3
        (down(vs, 10), {RS1: 0, RS2: 2}, []),
        (down(vs, 20), {RS1: 0, RS2: 0, SORRY: 1}, []),  # inhibit servers stay, at 0
        (up(vs, 20), {RS1: 0, RS2: 2}, []),
    ])


def test_per_real_server_inhibit_overrides_the_virtual_server() -> None:
    vs = seed_vs(inhibit_on_failure=True,
                 real_server=(rs(10, inhibit_on_failure=False), rs(20)))
    run(LvsState([vs]), [(down(vs, 10), {RS2: 1}, []), (down(vs, 20), {RS2: 0, SORRY: 1}, [])])


def test_quorum_above_one_drains_healthy_servers_and_hysteresis_holds() -> None:
    """quorum 4, hysteresis 1: lost below 3, regained at 5; quorum loss takes out the
    servers that are still healthy (keepalived's perform_quorum_state)."""
    vs = seed_vs(quorum=4, hysteresis=1, quorum_up="/bin/qup", quorum_down="/bin/qdown",
                 real_server=(rs(10, 2), rs(20, 2), rs(30, 2)))
    rs3 = "10.0.0.30:80"
    run(LvsState([vs]), [
        (None, {RS1: 2, RS2: 2, rs3: 2}, []),
        (down(vs, 10), {RS2: 2, rs3: 2}, []),  # 4: still >= 3
        (down(vs, 20), {SORRY: 1}, ["/bin/qdown"]),  # 2 < 3: rs3 (healthy) out too
        (up(vs, 10), {SORRY: 1}, []),  # 4 < 5: hysteresis keeps the sorry server
        (up(vs, 20), {RS1: 2, RS2: 2, rs3: 2}, ["/bin/qup"]),  # 6 >= 5
    ])


def test_changes_while_the_sorry_server_is_in_only_move_flags() -> None:
    vs = seed_vs(real_server=(rs(10, notify_up="/bin/up", notify_down="/bin/down"), rs(20)))
    state = LvsState([vs])
    state.handle(down(vs, 20))
    run(state, [(down(vs, 10), {SORRY: 1}, ["/bin/down"])])
    # an up that does not regain quorum would not show; here rs1 regains it at once
    run(state, [(up(vs, 10), {RS1: 1}, ["/bin/up"])])


def test_sorry_server_inhibit_stays_at_weight_zero() -> None:
    vs = seed_vs(sorry_server_inhibit=True)
    run(LvsState([vs]), [
        (None, {RS1: 1, RS2: 1, SORRY: 0}, []),
        (down(vs, 10), {RS2: 1, SORRY: 0}, []),
        (down(vs, 20), {SORRY: 1}, []),
        (up(vs, 20), {RS2: 1, SORRY: 0}, []),
    ])


def test_startup_with_quorum_down_adds_the_sorry_server_and_runs_quorum_down() -> None:
    """alpha: every server starts failed; keepalived: "Starting with quorum down"."""
    vs = seed_vs(alpha=True, quorum_down="/bin/qdown", quorum_up="/bin/qup")
    health = {key(vs, 10): (False, 1), key(vs, 20): (False, 1)}
    state = LvsState([vs], health)
    actions = state.start()
    assert dests(state) == {SORRY: 1}
    assert scripts(actions) == ["/bin/qdown"]
    assert any(isinstance(a, Log) and "Starting with quorum down" in a.message
               for a in actions)
    run(state, [(up(vs, 20), {RS2: 1}, ["/bin/qup"])])


def test_startup_with_quorum_up_runs_nothing() -> None:
    state = LvsState([VS])
    assert state.start() == []


def test_no_sorry_server_quorum_loss_keeps_the_table_and_runs_the_scripts() -> None:
    vs = seed_vs(sorry_server=None, quorum=2, quorum_down="/bin/qdown", quorum_up="/bin/qup")
    run(LvsState([vs]), [
        (down(vs, 10), {RS2: 1}, ["/bin/qdown"]),  # 1 < 2: lost, but rs2 stays in
        (up(vs, 10), {RS1: 1, RS2: 1}, ["/bin/qup"]),
    ])


def test_misc_dynamic_weights_are_absolute() -> None:
    vs = seed_vs()
    k1 = key(vs, 10)
    run(LvsState([vs]), [
        (WeightChange(k1, 5), {RS1: 5, RS2: 1}, []),
        (WeightChange(k1, 3), {RS1: 3, RS2: 1}, []),  # 3, never 5 + 3
        (down(vs, 10), {RS2: 1}, []),
        (WeightChange(k1, 7), {RS2: 1}, []),  # down: remembered, not in the table
        (up(vs, 10), {RS1: 7, RS2: 1}, []),
    ])


def test_weight_zero_from_misc_dynamic_counts_as_no_weight_for_quorum() -> None:
    """keepalived loses quorum when the live weight sum is 0, even if servers are alive."""
    vs = seed_vs(real_server=(rs(10),))
    run(LvsState([vs]), [
        (WeightChange(key(vs, 10), 0), {SORRY: 1}, []),
        (WeightChange(key(vs, 10), 2), {RS1: 2}, []),
    ])


def test_omega_runs_notify_down_and_quorum_down_on_stop() -> None:
    vs = seed_vs(omega=True, quorum_down="/bin/qdown",
                 real_server=(rs(10, notify_down="/bin/d1"), rs(20, notify_down="/bin/d2")))
    state = LvsState([vs])
    state.handle(down(vs, 20))
    assert scripts(state.stop()) == ["/bin/d1", "/bin/qdown"]  # rs2 is already down
    assert scripts(LvsState([replace(vs, omega=False)]).stop()) == []


def test_fwmark_dr_dests_and_sorry_server_take_port_zero() -> None:
    vs = seed_vs(ip=None, port=0, fwmark=50)
    k = RsKey(vs.name, "10.0.0.10", 80)  # the check keeps the port as written
    state = LvsState([vs])
    assert dests(state) == {"10.0.0.10:0": 1, "10.0.0.20:0": 1}
    state.handle(RealServerDown(k, "refused"))
    state.handle(RealServerDown(RsKey(vs.name, "10.0.0.20", 80), "refused"))
    assert dests(state) == {"127.0.0.1:0": 1}


def test_a_server_without_checkers_is_alive() -> None:
    state = LvsState([seed_vs()], {})
    assert dests(state) == {RS1: 1, RS2: 1}


def test_events_of_unknown_servers_are_ignored() -> None:
    state = LvsState([VS])
    assert state.handle(RealServerDown(RsKey("10.0.0.1 80", "10.0.0.9", 80), "x")) == []


def test_logs_say_why() -> None:
    state = LvsState([VS])
    logs = [a.message for a in state.handle(down(VS, 10)) if isinstance(a, Log)]
    assert logs == ["Real server [10.0.0.10]:80 (VS 10.0.0.100 80) down: connection refused;"
                    " removing it"]
    logs = [a.message for a in state.handle(down(VS, 20)) if isinstance(a, Log)]
    assert logs[1].startswith("Lost quorum 1-0=1 > 0 for VS 10.0.0.100 80")
    assert logs[2] == "Adding sorry server [127.0.0.1]:80 to VS 10.0.0.100 80"


# ------------------------------------------------------------------- config (YAML) side

SEED_YAML = """\
virtual_server:
  10.0.0.100 80:
    delay_loop: 3
    lb_algo: rr
    lb_kind: DR
    protocol: TCP
    sorry_server: 127.0.0.1 80
    real_server:
      10.0.0.10 80:
        weight: 1
        HTTP_GET:
          url: {path: /index.html, status_code: 200}
          connect_timeout: 1
          nb_get_retry: 3
          delay_before_retry: 1
"""


def test_seed_yaml_loads_with_the_deprecation_warning() -> None:
    loaded = loads(SEED_YAML, "s.yaml")
    (vs,) = loaded.virtual_servers
    assert vs.sorry_server == SorryServer(ip_address("127.0.0.1"), 80)
    assert vs.delay_loop == 3
    (check,) = vs.real_server[0].checkers
    assert check.retry == 3 and check.connect_timeout == 1
    assert check.urls[0].path == "/index.html"
    assert loaded.warnings == (
        "s.yaml:14:11: warning: nb_get_retry is deprecated - please use 'retry'",)


@pytest.mark.parametrize(("patch", "error"), [
    (("connect_timeout: 1", "connect_timeout: soon"),
     "s.yaml:13:28: error: 'connect_timeout' must be a number of seconds, got 'soon'"),
    (("status_code: 200", "status_code: 700"),
     "s.yaml:12:49: error: invalid HTTP status code '700' (100..599, lo-hi)"),
    (("HTTP_GET:", "DNS_CHECK:"),
     "s.yaml:11:9: error: DNS_CHECK is not supported by ipvsctl"),
    (("sorry_server: 127.0.0.1 80", "sorry_server: nowhere"),
     "s.yaml:7:19: error: 'nowhere' is not an IP address"),
    (("url: {path: /index.html, status_code: 200}", "url: {status_code: 200}"),
     "s.yaml:12:16: error: url: "),
    (("lb_kind: DR", "lb_kind: DR\n    fwmark_rules: {vip: 10.0.0.100, ports: [80]}"),
     "s.yaml:6:19: error: fwmark_rules only applies to fwmark services"),
    (("weight: 1", "weight: 1\n        bogus: 1"),
     "s.yaml:11:9: error: unknown keyword 'bogus' in real_server 10.0.0.10 80"),
])
def test_yaml_errors_name_file_line_col(patch: tuple[str, str], error: str) -> None:
    from ipvsctl.config import ConfigError

    with pytest.raises(ConfigError) as exc:
        loads(SEED_YAML.replace(*patch), "s.yaml")
    assert str(exc.value).startswith(error)


def test_fwmark_checker_without_a_port_is_an_error() -> None:
    from ipvsctl.config import ConfigError

    text = SEED_YAML.replace("10.0.0.100 80:", "fwmark 5:").replace("10.0.0.10 80:",
                                                                    "10.0.0.10:")
    text = text.replace("    protocol: TCP\n", "")
    with pytest.raises(ConfigError, match=r"s.yaml:8:7: error: .*no port to check"):
        loads(text, "s.yaml")


def test_quorum_and_hysteresis_are_clamped_with_warnings() -> None:
    text = SEED_YAML.replace("delay_loop: 3", "delay_loop: 3\n    quorum: 5\n    hysteresis: 9")
    loaded = loads(text, "s.yaml")
    (vs,) = loaded.virtual_servers
    assert (vs.quorum, vs.hysteresis) == (1, 0)
    assert any("reducing it to 1" in w for w in loaded.warnings)
    assert any("setting it to 0" in w for w in loaded.warnings)


def test_fwmark_rules_yaml() -> None:
    text = SEED_YAML.replace("10.0.0.100 80:", "fwmark 50:").replace(
        "protocol: TCP", "fwmark_rules: {vip: 10.0.0.100, ports: [80, 443]}")
    (vs,) = loads(text, "s.yaml").virtual_servers
    assert vs.fwmark_rules is not None
    assert vs.fwmark_rules.ports == (80, 443) and str(vs.fwmark_rules.vip[0]) == "10.0.0.100"


def _vs_variants() -> list[VirtualServer]:
    """Three services on different ports, each with a different failure policy."""
    base = seed_vs(real_server=(rs(10, 3), rs(20, 2), rs(30, 1)))
    return [replace(base, port=80),
            replace(base, port=81, inhibit_on_failure=True, quorum=3, hysteresis=1),
            replace(base, port=82, sorry_server_inhibit=True, quorum=2)]


def _event(vs: VirtualServer, last: int, kind: int) -> Event:
    k = RsKey(vs.name, f"10.0.0.{last}", 80)
    if kind == 0:
        return RealServerDown(k, "refused", "HTTP_GET")
    if kind == 1:
        return RealServerUp(k, "200", "HTTP_GET")
    return WeightChange(k, kind - 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.sampled_from([10, 20, 30]),
                          st.integers(0, 6)), max_size=25))
def test_the_table_after_each_event_is_the_one_built_from_scratch(
        steps: list[tuple[int, int, int]]) -> None:
    """table() rebuilds only the service an event touched: the result must equal a full
    build from the same state, and the untouched services' dests are shared, not copied
    (what keeps the reconciler's diff of a flip among 1k services cheap)."""
    vss = _vs_variants()
    state = LvsState(vss)
    state.start()
    before = state.table()
    events = [_event(vss[i], last, kind) for i, last, kind in steps]
    for n, event in enumerate(events, 1):
        state.handle(event)
        after = state.table()
        scratch = LvsState(vss)  # the same events, and only then a table: a full build
        scratch.start()
        for e in events[:n]:
            scratch.handle(e)
        assert after == scratch.table(), f"after {events[:n]}"
        assert after.services is before.services
        port = next(vs.port for vs in vss if vs.name == event.rs.vs)
        untouched = [s for s in after.services if s.port != port]
        assert len(untouched) == 2
        assert all(after.dests[s] is before.dests[s] for s in untouched)
        before = after
