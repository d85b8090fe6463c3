"""Reliability: real server, real processes (with the real advisor), real signals.

Each scenario states what must hold:

1. two commanders started together against one breach: exactly one incident
   opens; SIGKILL of the active one makes the standby finish that incident;
2. commander SIGKILLed during MITIGATING and started again: the same
   incident resumes (history and plan kept) and resolves;
3. collector SIGKILLed during MITIGATING: no RESOLVED while data is stale;
   a collector resuming the service lets it resolve;
4. server SIGKILLed and restarted mid-incident: collector, indexer and
   commander carry on, no stored sample is lost, the incident completes.
"""

import signal
import time
from datetime import UTC, datetime

import pytest

from incident_ops import incidents
from incident_ops.metric_log import read_latest
from tests.conftest import run_project
from tests.ops_processes import (
    Proc,
    all_incidents,
    only_incident,
    stored_samples,
    wait_until,
)

INTERVAL = ["--interval", "0.4"]
POLL = ["--poll", "0.25"]
RUNBOOKS = ["--runbooks", "runbooks/"]
TIMEOUT = 120


@pytest.fixture
def indexed(toondb):
    result = run_project(["process_b_indexer.py", "--once", *RUNBOOKS], toondb.env(),
                         timeout=300)
    assert result.returncode == 0, result.stderr
    return toondb


@pytest.fixture
def procs(tmp_path):
    """Start project processes; whatever is still running is stopped at the end."""
    started: list[Proc] = []

    def start(name: str, *args: str, env: dict) -> Proc:
        proc = Proc(name, list(args), env, tmp_path)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.process.poll() is None:
            proc.stop(signal.SIGKILL)


def mitigating(store) -> dict:
    return wait_until(lambda: only_incident(store, incidents.MITIGATING), TIMEOUT,
                      "an incident in MITIGATING")


def resolved(store) -> dict:
    return wait_until(lambda: only_incident(store, incidents.RESOLVED), TIMEOUT,
                      "the incident to resolve")


def assert_whole_story(incident: dict) -> None:
    states = [step["state"] for step in incident["history"]]
    assert states == ["OPEN", "MITIGATING", "RESOLVED"]
    times = [step["at"] for step in incident["history"]]
    assert times == sorted(times) and len(set(times)) == 3
    assert incident["plan"]["actions"][0]["kind"] == "rollback_deployment"
    assert any(a["status"] == "applied" and a.get("helped")
               for a in incident["actions"])


def test_two_commanders_one_incident_and_the_standby_takes_over(indexed, procs):
    env = indexed.env()
    first = procs("commander1", "process_c_commander.py", *POLL, env=env)
    second = procs("commander2", "process_c_commander.py", *POLL, env=env)
    wait_until(lambda: "standby:" in first.output() + second.output(), TIMEOUT,
               "one commander to be a standby")
    if "standby:" in first.output():
        active, standby = second, first
    else:
        active, standby = first, second
    expected = f"standby: another commander is active (pid {active.pid})"
    assert expected in standby.output()
    procs("collector", "process_a_collector.py", *INTERVAL, env=env)

    with indexed.store() as store:
        before = mitigating(store)
        active.kill()
        standby.wait_for("taking over", timeout=30)
        standby.wait_for(f"Resuming incident {before['id']}", timeout=30)
        after = resolved(store)

    assert after["id"] == before["id"]
    assert after["plan"] == before["plan"]
    assert_whole_story(after)
    assert [e["kind"] for e in after["events"]] == ["takeover"]
    assert standby.output().count("INCIDENT DETECTED") == 0
    assert active.output().count("INCIDENT DETECTED") == 1


def test_commander_killed_during_mitigating_resumes_the_incident(indexed, procs):
    env = indexed.env()
    procs("collector", "process_a_collector.py", *INTERVAL, env=env)
    commander = procs("commander", "process_c_commander.py", *POLL, env=env)

    with indexed.store() as store:
        before = mitigating(store)
        commander.kill()
        restarted = procs("commander2", "process_c_commander.py", *POLL, "--once",
                          env=env)
        assert restarted.process.wait(timeout=TIMEOUT) == 0, restarted.output()[-2000:]
        [after] = all_incidents(store)

    assert after["id"] == before["id"]
    assert after["history"][:2] == before["history"]
    assert after["plan"] == before["plan"]
    assert_whole_story(after)
    assert f"Resuming incident {before['id']} in state MITIGATING" in restarted.output()
    assert "Incident resolved!" in restarted.output()
    assert "INCIDENT DETECTED" not in restarted.output()


def test_collector_killed_during_mitigating_never_resolves_on_stale_data(
        indexed, procs):
    env = indexed.env()
    collector = procs("collector", "process_a_collector.py", *INTERVAL, env=env)
    commander = procs("commander", "process_c_commander.py", *POLL, env=env)

    with indexed.store() as store:
        before = mitigating(store)
        collector.kill()
        commander.wait_for(f"{before['id']} stays MITIGATING", timeout=30)

        # Well past the staleness window (3 x 0.4 s), the incident holds.
        watch_until = time.monotonic() + 5
        while time.monotonic() < watch_until:
            assert only_incident(store)["state"] == "MITIGATING"
            time.sleep(0.2)
        assert commander.process.poll() is None

        procs("collector2", "process_a_collector.py", *INTERVAL, "--resume", env=env)
        after = resolved(store)

    assert after["id"] == before["id"]
    assert_whole_story(after)
    assert commander.stop() == 0


def test_server_restart_mid_incident_everyone_carries_on(indexed, procs):
    env = indexed.env()
    started = datetime.now(UTC)
    indexer = procs("indexer", "process_b_indexer.py", *RUNBOOKS, "--poll", "1",
                    env=env)
    collector = procs("collector", "process_a_collector.py", *INTERVAL, env=env)
    commander = procs("commander", "process_c_commander.py", *POLL, env=env)

    with indexed.store() as store:
        before = mitigating(store)
    indexed.kill()
    collector.wait_for("ToonDB server unreachable", timeout=30)
    commander.wait_for("ToonDB server unreachable", timeout=30)
    indexed.start()

    collector.wait_for("ToonDB server reachable again", timeout=60)
    commander.wait_for("ToonDB server reachable again", timeout=60)
    with indexed.store() as store:
        after = resolved(store)
        stored = stored_samples(store, started)
        newest = read_latest(store)[-1].seq

    assert after["id"] == before["id"]
    assert_whole_story(after)
    seqs = [sample.seq for sample in stored]
    assert seqs[0] == 1 and seqs == list(range(1, newest + 1))[:len(seqs)]
    assert seqs[-1] >= newest - 1   # at most the sample being written now

    for proc in (commander, collector, indexer):
        assert proc.process.poll() is None, f"{proc.name} died: {proc.errors()[-2000:]}"
        assert proc.stop() == 0, f"{proc.name}: {proc.errors()[-2000:]}"
    assert commander.errors().count("ToonDB server unreachable") == 1
    assert collector.errors().count("ToonDB server unreachable") == 1
