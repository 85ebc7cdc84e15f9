"""Start VRRP speakers (pyvrrp or keepalived) on lab hosts with the seed's settings.

Used by `pyvrrp lab`, the netns tests and the failover benchmark, so all three run the
very same configs. Every process gets its own config, pid and log file in the lab's
work directory: no systemd, nothing under /etc.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pyvrrp.lab.topology import Lab, wait_for

VIP = "10.0.0.100"
GROUP = "233.6.6.6"


@dataclass
class Instance:
    """The seed's VRRP instance (VRID 50, advert_int 1, PASS 1111, VIP 10.0.0.100/24)."""

    priority: int = 100
    state: str = "BACKUP"
    vrid: int = 50
    advert_int: int = 1
    auth_pass: str | None = "1111"
    nopreempt: bool = False
    preempt_delay: float = 0
    garp_master_delay: float | None = None
    vips: list[str] = field(default_factory=lambda: [f"{VIP}/24 dev eth0 label eth0:1"])
    router_id: str = "node"
    group: str = GROUP
    unicast_src_ip: str | None = None
    unicast_peers: list[str] = field(default_factory=list)
    # vrrp_script blocks by name (keepalived keywords -> values) and what the instance tracks
    scripts: dict[str, dict[str, Any]] = field(default_factory=dict)
    track_script: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # more instance keywords
    top: dict[str, Any] = field(default_factory=dict)  # more top-level blocks (YAML form)
    global_extra: dict[str, Any] = field(default_factory=dict)  # more global_defs keywords

    def yaml_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "state": self.state, "interface": "eth0", "virtual_router_id": self.vrid,
            "priority": self.priority, "advert_int": self.advert_int,
            "virtual_ipaddress": list(self.vips),
        }
        if self.auth_pass is not None:
            body["authentication"] = {"auth_type": "PASS", "auth_pass": self.auth_pass}
        if self.nopreempt:
            body["nopreempt"] = True
        if self.preempt_delay:
            body["preempt_delay"] = self.preempt_delay
        if self.garp_master_delay is not None:
            body["garp_master_delay"] = self.garp_master_delay
        if self.unicast_peers:
            body["unicast_src_ip"] = self.unicast_src_ip
            body["unicast_peer"] = list(self.unicast_peers)
        if self.track_script:
            body["track_script"] = list(self.track_script)
        body.update(self.extra)
        doc: dict[str, Any] = {"global_defs": {"router_id": self.router_id,
                                               "vrrp_mcast_group4": self.group,
                                               **self.global_extra}}
        if self.scripts:
            doc["vrrp_script"] = {k: dict(v) for k, v in self.scripts.items()}
        doc.update(self.top)
        doc["vrrp_instance"] = {"VI_1": body}
        return doc

    def keepalived_conf(self) -> str:
        lines = ["global_defs {", f"    router_id {self.router_id}",
                 f"    vrrp_mcast_group4 {self.group}", "}"]
        for name, kw in self.scripts.items():
            lines += [f"vrrp_script {name} {{",
                      *(f'    {k} "{v}"' if k == "script" else f"    {k} {v}"
                        for k, v in kw.items()), "}"]
        lines += ["vrrp_instance VI_1 {",
                 f"    state {self.state}", "    interface eth0",
                 f"    virtual_router_id {self.vrid}", f"    priority {self.priority}",
                 f"    advert_int {self.advert_int}"]
        if self.nopreempt:
            lines.append("    nopreempt")
        if self.preempt_delay:
            lines.append(f"    preempt_delay {self.preempt_delay:g}")
        if self.garp_master_delay is not None:
            lines.append(f"    garp_master_delay {self.garp_master_delay:g}")
        if self.unicast_peers:
            lines += [f"    unicast_src_ip {self.unicast_src_ip}", "    unicast_peer {",
                      *(f"        {p}" for p in self.unicast_peers), "    }"]
        if self.track_script:
            lines += ["    track_script {", *(f"        {t}" for t in self.track_script), "    }"]
        for k, v in self.extra.items():
            lines.append(f"    {k} {v}")
        if self.auth_pass is not None:
            lines += ["    authentication {", "        auth_type PASS",
                      f"        auth_pass {self.auth_pass}", "    }"]
        lines += ["    virtual_ipaddress {", *(f"        {v}" for v in self.vips), "    }", "}"]
        return "\n".join(lines) + "\n"


class Speaker:
    """One running VRRP daemon on a lab host."""

    def __init__(self, lab: Lab, host: str, kind: str, inst: Instance) -> None:
        self.lab, self.host, self.kind, self.inst = lab, host, kind, inst
        d = lab.workdir / f"{host}-{kind}"
        d.mkdir(exist_ok=True)
        self.dir = d
        self.log = d / "log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Speaker:
        if self.kind == "pyvrrp":
            cfg = self.dir / "node.yaml"
            cfg.write_text(yaml.safe_dump(self.inst.yaml_dict(), sort_keys=False))
            argv = [sys.executable, "-m", "pyvrrp", "run", str(cfg)]
        else:
            cfg = self.dir / "keepalived.conf"
            cfg.write_text(self.inst.keepalived_conf())
            argv = ["keepalived", "-n", "-l", "-D", "-G", "-P", "-f", str(cfg),
                    "-p", str(self.dir / "keepalived.pid"), "-r", str(self.dir / "vrrp.pid")]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = self.lab.popen(self.host, argv, self.log, env=env)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """Graceful stop (SIGTERM), as a user's `systemctl stop` would."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_log(self, pattern: str, timeout: float) -> bool:
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log_text()) is not None, timeout)

    def holds_vip(self) -> bool:
        return any(a.startswith(VIP + "/") for a in self.lab.ipv4_addrs(self.host))


def seed_lab(workdir: str | Path | None = None) -> Lab:
    """The seed topology: node1 10.0.0.200, node2 10.0.0.201, client 10.0.0.50."""
    return Lab(workdir=workdir)
