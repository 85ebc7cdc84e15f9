"""Health checkers (keepalived's HTTP_GET, SSL_GET, TCP_CHECK, MISC_CHECK).

config.py  frozen checker config under keepalived's names; resolve() applies inheritance
state.py   pure: retry sequencing, alpha, warmup, multi-url recovery, liveness, weights
conn.py    one non-blocking check connection on event-loop callbacks
http.py, tcp.py, misc.py   the checks' I/O; misc.py runs scripts via an injected runner
scheduler.py   one asyncio driver for all checks; logs and emits state changes

Never imports pyvrrp: the script runner for MISC_CHECK is injected (see misc.py).
"""
