"""``python -m incident_ops COMMAND``: the user commands, one module each.

Each module in ``incident_ops.commands`` is found by itself and exposes
``add_parser(subparsers)``, which registers its arguments and sets
``run(args) -> int`` as the handler.
This file is the one error boundary: a known error prints one line and
exits non-zero; the traceback appears only with ``OPS_DEBUG=1``.
"""

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from incident_ops import commands, logs
from incident_ops.config import ConfigError
from incident_ops.errors import UserError
from incident_ops.server import ServerError
from incident_ops.store import StoreError

log = logging.getLogger("incident_ops")


# Errors whose message is complete by itself: no traceback needed.
KNOWN_ERRORS = (UserError, ConfigError, ServerError, StoreError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m incident_ops")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in pkgutil.iter_modules(commands.__path__):
        module = importlib.import_module(f"incident_ops.commands.{command.name}")
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.verbose)
    return run_guarded(args.run, args)


def run_guarded(handler, args) -> int:
    """Run ``handler(args)``, turning known errors into one line and exit 1."""
    try:
        return handler(args)
    except KNOWN_ERRORS as error:
        if os.environ.get("OPS_DEBUG"):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
