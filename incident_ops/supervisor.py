"""Run several processes, interleave their output, stop them all together.

The way Procfile runners work: each child runs in its own process group,
its output lines come back prefixed with a time and its padded name (in its
own colour on a terminal), and stopping means SIGTERM to every group, a
bounded wait, then SIGKILL. Only the supervisor handles Ctrl+C; the
children never see the terminal's signals.
"""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COLOURS = ["36", "33", "35", "32", "34", "31"]  # cyan, yellow, magenta, ...
STOP_GRACE_S = 8.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    colour: str
    # A child whose exit is expected (a one-shot step) is not a failure.
    expected_exit: bool = False
    lines_seen: list[str] = field(default_factory=list)


class Supervisor:
    """Starts children, multiplexes their output, and tears them down.

    Signal handlers only record the signal; ``wait_until`` notices it on
    its next turn. A second Ctrl+C skips the grace period.
    """

    def __init__(self, env: dict[str, str], cwd: str,
                 out=sys.stdout, colour: bool | None = None):
        self.env = env
        self.cwd = cwd
        self.out = out
        self.colour = out.isatty() if colour is None else colour
        self.children: list[Child] = []
        self.lines: queue.Queue[tuple[Child, str]] = queue.Queue()
        self.stop_signal: int | None = None
        self.force = False
        self.name_width = 9

    # -- signals -----------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, _frame) -> None:
        if self.stop_signal is not None and signum == signal.SIGINT:
            self.force = True
        self.stop_signal = signum

    # -- children ----------------------------------------------------------

    def start(self, name: str, command: list[str],
              expected_exit: bool = False) -> Child:
        env = dict(self.env, PYTHONUNBUFFERED="1", OPS_SUPERVISED="1")
        process = subprocess.Popen(
            command, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child = Child(name, process, COLOURS[len(self.children) % len(COLOURS)],
                      expected_exit)
        self.children.append(child)
        self.name_width = max(self.name_width, len(name))
        threading.Thread(target=self._pump, args=(child,), daemon=True).start()
        self.say(f"started {name} (pid {process.pid})")
        return child

    def _pump(self, child: Child) -> None:
        for raw in iter(child.process.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self.lines.put((child, line))

    def print_line(self, name: str, colour: str, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        label = name.ljust(self.name_width)
        if self.colour:
            label = f"\033[{colour}m{label}\033[0m"
        self.out.write(f"{stamp} {label} | {line}\n")
        self.out.flush()

    def say(self, message: str) -> None:
        """A line from the supervisor itself."""
        self.print_line("demo", "1", message)

    def drain(self, timeout: float = 0.2) -> None:
        """Print the children's pending lines, waiting up to ``timeout``."""
        try:
            child, line = self.lines.get(timeout=timeout)
        except queue.Empty:
            return
        while True:
            child.lines_seen.append(line)
            self.print_line(child.name, child.colour, line)
            try:
                child, line = self.lines.get_nowait()
            except queue.Empty:
                return

    def wait_until(self, done: Callable[[], bool], timeout: float,
                   what: str) -> str:
        """Pump output until ``done()``; return "done", "signal",
        "timeout" or "died" (a child exited that was not expected to)."""
        give_up_at = time.monotonic() + timeout
        while True:
            self.drain()
            if self.stop_signal is not None:
                name = signal.Signals(self.stop_signal).name
                self.say(f"{name} received: stopping every process "
                         "(Ctrl+C again to force)")
                return "signal"
            if done():
                return "done"
            dead = self.unexpected_exit()
            if dead is not None:
                self.drain(0.5)
                self.say(f"{dead.name} exited with code "
                         f"{dead.process.returncode} while waiting for {what}")
                return "died"
            if time.monotonic() >= give_up_at:
                self.say(f"gave up waiting for {what} after {timeout:g} s")
                return "timeout"

    def unexpected_exit(self) -> Child | None:
        for child in self.children:
            if child.process.poll() is not None and not child.expected_exit:
                return child
        return None

    # -- shutdown ------------------------------------------------------------

    def stop_all(self, last: str | None = None) -> None:
        """SIGTERM every child's group, wait, then SIGKILL what is left.

        ``last`` names a child stopped only after the others (the database
        server, so that the others can finish their writes), with SIGINT,
        on which the ToonDB server removes its socket.
        """
        first = [c for c in self.children if c.name != last]
        final = [c for c in self.children if c.name == last]
        self._stop_group(first, signal.SIGTERM)
        self._stop_group(final, signal.SIGINT)
        self.drain(0.1)

    def _stop_group(self, children: list[Child], signum: int) -> None:
        running = [c for c in children if c.process.poll() is None]
        for child in running:
            self._signal_group(child, signum)

        give_up_at = time.monotonic() + (0 if self.force else STOP_GRACE_S)
        while any(c.process.poll() is None for c in running):
            self.drain(0.05)
            if self.force or time.monotonic() >= give_up_at:
                break
        for child in running:
            if child.process.poll() is None:
                self.say(f"{child.name} did not stop in time; killing it")
            # Kill the whole group even if its leader exited: a grandchild
            # must not outlive the demo.
            self._signal_group(child, signal.SIGKILL)
            child.process.wait()

    @staticmethod
    def _signal_group(child: Child, signum: int) -> None:
        try:
            os.killpg(child.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass
