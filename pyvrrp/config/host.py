"""What `keepalived -t` looks at on the machine it runs on: interfaces, script files, users.

The front ends stay pure; `pyvrrp check` passes a Host so the same verdicts come out as
keepalived's when it checks a config on this host (or in this network namespace). Tests
pass a stub with the interfaces they want.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import stat
from pathlib import Path

ARPHRD_LOOPBACK = 772


class Host:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root
        self._interfaces: dict[str, bool] | None = None

    def interfaces(self) -> dict[str, bool]:
        """Interface name -> is it a loopback."""
        if self._interfaces is None:
            self._interfaces = {name: _is_loopback(name) for _, name in socket.if_nameindex()}
        return self._interfaces

    def interface(self, name: str) -> str | None:
        """None if `name` can carry VRRP; else why not ("missing" or "loopback")."""
        found = self.interfaces()
        if name not in found:
            return "missing"
        return "loopback" if found[name] else None

    def path(self, path: str) -> Path:
        if self.root is not None and path.startswith("/"):
            return self.root / path.lstrip("/")
        return Path(path)

    def script(self, command: str) -> Path | None:
        """The file a script command runs, if it exists (a bare name is searched in PATH)."""
        first = command.split()[0] if command.split() else ""
        if not first or first.startswith("<"):
            return None
        if "/" not in first:
            found = shutil.which(first)
            return Path(found) if found else None
        p = self.path(first)
        return p if p.is_file() else None

    def user(self, name: str) -> bool:
        try:
            pwd.getpwnam(name)
        except KeyError:
            return False
        return True

    def group(self, name: str) -> bool:
        try:
            grp.getgrnam(name)
        except KeyError:
            return False
        return True


def _is_loopback(name: str) -> bool:
    try:
        with open(f"/sys/class/net/{name}/type") as f:
            return int(f.read().strip()) == ARPHRD_LOOPBACK
    except (OSError, ValueError):
        return name == "lo"


def insecure(path: Path) -> bool:
    """keepalived's check_security(): the script or a directory above it is not root's, or
    is writable by a non-root group or by all (a directory with the sticky bit excepted)."""
    parts = path.parts
    for i in range(1, len(parts) + 1):
        try:
            st = os.lstat(os.path.join(*parts[:i]))
        except OSError:
            return True
        writable = (st.st_gid and st.st_mode & stat.S_IWGRP) or st.st_mode & stat.S_IWOTH
        sticky = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if st.st_uid or (writable and not sticky):
            return True
    return False
