"""keepalived's `virtual_ipaddress` line syntax, shared by both front ends."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface

from pyvrrp.config.model import VirtualIP

SCOPES = ("site", "link", "host", "nowhere", "global")
_VALUED = ("dev", "label", "scope", "brd", "broadcast")


def parse_vip(text: str) -> VirtualIP:
    """Parse `<IP>[/<MASK>] [brd IP] [dev IF] [scope S] [label L]`; raise ValueError."""
    words = text.split()
    if not words:
        raise ValueError("empty virtual_ipaddress entry")
    try:
        iface = IPv4Interface(words[0])
    except ValueError:
        raise ValueError(f"'{words[0]}' is not an IPv4 address[/prefix]") from None
    opts: dict[str, str] = {}
    rest = words[1:]
    while rest:
        key = rest.pop(0)
        if key not in _VALUED:
            raise ValueError(f"unknown virtual_ipaddress option '{key}'")
        if not rest:
            raise ValueError(f"'{key}' needs a value")
        opts["brd" if key == "broadcast" else key] = rest.pop(0)
    scope = opts.get("scope", "global")
    if scope not in SCOPES:
        raise ValueError(f"scope '{scope}' is not one of {', '.join(SCOPES)}")
    label = opts.get("label")
    dev = opts.get("dev")
    if label is not None and dev is not None and not label.startswith(dev):
        # keepalived: the label should be <realdev>:<anytext>; the kernel insists on it.
        raise ValueError(f"label '{label}' must start with the device name '{dev}'")
    try:
        brd = IPv4Address(opts["brd"]) if "brd" in opts else None
    except ValueError:
        raise ValueError(f"brd '{opts['brd']}' is not an IPv4 address") from None
    return VirtualIP(iface.ip, iface.network.prefixlen, dev, label, scope, brd)


def format_vip(vip: VirtualIP) -> str:
    parts = [f"{vip.address}/{vip.prefixlen}"]
    if vip.brd is not None:
        parts += ["brd", str(vip.brd)]
    if vip.dev:
        parts += ["dev", vip.dev]
    if vip.scope != "global":
        parts += ["scope", vip.scope]
    if vip.label:
        parts += ["label", vip.label]
    return " ".join(parts)
