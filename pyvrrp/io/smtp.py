"""SMTP alerts, as keepalived 2.2.7 sends them (keepalived/core/smtp.c).

A tiny asyncio SMTP client with keepalived's dialogue: greeting 220, HELO, MAIL FROM,
one RCPT TO per address, DATA, the message, QUIT. Every step waits at most
smtp_connect_timeout, as keepalived's does. asyncio rather than smtplib in a thread: a
dead server then costs nothing but a pending task, and shutdown can cancel it.

Alerts of one instance go out one after the other through a bounded queue, so they arrive
in transition order and a dead server cannot pile up connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import socket
from dataclasses import dataclass
from email.utils import formatdate

from pyvrrp.config.model import GlobalDefs

log = logging.getLogger("pyvrrp")

QUEUE_MAX = 32  # pending alerts per instance; past that new ones are dropped and logged

# keepalived vrrp_notify.c vrrp_smtp_notifier(): subject suffix and body per state.
VRRP_ALERTS: dict[str, tuple[str, str]] = {
    "MASTER": ("Entering MASTER state", "=> VRRP Instance is now owning VRRP VIPs <="),
    "BACKUP": ("Entering BACKUP state", "=> VRRP Instance is no longer owning VRRP VIPs <="),
    "FAULT": ("Entering FAULT state", "=> VRRP Instance is no longer owning VRRP VIPs <="),
    "STOP": ("Stopping", "=> VRRP Instance stopping <="),
}


class SmtpError(Exception):
    pass


@dataclass(frozen=True)
class SmtpSettings:
    server: str
    port: int
    timeout: float
    recipients: tuple[str, ...]
    sender: str | None  # None: keepalived's default, <user>@<local name>
    helo: str | None  # None: the local name
    router_id: str | None  # None: the local name


def settings(gd: GlobalDefs) -> SmtpSettings | None:
    """What keepalived needs before it sends anything: a server and a recipient."""
    if not gd.smtp_server or not gd.notification_email:
        return None
    return SmtpSettings(gd.smtp_server, gd.smtp_port, gd.smtp_connect_timeout,
                        gd.notification_email, gd.notification_email_from,
                        gd.smtp_helo_name, gd.router_id)


async def local_name() -> str | None:
    """keepalived's get_local_name(): the canonical name of uname's nodename."""
    node = os.uname().nodename
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(node, None,
                                                             flags=socket.AI_CANONNAME)
    except OSError:
        return None
    return next((i[3] for i in infos if i[3]), None)


def vrrp_subject(router_id: str, instance: str, state: str) -> tuple[str, str] | None:
    """(subject, body) for an instance entering `state`, worded as keepalived's."""
    what = VRRP_ALERTS.get(state)
    if what is None:
        return None
    return f"[{router_id}] VRRP Instance {instance} - {what[0]}", what[1]


def message(sender: str, recipients: tuple[str, ...], subject: str, body: str,
            date: str | None = None) -> bytes:
    """keepalived's SMTP_HEADERS_CMD + SMTP_BODY_CMD, dot-stuffed, without the final dot."""
    text = (f"Date: {date or formatdate(localtime=True)}\r\nFrom: {sender}\r\n"
            f"Subject: {subject}\r\nX-Mailer: Keepalived\r\nTo: {', '.join(recipients)}\r\n"
            f"\r\n{body}\r\n")
    lines = text.split("\r\n")
    return "\r\n".join("." + ln if ln.startswith(".") else ln for ln in lines).encode()


async def _reply(reader: asyncio.StreamReader, timeout: float) -> tuple[int, str]:
    """One (possibly multi-line) reply: the code of its last line and its text."""
    text = []
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise SmtpError("the server closed the connection")
        if len(line) > 1024:  # keepalived's SMTP_BUFFER_MAX
            raise SmtpError("reply line too long")
        s = line.decode("utf-8", "replace").rstrip("\r\n")
        text.append(s)
        if len(s) < 3 or not s[:3].isdigit():
            raise SmtpError(f"malformed reply {s!r}")
        if s[3:4] != "-":
            return int(s[:3]), "\n".join(text)


async def send_mail(cfg: SmtpSettings, subject: str, body: str,
                    names: tuple[str, str] | None = None) -> None:
    """Send one alert; SmtpError (or OSError) says which step failed.

    `names` is (helo name, sender) when the caller already resolved the defaults.
    """
    helo, sender = names or await default_names(cfg)
    where = f"[{cfg.server}]:{cfg.port}"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(cfg.server, cfg.port), cfg.timeout)
    except TimeoutError:
        raise SmtpError(f"Timeout connecting SMTP server {where}.") from None
    except OSError as err:
        raise SmtpError(f"SMTP connection ERROR to {where}: {err.strerror or err}.") from None
    try:
        async def step(cmd: bytes | None, want: int, name: str) -> None:
            try:
                if cmd is not None:
                    writer.write(cmd)
                    await asyncio.wait_for(writer.drain(), cfg.timeout)
                code, text = await _reply(reader, cfg.timeout)
            except TimeoutError:
                raise SmtpError(f"Timeout reading data to remote SMTP server {where}.") \
                    from None
            if code != want:
                raise SmtpError(f"Error processing {name} cmd on SMTP server {where}. "
                                f"SMTP status code = {code} ({text})")

        await step(None, 220, "connect")
        await step(f"HELO {helo}\r\n".encode(), 250, "HELO")
        await step(f"MAIL FROM:<{sender}>\r\n".encode(), 250, "MAIL")
        for rcpt in cfg.recipients:
            await step(f"RCPT TO:<{rcpt}>\r\n".encode(), 250, "RCPT")
        await step(b"DATA\r\n", 354, "DATA")
        await step(message(sender, cfg.recipients, subject, body) + b"\r\n.\r\n", 250, "BODY")
        try:
            await step(b"QUIT\r\n", 221, "QUIT")
        except (SmtpError, OSError):
            pass  # the mail is accepted; a sloppy goodbye is not a failure
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (OSError, TimeoutError):
            pass


async def default_names(cfg: SmtpSettings, name: str | None = None) -> tuple[str, str]:
    """(HELO name, sender) with keepalived's defaults: the local name, <user>@<local name>."""
    if cfg.helo is not None and cfg.sender is not None:
        return cfg.helo, cfg.sender
    name = name or await local_name()
    helo = cfg.helo or name or "localhost"
    sender = cfg.sender
    if sender is None:
        try:
            user = pwd.getpwuid(os.getuid()).pw_name
        except KeyError:
            user = "keepalived"
        sender = f"{user}@{name or os.uname().nodename}"
    return helo, sender


class SmtpAlerter:
    """One instance's alerts: queued, sent in order, failures logged, never raised."""

    def __init__(self, cfg: SmtpSettings, name: str,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.cfg = cfg
        self.name = name
        self.loop = loop
        self._queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_MAX)
        self._worker: asyncio.Task[None] | None = None
        self._names: tuple[str, str] | None = None
        self._router_id: str | None = cfg.router_id
        self.sent = 0

    def alert(self, state: str) -> None:
        """Queue the alert for `state` (MASTER, BACKUP, FAULT or STOP)."""
        if state not in VRRP_ALERTS:
            return
        try:
            self._queue.put_nowait(state)
        except asyncio.QueueFull:
            log.warning("(%s) SMTP alert for %s dropped: %d alerts already waiting",
                        self.name, state, QUEUE_MAX)
            return
        if self._worker is None or self._worker.done():
            self._worker = self.loop.create_task(self._work(), name=f"{self.name}-smtp")

    async def _work(self) -> None:
        while True:
            state = await self._queue.get()
            try:
                if self._names is None:
                    name = None
                    if self._router_id is None or self.cfg.helo is None \
                            or self.cfg.sender is None:
                        name = await local_name()
                    self._names = await default_names(self.cfg, name)
                    if self._router_id is None:
                        self._router_id = name or os.uname().nodename
                subject, body = vrrp_subject(self._router_id or "", self.name, state) \
                    or ("", "")
                await send_mail(self.cfg, subject, body, self._names)
                self.sent += 1
                log.info("(%s) SMTP alert successfully sent: %s", self.name, subject)
            except (SmtpError, OSError) as err:
                log.warning("(%s) SMTP alert for %s not sent: %s", self.name, state, err)
            except Exception:  # noqa: BLE001 - an alert must never take the speaker down
                log.exception("(%s) SMTP alert for %s failed", self.name, state)
            finally:
                self._queue.task_done()

    async def close(self, timeout: float) -> None:
        """Give queued alerts up to `timeout` (the STOP one matters), then give up."""
        if self._worker is None:
            return
        try:
            await asyncio.wait_for(self._queue.join(), max(0.0, timeout))
        except TimeoutError:
            log.warning("(%s) %d SMTP alert(s) not sent before shutdown", self.name,
                        self._queue.qsize() + 1)
        self._worker.cancel()
        try:
            await self._worker
        except asyncio.CancelledError:
            pass
