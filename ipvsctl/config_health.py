"""The health part of the `virtual_server` YAML: checker blocks, quorum, sorry server.

Keywords are keepalived's (man keepalived.conf, check_parser.c), one YAML key each:

    virtual_server:
      10.0.0.100 80:
        delay_loop: 3
        quorum: 1                     # hysteresis, quorum_up, quorum_down
        sorry_server: 127.0.0.1 80    # sorry_server_inhibit, sorry_server_lvs_method
        real_server:
          10.0.0.10 80:
            weight: 1
            notify_down: /usr/local/bin/rs-down 10.0.0.10
            HTTP_GET:                 # or a list of blocks: several checkers of one kind
              url: {path: /index.html, status_code: 200}   # or a list of urls
              connect_timeout: 1
              retry: 3                # nb_get_retry: the deprecated alias, with a warning
              delay_before_retry: 1

`fwmark_rules` is ours (see FwmarkRules in model.py). Checkers keepalived has and we do
not (DNS_CHECK, SMTP_CHECK, UDP_CHECK, PING_CHECK, FILE_CHECK, BFD_CHECK) are errors: an
unsupported checker silently skipped would leave its real server always "up".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ipvsctl.health.config import (
    Checker,
    HttpGet,
    MiscCheck,
    SslGet,
    TcpCheck,
    Url,
    status_codes,
)
from ipvsctl.model import PROTOCOLS, WEIGHT_MAX, FwmarkRules, SorryServer
from ipvsctl.yaml_nodes import Node

if TYPE_CHECKING:
    from ipvsctl.config import _Reader

UNSUPPORTED_CHECKERS = ("DNS_CHECK", "SMTP_CHECK", "UDP_CHECK", "PING_CHECK", "FILE_CHECK",
                        "BFD_CHECK")
# Accepted and ignored, with a warning: they change nothing in the IPVS table.
IGNORED = ("ha_suspend", "smtp_alert", "snmp_name", "log_all_failures")
CHECK_KINDS: dict[str, type[Checker]] = {"HTTP_GET": HttpGet, "SSL_GET": SslGet,
                                         "TCP_CHECK": TcpCheck, "MISC_CHECK": MiscCheck}


def seconds(r: _Reader, key: str, node: Node, *, positive: bool = False) -> float:
    raw = r.scalar(key, node)
    try:
        value = float(raw)
    except ValueError:
        raise r.fail(node, f"'{key}' must be a number of seconds, got '{raw}'") from None
    if value < 0 or (positive and value == 0) or value > 2**31:
        raise r.fail(node, f"'{key}' {raw} is out of range")
    return value


def command(r: _Reader, key: str, node: Node) -> str:
    """A script's command line: keepalived's words, run without a shell."""
    return r.scalar(key, node).strip()


def _check_defaults(r: _Reader) -> dict[str, Callable[[str, Node], Any]]:
    """The check keywords a virtual_server or real_server may set for its checkers."""
    return {
        "delay_loop": lambda k, v: seconds(r, k, v, positive=True),
        "delay_before_retry": lambda k, v: seconds(r, k, v),
        "connect_timeout": lambda k, v: seconds(r, k, v, positive=True),
        "warmup": lambda k, v: seconds(r, k, v),
        "retry": lambda k, v: r.integer(k, v, 0, 2**31 - 1),
        "virtualhost": r.scalar,
    }


def real_server_keyword(r: _Reader, k: Node, v: Node, values: dict[str, Any]) -> bool:
    """One health keyword of a real_server into `values`; False if it is not one."""
    key = k.value
    conv = _check_defaults(r)
    if key in conv:
        values[key] = conv[key](key, v)
    elif key in ("alpha", "inhibit_on_failure"):
        values[key] = r.boolean(key, v)
    elif key in ("notify_up", "notify_down"):
        values[key] = command(r, key, v)
    elif key in CHECK_KINDS:
        values["checkers"] = values.get("checkers", ()) + checkers(r, key, v)
    elif key in UNSUPPORTED_CHECKERS:
        raise r.fail(k, f"{key} is not supported by ipvsctl (HTTP_GET, SSL_GET, TCP_CHECK "
                     "and MISC_CHECK are)")
    elif key in IGNORED:
        r.warn(k, f"'{key}' is accepted and ignored by ipvsctl")
    else:
        return False
    return True


def virtual_server_keyword(r: _Reader, k: Node, v: Node, values: dict[str, Any]) -> bool:
    """One health keyword of a virtual_server into `values`; False if it is not one."""
    key = k.value
    conv = _check_defaults(r)
    if key in conv:
        values[key] = conv[key](key, v)
    elif key in ("alpha", "omega", "inhibit_on_failure", "sorry_server_inhibit"):
        values[key] = r.boolean(key, v)
    elif key == "quorum":
        values[key] = r.integer(key, v, 1, WEIGHT_MAX)
    elif key == "hysteresis":
        values[key] = r.integer(key, v, 0, WEIGHT_MAX)
    elif key in ("quorum_up", "quorum_down"):
        values[key] = command(r, key, v)
    elif key == "sorry_server":
        values[key] = _sorry_server(r, v)
    elif key == "sorry_server_lvs_method":
        method, tun = r.method(key, v)
        if tun:
            raise r.fail(v, "sorry_server_lvs_method takes no tunnel options in ipvsctl")
        values[key] = method
    elif key == "fwmark_rules":
        values[key] = _fwmark_rules(r, v)
    elif key in IGNORED:
        r.warn(k, f"'{key}' is accepted and ignored by ipvsctl")
    else:
        return False
    return True


def _sorry_server(r: _Reader, node: Node) -> SorryServer:
    words = r.scalar("sorry_server", node).split()
    if not 1 <= len(words) <= 2:
        raise r.fail(node, "sorry_server must be 'IP [PORT]'")
    port = None
    if len(words) == 2:
        if not words[1].isdigit() or int(words[1]) > 65535:
            raise r.fail(node, f"sorry_server port '{words[1]}' is not 0..65535")
        port = int(words[1])
    return SorryServer(r.address(node, words[0]), port)


def _fwmark_rules(r: _Reader, node: Node) -> FwmarkRules:
    vips: list[Any] = []
    ports: list[int] = []
    protocol = "tcp"
    for k, v in r.mapping("fwmark_rules", node):
        if k.value == "vip":
            items = r.one_or_many(v)
            vips += [r.address(i, r.scalar("vip", i)) for i in items]
        elif k.value == "ports":
            items = r.one_or_many(v)
            ports += [r.integer("ports", i, 1, 65535) for i in items]
        elif k.value == "protocol":
            protocol = r.scalar("protocol", v).lower()
            if protocol.upper() not in PROTOCOLS:
                raise r.fail(v, f"fwmark_rules protocol must be tcp, udp or sctp, got "
                             f"'{protocol}'")
        else:
            raise r.fail(k, f"unknown keyword '{k.value}' in fwmark_rules (vip, ports, "
                         "protocol)")
    if not vips or not ports:
        raise r.fail(node, "fwmark_rules needs a vip and at least one port")
    return FwmarkRules(tuple(vips), tuple(dict.fromkeys(ports)), protocol)


# --------------------------------------------------------------------------- checkers


def checkers(r: _Reader, kind: str, node: Node) -> tuple[Checker, ...]:
    """`HTTP_GET: {...}` or `HTTP_GET: [{...}, {...}]` -> checker configs."""
    blocks = r.one_or_many(node)
    return tuple(_checker(r, kind, b) for b in blocks)


def _checker(r: _Reader, kind: str, node: Node) -> Checker:
    cls = CHECK_KINDS[kind]
    conn = cls is not MiscCheck
    http = cls in (HttpGet, SslGet)
    values: dict[str, Any] = {}
    urls: list[Url] = []
    conv: dict[str, Callable[[str, Node], Any]] = {
        "retry": lambda k, v: r.integer(k, v, 0, 2**31 - 1),
        "delay_before_retry": lambda k, v: seconds(r, k, v),
        "warmup": lambda k, v: seconds(r, k, v),
        "delay_loop": lambda k, v: seconds(r, k, v, positive=True),
        "alpha": r.boolean,
    }
    if conn:
        conv |= {"connect_ip": r.scalar, "bindto": r.scalar,
                 "connect_port": lambda k, v: r.integer(k, v, 1, 65535),
                 "bind_port": lambda k, v: r.integer(k, v, 1, 65535),
                 "connect_timeout": lambda k, v: seconds(r, k, v, positive=True)}
    if http:
        conv |= {"virtualhost": r.scalar, "http_protocol": r.scalar,
                 "fast_recovery": r.boolean}
    if cls is SslGet:
        conv |= {"enable_sni": r.boolean, "sni_name": r.scalar}
    if cls is MiscCheck:
        conv |= {"misc_path": lambda k, v: command(r, k, v),
                 "misc_timeout": lambda k, v: seconds(r, k, v, positive=True),
                 "misc_dynamic": r.boolean}
    for k, v in r.mapping(kind, node):
        key = k.value
        if key == "nb_get_retry":  # check_http.c:486, word for word
            r.warn(k, "nb_get_retry is deprecated - please use 'retry'")
            key = "retry"
        if key in conv:
            values[key] = conv[key](key, v)
        elif key == "url" and http:
            items = r.one_or_many(v)
            urls += [_url(r, i) for i in items]
        elif key == "user" and cls is MiscCheck:
            words = r.scalar(key, v).split()
            if len(words) > 2:
                raise r.fail(v, "'user' is 'USER [GROUP]'")
            values["user"] = words[0]
            values["group"] = words[1] if len(words) == 2 else None
        else:
            raise r.fail(k, f"unknown keyword '{key}' in {kind}")
    if http:
        if not urls:
            raise r.fail(node, f"{kind} needs at least one url with a path")
        values["urls"] = tuple(urls)
    if cls is MiscCheck and not values.get("misc_path"):
        raise r.fail(node, "MISC_CHECK needs a misc_path")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        raise r.fail(node, f"{kind}: {err}") from None


def _url(r: _Reader, node: Node) -> Url:
    values: dict[str, Any] = {}
    for k, v in r.mapping("url", node):
        key = k.value
        if key == "path" or key == "digest" or key == "virtualhost":
            values[key] = r.scalar(key, v)
        elif key == "status_code":
            items = r.one_or_many(v)
            words = [w for i in items for w in r.scalar(key, i).split()]
            try:
                values[key] = status_codes(*words)
            except ValueError as err:
                raise r.fail(v, str(err)) from None
        else:
            raise r.fail(k, f"unknown keyword '{key}' in url (path, status_code, digest, "
                         "virtualhost)")
    try:
        return Url(**values)
    except (TypeError, ValueError) as err:
        raise r.fail(node, f"url: {err}") from None
