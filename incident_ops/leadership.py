"""One active process per role and database: an exclusive OS lock decides which.

The collector, the indexer and the commander each write key families no
other process may write, and the engine has no compare-and-set to stop a second writer.
So each role holds ``flock`` on ``$OPS_DB/<role>.lock`` (through
``filelock``) for its whole life; the kernel releases it when the holder
dies, however it dies, so a standby takes over without trusting a
heartbeat. The holder writes its pid to ``$OPS_DB/<role>.pid`` once the
lock is its own, so that a standby can name it; the pid file is only ever
read to print that name, never to decide who is active.
"""

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

COLLECTOR = "collector"
COMMANDER = "commander"
INDEXER = "indexer"
RETRY_S = 0.5
# How long a standby waits for the active process to publish its pid.
PID_WAIT_S = 3.0


class RoleLock:
    """The lock of one role (collector, indexer, commander) in ``database``."""

    def __init__(self, database: Path, role: str) -> None:
        self.role = role
        self.lock = FileLock(database / f"{role}.lock", timeout=0)
        self.pid_file = database / f"{role}.pid"

    @property
    def lock_file(self) -> str:
        return self.lock.lock_file

    def try_acquire(self) -> bool:
        """True once the lock is ours; the pid file then names this process."""
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            return False
        temporary = self.pid_file.with_suffix(f".pid.{os.getpid()}")
        temporary.write_text(f"{os.getpid()}\n")
        temporary.replace(self.pid_file)
        return True

    def release(self) -> None:
        if self.lock.is_locked:
            self.pid_file.unlink(missing_ok=True)
            self.lock.release()

    def active_pid(self) -> str:
        """The active holder's pid, or ``unknown``.

        Two processes started together race: the winner may not have written
        its pid yet, or an old pid file names a dead process; so wait briefly
        for a live pid other than ours.
        """
        give_up_at = time.monotonic() + PID_WAIT_S
        while True:
            pid = self._read_pid()
            if pid is not None and pid != os.getpid() and _alive(pid):
                return str(pid)
            if time.monotonic() >= give_up_at:
                return "unknown"
            time.sleep(0.1)

    def _read_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None


def wait_for_leadership(
    lock: RoleLock, should_stop: Callable[[], bool], say: Callable[[str], None]
) -> bool:
    """Block until ``lock`` is ours (True) or ``should_stop()`` (False).

    Says once that this process is a standby, naming the active one, and
    once more when it takes over.
    """
    announced = False
    while not should_stop():
        if lock.try_acquire():
            if announced:
                say(f"the active {lock.role} is gone: taking over")
            log.info("active %s (holding %s)", lock.role, lock.lock_file)
            return True
        if not announced:
            say(f"standby: another {lock.role} is active (pid {lock.active_pid()}); "
                "taking over if it stops")
            announced = True
        time.sleep(RETRY_S)
    return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
