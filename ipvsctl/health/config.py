"""Health-checker config under keepalived's keyword names, and how it resolves.

keepalived's rule (man keepalived.conf, check_data.c `validate_check_config`): "the virtual
server setting is the default for real servers, and the real server setting is the default
for checkers". `resolve()` applies it as one pure function:

    checker value -> real_server value -> virtual_server value -> keepalived's default

| keyword            | default (keepalived 2.2.7)                                    |
|--------------------|---------------------------------------------------------------|
| retry              | 1; MISC_CHECK 0 (`default_retry`)                              |
| delay_before_retry | 3 s for HTTP_GET/SSL_GET, 1 s for the others                   |
| connect_timeout    | 5 s                                                            |
| delay_loop         | 60 s                                                           |
| warmup             | the checker's resolved delay_loop (a random start in [0, it]) |
| alpha              | off                                                            |
| misc_timeout       | the virtual server's delay_loop                                |

The check TARGET is not the IPVS dest key. It is `connect_ip` or the real server's address,
and `connect_port` or the real server's port AS WRITTEN: for a fwmark service IPVS gets port
0 for DR/TUN dests, but the check still needs the port (keepalived issue #2368). A real
server without a port is checked on the virtual server's port; if there is none (fwmark, or
port 0), a checker without `connect_port` is a config error here (keepalived would silently
connect to port 0 and never succeed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import ClassVar, TypeVar

from ipvsctl.model import RealServer, VirtualServer

DEFAULT_DELAY_LOOP = 60.0
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_STATUS = ((200, 299),)
HTTP_PROTOCOLS = ("1.0", "1.0C", "1.1")
T = TypeVar("T")


class HealthConfigError(ValueError):
    """A checker that cannot run as configured; the message names the real server."""


def status_codes(*items: int | str) -> tuple[tuple[int, int], ...]:
    """keepalived's `status_code 200 301-302` as ranges; ValueError outside 100..599."""
    out = []
    for item in items:
        lo_s, _, hi_s = str(item).partition("-")
        lo, hi = int(lo_s), int(hi_s or lo_s)
        if not 100 <= lo <= hi <= 599:
            raise ValueError(f"invalid HTTP status code '{item}' (100..599, lo-hi)")
        out.append((lo, hi))
    return tuple(out)


@dataclass(frozen=True)
class Url:
    """`url { path; status_code; digest; virtualhost }` of HTTP_GET / SSL_GET."""

    path: str
    status_code: tuple[tuple[int, int], ...] = ()  # () = 200-299, keepalived's default
    digest: str | None = None  # MD5 of the body, 32 hex digits (genhash's output)
    virtualhost: str | None = None

    def __post_init__(self) -> None:
        if not self.path:
            raise ValueError("url needs a path")
        for what, text in (("path", self.path), ("virtualhost", self.virtualhost or "")):
            if any(c.isspace() or ord(c) < 32 for c in text):
                raise ValueError(f"url {what} {text!r} has white space or control characters")
        if self.digest is not None:
            d = self.digest.lower()
            if len(d) != 32 or any(c not in "0123456789abcdef" for c in d):
                raise ValueError(f"digest '{self.digest}' is not 32 hex digits")
            object.__setattr__(self, "digest", d)
        for lo, hi in self.status_code:
            if not 100 <= lo <= hi <= 599:
                raise ValueError(f"invalid HTTP status range {lo}-{hi}")

    def accepts(self, code: int) -> bool:
        return any(lo <= code <= hi for lo, hi in self.status_code or DEFAULT_STATUS)


@dataclass(frozen=True)
class CheckDefaults:
    """The check keywords of a `virtual_server` or `real_server` block (None: not set)."""

    retry: int | None = None
    delay_before_retry: float | None = None
    warmup: float | None = None
    delay_loop: float | None = None
    connect_timeout: float | None = None
    alpha: bool | None = None
    virtualhost: str | None = None


@dataclass(frozen=True)
class _Common:
    """Keywords every checker has; None inherits (see the module docstring)."""

    retry: int | None = None  # `nb_get_retry` is an alias the parser maps here
    delay_before_retry: float | None = None
    warmup: float | None = None
    delay_loop: float | None = None
    alpha: bool | None = None


@dataclass(frozen=True)
class _Connection(_Common):
    connect_ip: str | None = None  # an address; a host name is resolved at each check
    connect_port: int | None = None
    bindto: str | None = None
    bind_port: int | None = None
    connect_timeout: float | None = None


@dataclass(frozen=True)
class HttpGet(_Connection):
    urls: tuple[Url, ...] = ()
    virtualhost: str | None = None
    http_protocol: str = "1.0"  # 1.0 | 1.0C (adds Connection: close) | 1.1 (idem)
    fast_recovery: bool = False

    kind: ClassVar[str] = "HTTP_GET"


@dataclass(frozen=True)
class SslGet(HttpGet):
    enable_sni: bool = False
    sni_name: str | None = None  # keepalived >= 2.2.8's keyword; implies SNI

    kind: ClassVar[str] = "SSL_GET"


@dataclass(frozen=True)
class TcpCheck(_Connection):
    kind: ClassVar[str] = "TCP_CHECK"


@dataclass(frozen=True)
class MiscCheck(_Common):
    misc_path: str = ""
    misc_timeout: float | None = None
    misc_dynamic: bool = False
    user: str | None = None
    group: str | None = None

    kind: ClassVar[str] = "MISC_CHECK"


Checker = HttpGet | SslGet | TcpCheck | MiscCheck


@dataclass(frozen=True, order=True)
class RsKey:
    """One real server of one virtual server: what events name. `vs` is
    `VirtualServer.name` ("10.0.0.100 80", "fwmark 5"); the port is as written."""

    vs: str
    ip: str
    port: int | None

    @staticmethod
    def of(vs: VirtualServer, rs: RealServer) -> RsKey:
        return RsKey(vs.name, str(rs.ip), rs.port)

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if self.port else f"[{self.ip}]"


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class Timing:
    delay_loop: float
    delay_before_retry: float
    retry: int
    warmup: float
    alpha: bool


@dataclass(frozen=True)
class ResolvedCheck:
    """One checker with every inherited value filled in."""

    checker: Checker
    timing: Timing
    target: Target | None  # None for MISC_CHECK
    bind: tuple[str, int] | None = None  # (bindto or "", bind_port or 0)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    hosts: tuple[str | None, ...] = ()  # per url: the Host header's virtualhost, or None
    sni: str | None = None
    misc_timeout: float = DEFAULT_DELAY_LOOP

    @property
    def kind(self) -> str:
        return self.checker.kind

    def __str__(self) -> str:
        if isinstance(self.checker, MiscCheck):
            return f"MISC_CHECK {self.checker.misc_path}"
        return f"{self.kind} {self.target}"


@dataclass(frozen=True)
class RsHealth:
    """What the health state needs for one real server."""

    key: RsKey
    weight: int  # the configured weight, which MISC_CHECK's misc_dynamic overrides
    checks: tuple[ResolvedCheck, ...] = field(default=())


def _pick(default: T, *values: T | None) -> T:
    """The first value that is set, else the default: keepalived's inheritance."""
    return next((v for v in values if v is not None), default)


def _seconds(value: float, what: str, where: str, *, zero: bool = True) -> float:
    if value < 0 or (not zero and value == 0):
        raise HealthConfigError(f"{where}: {what} {value:g} is out of range")
    return float(value)


def resolve(checker: Checker, rs: RealServer, vs: VirtualServer,
            rs_defaults: CheckDefaults = CheckDefaults(),
            vs_defaults: CheckDefaults = CheckDefaults()) -> ResolvedCheck:
    """Fill in `checker` from its real server, virtual server and keepalived's defaults."""
    where = f"virtual_server {vs.name}: real_server {rs.ip} {rs.port or ''}".rstrip()
    where = f"{vs.where + ': ' if vs.where else ''}{where}: {checker.kind}"
    r, v = rs_defaults, vs_defaults
    http = isinstance(checker, HttpGet)
    misc = isinstance(checker, MiscCheck)
    delay_loop = _seconds(_pick(DEFAULT_DELAY_LOOP, checker.delay_loop, r.delay_loop,
                                v.delay_loop), "delay_loop", where, zero=False)
    retry = _pick(0 if misc else 1, checker.retry, r.retry, v.retry)
    if retry < 0:
        raise HealthConfigError(f"{where}: retry {retry} is negative")
    timing = Timing(
        delay_loop=delay_loop,
        delay_before_retry=_seconds(_pick(3.0 if http else 1.0, checker.delay_before_retry,
                                          r.delay_before_retry, v.delay_before_retry),
                                    "delay_before_retry", where),
        retry=retry,
        warmup=_seconds(_pick(delay_loop, checker.warmup, r.warmup, v.warmup), "warmup", where),
        alpha=_pick(False, checker.alpha, r.alpha, v.alpha),
    )
    if isinstance(checker, MiscCheck):
        if not checker.misc_path:
            raise HealthConfigError(f"{where}: no misc_path")
        timeout = _pick(DEFAULT_DELAY_LOOP, checker.misc_timeout, v.delay_loop)
        return ResolvedCheck(checker, timing, None,
                             misc_timeout=_seconds(timeout, "misc_timeout", where, zero=False))
    target = Target(checker.connect_ip or str(rs.ip), _check_port(checker, rs, vs, where))
    bind = None
    if checker.bindto is not None or checker.bind_port is not None:
        bind = (checker.bindto or "", checker.bind_port or 0)
        if checker.bindto and _family(checker.bindto) not in (None, _family(target.host)):
            raise HealthConfigError(f"{where}: bindto {checker.bindto} and the check target "
                                    f"{target.host} are of different address families")
    connect_timeout = _seconds(_pick(DEFAULT_CONNECT_TIMEOUT, checker.connect_timeout,
                                     r.connect_timeout, v.connect_timeout),
                               "connect_timeout", where, zero=False)
    if not isinstance(checker, HttpGet):
        return ResolvedCheck(checker, timing, target, bind, connect_timeout)
    if not checker.urls:
        raise HealthConfigError(f"{where}: no url with a path (keepalived 2.2.7 crashes on it)")
    if checker.http_protocol not in HTTP_PROTOCOLS:
        raise HealthConfigError(f"{where}: http_protocol '{checker.http_protocol}' is not one "
                                f"of {', '.join(HTTP_PROTOCOLS)}")
    vhost = _pick(None, checker.virtualhost, r.virtualhost, v.virtualhost)
    hosts = tuple(_pick(vhost, u.virtualhost) for u in checker.urls)
    sni = None
    if isinstance(checker, SslGet) and (checker.enable_sni or checker.sni_name):
        # The Host chain (url, checker, real server, virtual server), so SNI and Host agree.
        sni = checker.sni_name or hosts[0]
    return ResolvedCheck(checker, timing, target, bind, connect_timeout, hosts, sni)


def _family(addr: str) -> int | None:
    try:
        return ip_address(addr).version
    except ValueError:
        return None  # a name: its family is known once resolved


def _check_port(checker: HttpGet | TcpCheck, rs: RealServer, vs: VirtualServer,
                where: str) -> int:
    port = _pick(None, checker.connect_port, rs.port or None,
                 vs.port if vs.fwmark is None and vs.port else None)
    if port is None:
        why = "a fwmark service" if vs.fwmark is not None else "a port-0 service"
        raise HealthConfigError(
            f"{where}: no port to check: the real server has no port in {why} and the checker "
            "has no connect_port (IPVS does not need one there, but a health check does: "
            "give the real server its port, or set connect_port)")
    if not 1 <= port <= 65535:
        raise HealthConfigError(f"{where}: check port {port} is out of range")
    return port


def resolve_real_server(vs: VirtualServer, rs: RealServer, checkers: tuple[Checker, ...],
                        rs_defaults: CheckDefaults = CheckDefaults(),
                        vs_defaults: CheckDefaults = CheckDefaults()) -> RsHealth:
    """All checkers of one real server, resolved; its configured weight (rs, else vs)."""
    weight = rs.weight if rs.weight is not None else vs.weight
    return RsHealth(RsKey.of(vs, rs), weight,
                    tuple(resolve(c, rs, vs, rs_defaults, vs_defaults) for c in checkers))
