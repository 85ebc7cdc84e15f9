"""fwmark rules (ours): mark traffic to a fwmark service's VIP and ports, with nftables.

The seed marks packets by hand (`iptables -t mangle -A PREROUTING -d VIP -p tcp -m
multiport --dports 80,443 -j MARK --set-mark 50`). A virtual server with `fwmark_rules`
gets the same from ipvsctl, in a table of its own (`inet ipvsctl`), so a user's iptables or
nftables rules are never read, flushed or reordered: both may set the same mark. The whole
table is replaced in one `nft -f` transaction (create-if-missing, delete, re-create), so
there is no moment without the rules, and it goes away when the last rule set does.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Iterable

from ipvsctl.model import VirtualServer

log = logging.getLogger("ipvsctl")
TABLE = "ipvsctl"
NFT_TIMEOUT = 20.0


def ruleset(virtual_servers: Iterable[VirtualServer]) -> str:
    """The table's text; "" when no virtual server asks for rules."""
    rules = []
    for vs in virtual_servers:
        fr = vs.fwmark_rules
        if fr is None or vs.fwmark is None:
            continue
        ports = ", ".join(str(p) for p in fr.ports)
        for vip in fr.vip:
            family = "ip" if vip.version == 4 else "ip6"
            rules.append(f"    {family} daddr {vip} {fr.protocol} dport {{ {ports} }} "
                         f"meta mark set {vs.fwmark} comment \"{vs.where or vs.name}\"")
    if not rules:
        return ""
    # priority mangle (-150): before IPVS, which looks at the mark in LOCAL_IN.
    return (f"table inet {TABLE} {{\n  chain prerouting {{\n"
            "    type filter hook prerouting priority mangle; policy accept;\n"
            + "\n".join(rules) + "\n  }\n}\n")


def script(text: str) -> str:
    """One atomic transaction that leaves exactly `text` (or no table at all)."""
    return f"table inet {TABLE} {{}}\ndelete table inet {TABLE}\n{text}"


class NftMarks:
    """Keeps the `inet ipvsctl` table equal to the config's fwmark rules."""

    def __init__(self, netns: str | None = None) -> None:
        self.netns = netns
        self.current: str | None = None  # what we last installed; None: not known

    def _nft(self, text: str) -> str | None:
        nft = shutil.which("nft")
        if nft is None:
            return "nft is not installed (apt install nftables)"
        argv = [nft, "-f", "-"]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        try:
            proc = subprocess.run(argv, input=text, capture_output=True, text=True,
                                  timeout=NFT_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as err:
            return str(err)
        return proc.stderr.strip() or f"exit {proc.returncode}" if proc.returncode else None

    def apply(self, virtual_servers: Iterable[VirtualServer]) -> bool:
        text = ruleset(virtual_servers)
        if text == self.current or (not text and self.current is None):
            return True  # nothing asked and nothing of ours known: leave nft alone
        error = self._nft(script(text))
        if error:
            log.error("fwmark rules: nft failed: %s", error)
            return False
        log.info("fwmark rules: %s", "installed table inet ipvsctl:\n" + text.rstrip()
                 if text else "removed table inet ipvsctl")
        self.current = text
        return True

    def remove(self) -> None:
        if self.current:
            self.apply(())
