"""Logging for every process and command: one line per event, to stderr.

Plain text rather than rich's handler: the demo runner interleaves several
processes' output, and wrapped or boxed log lines would break that up.
"""

import logging
import os
import sys


def setup(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose or os.environ.get("OPS_DEBUG") else logging.INFO
    line = "%(levelname)-7s %(name)s: %(message)s"
    # Under ./run_demo.sh the runner stamps every line already.
    if not os.environ.get("OPS_SUPERVISED"):
        line = "%(asctime)s " + line
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(line, "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries log their HTTP and model details at INFO; ours is enough.
    for noisy in ("httpx", "httpx2", "openai", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
