"""Facts about the running kernel that the IPVS tests adapt to."""

from __future__ import annotations

import glob
import os

from ipvsctl.model import SCHEDULERS


def kernel_schedulers() -> list[str]:
    """The schedulers this kernel ships (twos came in 6.2; Debian 12's 6.1 lacks it)."""
    mods = glob.glob(f"/lib/modules/{os.uname().release}/kernel/net/netfilter/ipvs/ip_vs_*")
    names = {os.path.basename(m).split(".")[0].removeprefix("ip_vs_") for m in mods}
    return [s for s in SCHEDULERS if s in names] or ["rr", "wlc"]  # a built-in IPVS
