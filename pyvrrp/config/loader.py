"""Pick the front end by content, not by file name."""

from __future__ import annotations

from pathlib import Path

from pyvrrp.config.diagnostics import ConfigError, Diagnostic
from pyvrrp.config.model import Config, Pos
from pyvrrp.config.yaml_loader import load_yaml


def looks_like_keepalived(text: str) -> bool:
    """keepalived.conf has brace blocks and no `key:` mapping at the start of a line."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split("!", 1)[0].strip()
        if not line:
            continue
        first = line.split()[0]
        return not first.endswith(":") and ("{" in text)
    return False


def load_config(path: str | Path) -> tuple[Config, list[Diagnostic]]:
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError.at(Pos(source, 1, 1), f"cannot read config: {err.strerror}") from None
    if b"\0" in raw:
        raise ConfigError.at(Pos(source, 1, 1), "this is a binary file, not a config")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError.at(Pos(source, 1, 1), f"not UTF-8 text: {err.reason}") from None
    if looks_like_keepalived(text):
        raise ConfigError.at(Pos(source, 1, 1),
                             "keepalived.conf syntax is not supported yet; use the YAML form")
    return load_yaml(source, text)
