"""Logging for every process and command: one line per event, to stderr.

Plain text rather than rich's handler: the demo runner interleaves several
processes' output, and wrapped or boxed log lines would break that up.
"""

import logging
import os
import sys


def setup(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose or os.environ.get("OPS_DEBUG") else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter(
            "%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries log their HTTP and model details at INFO; ours is enough.
    for noisy in ("httpx", "openai", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
