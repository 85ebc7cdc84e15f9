"""`pyvrrp run` with virtual servers: a small parent over two children, as keepalived does.

The VRRP child (`pyvrrp run --vrrp-only CONFIG`) and the checker child (`ipvsctl run
FILE`, FILE being the config's virtual_server part rendered in ipvsctl's YAML) run as
separate processes, so a thousand health checks can never delay an advert. The parent
restarts a child that dies (after 1 s, doubling up to 30 s while it keeps dying young),
passes SIGHUP on (re-rendering the checker's file first; a config that does not load is
refused and both keep running), and on SIGTERM/SIGINT stops both and exits 0.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from pyvrrp.config.loader import load_config, load_for_reload
from pyvrrp.config.model import Config
from pyvrrp.config.parser import Options
from pyvrrp.config.render import to_yaml

log = logging.getLogger("pyvrrp.supervisor")
RESTART_MIN_GAP = 1.0
RESTART_MAX_GAP = 30.0


def render_checker_config(config: Config, path: Path) -> None:
    """Write the virtual_server part where the checker child reads it (atomically)."""
    text = to_yaml(Config(config.source, virtual_servers=config.virtual_servers))
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _option_args(options: Options) -> list[str]:
    """The command-line form of `options`, for the VRRP child to read the same config."""
    args = ["--root", str(options.root)] if options.root is not None else []
    return args + (["--config-id", options.config_id] if options.config_id else [])


class Supervisor:
    def __init__(self, config_path: str, config: Config, log_level: str,
                 options: Options | None = None) -> None:
        self.config_path = config_path
        self.options = options or Options()
        self.config = config
        self.workdir = Path(tempfile.mkdtemp(prefix="pyvrrp-"))
        self.checker_file = self.workdir / "virtual_servers.yaml"
        render_checker_config(config, self.checker_file)
        py = sys.executable
        self.commands = {
            "vrrp": [py, "-m", "pyvrrp", "run", "--vrrp-only", "--log-level", log_level,
                     *_option_args(self.options), config_path],
            "checker": [py, "-m", "ipvsctl", "run", str(self.checker_file)],
        }
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}
        self.gap = dict.fromkeys(self.commands, RESTART_MIN_GAP)
        self.stopping = False
        self.reload_requested = False

    def _spawn(self, name: str) -> None:
        self.children[name] = subprocess.Popen(self.commands[name])
        self.started[name] = time.monotonic()
        log.info("started the %s child (pid %d)", name, self.children[name].pid)

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self.reload_requested = True
        else:
            self.stopping = True

    def _reload(self) -> None:
        self.reload_requested = False
        config = load_for_reload(lambda: load_config(self.config_path, self.options), log)
        if config is None:
            return
        render_checker_config(config, self.checker_file)
        self.config = config
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGHUP)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._signal)
        for name in self.commands:
            self._spawn(name)
        try:
            while not self.stopping:
                if self.reload_requested:
                    self._reload()
                for name, child in list(self.children.items()):
                    code = child.poll()
                    if code is None:
                        continue
                    lived = time.monotonic() - self.started[name]
                    if lived < self.gap[name]:
                        continue
                    # A child that keeps dying young is retried less and less often.
                    self.gap[name] = min(RESTART_MAX_GAP, self.gap[name] * 2) \
                        if lived < 5 * self.gap[name] else RESTART_MIN_GAP
                    log.error("the %s child exited with status %s; restarting it", name, code)
                    self._spawn(name)
                time.sleep(0.1)
            log.info("Stopping")
            for child in self.children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for child in self.children.values():
                try:
                    child.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
            return 0
        finally:
            for path in (self.checker_file, self.checker_file.with_suffix(".tmp")):
                path.unlink(missing_ok=True)
            os.rmdir(self.workdir)
