"""Health state, pure: checker sequencing and real-server liveness on a virtual clock.

No sockets, no clock, no asyncio: every entry point takes `now`; the driver asks `due(now)`
for the checks to start, hands each one's `Outcome` back to `result()`, and sleeps until
`next_deadline()`. The rules are keepalived 2.2.7's (check_tcp.c `tcp_epilog`, check_http.c
`epilog`/`timeout_epilog`, check_misc.c `misc_check_child_thread`, check_data.c):

Start
    Each checker first runs at `now + bootstrap (1 s) + warmup * rand()`. A checker starts
    up, unless `alpha`: then it starts failed and its real server starts dead. Either way
    `retry_it` is preset to `retry`, so the very first failure is final: without alpha one
    failed check takes a real server out (keepalived's "one failure is enough initially").

TCP_CHECK (`tcp_epilog`)
    success or retry_it >= retry: retry_it = 0, next in delay_loop; success -> UP, failure ->
    DOWN. Otherwise (a failure with retries left): retry_it += 1, next in
    delay_before_retry. So with `retry N`, N+1 consecutive failures, delay_before_retry
    apart, take it down; one success brings it back. Failures while down repeat the same
    cycle (no state change), as in keepalived.

MISC_CHECK (`misc_check_child_thread`)
    success: retry_it = 0, UP. Failure while up (or before its first result): a retry if
    retry_it < retry, else DOWN. Failures while down change nothing. The next run is timed
    from the START of this one: delay_before_retry while retrying, else delay_loop.

HTTP_GET / SSL_GET (`epilog`) visit the urls one per round, in order:
    - a url passes: move to the next url; after the last one with no failed url, the
      checker is UP (if it was not) and starts again at the first url; next in delay_loop.
    - a url fails while up (or before the first full pass): retry it after
      delay_before_retry; after `retry` retries it is DOWN and that url is the failed url.
    - while DOWN only the failed url is polled, every max(delay_before_retry, delay_loop).
      When it passes, all urls are checked again from the first, and only when they all
      pass is the checker UP again. A failure during that re-check retries the same url
      every delay_before_retry.
    - fast_recovery: no delay before a check while the checker is not known up and no url
      is known failed (the first pass, and the re-check after a failed url recovered).

Real servers
    A real server is alive only when all its checkers are up (keepalived's
    num_failed_checkers). A server with no checker is always alive.

misc_dynamic (decision; keepalived issue #2720 saw weights "accumulate" to 667)
    Exit 0 asks for the configured weight, exits 2..255 for weight exit-2, i.e. 0..253. The
    weight is an absolute value that replaces the last one, never a delta, so it is bounded
    by max(253, configured weight) whatever the scripts do. A final failure or a timeout
    resets the checker to the configured weight. With several dynamic checkers the real
    server takes the lowest weight they ask for.

Outputs are state changes only: `RealServerUp`, `RealServerDown` (with the reason of the
checker that decided it), `WeightChange` (the weight to use while alive; it may change
while the server is down). `snapshot()` gives the whole picture for a periodic resend.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from ipvsctl.health.config import HttpGet, MiscCheck, ResolvedCheck, RsHealth, RsKey, Url

BOOTSTRAP_DELAY = 1.0  # keepalived's BOOTSTRAP_DELAY: the first checks start 1 s in
MISC_WEIGHT_MAX = 253  # exit 255 - 2


# -------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class RealServerUp:
    rs: RsKey
    reason: str
    checker: str = ""  # the kind of the checker that decided it (HTTP_GET, ...)


@dataclass(frozen=True, slots=True)
class RealServerDown:
    rs: RsKey
    reason: str
    checker: str = ""


@dataclass(frozen=True, slots=True)
class WeightChange:
    rs: RsKey
    weight: int


Event = RealServerUp | RealServerDown | WeightChange


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one check found. `local`: it could not run for a reason on our side (no socket,
    bind failed); keepalived reschedules those after delay_loop and counts nothing."""

    ok: bool
    reason: str
    weight: int | None = None  # MISC_CHECK misc_dynamic: the absolute weight it asks for
    local: bool = False


@dataclass(frozen=True, slots=True)
class Probe:
    """A check to run now. `url` is the url index for HTTP_GET / SSL_GET."""

    id: int
    rs: RsKey
    check: ResolvedCheck
    url: int
    started: float

    @property
    def url_spec(self) -> Url | None:
        c = self.check.checker
        return c.urls[self.url] if isinstance(c, HttpGet) else None


def misc_outcome(returncode: int | None, timed_out: bool, dynamic: bool, why: str) -> Outcome:
    """keepalived's reading of a MISC_CHECK script's end; `why` describes it for humans."""
    if timed_out or returncode is None or returncode < 0:
        return Outcome(False, f"script {why}")
    if returncode == 0:
        return Outcome(True, "script exited with status 0")
    if dynamic and 2 <= returncode <= 255:
        weight = min(returncode - 2, MISC_WEIGHT_MAX)
        return Outcome(True, f"script exited with status {returncode} (weight {weight})", weight)
    return Outcome(False, f"script exited with status {returncode}")


# -------------------------------------------------------------------------- the machines


class _Checker:
    __slots__ = ("id", "rs", "check", "retry", "is_up", "has_run", "retry_it", "url_it",
                 "failed_url", "deadline", "running", "weight", "fails", "reason")

    def __init__(self, cid: int, rs: _Server, check: ResolvedCheck) -> None:
        self.id = cid
        self.rs = rs
        self.check = check
        self.retry = check.timing.retry
        self.is_up = not check.timing.alpha
        self.has_run = False
        self.retry_it = self.retry  # preset: the first failure is final
        self.url_it = 0
        self.failed_url: int | None = None
        self.deadline: float | None = None
        self.running = False
        self.weight: int | None = None  # misc_dynamic: None = the configured weight
        self.fails = 0  # consecutive failures, for "after N retries"
        self.reason = "alpha: not checked yet" if check.timing.alpha else "not checked yet"


class _Server:
    __slots__ = ("key", "configured", "checkers", "failed", "weight")

    def __init__(self, spec: RsHealth) -> None:
        self.key = spec.key
        self.configured = spec.weight
        self.checkers: list[_Checker] = []
        self.failed = 0
        self.weight = spec.weight

    @property
    def alive(self) -> bool:
        return self.failed == 0


def _what_it_checks(check: ResolvedCheck) -> tuple[object, ...]:
    """A checker without its timings: what keepalived's per-checker `compare` looks at
    to carry a checker's state across a reload."""
    untimed: dict[str, object] = dict.fromkeys(
        ("retry", "delay_before_retry", "warmup", "delay_loop", "alpha"))
    untimed["connect_timeout" if hasattr(check.checker, "connect_timeout")
            else "misc_timeout"] = None
    return (replace(check.checker, **untimed), check.target, check.bind, check.hosts, check.sni)


# Each step applies one outcome to its checker and returns the delay to its next check.


def _tcp_step(c: _Checker, ok: bool) -> float:
    t = c.check.timing
    c.has_run = True
    if ok or c.retry_it >= c.retry:
        c.retry_it = 0
        c.is_up = ok
        return t.delay_loop
    c.retry_it += 1
    return t.delay_before_retry


def _misc_step(c: _Checker, ok: bool) -> float:
    """The delay counts from the start of the run (keepalived's last_ran)."""
    t = c.check.timing
    if ok:
        c.is_up = True
        c.retry_it = 0
    elif c.is_up or not c.has_run:
        if c.retry_it < c.retry:
            c.retry_it += 1
        else:
            c.retry_it = 0
            c.is_up = False
    c.has_run = True
    return t.delay_before_retry if c.retry_it else t.delay_loop


def _http_step(c: _Checker, ok: bool) -> float:
    t = c.check.timing
    checker = c.check.checker
    assert isinstance(checker, HttpGet)
    if ok:  # keepalived's REGISTER_CHECKER_NEW
        c.retry_it = 0
        if c.failed_url is not None:  # the failed url passed: re-check them all
            c.failed_url = None
            c.url_it = 0
        elif c.url_it < len(checker.urls) - 1:
            c.url_it += 1
        else:  # every url passed
            c.is_up = c.has_run = True
            c.url_it = 0
        delay = t.delay_loop
        if not c.has_run:
            c.retry_it = c.retry
    else:
        if c.is_up or not c.has_run:  # REGISTER_CHECKER_RETRY; else FAILED: no retry
            c.has_run = True
            c.retry_it += 1
            if c.retry_it > c.retry:
                c.is_up = False
                c.failed_url = c.url_it
        delay = (max(t.delay_before_retry, t.delay_loop) if c.failed_url is not None
                 else t.delay_before_retry)
    if checker.fast_recovery and (not c.has_run or (not c.is_up and c.failed_url is None)):
        return 0.0
    return delay


# -------------------------------------------------------------------------- the state


class HealthState:
    """Every checker of every real server, on a virtual clock."""

    def __init__(self, servers: Iterable[RsHealth], *, rand: Callable[[], float] = random.random,
                 bootstrap: float = BOOTSTRAP_DELAY) -> None:
        self._rand = rand
        self._bootstrap = bootstrap
        self._servers: dict[RsKey, _Server] = {}
        self._checkers: list[_Checker] = []
        self._heap: list[tuple[float, int]] = []
        for spec in servers:
            if spec.key in self._servers:
                raise ValueError(f"real server {spec.key} of {spec.key.vs} given twice")
            srv = self._servers[spec.key] = _Server(spec)
            for check in spec.checks:
                c = _Checker(len(self._checkers), srv, check)
                self._checkers.append(c)
                srv.checkers.append(c)
                srv.failed += not c.is_up

    # -- queries

    def alive(self, rs: RsKey) -> bool:
        return self._servers[rs].alive

    def weight(self, rs: RsKey) -> int:
        return self._servers[rs].weight

    def snapshot(self) -> dict[RsKey, tuple[bool, int]]:
        """(alive, weight) of every real server: for a periodic full resend."""
        return {k: (s.alive, s.weight) for k, s in self._servers.items()}

    def checker_states(self, rs: RsKey) -> list[tuple[str, bool, str]]:
        """(checker, up, last reason) for each checker of `rs`: for logs and dumps."""
        return [(str(c.check), c.is_up, c.reason) for c in self._servers[rs].checkers]

    def __len__(self) -> int:
        return len(self._checkers)

    # -- reload

    def adopt(self, old: HealthState) -> None:
        """Before start(), after a reload: carry each surviving real server's health over
        from `old`, as keepalived's `migrate_checkers` does, so a failed server stays out
        and a healthy one is not re-judged from scratch.

        A checker of the same kind checking the same thing (timings may differ) inherits
        its result if it had one, its retry count (capped at the new retry - 1, as
        keepalived does) and its misc_dynamic weight. If the server then has a failed
        checker, or was dead with none run, its checkers that have not run count as failed
        if alpha, and one failure of theirs is final. Otherwise they start up (even alpha:
        the server was healthy) with their full retries. Servers new to the config start
        as at a first start (alpha checkers failed), but with their full retries: only a
        first start makes the first failure final."""
        for key, srv in self._servers.items():
            before = old._servers.get(key)
            if before is None:
                for c in srv.checkers:  # keepalived's reload skips the first-start preset
                    c.retry_it = 0
                continue
            pool = list(before.checkers)
            for c in srv.checkers:
                c.retry_it = 0
                c.is_up = True
                what = _what_it_checks(c.check)
                prev = next((o for o in pool if _what_it_checks(o.check) == what), None)
                if prev is None:
                    continue
                pool.remove(prev)
                if prev.has_run:
                    c.is_up, c.reason = prev.is_up, prev.reason
                c.has_run, c.fails, c.weight = prev.has_run, prev.fails, prev.weight
                c.url_it, c.failed_url = prev.url_it, prev.failed_url
                if prev.retry_it and c.retry:
                    c.retry_it = min(prev.retry_it, c.retry - 1)
            failed = any(c.has_run and not c.is_up for c in srv.checkers)
            if failed or (not before.alive and not any(c.has_run for c in srv.checkers)):
                for c in srv.checkers:
                    if not c.has_run:
                        c.is_up = c.is_up and not c.check.timing.alpha
                        c.retry_it = c.retry
            srv.failed = sum(not c.is_up for c in srv.checkers)
            srv.weight = self._weight_of(srv)

    # -- driving

    def start(self, now: float) -> None:
        """Arm every checker: bootstrap, then a random part of its warmup."""
        for c in self._checkers:
            warmup = c.check.timing.warmup
            self._arm(c, now + self._bootstrap + (warmup * self._rand() if warmup else 0.0))

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap:
            when, cid = heap[0]
            c = self._checkers[cid]
            if c.deadline == when and not c.running:
                return when
            heapq.heappop(heap)  # stale: re-armed or running
        return None

    def due(self, now: float) -> list[Probe]:
        """The checks to start now; each is marked running until its result()."""
        probes = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, cid = heapq.heappop(heap)
            c = self._checkers[cid]
            if c.deadline != when or c.running:
                continue
            c.running = True
            c.deadline = None
            probes.append(Probe(cid, c.rs.key, c.check, c.url_it, now))
        return probes

    def result(self, probe: Probe, outcome: Outcome, now: float) -> list[Event]:
        """Feed one check's outcome; returns the state changes it caused."""
        c = self._checkers[probe.id]
        if not c.running:
            raise ValueError(f"result for a checker that is not running: {c.check}")
        c.running = False
        checker = c.check.checker
        if outcome.local:  # keepalived: "socket bind failed. Rescheduling."
            self._arm(c, now + c.check.timing.delay_loop)
            return []
        was_up = c.is_up
        if isinstance(checker, MiscCheck):
            self._arm(c, max(now, probe.started + _misc_step(c, outcome.ok)))
        elif isinstance(checker, HttpGet):
            self._arm(c, now + _http_step(c, outcome.ok))
        else:
            self._arm(c, now + _tcp_step(c, outcome.ok))
        c.fails = 0 if outcome.ok else c.fails + 1
        c.reason = outcome.reason
        if c.fails > 1:
            n = c.fails - 1
            c.reason += f", after {n} retr{'y' if n == 1 else 'ies'}"
        events: list[Event] = []
        srv = c.rs
        if c.is_up and not was_up:
            srv.failed -= 1
            if srv.alive:
                events.append(RealServerUp(srv.key, c.reason, checker.kind))
        elif was_up and not c.is_up:
            srv.failed += 1
            if srv.failed == 1:
                events.append(RealServerDown(srv.key, c.reason, checker.kind))
        if isinstance(checker, MiscCheck) and checker.misc_dynamic:
            if outcome.ok:
                c.weight = outcome.weight
            elif not c.is_up:
                c.weight = None  # a final failure resets it: never a leftover delta
            w = self._weight_of(srv)
            if w != srv.weight:
                srv.weight = w
                events.append(WeightChange(srv.key, w))
        return events

    def _weight_of(self, srv: _Server) -> int:
        asked = [c.weight for c in srv.checkers if c.weight is not None]
        return min(asked) if asked else srv.configured

    def _arm(self, c: _Checker, when: float) -> None:
        c.deadline = when
        heapq.heappush(self._heap, (when, c.id))
