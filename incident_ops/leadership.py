"""One active commander per database: an exclusive OS lock decides which.

``flock`` on ``$OPS_DB/commander.lock`` (through ``filelock``) is held for
the life of the active commander and released by the kernel when it dies,
however it dies, so a standby can take over without trusting a heartbeat.
The active commander's pid is read from its ``commander/status`` record,
not from the lock file.
"""

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from incident_ops import keys
from incident_ops.lifecycle import StopFlag
from incident_ops.store import Store, StoreError

log = logging.getLogger(__name__)

LOCK_NAME = "commander.lock"
RETRY_S = 0.5
# How long a standby waits for the active commander to publish its pid.
PID_WAIT_S = 3.0


def commander_lock(database: Path) -> FileLock:
    return FileLock(database / LOCK_NAME, timeout=0)


def wait_for_leadership(
    lock: FileLock,
    store: Store,
    stop: StopFlag,
    say: Callable[[str], None],
) -> bool:
    """Block until ``lock`` is ours (True) or a stop signal came (False).

    Says once that this commander is a standby, naming the active one.
    """
    announced = False
    while not stop.is_set:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if not announced:
                say(f"standby: another commander is active (pid {_active_pid(store)}); "
                    "taking over if it stops")
                announced = True
            stop.sleep(RETRY_S)
            continue
        if announced:
            say("the active commander is gone: taking over")
        return True
    return False


def _active_pid(store: Store) -> str:
    """The active commander's pid from its status record, once it is there.

    Two commanders started together race: the winner may not have written
    its status yet, or an old status names a dead commander.
    """
    give_up_at = time.monotonic() + PID_WAIT_S
    while True:
        try:
            pid = (store.get(keys.COMMANDER_STATUS) or {}).get("pid")
        except StoreError:
            pid = None
        if isinstance(pid, int) and pid != os.getpid() and _alive(pid):
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
