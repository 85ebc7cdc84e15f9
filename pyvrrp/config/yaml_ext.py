"""YAML sections for what the keepalived.conf front end added to the model, so that
`pyvrrp convert --to yaml` loses nothing:

    vrrp_sync_group:
      G1: {group: [VI_1, VI_2], notify_master: /x.sh, track_script: [chk weight 10]}
    virtual_server:                   # ipvsctl's section (ipvsctl/config.py), read by it
      10.0.0.100 80: {lb_algo: rr, lb_kind: DR, real_server: {10.0.0.10 80: {weight: 1}}}
    unsupported:                      # keepalived.conf statements kept, not run by pyvrrp
      vrrp_instance VI_1: [use_vmac vrrp50]
      top:
        - virtual_server 10.0.0.100 80:
            - delay_loop 3

An `unsupported` entry is a keepalived.conf line, words quoted as keepalived quotes them;
a statement with a `{ }` block is a one-key mapping from its line to its block's entries.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from ipvsctl.config import ConfigError as IpvsConfigError
from ipvsctl.config import parse_virtual_servers
from ipvsctl.model import VirtualServer
from pyvrrp.config.diagnostics import ConfigError, Diagnostic
from pyvrrp.config.lexer import Text, split_words
from pyvrrp.config.model import Notify, Pos, RawStatement, VrrpSyncGroup

if TYPE_CHECKING:
    from pyvrrp.config.yaml_loader import _Reader

Node = yaml.Node
_GROUP_NOTIFY = {"notify_master": "master", "notify_backup": "backup",
                 "notify_fault": "fault", "notify_stop": "stop", "notify": "any"}


def sync_groups(r: _Reader, node: Node) -> tuple[VrrpSyncGroup, ...]:
    from pyvrrp.config.yaml_loader import _tracks

    out = []
    for name, body in r.mapping("vrrp_sync_group", node):
        values: dict[str, Any] = {}
        notify: dict[str, str] = {}
        for k, v in r.mapping(name.value, body):
            key = k.value
            if key == "group":
                values["group"] = tuple(r.text(key, i) for i in r.sequence(key, v))
            elif key in ("track_interface", "track_script"):
                values[key] = _tracks(r, key, v, 253)
            elif key in ("track_file", "track_process"):
                values[key] = _tracks(r, key, v, 254)
            elif key in _GROUP_NOTIFY:
                notify[_GROUP_NOTIFY[key]] = r.text(key, v)
            elif key in ("smtp_alert", "sync_group_tracking_weight",
                         "notify_priority_changes"):
                values[key] = r.boolean(key, v)
            else:
                raise r.fail(k, f"unknown keyword '{key}' in vrrp_sync_group {name.value}")
        if not values.get("group"):
            raise r.fail(name, f"vrrp_sync_group {name.value} needs 'group'")
        out.append(VrrpSyncGroup(name=str(name.value), pos=r.pos(name),
                                 notify=Notify(**notify), **values))
    return tuple(out)


def unsupported(r: _Reader, node: Node) -> tuple[RawStatement, ...]:
    out: list[RawStatement] = []
    for where, items in r.mapping("unsupported", node):
        context = () if where.value == "top" else tuple(str(where.value).split())
        for item in r.sequence(str(where.value), items):
            out.append(_statement(r, item, context))
    return tuple(out)


def _statement(r: _Reader, node: Node, context: tuple[str, ...]) -> RawStatement:
    block: tuple[RawStatement, ...] | None = None
    if isinstance(node, yaml.MappingNode):
        if len(node.value) != 1:
            raise r.fail(node, "a block statement is a mapping with one key: its line")
        key, body = node.value[0]
        line = r.text("unsupported", key)
        block = tuple(_statement(r, c, ()) for c in r.sequence(line, body))
        at = key
    else:
        line = r.text("unsupported", node)
        at = node
    words, unmatched = split_words(Text.of(line))
    if unmatched is not None or not words:
        raise r.fail(at, f"'{line}' is not a keepalived.conf statement")
    return RawStatement(words[0][0], tuple(w for w, _ in words[1:]), block, context, r.pos(at))


def virtual_servers(r: _Reader, node: Node) -> tuple[VirtualServer, ...]:
    """ipvsctl's `virtual_server:` section; its messages join this file's."""
    try:
        loaded = parse_virtual_servers(node, r.source)
    except IpvsConfigError as err:
        raise ConfigError([*r.diags, *(_diagnostic(line) for line in err.lines)]) from None
    r.diags += [_diagnostic(line) for line in loaded.warnings]
    return loaded.virtual_servers


def _diagnostic(line: str) -> Diagnostic:
    """ipvsctl's `file:line:col: severity: message` text back into a Diagnostic."""
    m = re.match(r"(.*):(\d+):(\d+): (error|warning|note): (.*)", line, re.S)
    if m is None:
        return Diagnostic(Pos("<virtual_server>", 1, 1), "error", line)
    return Diagnostic(Pos(m[1], int(m[2]), int(m[3])), m[4], m[5])


SECTIONS = {"vrrp_sync_group": sync_groups, "unsupported": unsupported,
            "virtual_server": virtual_servers}
