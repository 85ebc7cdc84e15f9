#!/usr/bin/env python3
"""Run the IPVS suite (netns_tests/vm) inside a guest that has a real IPVS kernel.

The host kernel here has no IPVS, so this boots Debian's `linux-image-amd64` (which ships
ip_vs) under QEMU with virtme-ng (`vng`), in software emulation (`--disable-kvm`: nested
KVM hangs). The guest sees the host's root file system read-only over 9p, and only the
folder passed with `--rwdir` is written back.

9p under emulation makes every file look-up cost a round trip, and Python's start-up does
thousands: `import pyroute2` alone took 22 s there. So the host packs what the suite needs
(the stdlib, a few site-packages, ipvsctl, pyvrrp and the tests, and the interpreter with its
libpython) into one uncompressed tar, and the guest unpacks it into a tmpfs and runs pytest
from RAM; processes the tests start get the same interpreter (sys.executable) and
environment. Even from RAM, Python runs ~60x slower there than natively on a busy host.

The guest's output is relayed through a pipe: QEMU opens /proc/self/fd/1 once per console
port, and when our stdout is a file each open gets its own offset, so the ports and this
script overwrote one another's lines (the first lines of the bench were lost).

Usage: netns_tests/vm/run.py [--kernel PATH] [--keep] [--timeout S]
       [--bench [ipvs_apply|healthcheck] [--json FILE]] [-- ARGS...]
`--bench` (ipvs_apply) first times bench/ipvs_apply's calibration workloads here on the
host, so the guest can convert its times; `--bench healthcheck` runs bench/healthcheck,
whose keepalived column needs IPVS. The guest's --json lands in the --rwdir folder and is
copied to FILE. Exit status: the guest's (pytest's or the bench's), or 3 when it reported
none.
"""

from __future__ import annotations

import argparse
import compileall
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
# What the guest suite imports, from the interpreter's site-packages (nothing heavier:
# every extra file is time in the guest).
SITE_PACKAGES = ("pyroute2", "yaml", "_yaml", "_pytest", "pytest", "pluggy", "iniconfig",
                 "packaging", "py.py", "pygments")
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip",
               "pydoc_data", "site-packages", "dist-packages", "distutils",
               "curses", "xmlrpc", "wsgiref", "venv", "dbm", "msilib"}
# pyvrrp and config/: the LVS e2e runs `pyvrrp run` on the seed's files
PROJECT = ("ipvsctl", "pyvrrp", "netns_tests/vm", "bench/ipvs_apply", "bench/healthcheck",
           "config/keepalived",
           "config/lvs-dr-ipport", "config/lvs-dr-fwmark")

GUEST_SCRIPT = """\
#!/bin/sh
# Runs inside the guest: unpack into RAM, load ip_vs, run the command, leave rc in $W.
W={work}
T=/tmp/ipvsvm
t0=$(cut -d' ' -f1 /proc/uptime)
mkdir -p $T && mount -t tmpfs -o size=1G ipvsvm $T && tar -xf $W/env.tar -C $T || exit 90
modprobe ip_vs || echo "guest: modprobe ip_vs failed"
t1=$(cut -d' ' -f1 /proc/uptime)
echo "guest: kernel $(uname -r), booted in $t0 s," \
     "unpacked in $(awk "BEGIN{{print $t1 - $t0}}") s"
cd $T/src
export PYTHONHOME=$T/usr PYTHONPATH=$T/site:$T/src IPVSCTL_VM_GUEST=1 PYTHONUNBUFFERED=1
# The interpreter and its libpython come from the tar too (_pack): mapped over 9p, every
# page fault of every Python process (the LVS test starts six) was a 9p round trip.
export LD_LIBRARY_PATH=$T/usr/lib
{{ {command}; echo $? > $W/rc; }} 2>&1 | tee $W/guest.log
t2=$(cut -d' ' -f1 /proc/uptime)
echo "guest: suite took $(awk "BEGIN{{print $t2 - $t1}}") s, uptime $t2 s"
echo "$t0 $t1 $t2" > $W/times
exit $(cat $W/rc)
"""


def _interpreter(tar: tarfile.TarFile, work: Path) -> str:
    """Add this interpreter (and its shared libpython, debug symbols stripped) to the tar
    as usr/bin/NAME and usr/lib/; return NAME."""
    exe = Path(os.path.realpath(sys.executable))
    tar.add(exe, f"usr/bin/{exe.name}")
    ldlib = sysconfig.get_config_var("INSTSONAME") or ""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    lib = Path(libdir) / ldlib
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and ldlib and lib.exists():
        stripped = work / ldlib
        if subprocess.run(["strip", "--strip-debug", "-o", str(stripped), str(lib)],
                          check=False).returncode != 0:
            shutil.copyfile(lib, stripped)
        tar.add(stripped, f"usr/lib/{ldlib}")
    return exe.name


def _pack(tar_path: Path) -> str:
    """One uncompressed tar: usr/lib/python3.X (stdlib), site/ (packages), src/ (project),
    usr/bin/python (the interpreter). Returns the interpreter's name."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    purelib = Path(sysconfig.get_paths()["purelib"])
    ver = f"python{sys.version_info.major}.{sys.version_info.minor}"

    def skip_stdlib(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        top = parts[3] if len(parts) > 3 else ""
        if top in STDLIB_SKIP or top.startswith("config-") or ".opt-" in parts[-1]:
            return None
        return info

    def skip_site(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        parts = Path(info.name).parts
        # pytest imports pygments but only lexes with colour, which a pipe never gets.
        if parts[1] == "pygments" and len(parts) > 3 and parts[2] in ("lexers", "styles"):
            keep = ("__init__.py", "_mapping.py", "diff.py", "python.py", "default.py")
            return info if parts[3] in keep else None
        return info

    with tarfile.open(tar_path, "w") as tar:
        exe = _interpreter(tar, tar_path.parent)
        tar.add(stdlib, f"usr/lib/{ver}", filter=skip_stdlib)
        for name in SITE_PACKAGES:
            if (purelib / name).exists():
                tar.add(purelib / name, f"site/{name}", filter=skip_site)
        tag = sys.implementation.cache_tag
        for rel in PROJECT:
            if (ROOT / rel).exists():
                # Compiled here: the guest compiles ~60x slower, in every daemon at once.
                if (ROOT / rel).is_dir():
                    compileall.compile_dir(ROOT / rel, quiet=1)
                tar.add(ROOT / rel, f"src/{rel}", filter=lambda i: None if "__pycache__" in
                        i.name and not i.name.endswith(f".{tag}.pyc") and i.isfile() else i)
        ini = tar_path.parent / "pytest.ini"
        ini.write_text("[pytest]\nmarkers =\n    netns: needs root and network namespaces\n")
        tar.add(ini, "src/pytest.ini")
    return exe


def _default_kernel() -> str | None:
    """The newest /boot/vmlinuz-* whose modules include ip_vs."""
    for image in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        release = image.removeprefix("/boot/vmlinuz-")
        if glob.glob(f"/lib/modules/{release}/kernel/net/netfilter/ipvs/ip_vs.ko*"):
            return image
    return None


def _run_relayed(cmd: list[str], env: dict[str, str], timeout: float) -> int:
    """Run vng with its output through a pipe that we copy to our stdout as it comes."""
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=ROOT)
    assert proc.stdout is not None
    out = proc.stdout

    def relay() -> None:
        while chunk := out.read1(1 << 16):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()

    pump = threading.Thread(target=relay, daemon=True)
    pump.start()
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"vm: guest did not finish within {timeout:.0f} s", file=sys.stderr)
        proc.kill()
        proc.wait()
        rc = 124
    pump.join(10)
    return rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kernel", help="kernel image (default: newest /boot one with ip_vs)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--timeout", type=float, default=1500, help="seconds for boot + suite")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--bench", nargs="?", const="ipvs_apply",
                    choices=["ipvs_apply", "healthcheck"],
                    help="run this benchmark (default ipvs_apply) in the guest instead of the "
                    "test suite")
    ap.add_argument("--json", type=Path, help="with --bench: where to copy its JSON results")
    ap.add_argument("pytest_args", nargs="*",
                    help="after --: passed to pytest (or to the benchmark) in the guest")
    args = ap.parse_args(argv)

    env = dict(os.environ)
    # vng calls virtme-run by name: the venv's bin/ must be on PATH.
    env["PATH"] = f"{VENV_BIN}:{Path(sys.executable).parent}:{env.get('PATH', '')}"
    vng = shutil.which("vng", path=env["PATH"])
    kernel = args.kernel or _default_kernel()
    qemu = shutil.which("qemu-system-x86_64")
    missing = [what for what, ok in (("vng (pip install virtme-ng)", vng),
                                     ("a kernel with ip_vs (apt install linux-image-amd64)",
                                      kernel),
                                     ("qemu-system-x86_64 (apt install qemu-system-x86)", qemu))
               if not ok]
    if missing:
        print(f"vm: cannot boot an IPVS guest; missing: {'; '.join(missing)}", file=sys.stderr)
        return 4

    work = Path(tempfile.mkdtemp(prefix="ipvsvm-"))
    try:
        t0 = time.monotonic()
        py = f"/tmp/ipvsvm/usr/bin/{_pack(work / 'env.tar')}"  # GUEST_SCRIPT's $T
        extra_args = list(args.pytest_args)
        if args.bench and "--json" in extra_args:  # a host path: the guest cannot write it
            i = extra_args.index("--json")
            args.json = Path(extra_args[i + 1])
            del extra_args[i:i + 2]
        extra = " ".join(extra_args)
        if args.bench == "healthcheck":
            command = f"{py} bench/healthcheck --json {work}/bench.json {extra}"
        elif args.bench:
            calib = work / "host_calibration.json"
            subprocess.run([sys.executable, str(ROOT / "bench/ipvs_apply"), "--calibrate-only",
                            "--json", str(calib)], check=True, cwd=ROOT)
            command = (f"{py} bench/ipvs_apply --host-calibration {calib} "
                       f"--json {work}/bench.json {extra}")
        else:
            command = (f"{py} -m pytest -p no:cacheprovider -q -rs "
                       f"--junitxml={work}/junit.xml {extra or 'netns_tests/vm'}")
        (work / "guest.sh").write_text(GUEST_SCRIPT.format(work=work, command=command))
        cmd = [str(vng), "--run", kernel, "--disable-kvm", "--cpus", str(args.cpus),
               "--memory", "2G", "--rwdir", str(work), "--exec", f"sh {work}/guest.sh"]
        print(f"vm: booting {kernel} under QEMU (no KVM); packed in "
              f"{time.monotonic() - t0:.1f} s", flush=True)
        vng_rc = _run_relayed(cmd, env, args.timeout)
        total = time.monotonic() - t0
        rc_file = work / "rc"
        rc = int(rc_file.read_text()) if rc_file.exists() else None
        times = (work / "times").read_text().split() if (work / "times").exists() else []
        detail = ""
        if len(times) == 3:
            boot, unpacked, done = (float(x) for x in times)
            detail = f" (boot {boot:.0f} s, unpack {unpacked - boot:.0f} s, " \
                     f"suite {done - unpacked:.0f} s)"
        what = "bench" if args.bench else "pytest"
        print(f"vm: IPVS guest total {total:.0f} s{detail}; {what} exit "
              f"{rc if rc is not None else 'missing'} (vng exit {vng_rc})", flush=True)
        if args.bench and args.json and (work / "bench.json").exists():
            shutil.copyfile(work / "bench.json", args.json)
            print(f"vm: bench results in {args.json}")
        if rc is None:
            return 3
        return rc
    finally:
        if args.keep:
            print(f"vm: work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
