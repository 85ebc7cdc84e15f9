"""Running configured scripts the way keepalived 2.2.7 does, safely.

Shared by notify scripts (pyvrrp/io/notify.py) and tracking scripts (vrrp_script).

- `split_command()` splits a command line like keepalived's `alloc_strvec_quoted_escaped()`:
  whitespace separates words, '...' and "..." group, backslash escapes work everywhere.
- `check_script()` is keepalived's `check_script_secure()` plus its user resolution: find the
  file (PATH search for a bare name), resolve symlinks, check the user may execute it, and,
  when it would run as root, that no non-root user could change it.
- `ScriptRunner` runs a checked script, as its user, through `ipvsctl.process` (shared with
  ipvsctl's scripts): no shell, its own session (so one killpg() reaches every child),
  output drained into a bounded tail, and a hard cap after which the whole process group
  is killed.
"""

from __future__ import annotations

import errno
import grp
import logging
import os
import pwd
import stat
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ipvsctl.process import ProcessResult, ProcessRunner
from pyvrrp.config.lexer import split_quoted_escaped
from pyvrrp.config.model import GlobalDefs

log = logging.getLogger("pyvrrp")

DEFAULT_SCRIPT_USER = "keepalived_script"  # keepalived's default when it exists



def _byte(value: int) -> str:
    """A C char from an escape: bytes >= 0x80 as surrogate escapes, so exec gets the raw
    byte back (os.fsencode), as keepalived's would."""
    value &= 0xFF
    return chr(value) if value < 0x80 else chr(0xDC00 + value)


def split_command(cmdline: str) -> list[str]:
    """Split like keepalived's alloc_strvec_quoted_escaped() (the config lexer's splitter),
    escaped bytes kept as exec will want them; ValueError if malformed."""
    words = split_quoted_escaped(cmdline, _byte)
    if words is None:
        raise ValueError(f"string '{cmdline}': missing terminating quote or escaped character")
    return words


def cmd_str(args: Sequence[str]) -> str:
    """keepalived's cmd_str(): the words single-quoted for system(), bar a leading redirect."""
    return " ".join(a if i == 0 and a[:1] in "<>" else f"'{a}'" for i, a in enumerate(args))


@dataclass(frozen=True)
class ScriptSpec:
    """A script that passed check_script(): what to execute and as whom."""

    cmdline: str
    argv: tuple[str, ...]  # argv[0] is the resolved absolute path
    uid: int
    gid: int
    user: str
    shell: bool = False  # run through /bin/sh -c (a `</path` test, or a file with no #!)
    file_test: bool = False  # keepalived's `</path` form: a shell redirect, not a script
    insecure: bool = False  # unsafe permissions, tolerated because script security is off

    def command(self, extra: Sequence[str] = ()) -> list[str]:
        args = [*self.argv, *extra]
        return ["/bin/sh", "-c", cmd_str(args)] if self.shell else args

    def popen_ids(self) -> dict[str, Any]:
        """subprocess keywords for the user change; keepalived always does setgroups([gid])."""
        if os.geteuid() != 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": [self.gid]}

    def __str__(self) -> str:
        return " ".join(self.argv)


@dataclass(frozen=True)
class ScriptError:
    """Why check_script() refused a script (keepalived logs these and disables the script)."""

    cmdline: str
    message: str

    def __str__(self) -> str:
        return self.message


def _lookup_user(user: str, group: str | None) -> tuple[int, int, str] | str:
    """(uid, gid, name), or keepalived's complaint."""
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return f"Script user '{user}' does not exist"
    gid = pw.pw_gid
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            return f"Script group '{group}' does not exist"
    return pw.pw_uid, gid, user


def _our_ids() -> tuple[int, int, str]:
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return uid, os.getegid(), name


def resolve_user(gd: GlobalDefs, user: str | None,
                 group: str | None) -> tuple[int, int, str] | str:
    """The uid, gid and name a script runs as, as keepalived picks them, or why not.

    An explicit user wins; then global script_user; then `keepalived_script` if it exists;
    then our own ids. keepalived 2.2.7's binary refuses that last fallback when
    enable_script_security is set ("Unable to set default user keepalived_script for
    script"): measured, and followed.
    """
    if user is not None:
        return _lookup_user(user, group)
    if gd.script_user is not None:
        got = _lookup_user(gd.script_user, gd.script_group)
        return got if not isinstance(got, str) else f"Error setting global script uid/gid: {got}"
    got = _lookup_user(DEFAULT_SCRIPT_USER, None)
    if not isinstance(got, str):
        return got
    if gd.enable_script_security:
        return f"Unable to set default user {DEFAULT_SCRIPT_USER} for script"
    return _our_ids()


def _is_executable(st: os.stat_result, uid: int, gid: int) -> bool:
    """keepalived's is_executable(): only the bits, only the script's primary group."""
    mode = st.st_mode
    if uid == 0:
        return bool(mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    if uid == st.st_uid:
        return bool(mode & stat.S_IXUSR)
    return bool(mode & (stat.S_IXGRP if gid == st.st_gid else stat.S_IXOTH))


def _find_in_path(name: str, uid: int, gid: int) -> str | int:
    """glibc's execvp() search, as keepalived's find_path() does it; the path or an errno."""
    path = os.environ.get("PATH") or os.confstr("CS_PATH") or "/bin:/usr/bin"
    denied = False
    for d in path.split(":"):
        cand = os.path.join(d, name) if d else name
        try:
            st = os.stat(cand)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and _is_executable(st, uid, gid):
            return cand
        denied = True
    return errno.EACCES if denied else errno.ENOENT


def _unsafe(path: str) -> str | None:
    """keepalived's check_security(): the first component of `path` a non-root user could
    change (with why), or None. A sticky directory owned by root (/tmp) is fine."""
    parts = [p for p in path.split("/") if p]
    prefixes = ["/"] + ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]
    for i, comp in enumerate(prefixes):
        last = i == len(prefixes) - 1
        try:
            st = os.lstat(comp)
        except OSError as err:
            return f"{comp} cannot be checked ({err.strerror})"
        mode = st.st_mode
        if (not last and not stat.S_ISDIR(mode)) or (
                last and not (stat.S_ISREG(mode) or stat.S_ISLNK(mode))):
            return f"{comp} has the wrong file type"
        if st.st_uid != 0:
            return f"{comp} is owned by uid {st.st_uid}, not root"
        checked = (stat.S_ISDIR(mode) and not mode & stat.S_ISVTX) or stat.S_ISREG(mode)
        if checked and st.st_gid != 0 and mode & stat.S_IWGRP:
            return f"{comp} is writable by group {st.st_gid} (mode {stat.S_IMODE(mode):04o})"
        if checked and mode & stat.S_IWOTH:
            return f"{comp} is writable by others (mode {stat.S_IMODE(mode):04o})"
    return None


def _needs_shell(path: str) -> bool:
    """What keepalived asks libmagic: is this an executable (#! or ELF)? If not, it runs
    the file through system(), i.e. /bin/sh."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False  # let exec report it
    return not (head.startswith(b"#!") or head == b"\x7fELF")


def check_script(cmdline: str, gd: GlobalDefs, user: str | None = None,
                 group: str | None = None) -> ScriptSpec | ScriptError:
    """Check one configured script as keepalived 2.2.7 does at config load.

    Returns what to run, or why it is refused (the message to log; the script is then
    disabled, as in keepalived). The permission check (`_unsafe`) applies, as in
    keepalived, only to scripts that would run with uid or gid 0 or are set-id root: a
    script running as an unprivileged user can only do what that user could anyway.
    Without enable_script_security an unsafe script is logged and still run.
    """
    try:
        return _check_script(cmdline, gd, user, group)
    except OSError as err:  # a path that changed under us, an unreadable directory
        return ScriptError(cmdline, f"Script '{cmdline}' cannot be checked - {err}")


def _check_script(cmdline: str, gd: GlobalDefs, user: str | None,
                  group: str | None) -> ScriptSpec | ScriptError:
    try:
        argv = split_command(cmdline)
    except ValueError as err:
        return ScriptError(cmdline, f"Unable to parse script '{cmdline}': {err}")
    if not argv:
        return ScriptError(cmdline, "Unable to parse script: empty command")
    who = resolve_user(gd, user, group)
    if isinstance(who, str):
        return ScriptError(cmdline, f"{who}: script '{argv[0]}' disabled")
    uid, gid, name = who
    first = argv[0]
    if first.startswith("<") and first[1:].lstrip(" \t").startswith("/"):
        # `</dev/tcp/...`: a file-existence test keepalived hands to system() unchecked.
        return ScriptSpec(cmdline, tuple(argv), uid, gid, name, shell=True, file_test=True)
    our_uid, our_gid, _ = _our_ids()
    if (uid != our_uid or gid != our_gid) and our_uid != 0:
        return ScriptError(cmdline, f"Unable to set uid:gid {uid}:{gid} for script {first} "
                                    "- disabling")
    if "/" not in first:
        found = _find_in_path(first, uid, gid)
        if isinstance(found, int):
            why = "Permissions failure for" if found == errno.EACCES else "Cannot find"
            return ScriptError(cmdline, f"{why} script {first} in path - disabling")
        log.warning("WARNING - script `%s` resolved by path search to `%s`. Please specify "
                    "full path.", first, found)
        first = found
    try:
        real = os.path.realpath(first, strict=True)
    except OSError as err:
        return ScriptError(cmdline, f"Script {first} cannot be accessed - {err.strerror}")
    # Keep the name it was called by (some programs look at argv[0]) if that names the same
    # file in the resolved directory, as keepalived does.
    new, real_file = real, None
    if os.path.basename(real) != os.path.basename(first):
        cand = os.path.join(os.path.dirname(real), os.path.basename(first))
        try:
            same = os.path.samefile(cand, real)
        except OSError:
            same = False
        if same:
            new, real_file = cand, real
    if uid != 0:
        # keepalived resolves the path with the script's euid: every directory must be
        # searchable by that user.
        d = os.path.dirname(real)
        while True:
            if not _is_executable(os.stat(d), uid, gid):
                return ScriptError(cmdline, f"Script {new} cannot be accessed - Permission "
                                            f"denied (for uid:gid {uid}:{gid} at {d})")
            if d == "/":
                break
            d = os.path.dirname(d)
    st = os.stat(real_file or new)
    if not _is_executable(st, uid, gid):
        return ScriptError(cmdline, f"WARNING - script '{new}' is not executable for uid:gid "
                                    f"{uid}:{gid} - disabling.")
    shell = _needs_shell(real_file or new)
    if shell:
        log.warning("Please add a #! shebang to script %s", new)
    argv[0] = new
    setid_root = (st.st_uid == 0 and st.st_mode & stat.S_IXUSR and st.st_mode & stat.S_ISUID) \
        or (st.st_gid == 0 and st.st_mode & stat.S_IXGRP and st.st_mode & stat.S_ISGID)
    insecure = False
    if uid == 0 or gid == 0 or setid_root:
        for p in [new] if real_file is None else [new, real_file]:
            bad = _unsafe(p)
            if bad is None:
                continue
            if gd.enable_script_security:
                return ScriptError(cmdline, f"Unsafe permissions found for script '{p}' - "
                                            f"disabling: {bad}")
            log.warning("Unsafe permissions found for script '%s': %s", p, bad)
            insecure = True
    return ScriptSpec(cmdline, tuple(argv), uid, gid, name, shell=shell, insecure=insecure)


# One "SECURITY VIOLATION" report per loaded config (keepalived logs it once per load),
# however many instances and trackers check their scripts against it.
_reported: weakref.WeakValueDictionary[int, GlobalDefs] = weakref.WeakValueDictionary()
_reported_insecure: set[int] = set()


def report_script_security(gd: GlobalDefs, specs: Iterable[ScriptSpec]) -> None:
    """Log keepalived's warning when scripts run without enable_script_security.

    Call it with the scripts each component checked; it logs at most once per `gd` object
    (once more if a later call is the first to see an insecure script).
    """
    specs = [s for s in specs if not s.file_test]
    if gd.enable_script_security or not specs:
        return
    insecure = any(s.insecure for s in specs)
    key = id(gd)
    if _reported.get(key) is gd and (key in _reported_insecure or not insecure):
        return
    if _reported.get(key) is not gd:
        _reported_insecure.discard(key)
    _reported[key] = gd
    if insecure:
        _reported_insecure.add(key)
    log.warning("SECURITY VIOLATION - scripts are being executed but script_security not "
                "enabled.%s", " There are insecure scripts." if insecure else "")


# -- running: ipvsctl.process runs them --------------------------------------------------------

ScriptResult = ProcessResult


class ScriptRunner(ProcessRunner):
    """Runs checked scripts (ScriptSpec: the user, and the shell form when needed)."""

    async def run(self, spec: ScriptSpec, extra: Sequence[str] = (),
                  timeout: float | None = None) -> ProcessResult:
        return await self.exec(spec.command(extra), spec.popen_ids(), timeout)
