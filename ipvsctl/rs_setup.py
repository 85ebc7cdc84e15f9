"""`ipvsctl rs-setup --vip VIP start|stop`: prepare an LVS-DR real server.

What the seed's dr_vip_conf.sh does, idempotent and reversible:
  start: net.ipv4.conf.{all,lo}.arp_ignore=1 and arp_announce=2 (the real server must not
         answer ARP for the VIP, nor use it as an ARP source), lo up, VIP/32 on lo with
         label lo:1 (the script's `ifconfig lo:1 VIP netmask 255.255.255.255`; its extra
         `route add -host` is implied by the /32 address's local route).
  stop:  the VIP off lo (if start added it), and when no VIP set up by us is left, the
         four sysctls back to the values they had before the first start.
The values found before `start` live in a state file per network namespace
(/run/ipvsctl/rs-setup-<netns inode>.json), so a second `start` does not record the
modified values, and `stop` without a `start` changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
from ipaddress import ip_address
from pathlib import Path

STATE_DIR = Path("/run/ipvsctl")
SYSCTLS = [(dev, key, value) for dev in ("all", "lo")
           for key, value in (("arp_ignore", "1"), ("arp_announce", "2"))]


def _sysctl_path(dev: str, key: str) -> Path:
    return Path(f"/proc/sys/net/ipv4/conf/{dev}/{key}")


def default_state_path() -> Path:
    return STATE_DIR / f"rs-setup-{os.stat('/proc/self/ns/net').st_ino}.json"


def _ip(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=10)


def _has_vip(vip: str) -> bool:
    out = _ip("-o", "addr", "show", "dev", "lo").stdout
    return any(f" {vip}/32 " in line for line in out.splitlines())


def _lo_up() -> bool:
    return "UP" in _ip("-o", "link", "show", "dev", "lo").stdout.split(">")[0]


class RsSetupError(Exception):
    pass


def start(vip: str, label: str = "lo:1", state_path: Path | None = None) -> list[str]:
    """Returns what it changed (empty when all was already in place)."""
    ip_address(vip)  # ValueError for a bad address
    if ip_address(vip).version != 4:
        raise RsSetupError("rs-setup handles IPv4 VIPs (the arp_* sysctls are IPv4's)")
    path = state_path or default_state_path()
    state = json.loads(path.read_text()) if path.exists() else {}
    if "sysctl" not in state:  # the values from before the first start, kept once
        state["sysctl"] = {f"{d}.{k}": _sysctl_path(d, k).read_text().strip()
                           for d, k, _ in SYSCTLS}
        state["lo_up"] = _lo_up()
        state["vips"] = {}
    done = []
    for dev, key, value in SYSCTLS:
        p = _sysctl_path(dev, key)
        if p.read_text().strip() != value:
            p.write_text(value)
            done.append(f"net.ipv4.conf.{dev}.{key}={value}")
    if not _lo_up():
        _check(_ip("link", "set", "lo", "up"))
        done.append("lo up")
    if not _has_vip(vip):
        _check(_ip("addr", "add", f"{vip}/32", "dev", "lo", "label", label))
        state["vips"][vip] = {"added": True, "label": label}
        done.append(f"{vip}/32 on lo label {label}")
    else:
        state["vips"].setdefault(vip, {"added": False, "label": label})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)
    return done


def stop(vip: str, state_path: Path | None = None) -> list[str]:
    ip_address(vip)
    path = state_path or default_state_path()
    if not path.exists():
        return []
    state = json.loads(path.read_text())
    done = []
    entry = state.get("vips", {}).pop(vip, None)
    if entry and entry.get("added") and _has_vip(vip):
        _check(_ip("addr", "del", f"{vip}/32", "dev", "lo"))
        done.append(f"{vip}/32 removed from lo")
    if state.get("vips"):  # other VIPs still need the ARP settings
        path.write_text(json.dumps(state, indent=1))
        return done
    for name, value in state.get("sysctl", {}).items():
        dev, key = name.split(".")
        p = _sysctl_path(dev, key)
        if p.read_text().strip() != value:
            p.write_text(value)
            done.append(f"net.ipv4.conf.{dev}.{key}={value}")
    if state.get("lo_up") is False and _lo_up():
        _check(_ip("link", "set", "lo", "down"))
        done.append("lo down")
    path.unlink()
    return done


def _check(proc: subprocess.CompletedProcess[str]) -> None:
    if proc.returncode != 0:
        raise RsSetupError(f"{' '.join(proc.args)}: {proc.stderr.strip()}")
