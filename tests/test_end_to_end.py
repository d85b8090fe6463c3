"""The whole story, as a user runs it: ./run_demo.sh, and the manual mode.

Each test checks the result from the processes' output and from
``python -m incident_ops incidents --json``, then that nothing it started
is still running.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from incident_ops import server as server_control
from tests.conftest import PROJECT_ROOT, python_command, run_project

DEMO = str(PROJECT_ROOT / "run_demo.sh")
START_SERVER = str(PROJECT_ROOT / "start_server.sh")


def demo_env(db: Path) -> dict[str, str]:
    env = dict(os.environ, OPS_DB=str(db), PYTHONUNBUFFERED="1")
    env.pop("OPENAI_API_KEY", None)
    return env


def processes_using(db: Path) -> list[str]:
    """Command lines of live processes whose environment or arguments
    name ``db``: everything the demo or the test started for it."""
    marker = os.fsencode(str(db))
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in cmdline or b"OPS_DB=" + marker + b"\0" in environ:
            found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def incidents(db: Path) -> list[dict]:
    """Incidents with their full record, read through the user command."""
    env = demo_env(db)
    server_was_up = server_control.answers(db / "toondb.sock")
    if not server_was_up:
        subprocess.run([START_SERVER, "--daemon"], env=env, check=True,
                       capture_output=True, timeout=60)
    try:
        listed = run_project(["-m", "incident_ops", "incidents", "--json"], env)
        assert listed.returncode == 0, listed.stderr
        records = []
        for summary in json.loads(listed.stdout):
            shown = run_project(["-m", "incident_ops", "incidents", "show",
                                 summary["id"], "--json"], env)
            assert shown.returncode == 0, shown.stderr
            records.append(json.loads(shown.stdout))
        return records
    finally:
        if not server_was_up:
            subprocess.run([START_SERVER, "stop"], env=env, capture_output=True,
                           timeout=60)


def assert_complete(incident: dict) -> None:
    states = [step["state"] for step in incident["history"]]
    assert states == ["OPEN", "MITIGATING", "RESOLVED"]
    times = [step["at"] for step in incident["history"]]
    assert times == sorted(times) and len(set(times)) == len(times)

    plan = incident["plan"]
    assert plan["sources"], "the plan cites no runbook chunk"
    assert plan["plan_source"] == "offline"
    applied = [a for a in incident["actions"] if a["status"] == "applied"]
    assert applied, incident["actions"]


def run_demo_once(db: Path) -> str:
    result = subprocess.run(
        [DEMO, "--once"], cwd=PROJECT_ROOT, env=demo_env(db),
        capture_output=True, text=True, timeout=400,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


@pytest.mark.timeout(840)
def test_run_demo_once_tells_the_whole_story_and_leaves_nothing(db_dir):
    output = run_demo_once(db_dir)

    for milestone in ("INCIDENT DETECTED", "OPEN -> MITIGATING",
                      "MITIGATION PLAN", "Incident resolved!"):
        assert milestone in output, f"missing {milestone!r}"
    for name in ("toondb", "indexer", "collector", "commander"):
        assert f" {name}" in output
    assert processes_using(db_dir) == []
    assert not (db_dir / "toondb.sock").exists()

    [incident] = incidents(db_dir)
    assert_complete(incident)
    assert incident["id"] in output
    assert incident["plan"]["actions"][0]["kind"] == "rollback_deployment"

    # A second run keeps the database and opens a new incident.
    second_output = run_demo_once(db_dir)
    first, second = sorted(incidents(db_dir), key=lambda i: i["opened_at"])
    assert first["id"] == incident["id"]
    assert first["history"] == incident["history"]
    assert second["id"] != incident["id"] and second["id"] in second_output
    assert_complete(second)
    assert processes_using(db_dir) == []


@pytest.mark.timeout(420)
def test_demo_stopped_mid_incident_resumes_it_on_the_next_run(db_dir):
    demo = subprocess.Popen(
        [DEMO], cwd=PROJECT_ROOT, env=demo_env(db_dir), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    for line in demo.stdout:
        if "Action 1 requested" in line:
            break
    demo.send_signal(signal.SIGTERM)
    demo.communicate(timeout=120)
    [interrupted] = incidents(db_dir)
    assert interrupted["state"] == "MITIGATING"

    output = run_demo_once(db_dir)

    assert "simulated service resumes" in output
    [incident] = incidents(db_dir)
    assert incident["id"] == interrupted["id"] and incident["id"] in output
    assert_complete(incident)
    assert processes_using(db_dir) == []


@pytest.mark.timeout(420)
def test_manual_mode_server_then_three_processes(db_dir):
    env = demo_env(db_dir)
    server = subprocess.Popen([START_SERVER], cwd=PROJECT_ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    started = []
    try:
        give_up_at = time.monotonic() + 60
        while not server_control.answers(db_dir / "toondb.sock"):
            assert time.monotonic() < give_up_at, "server never answered"
            time.sleep(0.2)

        indexed = run_project(["process_b_indexer.py", "--once"], env, timeout=180)
        assert indexed.returncode == 0, indexed.stderr

        for script, args in (
            ("process_b_indexer.py", []),
            ("process_a_collector.py", ["--interval", "1"]),
        ):
            started.append(subprocess.Popen(
                python_command(script, *args), cwd=PROJECT_ROOT, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
        commander = run_project(["process_c_commander.py", "--once", "--poll", "1"],
                                env, timeout=300)
        assert commander.returncode == 0, commander.stdout[-3000:]
        assert "Incident resolved!" in commander.stdout

        [incident] = incidents(db_dir)
        assert_complete(incident)
        assert incident["plan"]["actions"][0]["kind"] == "rollback_deployment"
    finally:
        for process in started:
            process.send_signal(signal.SIGINT)
        for process in started:
            assert process.wait(timeout=30) == 0
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    assert processes_using(db_dir) == []


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["sigterm", "child-dies"])
def test_run_demo_stops_everything_on_sigterm_or_a_dead_child(db_dir, how):
    demo = subprocess.Popen(
        [DEMO], cwd=PROJECT_ROOT, env=demo_env(db_dir), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    lines = []
    for line in demo.stdout:
        lines.append(line)
        if "Latency P99" in line:
            break
    else:
        pytest.fail("the collector never reported a sample:\n" + "".join(lines))

    if how == "sigterm":
        demo.send_signal(signal.SIGTERM)
        expected = 143
    else:
        collector = [cmd for cmd in processes_using(db_dir)
                     if "process_a_collector.py" in cmd]
        assert collector
        pid = next(int(p.name) for p in Path("/proc").iterdir()
                   if p.name.isdigit() and _cmdline(p) == collector[0])
        os.kill(pid, signal.SIGKILL)
        expected = 1

    rest, _ = demo.communicate(timeout=120)
    assert demo.returncode == expected, rest[-3000:]
    assert "all processes stopped" in rest
    assert processes_using(db_dir) == []
    assert not (db_dir / "toondb.sock").exists()
    assert (db_dir / "wal.log").exists(), "the database folder must be kept"


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def test_run_demo_help_runs_without_a_server():
    result = subprocess.run([DEMO, "--help"], cwd=PROJECT_ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "--scenario" in result.stdout and "--once" in result.stdout
