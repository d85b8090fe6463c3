"""Start, inspect and stop the ToonDB IPC server for one database folder.

``start_server.sh`` is a thin wrapper around these functions. The rules
come from how the engine behaves (see README, "What ToonDB guarantees"):
a server started on a live socket silently steals it, SIGTERM leaves the
socket file behind, and a socket path over 107 bytes makes the server exit
after it said "ready". So readiness is always a real ping, a stale socket
is removed only when nothing answers on it, and a live one is never touched.
"""

import logging
import os
import signal
import stat
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from sochdb.ipc_client import IpcClient

from incident_ops import config

log = logging.getLogger(__name__)

PID_FILE = "server.pid"
LOG_FILE = "server.log"
READY_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0


class ServerError(Exception):
    """The server could not be started or stopped; the message says why."""


@dataclass
class ServerPaths:
    database: Path
    socket: Path
    pid_file: Path
    log_file: Path

    @classmethod
    def for_db(cls, db: str | None = None) -> "ServerPaths":
        database = config.db_dir(db)
        return cls(
            database=database,
            socket=config.socket_path(database),
            pid_file=database / PID_FILE,
            log_file=database / LOG_FILE,
        )


def server_binary() -> Path:
    """The ``sochdb-server`` binary shipped inside the sochdb wheel.

    The console script pip installs for it is broken in sochdb 0.8.3 (it
    imports a module the wheel lacks), so the binary is run directly. Some
    installers drop its executable bit; it is restored here.
    """
    bin_root = resources.files("sochdb") / "_bin"
    candidates = sorted(Path(str(bin_root)).glob("*/sochdb-server"))
    if not candidates:
        raise ServerError(
            f"no sochdb-server binary under {bin_root}: reinstall with "
            "'pip install -r requirements.txt' (sochdb==0.8.3)"
        )
    binary = candidates[0]
    mode = binary.stat().st_mode
    if not mode & stat.S_IXUSR:
        binary.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return binary


def answers(socket_path: Path, timeout: float = 2.0) -> bool:
    """True when a ToonDB server answers a ping on ``socket_path``."""
    if not socket_path.exists():
        return False
    try:
        with IpcClient.connect(str(socket_path), timeout=timeout) as client:
            client.ping()
        return True
    except Exception:
        return False


def prepare(paths: ServerPaths) -> None:
    """Check everything that would make a start fail or do harm."""
    if answers(paths.socket):
        pid = running_pid(paths)
        who = f" (pid {pid})" if pid else ""
        raise ServerError(
            f"a ToonDB server is already running on {paths.socket}{who}; "
            "stop it first with ./start_server.sh stop"
        )

    if not paths.database.exists():
        paths.database.mkdir(parents=True, mode=0o700)
        # mkdir's mode is masked by the umask; the folder holds every
        # process's state, so it is made owner-only explicitly.
        paths.database.chmod(0o700)

    if paths.socket.exists() or paths.socket.is_symlink():
        log.warning("removing stale socket %s (nothing answers on it)", paths.socket)
        paths.socket.unlink()
    paths.pid_file.unlink(missing_ok=True)


def server_command(paths: ServerPaths) -> list[str]:
    return [
        str(server_binary()),
        "--db", str(paths.database),
        "--socket", str(paths.socket),
        "--log-level", "warn",
    ]


def run_foreground(paths: ServerPaths) -> None:
    """Replace this process with the server; Ctrl+C stops it cleanly.

    ``exec`` keeps the pid, so the pid file written here names the server,
    and SIGINT reaches the server itself, which then removes its socket.
    """
    prepare(paths)
    command = server_command(paths)
    paths.pid_file.write_text(f"{os.getpid()}\n")
    print(f"ToonDB server on {paths.socket} (Ctrl+C to stop)", flush=True)
    os.execv(command[0], command)


def start_daemon(paths: ServerPaths) -> int:
    """Start the server in the background; return its pid once it answers."""
    import subprocess

    prepare(paths)
    with open(paths.log_file, "ab") as server_log:
        process = subprocess.Popen(
            server_command(paths),
            stdin=subprocess.DEVNULL,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    paths.pid_file.write_text(f"{process.pid}\n")

    give_up_at = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < give_up_at:
        if process.poll() is not None:
            paths.pid_file.unlink(missing_ok=True)
            raise ServerError(
                f"server exited with code {process.returncode} during start-up; "
                f"see {paths.log_file}"
            )
        if answers(paths.socket, timeout=0.5):
            return process.pid
        time.sleep(0.05)

    process.kill()
    paths.pid_file.unlink(missing_ok=True)
    raise ServerError(
        f"server did not answer on {paths.socket} within {READY_TIMEOUT_S:g} s; "
        f"see {paths.log_file}"
    )


def running_pid(paths: ServerPaths) -> int | None:
    """The pid of the server for this socket, from the pid file or /proc."""
    try:
        pid = int(paths.pid_file.read_text().strip())
        if _is_server_for(pid, paths.socket):
            return pid
    except (OSError, ValueError):
        pass

    # A server started by hand has no pid file: find it by its command line.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_server_for(int(entry.name), paths.socket):
            return int(entry.name)
    return None


def _is_server_for(pid: int, socket_path: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not argv or not argv[0].endswith(b"sochdb-server"):
        return False
    return os.fsencode(socket_path) in argv


def uptime_seconds(pid: int) -> float:
    """Seconds since ``pid`` started, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    started_ticks = int(fields[19])
    boot_uptime = float(Path("/proc/uptime").read_text().split()[0])
    return boot_uptime - started_ticks / os.sysconf("SC_CLK_TCK")


def stop(paths: ServerPaths) -> bool:
    """Stop the server; True if one was running. Always removes the socket.

    SIGINT first, because on SIGINT the server removes its own socket;
    SIGKILL if it has not exited within the timeout.
    """
    pid = running_pid(paths)
    if pid is not None:
        _signal(pid, signal.SIGINT)
        give_up_at = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid) and time.monotonic() < give_up_at:
            time.sleep(0.05)
        if _alive(pid):
            log.warning("server pid %d ignored SIGINT; sending SIGKILL", pid)
            _signal(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)

    paths.socket.unlink(missing_ok=True)
    paths.pid_file.unlink(missing_ok=True)
    return pid is not None


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    return state != "Z"


def main(action: str, db: str | None) -> int:
    """Entry point of ``python -m incident_ops server``; returns an exit code."""
    paths = ServerPaths.for_db(db)

    if action == "start":
        run_foreground(paths)
        return 0

    if action == "daemon":
        pid = start_daemon(paths)
        print(f"ToonDB server started: pid {pid}, socket {paths.socket}")
        return 0

    if action == "status":
        if not answers(paths.socket):
            print(f"ToonDB server not running (no answer on {paths.socket})")
            return 1
        pid = running_pid(paths)
        uptime = f"{uptime_seconds(pid):.0f} s" if pid else "unknown"
        print(f"ToonDB server running: pid {pid}, socket {paths.socket}, "
              f"uptime {uptime}")
        return 0

    if action == "stop":
        if stop(paths):
            print(f"ToonDB server stopped; removed {paths.socket}")
        else:
            print(f"no ToonDB server was running for {paths.socket}")
        return 0

    print(f"unknown server action {action!r}", file=sys.stderr)
    return 2
