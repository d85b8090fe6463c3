"""start_server.sh as a user runs it: a real server, real signals."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from incident_ops import server as server_control
from tests.conftest import PROJECT_ROOT

SCRIPT = str(PROJECT_ROOT / "start_server.sh")


def script(db: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPS_DB=str(db))
    return subprocess.run(
        [SCRIPT, *args], cwd=PROJECT_ROOT, env=env, capture_output=True,
        text=True, timeout=timeout,
    )


@pytest.fixture
def db(db_dir):
    yield db_dir
    script(db_dir, "stop")


def server_pid(db: Path) -> int:
    return int((db / "server.pid").read_text())


def test_daemon_start_status_stop(db):
    started = script(db, "--daemon")
    assert started.returncode == 0, started.stderr
    assert server_control.answers(db / "toondb.sock")
    assert (db.stat().st_mode & 0o777) == 0o700

    status = script(db, "status")
    assert status.returncode == 0
    assert f"pid {server_pid(db)}" in status.stdout
    assert str(db / "toondb.sock") in status.stdout
    assert "uptime" in status.stdout

    stopped = script(db, "stop")
    assert stopped.returncode == 0
    assert not (db / "toondb.sock").exists()
    assert script(db, "status").returncode != 0


def test_stale_socket_after_kill_9_is_replaced(db):
    assert script(db, "--daemon").returncode == 0
    os.kill(server_pid(db), signal.SIGKILL)
    time.sleep(0.2)
    assert (db / "toondb.sock").exists(), "SIGKILL should leave the socket behind"

    restarted = script(db, "--daemon")
    assert restarted.returncode == 0, restarted.stderr
    assert "stale socket" in restarted.stderr
    assert script(db, "status").returncode == 0


def test_second_start_is_refused_and_first_keeps_serving(db, tmp_path):
    assert script(db, "--daemon").returncode == 0
    first_pid = server_pid(db)

    for args in (["--daemon"], []):
        second = script(db, *args)
        assert second.returncode != 0
        assert "already running" in second.stderr

    assert server_pid(db) == first_pid
    assert server_control.answers(db / "toondb.sock")


def test_socket_path_over_unix_limit_is_refused_up_front(tmp_path):
    long_db = Path("/tmp") / ("d" * 120)
    result = script(long_db)
    assert result.returncode != 0
    assert "107" in result.stderr
    assert str(long_db / "toondb.sock") in result.stderr
    assert not long_db.exists()


def test_foreground_server_stops_on_ctrl_c_and_removes_socket(db):
    env = dict(os.environ, OPS_DB=str(db))
    foreground = subprocess.Popen(
        [SCRIPT], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )
    give_up_at = time.monotonic() + 30
    while not server_control.answers(db / "toondb.sock"):
        assert time.monotonic() < give_up_at, "foreground server never answered"
        time.sleep(0.1)
    assert script(db, "status").returncode == 0

    foreground.send_signal(signal.SIGINT)
    assert foreground.wait(timeout=15) == 0
    assert not (db / "toondb.sock").exists()
