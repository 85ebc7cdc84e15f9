"""Pick the front end by content, not by file name."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyvrrp.config.diagnostics import ConfigError, Diagnostic
from pyvrrp.config.model import Config, Pos
from pyvrrp.config.parser import MAX_CONFIG_BYTES, Options
from pyvrrp.config.yaml_loader import load_yaml

# The first meaningful line of a YAML config: a document marker, a directive, a flow
# mapping, or `key:`. keepalived.conf never starts that way (its keywords take no colon).
_YAML_START = re.compile(r"(---|\.\.\.|%|\{|[A-Za-z0-9_.\-\"']+\s*:(\s|$))")


def looks_like_keepalived(text: str) -> bool:
    """True unless the first line that is not blank or a comment reads as YAML. With no
    such line, a `!` comment (keepalived's, not YAML's) says keepalived."""
    bang = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            bang = bang or line[:1] == "!"
            continue
        return not _YAML_START.match(line)
    return bang


def load_config(path: str | Path, options: Options | None = None
                ) -> tuple[Config, list[Diagnostic]]:
    source = str(path)
    at = Pos(source, 1, 1)
    try:
        if Path(path).stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError.at(at, f"the config is {Path(path).stat().st_size} bytes; pyvrrp "
                                 f"reads at most {MAX_CONFIG_BYTES >> 20} MiB")
        raw = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError.at(at, f"cannot read config: {err.strerror}") from None
    if b"\0" in raw:
        raise ConfigError.at(at, "this is a binary file, not a config")
    # keepalived reads bytes: comments in another encoding must not stop it
    text = raw.decode("utf-8", "surrogateescape")
    if looks_like_keepalived(text):
        from pyvrrp.config.keepalived import load_keepalived

        return load_keepalived(path, text, options)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError.at(at, f"not UTF-8 text: {err.reason}") from None
    return load_yaml(source, text)


def load_for_reload(load: Callable[[], tuple[Config, list[Any]]],
                    log: logging.Logger) -> Config | None:
    """A reload's config, its warnings logged; None (errors logged) when it does not load,
    so the caller keeps running what it had."""
    try:
        config, warnings = load()
    except ConfigError as err:
        for d in err.diagnostics:
            log.error("%s", d)
        log.error("Reload refused: keeping the running configuration")
        return None
    for w in warnings:
        log.warning("%s", w)
    return config
