"""Real nginx on lab hosts: real servers whose page names them, and reverse proxies.

Each instance has its own prefix, config, pid file and logs in the lab's work directory
and runs as a plain daemon (no systemd). Workers run as root so they can read the lab's
private temporary directory.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from pyvrrp.lab.topology import Lab, wait_for

NGINX = "/usr/sbin/nginx"


class Nginx:
    def __init__(self, lab: Lab, host: str, *, page: str | None = None,
                 upstreams: list[str] | None = None, port: int = 80) -> None:
        self.lab, self.host = lab, host
        self.dir = lab.workdir / f"{host}-nginx"
        (self.dir / "html").mkdir(parents=True, exist_ok=True)
        (self.dir / "tmp").mkdir(exist_ok=True)
        self.conf = self.dir / "nginx.conf"
        self.pidfile = self.dir / "nginx.pid"
        if page is not None:
            (self.dir / "html" / "index.html").write_text(page + "\n")
        temp = " ".join(f"{k}_temp_path {self.dir}/tmp/{k};"
                        for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        if upstreams:
            servers = " ".join(f"server {u} weight=1;" for u in upstreams)
            site = (f"upstream websrvs {{ {servers} }} server {{ listen {port}; "
                    "location / { proxy_pass http://websrvs/; } }")
        else:
            site = f"server {{ listen {port}; root {self.dir}/html; index index.html; }}"
        self.conf.write_text(
            f"user root; worker_processes 1; pid {self.pidfile}; error_log {self.dir}/error.log;"
            "\nevents { worker_connections 256; }\n"
            f"http {{ access_log off; {temp} {site} }}\n")

    def command(self) -> list[str]:
        """How to start it; also what the self-healing check script runs."""
        return [NGINX, "-c", str(self.conf), "-p", str(self.dir), "-e", f"{self.dir}/error.log"]

    def start(self) -> Nginx:
        self.lab.run(self.host, *self.command())
        if not wait_for(self.running, 5):
            raise RuntimeError(f"nginx on {self.host} did not start: "
                               + (self.dir / "error.log").read_text(errors="replace"))
        return self

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """Crash it: SIGKILL the master and its workers (what `systemctl stop` looks like
        to a check script, without a clean shutdown)."""
        pid = self.pid()
        if pid is None:
            return
        workers = _children(pid)
        # The master first, or it would respawn the workers we kill.
        for victim in (pid, *workers):
            try:
                os.kill(victim, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None and self.running():
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not self.running(), 5)

    def check_script(self, heal: bool = False) -> Path:
        """The seed's check_nginx.sh, for one namespace.

        The seed uses `killall -0 nginx`; network namespaces share one PID namespace, so
        that would see every lab host's nginx. The pid file is this host's nginx.
        """
        path = self.dir / ("check_nginx_heal.sh" if heal else "check_nginx.sh")
        test = f'kill -0 "$(cat {self.pidfile} 2>/dev/null)" 2>/dev/null'
        body = f"{test} || {' '.join(self.command())}" if heal else test
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
        return path


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


class ClientLoop:
    """The seed's `while true; do curl 10.0.0.100; sleep 0.5; done`, bounded in count and
    time, running in the background on a lab host. Each line of `results()` is a page body
    or FAIL (refused, timed out, or an HTTP error such as nginx's 502)."""

    def __init__(self, lab: Lab, host: str, url: str, count: int, interval: float = 0.1,
                 timeout: float = 1.0) -> None:
        self.out = lab.workdir / f"{host}-curl-{time.monotonic_ns()}.log"
        script = (f"for i in $(seq {count}); do curl -sf -m {timeout:g} {url} || echo FAIL; "
                  f"sleep {interval:g}; done")
        self.proc = lab.popen(host, ["sh", "-c", script], self.out)
        self.budget = count * (interval + timeout) + 10

    def wait(self) -> list[str]:
        self.proc.wait(self.budget)
        return self.results()

    def results(self) -> list[str]:
        text = self.out.read_text(errors="replace") if self.out.exists() else ""
        return [line.strip() for line in text.splitlines() if line.strip()]
