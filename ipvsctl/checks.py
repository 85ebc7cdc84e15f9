"""Config layer -> what the health checkers need (RsHealth per real server).

keepalived's inheritance (virtual server -> real server -> checker) is applied by
`ipvsctl.health.config.resolve`; this module only lifts the keywords out of our model.
"""

from __future__ import annotations

from collections.abc import Iterable

from ipvsctl.health.config import CheckDefaults, RsHealth, resolve_real_server
from ipvsctl.model import RealServer, VirtualServer


def vs_defaults(vs: VirtualServer) -> CheckDefaults:
    return CheckDefaults(retry=vs.retry, delay_before_retry=vs.delay_before_retry,
                         warmup=vs.warmup, delay_loop=vs.delay_loop,
                         connect_timeout=vs.connect_timeout, alpha=vs.alpha,
                         virtualhost=vs.virtualhost)


def rs_defaults(rs: RealServer) -> CheckDefaults:
    return CheckDefaults(retry=rs.retry, delay_before_retry=rs.delay_before_retry,
                         warmup=rs.warmup, delay_loop=rs.delay_loop,
                         connect_timeout=rs.connect_timeout, alpha=rs.alpha,
                         virtualhost=rs.virtualhost)


def health_of(vs: VirtualServer, rs: RealServer) -> RsHealth:
    """Raises HealthConfigError when a checker cannot run as configured."""
    return resolve_real_server(vs, rs, rs.checkers, rs_defaults(rs), vs_defaults(vs))


def health_specs(virtual_servers: Iterable[VirtualServer]) -> list[RsHealth]:
    return [health_of(vs, rs) for vs in virtual_servers for rs in vs.real_server]
