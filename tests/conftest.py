"""Fixtures shared by the suite: a real ToonDB server in a short temp folder.

No test talks to a mock of the server. Each server gets its own folder
under /tmp (not pytest's deep tmp_path) so the socket path stays well
under the 107-byte Unix limit.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from incident_ops import server as server_control
from incident_ops.store import Store

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunningServer:
    paths: server_control.ServerPaths

    @property
    def db(self) -> Path:
        return self.paths.database

    @property
    def socket(self) -> Path:
        return self.paths.socket

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a project process needs to find this server."""
        env = dict(os.environ)
        env["OPS_DB"] = str(self.db)
        env["PYTHONPATH"] = str(PROJECT_ROOT)
        env["PYTHONUNBUFFERED"] = "1"
        env["ORT_DISABLE_TELEMETRY"] = "1"
        env.pop("OPENAI_API_KEY", None)
        env.update(extra)
        return env

    def store(self, deadline: float = 30.0) -> Store:
        return Store(self.socket, deadline=deadline)

    def start(self) -> int:
        return server_control.start_daemon(self.paths)

    def stop(self) -> None:
        server_control.stop(self.paths)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would."""
        pid = server_control.running_pid(self.paths)
        assert pid is not None, "no server to kill"
        os.kill(pid, 9)
        while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
            pass


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def short_tmpdir(prefix: str = "ops-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture
def db_dir() -> Iterator[Path]:
    """An empty database folder with a short path; removed afterwards."""
    folder = short_tmpdir()
    yield folder / "db"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def toondb(db_dir: Path) -> Iterator[RunningServer]:
    """A real sochdb-server on a fresh database, stopped afterwards."""
    running = RunningServer(server_control.ServerPaths.for_db(str(db_dir)))
    running.start()
    yield running
    running.stop()


def python_command(*args: str) -> list[str]:
    """``python ARGS`` with the interpreter running the tests."""
    return [sys.executable, *args]


def run_project(args: list[str], env: dict[str, str], timeout: float = 120,
                **kwargs) -> subprocess.CompletedProcess:
    """Run a project command (``-m incident_ops ...`` or a script) to the end."""
    return subprocess.run(
        python_command(*args), cwd=PROJECT_ROOT, env=env, capture_output=True,
        text=True, timeout=timeout, **kwargs,
    )
