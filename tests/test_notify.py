"""Notifications (pyvrrp/io/notify.py, scripts.py, smtp.py) against real things: real scripts
that record what they were given, a real FIFO read by a reader thread, a real SMTP server
(aiosmtpd) on loopback, real users and file modes. Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pwd
import select
import socket
import stat
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from ipvsctl.process import OUTPUT_KEEP
from pyvrrp.config.model import GlobalDefs, Notify, Pos, VrrpInstance
from pyvrrp.core.actions import Transition
from pyvrrp.core.state import State
from pyvrrp.io.notify import Notifier
from pyvrrp.io.scripts import ScriptError, ScriptRunner, ScriptSpec, check_script, split_command

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="needs root (file owners, user switch)")
FAST = 0.05  # transition() must return within this (it only schedules work)

RECORDER = """#!{py}
import json, os, sys
rec = dict(argv=sys.argv, env=dict(os.environ), uid=os.getuid(), gid=os.getgid(),
           groups=sorted(os.getgroups()), pid=os.getpid(), sid=os.getsid(0),
           pgid=os.getpgid(0), cwd=os.getcwd())
tmp = os.path.join({out!r}, sys.argv[1] + ".tmp")
with open(tmp, "w") as f:
    json.dump(rec, f)
os.rename(tmp, os.path.join({out!r}, sys.argv[1] + ".json"))
"""


def inst(notify: Notify | None = None, name: str = "VI_1", priority: int = 100,
         smtp_alert: bool | None = None) -> VrrpInstance:
    return VrrpInstance(name=name, interface="eth0", virtual_router_id=51,
                        pos=Pos("test.yaml", 1, 1), priority=priority,
                        notify=notify or Notify(), smtp_alert=smtp_alert)


def tr(new: State, priority: int = 100, old: State = State.BACKUP) -> Transition:
    return Transition(old, new, "test", priority)


def write_script(path: Path, text: str, mode: int = 0o755) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def recorder(dirpath: Path, out: Path) -> Path:
    return write_script(dirpath / "record.py", RECORDER.format(py=sys.executable, out=str(out)))


async def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def timed(fn: Callable[[], None]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def alive(pid: int) -> bool:
    """Running, not a zombie (PID 1 in a container may never reap an orphan)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return data.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    return d


# -- command lines ---------------------------------------------------------------------------


def test_split_command_like_keepalived() -> None:
    assert split_command('/bin/n.sh "two words" three') == ["/bin/n.sh", "two words", "three"]
    assert split_command("  a\t'b \"c'  d ") == ["a", 'b "c', "d"]
    assert split_command(r"a\ b c\tx 'q\n'") == ["a b", "c\tx", "q\n"]  # escapes in quotes
    assert split_command(r"\x41\101\cA") == ["AA\x01"]
    assert split_command('a"b c"d') == ["ab cd"]  # quotes join within a word
    assert split_command("   ") == []
    with pytest.raises(ValueError, match="missing terminating"):
        split_command("a 'b")
    with pytest.raises(ValueError, match="escape"):
        split_command("a\\")


# -- scripts ---------------------------------------------------------------------------------


async def test_scripts_get_keepalived_arguments(tmp_path: Path, out: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    rec = recorder(tmp_path, out)
    monkeypatch.setenv("PYVRRP_TEST_MARK", "inherited")
    n = Notifier(GlobalDefs(), inst(Notify(master=f"{rec} master 'two words'",
                                           any=f"{rec} any")), asyncio.get_running_loop())
    assert timed(lambda: n.transition(tr(State.MASTER, 110))) < FAST
    await wait_for(lambda: (out / "master.json").exists() and (out / "any.json").exists())
    await n.close(5)
    master = json.loads((out / "master.json").read_text())
    generic = json.loads((out / "any.json").read_text())
    assert master["argv"][1:] == ["master", "two words"]
    # The generic notify: exactly keepalived's four extra arguments, after its own.
    assert generic["argv"][1:] == ["any", "INSTANCE", "VI_1", "MASTER", "110"]
    assert master["env"]["PYVRRP_TEST_MARK"] == "inherited"
    # Its own session and process group, so a kill reaches all its children; cwd "/".
    assert master["sid"] == master["pid"] == master["pgid"]
    assert master["cwd"] == "/"
    assert master["pid"] != os.getpid() and os.getsid(0) != master["sid"]


async def test_each_state_runs_its_own_script(tmp_path: Path, out: Path) -> None:
    rec = recorder(tmp_path, out)
    n = Notifier(GlobalDefs(), inst(Notify(master=f"{rec} m", backup=f"{rec} b",
                                           fault=f"{rec} f", stop=f"{rec} s")),
                 asyncio.get_running_loop())
    for state, tag in ((State.BACKUP, "b"), (State.MASTER, "m"), (State.FAULT, "f"),
                       (State.STOP, "s")):
        n.transition(tr(state))
        await wait_for(lambda tag=tag: (out / f"{tag}.json").exists())
        assert json.loads((out / f"{tag}.json").read_text())["argv"][1:] == [tag]
    await n.close(5)
    assert sorted(p.stem for p in out.glob("*.json")) == ["b", "f", "m", "s"]


async def test_failing_and_hanging_scripts_are_logged_and_never_waited_for(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fail = write_script(tmp_path / "fail.sh", "#!/bin/sh\necho 'no route to the API' >&2\n"
                                              "exit 3\n")
    hang = write_script(tmp_path / "hang.sh", "#!/bin/sh\nexec sleep 1000\n")
    n = Notifier(GlobalDefs(), inst(Notify(master=str(fail), backup=str(hang))),
                 asyncio.get_running_loop(), script_timeout=0.5, kill_grace=0.5)
    caplog.set_level(logging.DEBUG, "pyvrrp")
    assert timed(lambda: n.transition(tr(State.BACKUP))) < FAST
    assert timed(lambda: n.transition(tr(State.MASTER))) < FAST
    await wait_for(lambda: "exited with status 3" in caplog.text)
    assert f"(VI_1) notify_master script '{fail}' exited with status 3; its output " \
           "(20 bytes): no route to the API" in caplog.text
    await wait_for(lambda: "still running after" in caplog.text)
    assert f"(VI_1) notify_backup script '{hang}' still running after 0.5 s: killed its " \
           "process group" in caplog.text
    await n.close(1)


async def test_output_is_drained_and_bounded(tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    loud = write_script(tmp_path / "loud.sh",
                        "#!/bin/sh\nhead -c 20000000 /dev/zero | tr '\\0' x\necho END\nexit 1\n")
    spec = check_script(str(loud), GlobalDefs())
    assert isinstance(spec, ScriptSpec)
    tracemalloc.start()
    try:
        res = await ScriptRunner(timeout=60).run(spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.returncode == 1
    assert res.output_bytes == 20_000_004
    assert len(res.output) == OUTPUT_KEEP and res.output.endswith(b"xxxxEND\n")
    assert peak < 4_000_000, f"draining 20 MB peaked at {peak} bytes"
    # Through the notifier: logged with the tail only.
    n = Notifier(GlobalDefs(), inst(Notify(master=str(loud))), asyncio.get_running_loop())
    n.transition(tr(State.MASTER))
    await wait_for(lambda: "exited with status 1" in caplog.text)
    assert "(last 4096 of 20000004 bytes)" in caplog.text
    assert max(len(r.getMessage()) for r in caplog.records) < 5000
    await n.close(5)


async def test_hanging_script_is_killed_with_its_process_group(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    child = tmp_path / "child.pid"
    # Both the script and its child ignore SIGTERM: only the group SIGKILL ends them.
    script = write_script(tmp_path / "forks.sh", f"""#!/bin/sh
trap '' TERM
sh -c 'echo $$ > {child}; exec sleep 1000' &
echo $$ > {tmp_path}/script.pid
sleep 1000
""")
    n = Notifier(GlobalDefs(), inst(Notify(master=str(script))), asyncio.get_running_loop(),
                 script_timeout=0.5, kill_grace=0.3)
    assert timed(lambda: n.transition(tr(State.MASTER))) < FAST
    await wait_for(lambda: child.exists() and child.read_text().strip() != "")
    pids = [int(child.read_text()), int((tmp_path / "script.pid").read_text())]
    assert all(alive(p) for p in pids)
    await asyncio.sleep(0.4)
    assert all(alive(p) for p in pids), "killed before the cap"
    await wait_for(lambda: "killed its process group" in caplog.text, timeout=5)
    await wait_for(lambda: not any(alive(p) for p in pids), timeout=5)
    await n.close(1)


async def test_exit_is_seen_even_while_a_child_holds_the_output(tmp_path: Path) -> None:
    """A notify script that starts a daemon and exits has finished, though the daemon
    still holds its stdout; the daemon is left alone (keepalived does not kill it)."""
    child = tmp_path / "child.pid"
    script = write_script(tmp_path / "daemon.sh",
                          f"#!/bin/sh\nsh -c 'echo $$ > {child}; exec sleep 30' &\nexit 0\n")
    spec = check_script(str(script), GlobalDefs())
    assert isinstance(spec, ScriptSpec)
    runner = ScriptRunner(timeout=20)
    t = time.monotonic()
    res = await runner.run(spec)
    assert res.returncode == 0 and time.monotonic() - t < 5
    await wait_for(lambda: child.exists() and child.read_text().strip() != "")
    pid = int(child.read_text())
    try:
        assert alive(pid)
        await runner.close(0)
        assert alive(pid)
    finally:
        os.kill(pid, 9)


async def test_close_lets_notify_stop_run_then_kills_leftovers(
        tmp_path: Path, out: Path, caplog: pytest.LogCaptureFixture) -> None:
    rec = recorder(tmp_path, out)
    slow_stop = write_script(tmp_path / "slow_stop.sh",
                             f"#!/bin/sh\nsleep 0.3\nexec {rec} stop\n")
    hang = write_script(tmp_path / "hang.sh", f"#!/bin/sh\necho $$ > {tmp_path}/hang.pid\n"
                                              "exec sleep 1000\n")
    n = Notifier(GlobalDefs(), inst(Notify(stop=str(slow_stop), any=str(hang))),
                 asyncio.get_running_loop(), kill_grace=0.3)
    n.transition(tr(State.STOP, old=State.MASTER))
    t = time.monotonic()
    await n.close(2)
    took = time.monotonic() - t
    assert (out / "stop.json").exists(), "notify_stop did not get to run before close()"
    hang_pid = int((tmp_path / "hang.pid").read_text())
    assert not alive(hang_pid)
    assert 1.9 < took < 4, took  # waited the timeout for the hanging one, then the grace
    assert "killing 1 script(s) still running at shutdown" in caplog.text
    n.transition(tr(State.MASTER))  # after close: ignored, not an error


# -- FIFO ------------------------------------------------------------------------------------


class FifoReader(threading.Thread):
    """Reads lines from a FIFO until `want` lines or the deadline."""

    def __init__(self, path: Path, want: int, timeout: float = 10.0) -> None:
        super().__init__(daemon=True)
        self.path, self.want, self.deadline = path, want, time.monotonic() + timeout
        self.lines: list[str] = []

    def run(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        buf = b""
        try:
            while len(self.lines) < self.want and time.monotonic() < self.deadline:
                r, _, _ = select.select([fd], [], [], 0.05)
                if r:
                    buf += os.read(fd, 65536)
                    *done, buf = buf.split(b"\n")
                    self.lines += [d.decode() for d in done]
        finally:
            os.close(fd)


async def test_fifo_lines_in_transition_order(tmp_path: Path) -> None:
    path = tmp_path / "notify.fifo"
    gd = GlobalDefs(vrrp_notify_fifo=str(path))
    loop = asyncio.get_running_loop()
    n1 = Notifier(gd, inst(name="VI_1"), loop)
    n2 = Notifier(gd, inst(name="VI_2", priority=150), loop)
    st = path.stat()  # created, as keepalived does, and with the mode it ends up with
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    expected = []
    seq = [State.BACKUP, State.MASTER, State.FAULT, State.BACKUP, State.MASTER]
    reader = FifoReader(path, want=2 * len(seq) * 10 + 1)
    reader.start()
    for i in range(10):
        for state in seq:
            for n, name in ((n1, "VI_1"), (n2, "VI_2")):
                prio = 100 + i
                assert timed(lambda n=n, s=state, p=prio: n.transition(tr(s, p))) < FAST
                expected.append(f'INSTANCE "{name}" {state.value} {prio}')
    n1.rx_lower_pri(IPv4Address("192.0.2.9"), 50)
    expected.append('INSTANCE "VI_1" MASTER_RX_LOWER_PRI 109')  # our priority, not theirs
    await asyncio.to_thread(reader.join, 15)
    assert reader.lines == expected
    await n1.close(1)
    assert path.exists()  # VI_2 still uses it
    await n2.close(1)
    assert not path.exists()  # we made it, we remove it (keepalived's fifo_close)


async def test_global_notify_fifo_is_left_in_place(tmp_path: Path) -> None:
    """keepalived 2.2.7 (measured) leaves a notify_fifo it made; only a vrrp_notify_fifo
    it made is removed at exit."""
    path = tmp_path / "global.fifo"
    n = Notifier(GlobalDefs(notify_fifo=str(path)), inst(), asyncio.get_running_loop())
    reader = FifoReader(path, want=1, timeout=5)
    reader.start()
    n.transition(tr(State.FAULT, 0))
    await asyncio.to_thread(reader.join, 10)
    assert reader.lines == ['INSTANCE "VI_1" FAULT 0']
    await n.close(1)
    assert stat.S_ISFIFO(path.stat().st_mode)


async def test_fifo_without_reader_never_blocks(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "existing.fifo"
    os.mkfifo(path)
    n = Notifier(GlobalDefs(vrrp_notify_fifo=str(path)), inst(), asyncio.get_running_loop())
    worst = 0.0
    expected = []
    for i in range(4000):  # ~110 KiB of lines: more than the pipe holds
        worst = max(worst, timed(lambda i=i: n.transition(tr(State.MASTER, i % 255 + 1))))
        expected.append(f'INSTANCE "VI_1" MASTER {i % 255 + 1}')
    assert worst < FAST
    assert caplog.text.count("is full (is anything reading it?): dropping events") == 1
    # A reader that comes later gets the oldest lines, whole, in order, without gaps.
    reader = FifoReader(path, want=4000, timeout=1)
    reader.start()
    await asyncio.to_thread(reader.join, 10)
    kept = len(reader.lines)
    assert 1000 < kept < 4000
    assert reader.lines == expected[:kept]
    # Once drained, lines flow again, and the loss is reported.
    n.transition(tr(State.BACKUP, 7))
    assert f"writing again; {4000 - kept} event(s) were dropped" in caplog.text
    reader = FifoReader(path, want=1, timeout=5)
    reader.start()
    await asyncio.to_thread(reader.join, 10)
    assert reader.lines == ['INSTANCE "VI_1" BACKUP 7']
    await n.close(1)
    assert stat.S_ISFIFO(path.stat().st_mode)  # not ours: left in place


async def test_fifo_path_that_is_a_file_is_refused(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "not-a-fifo"
    path.write_text("precious\n")
    n = Notifier(GlobalDefs(notify_fifo=str(path)), inst(), asyncio.get_running_loop())
    n.transition(tr(State.MASTER))
    await n.close(1)
    assert path.read_text() == "precious\n"
    assert f"notify fifo {path} exists and is not a FIFO" in caplog.text


# -- SMTP ------------------------------------------------------------------------------------


class Mailbox:
    def __init__(self) -> None:
        self.mails: list[dict[str, object]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.mails.append({"helo": session.host_name,  # type: ignore[attr-defined]
                           "from": envelope.mail_from,  # type: ignore[attr-defined]
                           "rcpt": list(envelope.rcpt_tos),  # type: ignore[attr-defined]
                           "data": envelope.content.decode()})  # type: ignore[attr-defined]
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield box, port
    finally:
        ctl.stop()


async def test_smtp_alerts_like_keepalived(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    gd = GlobalDefs(router_id="lab1", smtp_server="127.0.0.1", smtp_port=port,
                    notification_email=("ops@example.org", "noc@example.org"),
                    notification_email_from="vrrp@lab1.example.org",
                    smtp_helo_name="lab1.example.org", smtp_alert=True, smtp_connect_timeout=5)
    n = Notifier(gd, inst(), asyncio.get_running_loop())
    for state in (State.MASTER, State.BACKUP, State.BACKUP, State.STOP):
        assert timed(lambda s=state: n.transition(tr(s))) < FAST
    await n.close(10)  # the STOP alert is sent before close() returns
    assert len(box.mails) == 3  # a state re-entered in a row is mailed once
    first = box.mails[0]
    assert first["helo"] == "lab1.example.org"
    assert first["from"] == "vrrp@lab1.example.org"
    assert first["rcpt"] == ["ops@example.org", "noc@example.org"]
    data = str(first["data"])
    assert "Subject: [lab1] VRRP Instance VI_1 - Entering MASTER state\r\n" in data
    assert "From: vrrp@lab1.example.org\r\n" in data
    assert "To: ops@example.org, noc@example.org\r\n" in data
    assert "X-Mailer: Keepalived\r\n" in data
    assert data.rstrip().endswith("=> VRRP Instance is now owning VRRP VIPs <=")
    subjects = [next(ln for ln in str(m["data"]).split("\r\n") if ln.startswith("Subject:"))
                for m in box.mails]
    assert subjects == ["Subject: [lab1] VRRP Instance VI_1 - Entering MASTER state",
                        "Subject: [lab1] VRRP Instance VI_1 - Entering BACKUP state",
                        "Subject: [lab1] VRRP Instance VI_1 - Stopping"]
    assert "=> VRRP Instance is no longer owning VRRP VIPs <=" in str(box.mails[1]["data"])
    assert "=> VRRP Instance stopping <=" in str(box.mails[2]["data"])


async def test_smtp_defaults_and_instance_override(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    loop = asyncio.get_running_loop()
    gd = GlobalDefs(smtp_server="127.0.0.1", smtp_port=port, notification_email=("a@b.c",))
    off = Notifier(gd, inst(name="VI_OFF"), loop)  # global smtp_alert defaults to off
    on = Notifier(gd, inst(name="VI_ON", smtp_alert=True), loop)
    gd_on = GlobalDefs(smtp_server="127.0.0.1", smtp_port=port, notification_email=("a@b.c",),
                       smtp_alert=True)
    veto = Notifier(gd_on, inst(name="VI_VETO", smtp_alert=False), loop)
    for n in (off, on, veto):
        n.transition(tr(State.MASTER))
        await n.close(10)
    assert len(box.mails) == 1
    mail = box.mails[0]
    user = pwd.getpwuid(os.getuid()).pw_name
    assert str(mail["from"]).startswith(f"{user}@")  # keepalived: <user>@<local name>
    assert "VRRP Instance VI_ON - Entering MASTER state" in str(mail["data"])


class Rejecting(Mailbox):
    async def handle_RCPT(self, server: object, session: object, envelope: object,
                          address: str, rcpt_options: list[str]) -> str:
        return "550 5.1.1 no such mailbox"


async def test_smtp_rejection_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    box, port = Rejecting(), free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        gd = GlobalDefs(smtp_server="127.0.0.1", smtp_port=port, smtp_alert=True,
                        notification_email=("gone@example.org",), router_id="r",
                        notification_email_from="x@y", smtp_helo_name="h")
        n = Notifier(gd, inst(), asyncio.get_running_loop())
        n.transition(tr(State.MASTER))
        await n.close(10)
    finally:
        ctl.stop()
    assert box.mails == []
    assert f"Error processing RCPT cmd on SMTP server [127.0.0.1]:{port}. SMTP status " \
           "code = 550" in caplog.text


async def test_smtp_failures_are_logged_and_never_block(
        caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    closed = free_port()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts (the kernel does), never says a word
    try:
        for port, want in ((closed, "SMTP connection ERROR"),
                           (silent.getsockname()[1], "Timeout reading data")):
            gd = GlobalDefs(smtp_server="127.0.0.1", smtp_port=port, smtp_alert=True,
                            notification_email=("a@b.c",), smtp_connect_timeout=0.5,
                            router_id="r", notification_email_from="x@y",
                            smtp_helo_name="h")
            n = Notifier(gd, inst(), loop)
            assert timed(lambda n=n: n.transition(tr(State.MASTER))) < FAST
            await wait_for(lambda want=want: want in caplog.text, timeout=5)
            assert "(VI_1) SMTP alert for MASTER not sent" in caplog.text
            await n.close(1)
    finally:
        silent.close()


# -- script security -------------------------------------------------------------------------


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A root-owned 0755 directory under /tmp (sticky, root: safe), which users can reach;
    pytest's own tmp_path sits under a 0700 directory."""
    d = Path(tempfile.mkdtemp(prefix="pyvrrp-notify-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        for p in sorted(d.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
        d.rmdir()


@needs_root
def test_unsafe_script_is_refused_with_script_security(public_dir: Path) -> None:
    ww = public_dir / "ww"
    ww.mkdir()
    ww.chmod(0o777)  # world-writable, no sticky bit
    script = write_script(ww / "n.sh", "#!/bin/sh\nexit 0\n")
    got = check_script(f"{script} arg", GlobalDefs(enable_script_security=True,
                                                   script_user="root"))
    assert isinstance(got, ScriptError)
    assert str(got) == (f"Unsafe permissions found for script '{script}' - disabling: "
                        f"{ww} is writable by others (mode 0777)")


@needs_root
async def test_refused_script_never_runs(public_dir: Path, out: Path,
                                         caplog: pytest.LogCaptureFixture) -> None:
    ww = public_dir / "ww"
    ww.mkdir()
    ww.chmod(0o777)
    rec = recorder(ww, out)
    n = Notifier(GlobalDefs(enable_script_security=True, script_user="root"),
                 inst(Notify(master=f"{rec} master")), asyncio.get_running_loop())
    assert "(VI_1) notify_master disabled: Unsafe permissions found for script" in caplog.text
    n.transition(tr(State.MASTER))
    await asyncio.sleep(0.5)
    await n.close(1)
    assert not (out / "master.json").exists()
    assert "SECURITY VIOLATION" not in caplog.text


@needs_root
async def test_unsafe_script_runs_without_script_security_but_is_reported(
        public_dir: Path, out: Path, caplog: pytest.LogCaptureFixture) -> None:
    ww = public_dir / "ww"
    ww.mkdir()
    ww.chmod(0o777)
    rec = recorder(ww, out)
    n = Notifier(GlobalDefs(script_user="root"), inst(Notify(master=f"{rec} master")),
                 asyncio.get_running_loop())
    assert f"Unsafe permissions found for script '{rec}'" in caplog.text
    assert ("SECURITY VIOLATION - scripts are being executed but script_security not "
            "enabled. There are insecure scripts.") in caplog.text
    n.transition(tr(State.MASTER))
    await wait_for(lambda: (out / "master.json").exists())
    await n.close(1)


async def test_security_violation_is_reported_once_per_config(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    script = write_script(tmp_path / "n.sh", "#!/bin/sh\n")
    loop = asyncio.get_running_loop()
    gd = GlobalDefs()
    for name in ("VI_1", "VI_2"):
        Notifier(gd, inst(Notify(master=str(script)), name=name), loop)
    Notifier(gd, inst(name="VI_3"), loop)  # no scripts
    assert caplog.text.count("SECURITY VIOLATION - scripts are being executed but "
                             "script_security not enabled.\n") == 1
    caplog.clear()
    Notifier(GlobalDefs(enable_script_security=True, script_user="root"),
             inst(Notify(master=str(script))), loop)
    Notifier(GlobalDefs(), inst(), loop)
    assert "SECURITY VIOLATION" not in caplog.text


@needs_root
def test_permission_rules_follow_keepalived(public_dir: Path) -> None:
    gd = GlobalDefs(enable_script_security=True, script_user="root")
    ok = write_script(public_dir / "ok.sh", "#!/bin/sh\n")
    assert isinstance(check_script(str(ok), gd), ScriptSpec)
    # A root-owned sticky directory (like /tmp) is fine even though others may write.
    sticky = public_dir / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    assert isinstance(check_script(str(write_script(sticky / "s.sh", "#!/bin/sh\n")), gd),
                      ScriptSpec)
    # Group-writable is fine while the group is root's, not otherwise.
    gw = write_script(public_dir / "gw.sh", "#!/bin/sh\n", 0o775)
    assert isinstance(check_script(str(gw), gd), ScriptSpec)
    os.chown(gw, 0, 65534)
    got = check_script(str(gw), gd)
    assert isinstance(got, ScriptError) and f"{gw} is writable by group 65534" in str(got)
    # Owned by anyone but root: refused, whatever the mode.
    theirs = write_script(public_dir / "theirs.sh", "#!/bin/sh\n", 0o755)
    os.chown(theirs, 65534, 65534)
    got = check_script(str(theirs), gd)
    assert isinstance(got, ScriptError) and f"{theirs} is owned by uid 65534" in str(got)
    # A symlink into a safe place is judged by both paths; a bad link owner is caught.
    link = public_dir / "link.sh"
    link.symlink_to(ok)
    spec = check_script(str(link), gd)
    assert isinstance(spec, ScriptSpec) and spec.argv[0] == str(link)  # name kept
    os.lchown(link, 65534, 65534)
    got = check_script(str(link), gd)
    assert isinstance(got, ScriptError) and f"{link} is owned by uid 65534" in str(got)
    # Not executable, missing, bare name: keepalived's messages.
    noexec = write_script(public_dir / "noexec.sh", "#!/bin/sh\n", 0o644)
    assert "is not executable for uid:gid 0:0" in str(check_script(str(noexec), gd))
    assert "cannot be accessed - No such file" in str(check_script("/nonexistent/x", gd))
    found = check_script("true --x", gd)
    assert isinstance(found, ScriptSpec) and os.path.isabs(found.argv[0])
    assert found.argv[1:] == ("--x",)
    assert "Cannot find script no-such-cmd-here in path" in str(check_script("no-such-cmd-here",
                                                                             gd))


@needs_root
async def test_safe_script_runs_as_the_script_user(public_dir: Path) -> None:
    outd = public_dir / "out"
    outd.mkdir()
    outd.chmod(0o777)
    script = write_script(public_dir / "who.sh",
                          f"#!/bin/sh\necho \"$(id -u) $(id -g) $(id -G)\" > {outd}/who\n")
    gd = GlobalDefs(enable_script_security=True, script_user="nobody")
    spec = check_script(str(script), gd)
    assert isinstance(spec, ScriptSpec) and spec.uid == 65534
    n = Notifier(gd, inst(Notify(master=str(script))), asyncio.get_running_loop())
    n.transition(tr(State.MASTER))
    await wait_for(lambda: (outd / "who").exists())
    await n.close(1)
    nogroup = pwd.getpwnam("nobody").pw_gid
    assert (outd / "who").read_text().split() == ["65534", str(nogroup), str(nogroup)]
    # As keepalived: the path check guards scripts run as root; one that runs as nobody
    # may sit where others can write (it can do no more than nobody could).
    ww = public_dir / "ww"
    ww.mkdir()
    ww.chmod(0o777)
    assert isinstance(check_script(str(write_script(ww / "n.sh", "#!/bin/sh\n")), gd),
                      ScriptSpec)


@needs_root
def test_script_user_must_reach_the_script(tmp_path: Path) -> None:
    # pytest's tmp_path is under a 0700 root directory: nobody cannot get there.
    script = write_script(tmp_path / "n.sh", "#!/bin/sh\n")
    got = check_script(str(script), GlobalDefs(script_user="nobody"))
    assert isinstance(got, ScriptError) and "cannot be accessed - Permission denied" in str(got)
    assert "does not exist" in str(check_script(str(script), GlobalDefs(),
                                                user="no-such-user-here"))


@needs_root
def test_default_user_with_script_security(public_dir: Path) -> None:
    """keepalived 2.2.7 (measured): with enable_script_security and no script_user, the
    default user is keepalived_script; if that user does not exist, scripts are refused."""
    script = write_script(public_dir / "n.sh", "#!/bin/sh\n")
    try:
        pwd.getpwnam("keepalived_script")
        pytest.skip("a keepalived_script user exists here")
    except KeyError:
        pass
    got = check_script(str(script), GlobalDefs(enable_script_security=True))
    assert isinstance(got, ScriptError)
    assert "Unable to set default user keepalived_script for script" in str(got)
    spec = check_script(str(script), GlobalDefs())  # without security: our own uid
    assert isinstance(spec, ScriptSpec) and spec.uid == 0


async def test_script_without_shebang_runs_through_the_shell(tmp_path: Path,
                                                             out: Path) -> None:
    script = write_script(tmp_path / "plain", f"echo \"$1\" > {out}/plain\n")
    spec = check_script(f"{script} 'an arg'", GlobalDefs())
    assert isinstance(spec, ScriptSpec) and spec.shell
    res = await ScriptRunner(timeout=10).run(spec)
    assert res.returncode == 0
    assert (out / "plain").read_text() == "an arg\n"
