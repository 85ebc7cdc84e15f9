"""Health checks against real servers on loopback (127.0.0.0/8 only): HTTP_GET, SSL_GET,
TCP_CHECK, MISC_CHECK, and the scheduler driving them.

The servers are asyncio servers in the test process (a self-signed certificate comes from
the `openssl` CLI); each records what it was sent, so the tests assert on what went over
the wire as well as on the outcome. A closed port is one we bound and closed; a connect
timeout is a listener whose accept queue is full.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest

from ipvsctl.health.config import (
    HttpGet,
    MiscCheck,
    ResolvedCheck,
    RsKey,
    SslGet,
    TcpCheck,
    Url,
    resolve,
    resolve_real_server,
    status_codes,
)
from ipvsctl.health.http import HttpPlan, http_check, request_bytes
from ipvsctl.health.misc import MiscRunner
from ipvsctl.health.scheduler import HealthScheduler
from ipvsctl.health.state import Event, RealServerDown, RealServerUp, WeightChange
from ipvsctl.health.tcp import tcp_check
from ipvsctl.model import RealServer, VirtualServer
from ipvsctl.runner import ScriptRunner as IpvsctlScriptRunner
from ipvsctl.runner import prepare_misc
from pyvrrp.config.model import GlobalDefs
from pyvrrp.io.scripts import ScriptError, ScriptRunner, check_script

BODY = b"hello from the real server\n"
MD5 = hashlib.md5(BODY).hexdigest()
VS = VirtualServer(ip=ip_address("127.0.0.1"), port=80)


@dataclass
class Seen:
    path: str
    head: str
    peer: tuple[str, int]


@dataclass
class WebServer:
    """A loopback web server whose behaviour is chosen by the request path."""

    status: int = 200  # what /toggle answers
    seen: list[Seen] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0
    snis: list[str | None] = field(default_factory=list)

    async def start(self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None) -> None:
        self.server = await asyncio.start_server(self._handle, host, 0, ssl=tls)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        path = head.split(" ", 2)[1] if head.count(" ") >= 2 else ""
        self.seen.append(Seen(path, head, writer.get_extra_info("peername")[:2]))
        try:
            await self._respond(path, reader, writer)
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _respond(self, path: str, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        def reply(status: int, body: bytes = BODY, length: bool = True) -> None:
            cl = f"Content-Length: {len(body)}\r\n" if length else ""
            writer.write(f"HTTP/1.0 {status} Whatever\r\n{cl}Server: t\r\n\r\n".encode() + body)

        if path == "/ok":
            reply(200)
        elif path.startswith("/status/"):
            reply(int(path.rsplit("/", 1)[1]))
        elif path == "/toggle":
            reply(self.status)
        elif path == "/nolen":
            reply(200, length=False)
        elif path == "/keepalive":  # answers, then keeps the connection open
            reply(200)
            await writer.drain()
            await reader.read()
        elif path == "/hang":
            await reader.read()
        elif path == "/trickle":
            writer.write(b"HTTP/1.0 200 OK\r\n\r\n")
            for _ in range(100):
                writer.write(b".")
                await writer.drain()
                await asyncio.sleep(0.1)
        elif path == "/split":  # status line and headers in pieces, then the body
            for part in (b"HTTP/1.0 200 OK\r\nContent-Le", b"ngth: 27\r\n\r", b"\n", BODY):
                writer.write(part)
                await writer.drain()
                await asyncio.sleep(0.05)
            await reader.read()
        elif path == "/close":
            pass
        elif path == "/nohead":
            writer.write(b"x" * 20000)
        elif path == "/bad":
            writer.write(b"garbage\r\n\r\n")
        else:
            reply(404)
        await writer.drain()


@pytest.fixture
async def web() -> AsyncIterator[WebServer]:
    srv = WebServer()
    await srv.start()
    yield srv
    await srv.close()


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI to make a self-signed certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=hc-test",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True, timeout=30)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture
async def tls_web(cert: tuple[Path, Path]) -> AsyncIterator[WebServer]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*cert)
    srv = WebServer()

    def on_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        srv.snis.append(name)

    ctx.sni_callback = on_sni
    await srv.start(tls=ctx)
    yield srv
    await srv.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(port: int, *urls: Url, cls: type[HttpGet] = HttpGet, rs_ip: str = "127.0.0.1",
         **kw: Any) -> ResolvedCheck:
    kw.setdefault("connect_timeout", 2)
    return resolve(cls(urls=urls, **kw), RealServer(ip_address(rs_ip), port), VS)


# --------------------------------------------------------------------------- HTTP_GET


async def test_http_status_and_request_as_keepalived_sends_it(web: WebServer) -> None:
    out = await http_check(http(web.port, Url("/ok")))
    assert out.ok and out.reason == "HTTP status 200 on GET /ok"
    (seen,) = web.seen
    assert seen.head == (f"GET /ok HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\n"
                         f"Host: 127.0.0.1:{web.port}\r\n\r\n")
    out = await http_check(http(web.port, Url("/status/503")))
    assert not out.ok and out.reason == "HTTP status 503 on GET /status/503"


async def test_http_status_code_sets(web: WebServer) -> None:
    assert not (await http_check(http(web.port, Url("/status/301")))).ok  # default 200-299
    assert (await http_check(http(web.port, Url("/status/301", status_codes(301))))).ok
    wanted = status_codes(200, "500-503")
    assert (await http_check(http(web.port, Url("/status/502", wanted)))).ok
    assert not (await http_check(http(web.port, Url("/ok", status_codes("300-399"))))).ok


async def test_http_digest(web: WebServer) -> None:
    good = await http_check(http(web.port, Url("/ok", digest=MD5.upper())))
    assert good.ok and "digest ok" in good.reason
    bad = await http_check(http(web.port, Url("/ok", digest="0" * 32)))
    assert not bad.ok and f"got {MD5}, expected {'0' * 32}" in bad.reason
    assert (await http_check(http(web.port, Url("/nolen", digest=MD5)))).ok  # to EOF


async def test_http_virtualhost_and_protocol_1_1(web: WebServer) -> None:
    check = http(web.port, Url("/keepalive"), Url("/ok", virtualhost="u.example"),
                 virtualhost="c.example", http_protocol="1.1", connect_timeout=5)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    out = await http_check(check, 0)
    # the server keeps the connection open: Content-Length ends the check, not a timeout
    assert out.ok and loop.time() - t0 < 1
    assert (await http_check(check, 1)).ok
    assert [s.head.split("\r\n")[0] for s in web.seen] == ["GET /keepalive HTTP/1.1",
                                                         "GET /ok HTTP/1.1"]
    assert all("Connection: close\r\n" in s.head for s in web.seen)
    assert "Host: c.example\r\n" in web.seen[0].head
    assert "Host: u.example\r\n" in web.seen[1].head


async def test_http_response_in_pieces(web: WebServer) -> None:
    out = await http_check(http(web.port, Url("/split", digest=MD5)))
    assert out.ok, out.reason  # and Content-Length (27) ended it: the server never closes


async def test_http_broken_responses(web: WebServer) -> None:
    out = await http_check(http(web.port, Url("/close")))
    assert not out.ok and "no HTTP response" in out.reason and "connection closed" in out.reason
    out = await http_check(http(web.port, Url("/nohead")))
    assert not out.ok and "no end of the HTTP headers" in out.reason
    out = await http_check(http(web.port, Url("/bad")))
    assert not out.ok and "bad HTTP status line 'garbage'" in out.reason


async def test_http_read_timeout_and_trickle_cap(web: WebServer) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    out = await http_check(http(web.port, Url("/hang"), connect_timeout=0.3))
    assert not out.ok and out.reason.startswith("GET /hang: read timeout after 0.3 s")
    assert 0.25 < loop.time() - t0 < 1.5
    t0 = loop.time()
    out = await http_check(http(web.port, Url("/trickle"), connect_timeout=0.3))
    # a byte every 0.1 s never trips the per-read timeout; the whole-response cap does
    assert not out.ok and "not complete after 1.2 s" in out.reason
    assert 1.1 < loop.time() - t0 < 3


async def test_http_closed_port_and_unresolvable_name() -> None:
    out = await http_check(http(closed_port(), Url("/")))
    assert not out.ok and "Connection refused" in out.reason and not out.local
    check = http(80, Url("/"), connect_ip="no-such-host.invalid")
    out = await http_check(check)
    assert not out.ok and "cannot resolve no-such-host.invalid" in out.reason


async def test_names_resolve_through_the_loop(web: WebServer,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A name goes through loop.getaddrinfo (no traffic here: it is stubbed)."""
    loop = asyncio.get_running_loop()

    async def fake(host: str, port: int, **_kw: Any) -> list[tuple[Any, ...]]:
        if host == "web.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(loop, "getaddrinfo", fake)
    out = await http_check(http(web.port, Url("/ok"), connect_ip="web.test"))
    assert out.ok and f"Host: web.test:{web.port}\r\n" in web.seen[0].head
    out = await http_check(http(web.port, Url("/ok"), connect_ip="gone.test"))
    assert not out.ok and out.reason == "cannot resolve gone.test: Name or service not known"


async def test_connect_timeout() -> None:
    """A listener that never accepts, with a full accept queue, drops our SYN."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    filler = socket.create_connection(lst.getsockname(), timeout=2)
    try:
        check = resolve(TcpCheck(connect_timeout=0.4),
                        RealServer(ip_address("127.0.0.1"), lst.getsockname()[1]), VS)
        out = await tcp_check(check)
        assert not out.ok and out.reason.startswith("connect timeout after 0.4 s")
        out = await http_check(http(lst.getsockname()[1], Url("/"), connect_timeout=0.4))
        assert not out.ok and out.reason.startswith("connect timeout after 0.4 s")
    finally:
        filler.close()
        lst.close()


async def test_bindto_and_bind_port(web: WebServer) -> None:
    port = closed_port()
    out = await http_check(http(web.port, Url("/ok"), bindto="127.0.0.2", bind_port=port))
    assert out.ok and web.seen[0].peer == ("127.0.0.2", port)
    # an address that is not ours: a local failure (not counted), nothing is sent
    out = await http_check(http(web.port, Url("/ok"), bindto="192.0.2.1"))
    assert not out.ok and out.local and "cannot bind" in out.reason
    assert len(web.seen) == 1


async def test_a_bug_in_a_check_becomes_an_outcome(web: WebServer,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import ipvsctl.health.http as h

    def boom(self: object, data: bytes) -> bool:
        raise RuntimeError("parser bug")

    monkeypatch.setattr(h._HttpAttempt, "_feed", boom)
    out = await http_check(http(web.port, Url("/ok")))
    assert not out.ok and out.reason == "internal error: RuntimeError('parser bug')"


def test_ipv6_host_header_is_bracketed() -> None:
    check = resolve(HttpGet(urls=(Url("/"),)), RealServer(ip_address("2001:db8::1"), 80),
                    VirtualServer(ip=ip_address("2001:db8::100"), port=80))
    assert b"Host: [2001:db8::1]:80\r\n" in HttpPlan.of(check).requests[0]
    assert request_bytes("/", "h", "1.0C").startswith(b"GET / HTTP/1.0\r\n")
    assert b"Connection: close" in request_bytes("/", "h", "1.0C")


# --------------------------------------------------------------------------- SSL_GET


async def test_ssl_get_status_digest_and_sni(tls_web: WebServer) -> None:
    check = http(tls_web.port, Url("/ok", digest=MD5), cls=SslGet, enable_sni=True,
                 virtualhost="svc.example")
    out = await http_check(check)
    assert out.ok, out.reason
    assert tls_web.snis == ["svc.example"] and tls_web.seen[0].path == "/ok"
    out = await http_check(http(tls_web.port, Url("/status/500"), cls=SslGet))
    assert not out.ok and out.reason == "HTTP status 500 on GET /status/500"
    assert tls_web.snis[-1] is None  # no enable_sni: no SNI


async def test_ssl_get_against_a_plain_server_fails_cleanly() -> None:
    """A plain-text server that speaks first (as many do on a bad request): the handshake
    fails at once with OpenSSL's reason, no exception escapes."""
    async def banner(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        await w.drain()
        w.close()

    srv = await asyncio.start_server(banner, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        out = await http_check(http(port, Url("/ok"), cls=SslGet))
    finally:
        srv.close()
    assert not out.ok and out.reason.startswith(f"TLS handshake with [127.0.0.1]:{port} failed")
    assert "WRONG_VERSION_NUMBER" in out.reason or "wrong version" in out.reason.lower()


async def test_plain_get_against_a_tls_server_fails_cleanly(tls_web: WebServer) -> None:
    out = await http_check(http(tls_web.port, Url("/ok"), connect_timeout=1))
    assert not out.ok and "no HTTP response" in out.reason and not tls_web.seen


# --------------------------------------------------------------------------- TCP_CHECK


async def test_tcp_check(web: WebServer) -> None:
    rs = RealServer(ip_address("127.0.0.1"), web.port)
    assert (await tcp_check(resolve(TcpCheck(), rs, VS))).ok
    rs = RealServer(ip_address("127.0.0.1"), closed_port())
    out = await tcp_check(resolve(TcpCheck(), rs, VS))
    assert not out.ok and out.reason.endswith("Connection refused")
    fw = VirtualServer(fwmark=7, lvs_method="DR")  # fwmark: the RS port is the check port
    assert (await tcp_check(resolve(TcpCheck(), RealServer(ip_address("127.0.0.1"),
                                                           web.port), fw))).ok


# --------------------------------------------------------------------------- MISC_CHECK


def misc_runner() -> MiscRunner:
    """The shared runner from pyvrrp, injected: ipvsctl itself never imports pyvrrp."""
    gd = GlobalDefs()

    def prepare(m: MiscCheck) -> Any:
        got = check_script(m.misc_path, gd, m.user, m.group)
        return str(got) if isinstance(got, ScriptError) else got

    return MiscRunner(ScriptRunner(timeout=60), prepare)


def exit_script(tmp_path: Path) -> tuple[Path, Path]:
    code = tmp_path / "code"
    code.write_text("0")
    script = tmp_path / "check.sh"
    script.write_text(f"#!/bin/sh\nread c < {code}\nexit $c\n")
    script.chmod(0o755)
    return script, code


async def test_misc_dynamic_exit_codes(tmp_path: Path) -> None:
    script, code = exit_script(tmp_path)
    runner = misc_runner()
    check = resolve(MiscCheck(misc_path=str(script), misc_dynamic=True), RealServer(
        ip_address("127.0.0.1"), 80), VS)
    results = {}
    for c in (0, 1, 2, 7, 255):
        code.write_text(str(c))
        results[c] = await runner.run(check)
    assert results[0].ok and results[0].weight is None
    assert not results[1].ok and results[1].reason == "script exited with status 1"
    assert [results[c].weight for c in (2, 7, 255)] == [0, 5, 253]
    static = resolve(MiscCheck(misc_path=str(script)), RealServer(ip_address("127.0.0.1"), 80),
                     VS)
    assert not (await runner.run(static)).ok  # 255 without misc_dynamic is a failure


async def test_misc_check_as_a_user_this_host_lacks_fails_without_raising(
        tmp_path: Path) -> None:
    script, _ = exit_script(tmp_path)
    check = resolve(MiscCheck(misc_path=str(script), user="no-such-user-pyvrrp"),
                    RealServer(ip_address("127.0.0.1"), 80), VS)
    # ipvsctl's own runner (`ipvsctl run`), which leaves the user to the exec
    outcome = await MiscRunner(IpvsctlScriptRunner(), prepare_misc).run(check)
    assert not outcome.ok and "could not be started" in outcome.reason
    assert "no-such-user-pyvrrp" in outcome.reason


async def test_misc_timeout_kills_the_script(tmp_path: Path) -> None:
    script = tmp_path / "hang.sh"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(0o755)
    check = resolve(MiscCheck(misc_path=str(script), misc_timeout=1), RealServer(
        ip_address("127.0.0.1"), 80), VS)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    out = await misc_runner().run(check)
    assert not out.ok and "still running after 1 s" in out.reason
    assert loop.time() - t0 < 5


def test_refused_misc_script_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    spec = resolve_real_server(VS, RealServer(ip_address("127.0.0.1"), 80),
                               (MiscCheck(misc_path="/nonexistent/check.sh"),))
    with caplog.at_level(logging.ERROR, "ipvsctl.health"):
        sched = HealthScheduler([spec], lambda e: None, misc=misc_runner())
    assert len(sched.state) == 0 and "Disabling MISC_CHECK" in caplog.text
    with pytest.raises(ValueError, match="script runner"):
        HealthScheduler([spec], lambda e: None)


# --------------------------------------------------------------------------- the scheduler


async def wait_for(events: list[Event], n: int, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while len(events) < n:
            await asyncio.sleep(0.02)


async def test_scheduler_end_to_end(web: WebServer, tmp_path: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    fast: dict[str, Any] = {"delay_loop": 0.2, "warmup": 0, "retry": 1,
                            "delay_before_retry": 0.1}
    web_rs = RealServer(ip_address("127.0.0.1"), web.port)
    dead_rs = RealServer(ip_address("127.0.0.1"), closed_port())
    misc_rs = RealServer(ip_address("127.0.0.3"), web.port, weight=4)
    script, code = exit_script(tmp_path)
    code.write_text("9")
    servers = [
        resolve_real_server(VS, web_rs, (HttpGet(urls=(Url("/toggle"),), **fast),
                                         TcpCheck(**fast))),
        resolve_real_server(VS, dead_rs, (TcpCheck(**fast),)),
        resolve_real_server(VS, misc_rs, (MiscCheck(misc_path=str(script), misc_dynamic=True,
                                                    **fast),)),
    ]
    events: list[Event] = []
    sched = HealthScheduler(servers, events.append, misc=misc_runner(), bootstrap=0)
    web_key, dead_key, misc_key = (s.key for s in servers)
    with caplog.at_level(logging.INFO, "ipvsctl.health"):
        sched.start()
        try:
            await wait_for(events, 2)
            assert set(events) == {RealServerDown(dead_key, f"connect to {dead_key}: "
                                                  "Connection refused", "TCP_CHECK"),
                                   WeightChange(misc_key, 7)}
            events.clear()
            web.status = 503
            await wait_for(events, 1)
            assert events == [RealServerDown(web_key, "HTTP status 503 on GET /toggle, after 1 "
                                             "retry", "HTTP_GET")]
            assert not sched.state.alive(web_key) and sched.state.alive(misc_key)
            web.status = 200
            await wait_for(events, 2)
            assert events[1] == RealServerUp(web_key, "HTTP status 200 on GET /toggle",
                                             "HTTP_GET")
        finally:
            await sched.stop()
    assert (f"Remote Web server [127.0.0.1]:{web.port} down: HTTP status 503 on GET /toggle, "
            f"after 1 retry (VS 127.0.0.1 80)") in caplog.text
    assert f"TCP service {dead_key} down: connect to" in caplog.text
    assert f"Real server [127.0.0.3]:{web.port} (VS 127.0.0.1 80): weight 7" in caplog.text
    # state changes only: the dead server was reported once however often it was checked
    assert sched.checks_done > 10
    assert sum(isinstance(e, RealServerDown) and e.rs == dead_key for e in events) == 0


async def test_scheduler_jitter_and_stop(web: WebServer) -> None:
    """warmup jitter spreads the first checks; stop() leaves nothing running."""
    rss = [resolve_real_server(VirtualServer(ip=ip_address("127.0.0.1"), port=1000 + i),
                               RealServer(ip_address("127.0.0.1"), web.port),
                               (HttpGet(urls=(Url("/ok"),), delay_loop=0.5, warmup=0.4),))
           for i in range(20)]
    draws = iter([i / 20 for i in range(20)])
    sched = HealthScheduler(rss, lambda e: None, rand=lambda: next(draws), bootstrap=0)
    sched.start()
    await asyncio.sleep(0.45)
    await sched.stop()
    assert 18 <= len(web.seen) <= 20 and sched.checks_done == len(web.seen)
    assert {s.path for s in web.seen} == {"/ok"}
    n = len(web.seen)
    await asyncio.sleep(0.6)
    assert len(web.seen) == n  # stopped: nothing more
    key = RsKey.of(VirtualServer(ip=ip_address("127.0.0.1"), port=1000),
                   RealServer(ip_address("127.0.0.1"), web.port))
    assert sched.state.snapshot()[key] == (True, 1)
