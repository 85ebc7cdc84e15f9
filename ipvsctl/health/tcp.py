"""TCP_CHECK: the check passes when a non-blocking connect() completes."""

from __future__ import annotations

import asyncio

from ipvsctl.health.config import ResolvedCheck, TcpCheck
from ipvsctl.health.conn import Attempt, Endpoint, OnDone, run_attempt
from ipvsctl.health.state import Outcome


class TcpPlan(Endpoint):
    """What one TCP_CHECK needs at each run, computed once: where it connects."""

    @staticmethod
    def of(check: ResolvedCheck) -> TcpPlan:
        if not isinstance(check.checker, TcpCheck) or check.target is None:
            raise ValueError(f"not a TCP_CHECK: {check}")
        return TcpPlan.at(check)


class _TcpAttempt(Attempt):
    def connected(self) -> None:
        self.finish(True, f"connected to {self.where}")


def start_tcp(plan: TcpPlan, on_done: OnDone,
              loop: asyncio.AbstractEventLoop | None = None) -> Attempt:
    """Start one TCP_CHECK; `on_done` gets its Outcome, exactly once."""
    return _TcpAttempt(loop or asyncio.get_running_loop(), plan, on_done).start()


async def tcp_check(check: ResolvedCheck) -> Outcome:
    plan = TcpPlan.of(check)
    return await run_attempt(lambda done: start_tcp(plan, done))
