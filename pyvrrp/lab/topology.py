"""A throw-away LAN of network namespaces for end-to-end tests.

Every host gets its own namespace with one veth ``eth0`` whose other end,
named after the host, is a port of bridge ``br0`` in a separate "switch"
namespace.  Nothing is ever created in the root namespace: each veth pair is
born with its ends already inside the lab's namespaces, so neither a leftover
nor a parallel run can clash with the host's own interfaces.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from itertools import count
from pathlib import Path
from types import TracebackType
from typing import Any

# Names are "pvt<pid>-<n>-<host>": the pid tells cleanup_stale() whether the
# run that made a namespace is still alive.
PREFIX = "pvt"
_STALE_RE = re.compile(rf"^{PREFIX}(\d+)-")
_lab_ids = count()

SWITCH = "switch"
DEFAULT_HOSTS: dict[str, str] = {
    "node1": "10.0.0.200/24",
    "node2": "10.0.0.201/24",
    "client": "10.0.0.50/24",
}
# Hosts name their switch port, so they must be valid interface names that
# cannot collide with what already lives in the switch namespace.
_HOST_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,14}$")
_RESERVED = {SWITCH, "br0", "lo"}

RUN_TIMEOUT = 10.0
TERM_GRACE = 3.0


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """Poll until predicate() is truthy; one last try at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _checked(["ip", *argv], check=check, timeout=RUN_TIMEOUT)


def _checked(
    argv: Sequence[str], *, check: bool, timeout: float
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        err = subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        # CalledProcessError's str() omits stderr, which is usually the only clue.
        err.add_note(f"stderr: {proc.stderr.strip()}")
        raise err
    return proc


def netns_exists(name: str) -> bool:
    return Path("/run/netns", name).exists()


def _kill_netns_pids(name: str) -> None:
    proc = _ip("netns", "pids", name, check=False)
    for pid in proc.stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _delete_netns(name: str) -> None:
    _kill_netns_pids(name)
    _ip("netns", "del", name, check=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale() -> list[str]:
    """Delete our namespaces whose creating process is gone; return their names."""
    proc = _ip("netns", "list", check=False)
    removed = []
    for line in proc.stdout.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = _STALE_RE.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _delete_netns(name)
            removed.append(name)
    return removed


class Capture:
    """tcpdump writing a pcap in one namespace; use as a context manager."""

    def __init__(self, lab: Lab, filter: str, iface: str, host: str, pcap: Path, log: Path) -> None:
        self.lab, self.filter, self.iface, self.host = lab, filter, iface, host
        self.pcap, self.log = pcap, log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Capture:
        argv = ["tcpdump", "-n", "-i", self.iface, "--immediate-mode", "-U", "-w", str(self.pcap)]
        if self.filter:
            argv.append(self.filter)
        self.proc = self.lab.popen(self.host, argv, self.log)
        # Packets sent before tcpdump says it is listening would be lost.
        if not wait_for(self._listening, timeout=5.0):
            self.stop()
            raise RuntimeError(f"tcpdump did not start: {self.log.read_text()!r}")
        return self

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"tcpdump exited: {self.log.read_text()!r}")
        return "listening on" in self.log.read_text(errors="replace")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        # SIGINT, not SIGTERM-to-group: tcpdump then flushes and closes the pcap.
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def packets(self) -> list[Any]:
        if not self.pcap.exists() or self.pcap.stat().st_size == 0:
            return []
        from scapy.utils import rdpcap  # scapy stays out of the daemon's import path

        return list(rdpcap(str(self.pcap)))


class Lab:
    """The seed LAN: bridge br0 in a switch namespace, one namespace per host.

    ``hosts`` maps extra or overriding hosts to addresses ("10.0.0.10" or
    "10.0.0.10/24"); they are merged over DEFAULT_HOSTS.  Artifacts (logs,
    pcaps) go to ``workdir``; a temporary one is made and removed if None.
    """

    def __init__(
        self, hosts: Mapping[str, str] | None = None, workdir: str | os.PathLike[str] | None = None
    ) -> None:
        merged = {**DEFAULT_HOSTS, **(hosts or {})}
        for host in merged:
            if not _HOST_RE.match(host) or host in _RESERVED:
                raise ValueError(f"bad host name {host!r}")
        self.hosts: dict[str, str] = {h: a if "/" in a else f"{a}/24" for h, a in merged.items()}
        self.tag = f"{PREFIX}{os.getpid()}-{next(_lab_ids)}"
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="pvlab-"))
        self._procs: list[subprocess.Popen[bytes]] = []
        self._made: list[str] = []
        self._captures = count()
        self._closed = False

    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def ns(self, host: str) -> str:
        if host != SWITCH and host not in self.hosts:
            raise KeyError(host)
        return f"{self.tag}-{host}"

    def _add_ns(self, host: str) -> str:
        name = self.ns(host)
        _ip("netns", "add", name)
        self._made.append(name)
        # VRRPv2 is IPv4-only; IPv6 would only add DAD/MLD noise to captures.
        self.run(
            host,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        )
        self.run(host, "ip", "link", "set", "lo", "up")
        return name

    def start(self) -> None:
        sw = self._add_ns(SWITCH)
        # Without mcast_snooping 0 the bridge stops flooding adverts to ports
        # that never joined the VRRP group, so a capture would miss them.
        self.run(SWITCH, "ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
        self.run(SWITCH, "ip", "link", "set", "br0", "up")
        for host, addr in self.hosts.items():
            hns = self._add_ns(host)
            _ip("-n", sw, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", hns)
            self.run(SWITCH, "ip", "link", "set", host, "master", "br0", "up")
            self.run(host, "ip", "addr", "add", addr, "dev", "eth0")
            self.run(host, "ip", "link", "set", "eth0", "up")
        for host in self.hosts:
            if not wait_for(lambda h=host: self._oper_up(h), timeout=5.0):
                raise RuntimeError(f"{host} eth0 did not come up")

    def _oper_up(self, host: str) -> bool:
        return bool(self._json(host, "link", "show", "dev", "eth0")[0]["operstate"] == "UP")

    def run(
        self, host: str, *argv: str, check: bool = True, timeout: float = RUN_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return _checked(["ip", "netns", "exec", self.ns(host), *argv], check=check, timeout=timeout)

    def popen(
        self,
        host: str,
        argv: Sequence[str],
        log_path: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-lived process; close() kills its whole process group."""
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", self.ns(host), *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(env) if env is not None else None,
            )
        self._procs.append(proc)
        return proc

    def capture(
        self, filter: str = "ip proto 112 or arp", iface: str = "br0", host: str = SWITCH
    ) -> Capture:
        n = next(self._captures)
        return Capture(
            self,
            filter,
            iface,
            host,
            pcap=self.workdir / f"capture{n}.pcap",
            log=self.workdir / f"capture{n}.log",
        )

    def cut_link(self, host: str) -> None:
        self.run(SWITCH, "ip", "link", "set", self._port(host), "down")

    def restore_link(self, host: str) -> None:
        self.run(SWITCH, "ip", "link", "set", self._port(host), "up")

    def _port(self, host: str) -> str:
        if host not in self.hosts:
            raise KeyError(host)
        return host

    def _json(self, host: str, *argv: str) -> list[dict[str, Any]]:
        out = self.run(host, "ip", "-j", *argv).stdout
        return json.loads(out) if out.strip() else []

    def ipv4_addrs(self, host: str, dev: str = "eth0") -> list[str]:
        return [
            f"{a['local']}/{a['prefixlen']}"
            for link in self._json(host, "-4", "addr", "show", "dev", dev)
            for a in link.get("addr_info", [])
            if a.get("family") == "inet"
        ]

    def mac(self, host: str, dev: str = "eth0") -> str:
        return str(self._json(host, "link", "show", "dev", dev)[0]["address"])

    def neigh_mac(self, host: str, ip: str) -> str | None:
        for entry in self._json(host, "-4", "neigh", "show", "to", ip):
            if entry.get("dst") == ip and "lladdr" in entry:
                return str(entry["lladdr"])
        return None

    def holders(self, ip: str) -> list[str]:
        ip = ip.split("/")[0]
        return [h for h in self.hosts if any(a.split("/")[0] == ip for a in self.ipv4_addrs(h))]

    wait_for = staticmethod(wait_for)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._stop_procs()
        finally:
            # Hosts first: deleting a host namespace also removes its veth pair.
            for name in reversed(self._made):
                _delete_netns(name)
            if self._own_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
        left = [n for n in self._made if netns_exists(n)]
        if left:
            raise RuntimeError(f"namespaces not deleted: {left}")

    def _stop_procs(self) -> None:
        live = [p for p in self._procs if p.poll() is None]
        for p in live:
            _killpg(p.pid, signal.SIGTERM)
        wait_for(lambda: all(p.poll() is not None for p in live), timeout=TERM_GRACE)
        for p in live:
            if p.poll() is None:
                _killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=5.0)
        # Stragglers of already-dead groups are caught by the per-namespace
        # sweep in close(); killing a reaped pid's group could hit a stranger.


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
