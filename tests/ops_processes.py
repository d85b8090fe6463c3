"""Running the project's processes in tests: output captured to files,
conditions polled with generous deadlines instead of fixed sleeps."""

import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from incident_ops import incidents
from incident_ops.metric_log import read_history_bucket
from incident_ops.metrics import now_utc
from incident_ops.store import Store
from tests.conftest import PROJECT_ROOT, python_command


def wait_until(condition: Callable[[], object], timeout: float, what: str,
               every: float = 0.1):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    give_up_at = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > give_up_at:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


class Proc:
    """A project script run as a real subprocess, its output kept in files."""

    def __init__(self, name: str, args: list[str], env: dict, folder: Path):
        self.name = name
        self.out_path = folder / f"{name}.out"
        self.err_path = folder / f"{name}.err"
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            self.process = subprocess.Popen(
                python_command(*args), cwd=PROJECT_ROOT, env=env,
                stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def errors(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        wait_until(lambda: text in self.output() or text in self.errors(), timeout,
                   f"{self.name} to print {text!r}\n--- stdout:\n"
                   f"{self.output()[-2000:]}\n--- stderr:\n{self.errors()[-2000:]}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, signum: int = signal.SIGINT, timeout: float = 30) -> int:
        """Signal the process and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)


def all_incidents(store: Store) -> list[dict]:
    return incidents.list_incidents(store, now_utc(), months=2)


def only_incident(store: Store, state: str | None = None) -> dict | None:
    """The single incident (optionally: once it is in ``state``)."""
    found = all_incidents(store)
    assert len(found) <= 1, [i["id"] for i in found]
    if found and (state is None or found[0]["state"] == state):
        return found[0]
    return None


def stored_samples(store: Store, since: datetime) -> list:
    """Every sample stored from ``since`` until now, in order."""
    minute = since.replace(second=0, microsecond=0)
    found = []
    while minute <= datetime.now(UTC):
        found += read_history_bucket(store, minute)
        minute += timedelta(minutes=1)
    return found
