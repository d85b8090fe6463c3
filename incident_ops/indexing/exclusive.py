"""One indexer per database: an exclusive OS lock on ``$OPS_DB/indexer.lock``.

The indexer is the single writer of the ``runbooks/*`` keys; two indexers
on one database would overwrite each other's manifest. ``flock`` (through
``filelock``) is held for a watcher's life and for a ``--once`` pass, and
the kernel releases it however the holder dies. The holder's pid is kept
in ``indexer.pid`` beside the lock, only to name it in the standby line:
the lock, not that file, decides who writes.
"""

import logging
import os
import threading
import time
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger("incident_ops.indexer")

LOCK_NAME = "indexer.lock"
PID_NAME = "indexer.pid"
RETRY_S = 0.5
# How long a standby waits for a just-started holder to write its pid.
PID_WAIT_S = 2.0


class IndexerLock:
    """The exclusive right to write the index of the database at ``database``."""

    def __init__(self, database: Path):
        self._lock = FileLock(database / LOCK_NAME, timeout=0)
        self._pid_file = database / PID_NAME

    def acquire(self, stop: threading.Event) -> bool:
        """Block until the lock is ours (True) or ``stop`` is set (False).

        Logs once that this indexer is a standby, naming the active one,
        and once more when it takes over.
        """
        announced = False
        while not stop.is_set():
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                if not announced:
                    log.info("standby: another indexer is active (pid %s); "
                             "indexing when it stops", self._holder_pid())
                    announced = True
                stop.wait(RETRY_S)
                continue
            self._pid_file.write_text(f"{os.getpid()}\n")
            if announced:
                log.info("the active indexer is gone: indexing now")
            return True
        return False

    def release(self) -> None:
        if not self._lock.is_locked:
            return
        self._pid_file.unlink(missing_ok=True)
        self._lock.release()

    def _holder_pid(self) -> str:
        """The holder's pid once it has written it, else ``unknown``."""
        give_up_at = time.monotonic() + PID_WAIT_S
        while True:
            try:
                pid = int(self._pid_file.read_text().strip())
            except (OSError, ValueError):
                pid = None
            if pid is not None and pid != os.getpid() and _alive(pid):
                return str(pid)
            if time.monotonic() >= give_up_at:
                return "unknown"
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
