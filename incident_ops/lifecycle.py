"""What the long-running processes share: stopping on a signal, and saying
once when the server went away and once when it came back."""

import logging
import os
import signal
import time
from types import FrameType

log = logging.getLogger(__name__)

SLEEP_SLICE_S = 0.05


class StopFlag:
    """Set by SIGINT/SIGTERM; the main loop checks it and exits cleanly.

    The handler only records the signal. A second signal while the loop is
    still busy (a slow store call, a plan being written) ends the process
    at once, and the log says so.
    """

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def install(self) -> "StopFlag":
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None:
            log.warning("second %s: exiting now without finishing the step", name)
            os._exit(1)
        self.signal_name = name
        log.info("%s received: stopping after the current step", name)

    @property
    def is_set(self) -> bool:
        return self.signal_name is not None

    def sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``, returning early once the flag is set."""
        wake_at = time.monotonic() + seconds
        while not self.is_set:
            left = wake_at - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, SLEEP_SLICE_S))


class OutageLog:
    """One log line when the server becomes unreachable, one when it is back."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.down_since: float | None = None

    def failed(self, error: Exception) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            log.warning("ToonDB server unreachable at %s; retrying until it is "
                        "back (%s)", self.socket_path, error)

    def succeeded(self) -> None:
        if self.down_since is not None:
            log.info("ToonDB server reachable again after %.1f s",
                     time.monotonic() - self.down_since)
            self.down_since = None


def say(line: str) -> None:
    """A console line for the user, flushed so a runner reading a pipe
    shows it at once."""
    print(line, flush=True)
