"""Server secrets (JWT signing key, audit HMAC key): from settings, else a file in MLOOP_HOME.

A missing key file is generated on first use with 32 random bytes and mode 0600, created with
O_EXCL so two processes starting together end up with the same key.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
from pathlib import Path

from pydantic import SecretStr

from mloop.errors import ConfigError

JWT_KEY_FILE = "jwt.key"
AUDIT_KEY_FILE = "audit.key"
MIN_BYTES = 32


def server_secret(configured: SecretStr, home: Path, filename: str) -> bytes:
    """The configured secret, or the one in `home/filename` (generated when absent)."""
    value = configured.get_secret_value()
    if value:
        if len(value.encode()) < MIN_BYTES:
            raise ConfigError(
                f"the configured secret for {filename.removesuffix('.key')} is "
                f"{len(value.encode())} bytes: HMAC-SHA256 needs at least {MIN_BYTES}",
                hint="generate one: python -c 'import secrets; print(secrets.token_hex(32))'",
            )
        return value.encode()
    path = Path(home) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
        handle.flush()
        os.fsync(handle.fileno())
    return _read(path)


def _read(path: Path) -> bytes:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the secret file {path}: {exc}") from exc
    if not text:  # another process is between O_EXCL create and write: wait for it
        for _ in range(50):
            time.sleep(0.02)
            text = path.read_text().strip()
            if text:
                break
        else:
            raise ConfigError(f"the secret file {path} is empty", hint="delete it to regenerate")
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"the secret file {path} is readable by other users",
            hint=f"chmod 600 {path}",
        )
    return text.encode()
