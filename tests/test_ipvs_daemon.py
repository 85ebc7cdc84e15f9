"""`ipvsctl run` on the host, against a fake kernel and a real HTTP server on 127.0.0.1:
health events -> table -> reconciler, notify and quorum scripts, SIGHUP-style reloads
(bad config kept out, unchanged config a no-op) and the stop (omega, services removed).
The real kernel is the guest suite's (netns_tests/vm/test_lvs_setups.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from pathlib import Path

from ipvsctl.daemon import Daemon
from ipvsctl.diff import Kind, Op
from ipvsctl.kernel import ApplyResult
from ipvsctl.model import Table
from ipvsctl.reconciler import Reconciler


class FakeKernel:
    """Applies ops to an in-memory table, as the kernel would."""

    def __init__(self) -> None:
        self.services: dict = {}
        self.dests: dict = {}
        self.ops: list[Op] = []

    def dump(self, stats: bool = True) -> Table:
        return Table(dict(self.services), {k: dict(v) for k, v in self.dests.items()})

    def apply(self, ops: Iterable[Op]) -> ApplyResult:
        for op in ops:
            self.ops.append(op)
            key = op.service.key
            if op.kind in (Kind.ADD_SERVICE, Kind.EDIT_SERVICE):
                self.services[key] = op.service
                self.dests.setdefault(key, {})
            elif op.kind is Kind.DEL_SERVICE:
                self.services.pop(key)
                self.dests.pop(key)
            elif op.kind in (Kind.ADD_DEST, Kind.EDIT_DEST):
                assert op.dest is not None
                self.dests[key][op.dest.key] = op.dest
            else:
                assert op.dest is not None
                self.dests[key].pop(op.dest.key)
        return ApplyResult(len(self.ops), ())

    def weights(self) -> dict[str, int]:
        return {f"{a}:{p}": d.weight for ds in self.dests.values() for (a, p), d in ds.items()}


CONFIG = """\
virtual_server:
  10.0.0.100 80:
    protocol: TCP
    lb_algo: rr
    lb_kind: NAT
    delay_loop: 0.3
    omega: true
    sorry_server: 127.0.0.2 80
    quorum_down: /bin/sh -c 'echo quorum_down >> {log}'
    quorum_up: /bin/sh -c 'echo quorum_up >> {log}'
    real_server:
      127.0.0.1 {port}:
        weight: 2
        notify_down: /bin/sh -c 'echo down >> {log}'
        notify_up: /bin/sh -c 'echo up >> {log}'
        HTTP_GET:
          url: {{path: /index.html, status_code: 200}}
          connect_timeout: 0.5
          retry: 1
          delay_before_retry: 0.1
          warmup: 0
"""


async def _until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def _http_server() -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_health_drives_the_table_scripts_reload_and_stop(tmp_path: Path) -> None:
    server = await _http_server()
    port = server.sockets[0].getsockname()[1]
    log = tmp_path / "scripts.log"
    cfg = tmp_path / "services.yaml"
    cfg.write_text(CONFIG.format(port=port, log=log))
    kernel = FakeKernel()
    daemon = Daemon(cfg, Reconciler(kernel, None), resync=0.5,
                    status_path=tmp_path / "status.json")
    task = asyncio.create_task(daemon.run())
    try:
        rs = f"127.0.0.1:{port}"
        await _until(lambda: kernel.weights() == {rs: 2})

        server.close()  # the real server dies: out, sorry server in, scripts run
        await server.wait_closed()
        await _until(lambda: kernel.weights() == {"127.0.0.2:80": 1})
        # Scripts run asynchronously, as keepalived's do (its issue #996): no order between them.
        await _until(lambda: log.exists()
                     and sorted(log.read_text().split()) == ["down", "quorum_down"])
        assert '"sorry_server_in": true' in (tmp_path / "status.json").read_text()

        # a reload that does not load keeps everything; an unchanged one changes nothing
        good = cfg.read_text()
        cfg.write_text(good.replace("weight: 2", "weight: lots"))
        n_ops = len(kernel.ops)
        await daemon.reload()
        cfg.write_text(good)
        await daemon.reload()
        assert len(kernel.ops) == n_ops and kernel.weights() == {"127.0.0.2:80": 1}
        # a reload that changes the checker (a timing): the checks restart, the dead server
        # keeps its verdict and stays out (keepalived's migrate_checkers); no IPVS op
        await daemon.reload()
        cfg.write_text(good.replace("delay_before_retry: 0.1", "delay_before_retry: 0.2"))
        await daemon.reload()
        assert len(kernel.ops) == n_ops and kernel.weights() == {"127.0.0.2:80": 1}

        server = await _http_server_on(port)  # back: sorry out, the server in at weight 2
        await _until(lambda: kernel.weights() == {rs: 2})
        await _until(lambda: sorted(log.read_text().split()[-2:]) == ["quorum_up", "up"])

        # a reload with a new weight: applied without restarting the checks
        cfg.write_text(good.replace("weight: 2", "weight: 5"))
        await daemon.reload()
        assert kernel.weights() == {rs: 5}

        daemon._stop.set()  # as SIGTERM does
        assert await asyncio.wait_for(task, 10) == 0
        assert kernel.services == {}  # keepalived removes its services on stop
        assert sorted(log.read_text().split()[-2:]) == ["down", "quorum_down"]  # omega
        server.close()
    finally:  # a failed assertion must not leave the daemon running
        if not task.done():
            daemon._stop.set()
            await asyncio.wait_for(task, 10)


async def _http_server_on(port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port, reuse_address=True)


async def test_a_bad_first_config_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("virtual_server:\n  10.0.0.100 80:\n    quorum: none\n")
    assert await Daemon(cfg, Reconciler(FakeKernel(), None)).run() == 2
