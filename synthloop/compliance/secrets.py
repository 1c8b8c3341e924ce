"""Reading key material from a file or an environment variable, without ever echoing it."""

from __future__ import annotations

import os
from pathlib import Path

from synthloop.errors import ConfigError


def read_secret(key_file: str | Path | None, env: str, what: str) -> tuple[bytes, str]:
    """``(bytes, where they came from)``: the file's bytes, else the environment variable's
    value; one clear error when neither is there. Error messages name the source, never the
    secret."""
    if key_file is not None:
        try:
            return Path(key_file).read_bytes(), str(key_file)
        except OSError as e:
            raise ConfigError(f"{key_file}: cannot read the {what} ({e.strerror})") from None
    data = os.environ.get(env, "").encode()
    if not data:
        raise ConfigError(f"no {what}: give key_file or set {env}", fields=("key_file",))
    return data, f"${env}"
