"""One asyncio driver for every check: the pure HealthState decides, this carries it out.

It owns one timer, armed for `state.next_deadline()`. When it fires it starts every due
check (HTTP/TCP as callback-driven sockets, see conn.py; MISC as a task around the
injected script runner), feeds each Outcome back into the state, logs each real-server
change with its reason, and passes the events to `on_event`. The clock is injectable
(default: the loop's); so is the random source of the warmup jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
import resource
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial

from ipvsctl.health.config import HttpGet, MiscCheck, RsHealth, TcpCheck
from ipvsctl.health.conn import Attempt
from ipvsctl.health.http import HttpPlan, start_http
from ipvsctl.health.misc import MiscRunner
from ipvsctl.health.state import (
    BOOTSTRAP_DELAY,
    Event,
    HealthState,
    Outcome,
    Probe,
    RealServerDown,
    RealServerUp,
    WeightChange,
)
from ipvsctl.health.tcp import TcpPlan, start_tcp

log = logging.getLogger("ipvsctl.health")

FD_SPARE = 64  # descriptors kept for everything else when raising RLIMIT_NOFILE
# Ticks are at least `slack` apart, so a check may start up to that late: a thousand checks
# a second then cost ~50 wake-ups, not ~1,000, and their answers come back in batches. The
# default is 2% of the shortest delay (delay_loop or delay_before_retry), at most 20 ms.
SLACK_MAX = 0.02
SLACK_SHARE = 0.02
_WHAT = {"HTTP_GET": "Remote Web server", "SSL_GET": "Remote Web server",
         "TCP_CHECK": "TCP service", "MISC_CHECK": "Misc check for"}


def describe(event: Event) -> str:
    """The log line for an event, in keepalived's words where it has some."""
    vs = f" (VS {event.rs.vs})"
    if isinstance(event, WeightChange):
        return f"Real server {event.rs}{vs}: weight {event.weight}"
    what = _WHAT.get(event.checker, "Real server")
    state = "up" if isinstance(event, RealServerUp) else "down"
    return f"{what} {event.rs} {state}: {event.reason}{vs}"


def raise_fd_limit(needed: int) -> None:
    """keepalived raises RLIMIT_NOFILE for its checkers' sockets; so do we, within the hard
    limit (a check that finds no descriptor is rescheduled, not counted as a failure)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + FD_SPARE
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    new = want if hard == resource.RLIM_INFINITY else min(want, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        log.info("raised the open-file limit from %d to %d for %d checkers", soft, new, needed)
    except (ValueError, OSError) as err:
        log.warning("cannot raise the open-file limit to %d: %s", new, err)


class HealthScheduler:
    """Runs every checker of `servers`; `on_event` gets the state changes."""

    def __init__(self, servers: Iterable[RsHealth], on_event: Callable[[Event], None], *,
                 misc: MiscRunner | None = None, rand: Callable[[], float] = random.random,
                 bootstrap: float = BOOTSTRAP_DELAY, slack: float | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        specs = [self._runnable(s, misc) for s in servers]
        self.state = HealthState(specs, rand=rand, bootstrap=bootstrap)
        self.on_event = on_event
        self.misc = misc
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._armed: float | None = None
        self._last_tick = float("-inf")
        delays = [d for s in specs for c in s.checks
                  for d in (c.timing.delay_loop, c.timing.delay_before_retry) if d > 0]
        self.slack = slack if slack is not None else min([SLACK_MAX, *(
            d * SLACK_SHARE for d in delays)])
        self._plans: dict[int, HttpPlan | TcpPlan] = {}
        self._inflight: dict[int, Attempt | asyncio.Task[Outcome]] = {}  # by checker id
        self._sockets = sum(1 for s in specs for c in s.checks
                            if isinstance(c.checker, HttpGet | TcpCheck))
        self.checks_done = 0

    @staticmethod
    def _runnable(spec: RsHealth, misc: MiscRunner | None) -> RsHealth:
        """Drop the MISC_CHECKs whose script is refused, as keepalived does."""
        keep = []
        for check in spec.checks:
            if isinstance(check.checker, MiscCheck):
                if misc is None:
                    raise ValueError(f"{spec.key} (VS {spec.key.vs}): MISC_CHECK needs a "
                                     "script runner (pass misc=MiscRunner(...))")
                refused = misc.prepare(check)
                if refused is not None:
                    log.error("Disabling MISC_CHECK of %s (VS %s): %s", spec.key, spec.key.vs,
                              refused)
                    continue
            keep.append(check)
        return replace(spec, checks=tuple(keep))

    # -- lifecycle

    def start(self) -> None:
        """Arm every checker (bootstrap plus warmup jitter); needs a running loop."""
        self._loop = asyncio.get_running_loop()
        raise_fd_limit(self._sockets)
        self.state.start(self.now())
        self._arm()

    async def stop(self) -> None:
        """Stop checking: cancel the timer and every check in flight."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._armed = None
        running = list(self._inflight.values())
        self._inflight.clear()
        for job in running:
            job.cancel()
        tasks = [j for j in running if isinstance(j, asyncio.Task)]
        if tasks:  # scripts: the runner kills their process groups on cancel
            await asyncio.wait(tasks, timeout=5)

    def now(self) -> float:
        if self._clock is not None:
            return self._clock()
        assert self._loop is not None
        return self._loop.time()

    # -- the pump

    def _arm(self) -> None:
        nd = self.state.next_deadline()
        if nd is None:
            return
        nd = max(nd, self._last_tick + self.slack)  # checks due close together share a wake
        if self._timer is not None and self._armed is not None and self._armed <= nd:
            return
        if self._timer is not None:
            self._timer.cancel()
        assert self._loop is not None
        self._armed = nd
        self._timer = self._loop.call_later(max(0.0, nd - self.now()), self._tick)

    def _tick(self) -> None:
        armed, self._timer, self._armed = self._armed, None, None
        self._last_tick = self.now()
        # A timer may fire a hair early (clock resolution): count it as on time.
        now = self.now()
        for probe in self.state.due(max(now, armed) if armed is not None else now):
            self._launch(probe)
        self._arm()

    def _launch(self, probe: Probe) -> None:
        assert self._loop is not None
        check = probe.check
        if isinstance(check.checker, MiscCheck):
            assert self.misc is not None
            task = self._loop.create_task(self.misc.run(check))
            self._inflight[probe.id] = task
            task.add_done_callback(lambda t: self._task_done(probe, t))
            return
        plan = self._plans.get(probe.id)
        if plan is None:
            plan = HttpPlan.of(check) if isinstance(check.checker, HttpGet) else TcpPlan.of(check)
            self._plans[probe.id] = plan
        on_done = partial(self._result, probe)
        attempt = (start_http(plan, probe.url, on_done, self._loop) if isinstance(plan, HttpPlan)
                   else start_tcp(plan, on_done, self._loop))
        if not attempt.done:  # a refused connect or a bad name ends inside start()
            self._inflight[probe.id] = attempt

    def _task_done(self, probe: Probe, task: asyncio.Task[Outcome]) -> None:
        if task.cancelled() or self._inflight.get(probe.id) is not task:
            return
        exc = task.exception()
        if exc is not None:  # a bug, not the server's fault: say so, count it as a failure
            log.error("checker %s of %s raised %r", probe.check, probe.rs, exc)
            self._result(probe, Outcome(False, f"internal error: {exc!r}"))
        else:
            self._result(probe, task.result())

    def _result(self, probe: Probe, outcome: Outcome) -> None:
        self._inflight.pop(probe.id, None)
        if outcome.local:
            log.warning("%s of %s could not run: %s; next try in %g s", probe.check, probe.rs,
                        outcome.reason, probe.check.timing.delay_loop)
        self.checks_done += 1
        for event in self.state.result(probe, outcome, self.now()):
            if isinstance(event, RealServerDown):
                log.warning("%s", describe(event))
            else:
                log.info("%s", describe(event))
            try:
                self.on_event(event)
            except Exception:  # the consumer's bug must not stop the checks
                log.exception("health event handler failed on %s", event)
        self._arm()
