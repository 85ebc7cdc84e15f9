"""Health checker config and state, pure, on a virtual clock (ipvsctl/health).

Timelines are keepalived 2.2.7's (check_tcp.c tcp_epilog, check_http.c epilog,
check_misc.c misc_check_child_thread, check_data.c validate_check_config): each test
drives the state with scripted outcomes and asserts on the times checks ran and on the
events that came out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from ipaddress import ip_address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvsctl.health.config import (
    CheckDefaults,
    HealthConfigError,
    HttpGet,
    MiscCheck,
    RsHealth,
    RsKey,
    SslGet,
    TcpCheck,
    Url,
    resolve,
    resolve_real_server,
    status_codes,
)
from ipvsctl.health.state import (
    MISC_WEIGHT_MAX,
    Event,
    HealthState,
    Outcome,
    Probe,
    RealServerDown,
    RealServerUp,
    WeightChange,
    misc_outcome,
)
from ipvsctl.model import RealServer, VirtualServer

VS = VirtualServer(ip=ip_address("10.0.0.100"), port=80)
RS = RealServer(ip_address("10.0.0.10"), 8080)
KEY = RsKey.of(VS, RS)
OK = Outcome(True, "ok")
FAIL = Outcome(False, "HTTP status 503 on GET /b")

Respond = Callable[[Probe, float], Outcome]


def spec(*checkers: HttpGet | TcpCheck | MiscCheck, weight: int = 1) -> RsHealth:
    return resolve_real_server(VS, RealServer(RS.ip, RS.port, weight=weight), checkers)


def run(state: HealthState, respond: Respond, until: float, took: float = 0.0
        ) -> tuple[list[tuple[float, Probe]], list[tuple[float, Event]]]:
    """Drive the state on a virtual clock; every check takes `took` seconds."""
    probes: list[tuple[float, Probe]] = []
    events: list[tuple[float, Event]] = []
    state.start(0.0)
    while (now := state.next_deadline()) is not None and now <= until:
        for p in state.due(now):
            probes.append((now, p))
            events += [(now + took, e) for e in state.result(p, respond(p, now), now + took)]
    return probes, events


def times(probes: list[tuple[float, Probe]]) -> list[float]:
    return [round(t, 6) for t, _ in probes]


def what(e: Event) -> tuple[type, str]:
    """(type, checker) of an up/down event."""
    assert isinstance(e, RealServerUp | RealServerDown)
    return type(e), e.checker


def reason(e: Event) -> str:
    assert isinstance(e, RealServerUp | RealServerDown)
    return e.reason


def down_after(t0: float) -> Respond:
    return lambda p, now: FAIL if now >= t0 else OK


# --------------------------------------------------------------------------- config


def test_keepalived_defaults_per_checker() -> None:
    http = resolve(HttpGet(urls=(Url("/"),)), RS, VS)
    assert (http.timing.retry, http.timing.delay_before_retry) == (1, 3.0)
    assert (http.connect_timeout, http.timing.delay_loop, http.timing.warmup) == (5.0, 60.0, 60.0)
    assert http.timing.alpha is False
    tcp = resolve(TcpCheck(), RS, VS)
    assert (tcp.timing.retry, tcp.timing.delay_before_retry) == (1, 1.0)
    misc = resolve(MiscCheck(misc_path="/bin/true"), RS, VS)
    assert (misc.timing.retry, misc.timing.delay_before_retry, misc.target) == (0, 1.0, None)
    ssl = resolve(SslGet(urls=(Url("/"),)), RS, VS)
    assert ssl.timing.delay_before_retry == 3.0


def test_inheritance_checker_then_real_server_then_virtual_server() -> None:
    vs_d = CheckDefaults(retry=4, delay_before_retry=7, delay_loop=20, connect_timeout=9,
                         alpha=True, virtualhost="vs.example")
    rs_d = CheckDefaults(retry=2, delay_loop=10, virtualhost="rs.example")
    c = resolve(HttpGet(urls=(Url("/"), Url("/x", virtualhost="url.example")), retry=0),
                RS, VS, rs_d, vs_d)
    assert c.timing.retry == 0  # the checker's own
    assert c.timing.delay_loop == 10  # the real server's
    assert c.timing.warmup == 10  # no warmup anywhere: the checker's delay_loop
    assert c.timing.delay_before_retry == 7  # the virtual server's
    assert c.connect_timeout == 9 and c.timing.alpha is True
    assert c.hosts == ("rs.example", "url.example")
    assert resolve(TcpCheck(alpha=False), RS, VS, rs_d, vs_d).timing.alpha is False


def test_misc_timeout_defaults_to_the_virtual_servers_delay_loop() -> None:
    m = MiscCheck(misc_path="/bin/true", delay_loop=2)
    assert resolve(m, RS, VS, vs_defaults=CheckDefaults(delay_loop=30)).misc_timeout == 30
    assert resolve(m, RS, VS).misc_timeout == 60
    assert resolve(MiscCheck(misc_path="/x", misc_timeout=4), RS, VS).misc_timeout == 4


def test_check_target_is_not_the_ipvs_dest() -> None:
    fw = VirtualServer(fwmark=5, lvs_method="DR")
    assert str(resolve(TcpCheck(), RealServer(ip_address("10.0.0.10"), 8080), fw).target) \
        == "[10.0.0.10]:8080"  # IPVS gets port 0; the check keeps the RS port
    assert resolve(TcpCheck(connect_port=9000, connect_ip="10.0.0.99"),
                   RealServer(ip_address("10.0.0.10"), 8080), fw).target is not None
    t = resolve(TcpCheck(connect_port=9000, connect_ip="10.0.0.99"),
                RealServer(ip_address("10.0.0.10")), fw).target
    assert t is not None and (t.host, t.port) == ("10.0.0.99", 9000)
    # an IP service: a real server without a port is checked on the service's port
    t = resolve(TcpCheck(), RealServer(ip_address("10.0.0.10")), VS).target
    assert t is not None and t.port == 80


def test_fwmark_real_server_without_any_port_is_a_clear_error() -> None:
    fw = VirtualServer(fwmark=5, where="k.conf:3:1")
    with pytest.raises(HealthConfigError) as exc:
        resolve(HttpGet(urls=(Url("/"),)), RealServer(ip_address("10.0.0.10")), fw)
    msg = str(exc.value)
    assert "k.conf:3:1" in msg and "fwmark 5" in msg and "10.0.0.10" in msg
    assert "connect_port" in msg and "no port" in msg
    # MISC_CHECK has no target, so no port is needed
    assert resolve(MiscCheck(misc_path="/bin/true"), RealServer(ip_address("10.0.0.10")),
                   fw).target is None


def test_config_errors() -> None:
    with pytest.raises(HealthConfigError, match="no url"):
        resolve(HttpGet(), RS, VS)
    with pytest.raises(HealthConfigError, match="http_protocol"):
        resolve(HttpGet(urls=(Url("/"),), http_protocol="2"), RS, VS)
    with pytest.raises(HealthConfigError, match="delay_loop"):
        resolve(TcpCheck(delay_loop=0), RS, VS)
    with pytest.raises(HealthConfigError, match="no misc_path"):
        resolve(MiscCheck(), RS, VS)
    with pytest.raises(ValueError, match="digest"):
        Url("/", digest="abc")
    with pytest.raises(ValueError, match="white space"):
        Url("/a b")
    assert status_codes(200, "301-302") == ((200, 200), (301, 302))
    with pytest.raises(ValueError):
        status_codes("600")
    assert Url("/").accepts(204) and not Url("/").accepts(301)
    assert Url("/", status_codes(301)).accepts(301) and not Url("/", status_codes(301)).accepts(200)


def test_sni_follows_the_host_chain_and_sni_name_wins() -> None:
    rs_d = CheckDefaults(virtualhost="rs.example")
    assert resolve(SslGet(urls=(Url("/"),), enable_sni=True), RS, VS, rs_d).sni == "rs.example"
    assert resolve(SslGet(urls=(Url("/"),)), RS, VS, rs_d).sni is None
    assert resolve(SslGet(urls=(Url("/"),), sni_name="n.example"), RS, VS).sni == "n.example"


# --------------------------------------------------------------------------- TCP sequencing


def test_retry_count_and_spacing() -> None:
    """retry 2, delay_before_retry 3: three failures 3 s apart take it down."""
    st_ = HealthState([spec(TcpCheck(retry=2, delay_before_retry=3, delay_loop=10, warmup=0))])
    probes, events = run(st_, down_after(5), until=40)
    # while down, keepalived keeps cycling through its retries (no more events)
    assert times(probes) == [1, 11, 14, 17, 27, 30, 33]
    assert events == [(17, RealServerDown(KEY, "HTTP status 503 on GET /b, after 2 retries",
                                          "TCP_CHECK"))]


def test_without_alpha_the_first_failure_is_final() -> None:
    st_ = HealthState([spec(TcpCheck(retry=3, delay_loop=10, warmup=0))])
    assert st_.alive(KEY)
    probes, events = run(st_, lambda p, now: FAIL, until=1)
    assert times(probes) == [1]
    assert [e for _, e in events] == [RealServerDown(KEY, FAIL.reason, "TCP_CHECK")]


def test_one_success_brings_it_back_and_failures_while_down_are_silent() -> None:
    st_ = HealthState([spec(TcpCheck(retry=1, delay_before_retry=2, delay_loop=10, warmup=0))])
    probes, events = run(st_, lambda p, now: OK if now < 5 or now >= 40 else FAIL, until=60)
    # down: 11 fails, retry at 13 fails -> DOWN; then the same cycle (23, 25, 35, 37), no events
    assert times(probes) == [1, 11, 13, 23, 25, 35, 37, 47, 57]
    assert [(t, type(e)) for t, e in events] == [(13, RealServerDown), (47, RealServerUp)]


def test_alpha_starts_dead_and_needs_a_success() -> None:
    st_ = HealthState([spec(TcpCheck(alpha=True, delay_loop=10, warmup=0))])
    assert not st_.alive(KEY)
    probes, events = run(st_, lambda p, now: FAIL if now < 15 else OK, until=30)
    # 1: final at once (retry_it preset); 11 fails, retried 1 s later; 22 passes
    assert times(probes) == [1, 11, 12, 22]
    assert events == [(22, RealServerUp(KEY, "ok", "TCP_CHECK"))]


def test_warmup_jitter_uses_the_injected_random_and_bootstrap() -> None:
    draws = iter([0.5, 0.25])
    st_ = HealthState([spec(TcpCheck(warmup=8, delay_loop=10), TcpCheck(warmup=0, delay_loop=10),
                            TcpCheck(warmup=8, delay_loop=10))], rand=lambda: next(draws))
    st_.start(100.0)
    assert st_.next_deadline() == 101.0  # warmup 0: bootstrap only
    assert sorted(p.started for p in st_.due(200.0)) == [200.0] * 3
    st2 = HealthState([spec(TcpCheck(warmup=8, delay_loop=10))], rand=lambda: 0.5, bootstrap=0)
    st2.start(0.0)
    assert st2.next_deadline() == 4.0


def test_local_failure_is_not_counted() -> None:
    st_ = HealthState([spec(TcpCheck(retry=0, delay_loop=10, warmup=0))])
    probes, events = run(st_, lambda p, now: Outcome(False, "no socket", local=True), until=25)
    assert times(probes) == [1, 11, 21] and events == [] and st_.alive(KEY)


def test_running_checkers_have_no_deadline_and_results_must_match() -> None:
    st_ = HealthState([spec(TcpCheck(warmup=0))])
    st_.start(0.0)
    (p,) = st_.due(1.0)
    assert st_.next_deadline() is None and st_.due(100.0) == []
    st_.result(p, OK, 1.5)
    assert st_.next_deadline() == 61.5  # from the end of the check
    with pytest.raises(ValueError):
        st_.result(p, OK, 2.0)


# --------------------------------------------------------------------------- HTTP urls


def http_spec(*paths: str, **kw: Any) -> RsHealth:
    return spec(HttpGet(urls=tuple(Url(p) for p in paths), **kw))


def test_http_visits_one_url_per_round() -> None:
    st_ = HealthState([http_spec("/a", "/b", "/c", delay_loop=10, warmup=0)])
    probes, events = run(st_, lambda p, now: OK, until=50)
    assert [(t, p.url) for t, p in probes] == [(1, 0), (11, 1), (21, 2), (31, 0), (41, 1)]
    assert events == []


def test_http_multi_url_recovery() -> None:
    """/b fails: retried after delay_before_retry, then DOWN; only /b is polled, every
    max(delay_before_retry, delay_loop); when it passes, /a and /b are checked again
    before UP."""
    st_ = HealthState([http_spec("/a", "/b", delay_loop=10, delay_before_retry=3, retry=1,
                                 warmup=0)])

    def respond(p: Probe, now: float) -> Outcome:
        assert p.url_spec is not None
        return FAIL if p.url_spec.path == "/b" and 20 <= now < 50 else OK

    probes, events = run(st_, respond, until=100)
    seen = [(t, p.url_spec.path[1:]) for t, p in probes if p.url_spec is not None]
    assert seen == [(1, "a"), (11, "b"), (21, "a"), (31, "b"), (34, "b"),  # retry, then DOWN
                    (44, "b"), (54, "b"),  # the failed url only; passes at 54
                    (64, "a"), (74, "b"),  # every url again -> UP at 74
                    (84, "a"), (94, "b")]
    assert [(t, type(e)) for t, e in events] == [(34, RealServerDown), (74, RealServerUp)]
    assert reason(events[0][1]) == "HTTP status 503 on GET /b, after 1 retry"


def test_http_recheck_failure_retries_the_same_url_quietly() -> None:
    st_ = HealthState([http_spec("/a", "/b", delay_loop=10, delay_before_retry=3, retry=0,
                                 warmup=0)])

    def respond(p: Probe, now: float) -> Outcome:
        path = p.url_spec.path if p.url_spec else ""
        if path == "/a":
            return FAIL if 5 <= now < 30 else OK
        return OK

    probes, events = run(st_, respond, until=60)
    # 11 /b ok, 21 /a fails -> DOWN (retry 0); /a polled every 10: 31 passes; re-check
    # from /a at 41 ... all pass at 51 -> UP
    assert [(t, p.url) for t, p in probes] == [(1, 0), (11, 1), (21, 0), (31, 0), (41, 0),
                                              (51, 1)]
    assert [(t, type(e)) for t, e in events] == [(21, RealServerDown), (51, RealServerUp)]


def test_http_fast_recovery_and_alpha() -> None:
    st_ = HealthState([http_spec("/a", "/b", "/c", delay_loop=10, warmup=0, alpha=True,
                                 fast_recovery=True)])
    probes, events = run(st_, lambda p, now: OK, until=25)
    assert [(t, p.url) for t, p in probes] == [(1, 0), (1, 1), (1, 2), (11, 0), (21, 1)]
    assert [(t, type(e)) for t, e in events] == [(1, RealServerUp)]
    slow = HealthState([http_spec("/a", "/b", delay_loop=10, warmup=0, alpha=True)])
    _, events = run(slow, lambda p, now: OK, until=25)
    assert [(t, type(e)) for t, e in events] == [(11, RealServerUp)]


def test_http_first_failure_is_final_even_with_retries() -> None:
    st_ = HealthState([http_spec("/a", delay_loop=10, warmup=0, retry=3)])
    probes, events = run(st_, lambda p, now: FAIL, until=30)
    assert [(t, type(e)) for t, e in events] == [(1, RealServerDown)]
    assert times(probes) == [1, 11, 21]  # down: the failed url every max(3, 10)


# --------------------------------------------------------------------------- real servers


def test_real_server_is_alive_only_when_all_checkers_are_up() -> None:
    st_ = HealthState([spec(TcpCheck(retry=0, delay_loop=10, warmup=0),
                            HttpGet(urls=(Url("/"),), retry=0, delay_loop=10, warmup=0))])

    def respond(p: Probe, now: float) -> Outcome:
        if isinstance(p.check.checker, TcpCheck):
            return FAIL if 10 <= now < 40 else OK
        return FAIL if 20 <= now < 60 else OK

    _, events = run(st_, respond, until=80)
    # HTTP: its failed url passes at 61, then every url (here the same one) is checked
    # again before it is up: 71. TCP recovered at 41, silently (HTTP was down).
    assert [(t, *what(e)) for t, e in events] == [
        (11, RealServerDown, "TCP_CHECK"), (71, RealServerUp, "HTTP_GET")]
    assert st_.checker_states(KEY)[0][1] is True


def test_state_changes_only() -> None:
    st_ = HealthState([spec(TcpCheck(delay_loop=1, warmup=0, retry=0))])
    _, events = run(st_, lambda p, now: OK if int(now) % 20 < 10 else FAIL, until=100)
    kinds = [type(e) for _, e in events]
    assert kinds == [RealServerDown, RealServerUp] * 5  # 10, 20, ... 100; nothing between
    assert all(a != b for a, b in zip(kinds, kinds[1:], strict=False))


def test_duplicate_real_server_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        HealthState([spec(TcpCheck()), spec(TcpCheck())])


def test_snapshot_and_no_checkers() -> None:
    other = RsHealth(RsKey("fwmark 5", "10.0.0.11", 80), 3)
    st_ = HealthState([spec(TcpCheck(alpha=True)), other])
    assert st_.snapshot() == {KEY: (False, 1), other.key: (True, 3)}


# --------------------------------------------------------------------------- MISC_CHECK


def exits(*codes: int) -> Respond:
    seq = iter(codes)
    return lambda p, now: misc_outcome(next(seq), False, True, "")


def test_misc_outcome_reading() -> None:
    assert misc_outcome(0, False, False, "").ok
    assert not misc_outcome(1, False, True, "").ok
    assert not misc_outcome(7, False, False, "").ok  # 2..255 mean up only with misc_dynamic
    assert misc_outcome(7, False, True, "").weight == 5
    assert misc_outcome(255, False, True, "").weight == MISC_WEIGHT_MAX
    assert misc_outcome(2, False, True, "").weight == 0
    assert not misc_outcome(None, False, True, "could not be started").ok
    assert not misc_outcome(-9, False, True, "killed by signal 9").ok
    t = misc_outcome(0, True, True, "still running after 3 s")
    assert not t.ok and "still running" in t.reason


def test_misc_dynamic_weight_is_absolute_and_resets_on_failure() -> None:
    st_ = HealthState([spec(MiscCheck(misc_path="/s", misc_dynamic=True, delay_loop=1,
                                      warmup=0), weight=10)])
    _, events = run(st_, exits(7, 7, 0, 255, 1, 2, 1), until=7)
    assert [e for _, e in events] == [
        WeightChange(KEY, 5), WeightChange(KEY, 10), WeightChange(KEY, 253),
        RealServerDown(KEY, "script exited with status 1", "MISC_CHECK"), WeightChange(KEY, 10),
        RealServerUp(KEY, "script exited with status 2 (weight 0)", "MISC_CHECK"),
        WeightChange(KEY, 0),
        RealServerDown(KEY, "script exited with status 1", "MISC_CHECK"), WeightChange(KEY, 10)]


def test_misc_several_dynamic_checkers_take_the_lowest() -> None:
    st_ = HealthState([spec(MiscCheck(misc_path="/a", misc_dynamic=True, warmup=0),
                            MiscCheck(misc_path="/b", misc_dynamic=True, warmup=0))])
    st_.start(0)
    a, b = st_.due(1)
    assert st_.result(a, misc_outcome(22, False, True, ""), 1) == [WeightChange(KEY, 20)]
    assert st_.result(b, misc_outcome(12, False, True, ""), 1) == [WeightChange(KEY, 10)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 255), st.just(-15), st.just(None)), max_size=40),
       st.integers(0, 1000))
def test_misc_dynamic_weight_never_leaks(codes: list[int | None], configured: int) -> None:
    """Whatever the exits (timeouts included), the weight is the configured one or the
    last exit-2, never a sum: the bound is max(253, configured)."""
    st_ = HealthState([spec(MiscCheck(misc_path="/s", misc_dynamic=True, retry=1,
                                      delay_loop=1, warmup=0), weight=configured)])
    st_.start(0)
    now = 0.0
    for code in codes:
        now = st_.next_deadline() or now
        (p,) = st_.due(now)
        out = misc_outcome(code, code is None, True, "timed out")
        st_.result(p, out, now + 0.5)
        w = st_.weight(KEY)
        assert 0 <= w <= max(MISC_WEIGHT_MAX, configured)
        if out.ok:
            assert w == (configured if out.weight is None else out.weight)


def test_misc_retries_are_timed_from_the_start_of_the_run() -> None:
    st_ = HealthState([spec(MiscCheck(misc_path="/s", retry=1, delay_before_retry=2,
                                      delay_loop=10, warmup=0))])
    probes, events = run(st_, lambda p, now: misc_outcome(0 if now < 5 else 1, False, False, ""),
                         until=40, took=1.5)
    # starts at 1, 11 (fails), 13 (retry, fails -> DOWN), 23 ... each 1.5 s long
    assert times(probes) == [1, 11, 13, 23, 33]
    assert [(t, type(e)) for t, e in events] == [(14.5, RealServerDown)]
    assert reason(events[0][1]) == "script exited with status 1, after 1 retry"


def test_layering() -> None:
    """state.py and config.py are pure (no I/O, no clock); ipvsctl.health never imports
    pyvrrp (the script runner is injected)."""
    import ast
    from pathlib import Path

    import ipvsctl.health as pkg

    def imports(path: Path) -> set[str]:
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        return {n.split(".")[0] for n in names}

    root = Path(pkg.__file__).parent
    for name in ("state.py", "config.py"):
        assert not imports(root / name) & {"asyncio", "socket", "select", "time", "ssl",
                                           "subprocess", "os"}, name
    for path in root.glob("*.py"):
        assert "pyvrrp" not in imports(path), path


# --------------------------------------------------------------------------- reload


def _failed_state(check: TcpCheck) -> HealthState:
    """A state whose one server failed its check (one failure is final at first)."""
    old = HealthState([spec(check)])
    probes, events = run(old, lambda p, now: FAIL, until=1)
    assert [type(e) for _, e in events] == [RealServerDown] and not old.alive(KEY)
    return old


def test_reload_keeps_a_failed_server_out_even_if_timings_change() -> None:
    """keepalived's migrate_checkers: the same check with new timings keeps its result."""
    old = _failed_state(TcpCheck(retry=3, delay_loop=10, warmup=0))
    new = HealthState([spec(TcpCheck(retry=1, delay_loop=5, warmup=0))])
    assert new.alive(KEY)  # what a fresh start would say
    new.adopt(old)
    assert not new.alive(KEY)
    assert new.checker_states(KEY)[0][1:] == (False, FAIL.reason)
    # it comes back on its first success, with the new timings
    probes, events = run(new, lambda p, now: OK, until=1)
    assert [type(e) for _, e in events] == [RealServerUp]


def test_reload_adds_a_new_alpha_checker_failed_to_a_failed_server_only() -> None:
    tcp = TcpCheck(delay_loop=10, warmup=0)
    http = HttpGet(urls=(Url("/"),), alpha=True, delay_loop=10, warmup=0)
    failed = HealthState([spec(tcp, http)])
    failed.adopt(_failed_state(tcp))
    assert [up for _, up, _ in failed.checker_states(KEY)] == [False, False]
    # on a healthy server, the new alpha checker starts up: the server stays in
    healthy_old = HealthState([spec(tcp)])
    run(healthy_old, lambda p, now: OK, until=1)
    healthy = HealthState([spec(tcp, http)])
    assert not healthy.alive(KEY)  # a fresh start: alpha starts failed
    healthy.adopt(healthy_old)
    assert healthy.alive(KEY)


def test_reload_caps_retries_and_carries_the_misc_dynamic_weight() -> None:
    # two retries of retry 4 spent; the new retry is 2: the count is capped at 2 - 1 (as
    # keepalived does), so two more failures take it down where a fresh start needs one
    old = HealthState([spec(TcpCheck(retry=4, delay_before_retry=1, delay_loop=10,
                                     warmup=0))])
    run(old, lambda p, now: OK if now < 5 else FAIL, until=12.5)
    assert old.alive(KEY)
    new = HealthState([spec(TcpCheck(retry=2, delay_before_retry=1, delay_loop=10,
                                     warmup=0))])
    new.adopt(old)
    probes, events = run(new, lambda p, now: FAIL, until=5)
    assert times(probes) == [1, 2]
    assert [(t, type(e)) for t, e in events] == [(2, RealServerDown)]
    # an old count below the new retry is kept as it is
    new = HealthState([spec(TcpCheck(retry=3, delay_before_retry=1, delay_loop=10,
                                     warmup=0))])
    new.adopt(old)
    probes, events = run(new, lambda p, now: FAIL, until=5)
    assert [(t, type(e)) for t, e in events] == [(2, RealServerDown)]

    misc = MiscCheck(misc_path="/bin/true", misc_dynamic=True, delay_loop=10, warmup=0)
    old = HealthState([spec(misc, weight=5)])
    run(old, lambda p, now: Outcome(True, "exit 9", weight=7), until=1)
    assert old.weight(KEY) == 7
    new = HealthState([spec(replace(misc, delay_loop=20), weight=5)])
    new.adopt(old)
    assert (new.alive(KEY), new.weight(KEY)) == (True, 7)


def test_reload_starts_a_changed_check_and_a_new_server_fresh() -> None:
    old = _failed_state(TcpCheck(delay_loop=10, warmup=0))
    # a different thing to check (connect_port): nothing to carry; the server was dead
    # with no new checker run, so one failure is final and alpha ones start failed
    new = HealthState([spec(TcpCheck(connect_port=9999, delay_loop=10, warmup=0))])
    new.adopt(old)
    assert new.alive(KEY)
    probes, events = run(new, lambda p, now: FAIL, until=1)
    assert [type(e) for _, e in events] == [RealServerDown]
    other = RsKey(VS.name, "10.0.0.99", 8080)
    new = HealthState([resolve_real_server(VS, RealServer(ip_address("10.0.0.99"), 8080),
                                           (TcpCheck(alpha=True),))])
    new.adopt(old)
    assert not new.alive(other)  # new to the config: alpha starts failed, as at a start
    # ... but a reload gives a new server its full retries (retry 1: two failures)
    new = HealthState([resolve_real_server(VS, RealServer(ip_address("10.0.0.99"), 8080),
                                           (TcpCheck(retry=1, delay_loop=10, warmup=0),))])
    new.adopt(old)
    probes, events = run(new, lambda p, now: FAIL, until=5)
    assert times(probes) == [1, 2] and [(t, type(e)) for t, e in events] == \
        [(2, RealServerDown)]
