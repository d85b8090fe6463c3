"""The indexer process: one pass, then (unless ``--once``) watch the folder.

Exit codes: 0 after a pass with ``--once`` or after SIGINT/SIGTERM (honoured
within about 2 s while watching, even with the server down); 1 when
the server or the embedder is unavailable in ``--once`` mode, or the
runbook folder does not exist. One indexer writes a database at a time
(``$OPS_DB/indexer.lock``); another, watching or ``--once``, waits as a
standby and runs when the first exits. While watching, an unreachable
server or embedding endpoint is waited out (logged once) rather than
ending the process.
"""

import argparse
import logging
import os
import signal
import threading
from pathlib import Path

from incident_ops import config, logs
from incident_ops.indexing.embedder import EmbedderError, get_embedder
from incident_ops.indexing.indexer import Indexer
from incident_ops.leadership import INDEXER, RoleLock, wait_for_leadership
from incident_ops.store import (
    DEFAULT_DEADLINE_S,
    LOOP_DEADLINE_S,
    Store,
    StoreError,
)

log = logging.getLogger("incident_ops.indexer")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_POLL_S = 2.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="process_b_indexer.py",
        description="Index a folder of runbooks into ToonDB and keep it current.",
    )
    parser.add_argument("--db", help="database folder (default: $OPS_DB or ./ops_db)")
    parser.add_argument(
        "--runbooks", type=Path, default=None,
        help="runbook folder (default: $OPS_RUNBOOKS or the project's runbooks/)",
    )
    parser.add_argument("--once", action="store_true",
                        help="index once and exit instead of watching")
    parser.add_argument("--poll", type=config.positive_number, default=DEFAULT_POLL_S,
                        help="seconds between checks of the folder (default: 2)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.verbose)
    root = _runbook_folder(args.runbooks)
    if root.exists() and not root.is_dir():
        log.error("runbook folder %s is a file, not a folder: pass --runbooks DIR "
                  "with the folder that holds the runbooks", root)
        return 1
    if not root.is_dir():
        log.error("runbook folder %s does not exist: pass --runbooks DIR", root)
        return 1

    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        # Only record it: the loop finishes the write in progress and exits.
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    lock = RoleLock(config.db_dir(args.db), INDEXER)
    try:
        store = Store.open(args.db, deadline=_store_deadline(args.once))
        # A --once pass takes the lock too, so it never writes beside a
        # watcher; it waits, then finds the watcher's index current.
        if wait_for_leadership(lock, stop.is_set, log.info):
            indexer = Indexer(store=store, root=root, embedder=get_embedder(),
                              stop=stop)
            log.info("indexing %s into %s", root, store.socket_path)
            if args.once:
                summary = indexer.run_pass()
                log.info("%s (index version %d)", summary.line(), summary.version)
            else:
                indexer.watch(args.poll)
    except (StoreError, EmbedderError, config.ConfigError) as error:
        log.error("%s", error)
        return 1
    except OSError as error:
        log.error("cannot take the indexer lock in %s: %s", config.db_dir(args.db),
                  error.strerror or error)
        return 1
    finally:
        lock.release()

    if stop.is_set():
        log.info("stopped by signal")
    return 0


def _store_deadline(once: bool) -> float:
    """Seconds a store call waits for the server: the full deadline for one
    pass, a short one inside the watch loop (``OPS_STORE_DEADLINE`` caps both).
    """
    deadline = config.env_float("OPS_STORE_DEADLINE", DEFAULT_DEADLINE_S)
    return deadline if once else min(deadline, LOOP_DEADLINE_S)


def _runbook_folder(cli_value: Path | None) -> Path:
    raw = cli_value or os.environ.get("OPS_RUNBOOKS") or PROJECT_ROOT / "runbooks"
    return Path(raw).expanduser().absolute()
