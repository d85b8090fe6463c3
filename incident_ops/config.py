"""Where the database lives, and how every process finds the server.

One rule for everyone: the database folder comes from ``--db DIR`` or the
``OPS_DB`` variable (default ``./ops_db``), and the server's socket is always
``$OPS_DB/toondb.sock``.
"""

import argparse
import math
import os
from pathlib import Path

DEFAULT_DB_DIR = "ops_db"
SOCKET_NAME = "toondb.sock"

# The kernel's sockaddr_un has 108 bytes for the path, one of them the NUL.
MAX_SOCKET_PATH_BYTES = 107


class ConfigError(Exception):
    """A setting the user must change before anything can run."""


def db_dir(cli_value: str | None = None) -> Path:
    """The database folder: ``--db`` wins, then ``OPS_DB``, then ``./ops_db``."""
    raw = cli_value or os.environ.get("OPS_DB") or DEFAULT_DB_DIR
    return Path(raw).expanduser().absolute()


def socket_path(database: Path) -> Path:
    """The server's socket inside ``database``, refused early if too long."""
    path = database / SOCKET_NAME
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH_BYTES:
        raise ConfigError(
            f"socket path is {size} bytes, over the Unix limit of "
            f"{MAX_SOCKET_PATH_BYTES}: {path} (set OPS_DB to a shorter folder)"
        )
    return path


def env_float(name: str, default: float) -> float:
    """A number from the environment, with the variable named if it is bad."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None


def finite_number(text: str) -> float:
    """An argparse type: a finite number (``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_number(text: str) -> float:
    """An argparse type: a finite number above zero (an interval, a timeout)."""
    value = finite_number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


def non_negative_number(text: str) -> float:
    """An argparse type: a finite number of zero or more (a threshold)."""
    value = finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value
