"""The commander's closed loop against a real server and a real collector.

The commander runs in this process (in a thread) with a scripted advisor
that returns real ``Plan`` objects, so each test chooses which actions the
plan holds; the collector is the real process with its simulated service.
The real advisor is exercised by the reliability tests.
"""

import re
import subprocess
import threading
import time
from dataclasses import dataclass

import pytest

from incident_ops import incidents, keys
from incident_ops.commander import Commander, Settings
from incident_ops.detection import Rules
from incident_ops.lifecycle import StopFlag
from incident_ops.planning.plan import IncidentFacts, Plan, PlanAction, PlanSourceRef
from incident_ops.retrieval.context import Context, ContextChunk
from incident_ops.retrieval.index import NothingIndexed
from tests.conftest import run_project
from tests.ops_processes import Proc, only_incident, wait_until

INTERVAL = "0.25"


@dataclass
class Advice:
    context: Context
    plan: Plan


class ScriptedAdvisor:
    """Answers every incident with the same plan of ``kinds``; records facts."""

    def __init__(self, kinds: list[str], fail_with: Exception | None = None):
        self.kinds = kinds
        self.fail_with = fail_with
        self.facts: list[IncidentFacts] = []

    def advise(self, facts: IncidentFacts) -> Advice:
        self.facts.append(facts)
        if self.fail_with:
            raise self.fail_with
        chunk = ContextChunk("rb:0", "rb.md", "Runbook", "Mitigation", "Do it.", 1.0, 3)
        actions = [PlanAction(f"do {kind}", kind, ("rb:0",)) for kind in self.kinds]
        plan = Plan("scripted cause", actions, ["watch"],
                    [PlanSourceRef("rb:0", "rb.md", "Mitigation")], "offline")
        return Advice(Context([chunk], total_tokens=3, budget=100), plan)


class RunningCommander:
    def __init__(self, store, advisor, **settings):
        self.lines: list[str] = []
        self.stop = StopFlag()
        defaults = {"poll_s": 0.1, "action_window": 4, "rules": Rules()}
        self.commander = Commander(store, advisor, Settings(**{**defaults, **settings}),
                                   self.stop, say=self.lines.append)
        self.thread = threading.Thread(target=self.commander.run, daemon=True)
        self.thread.start()

    def output(self) -> str:
        return "\n".join(self.lines)

    def close(self) -> None:
        self.stop.signal_name = "SIGTERM"
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


@pytest.fixture
def world(toondb, tmp_path):
    """Start a commander (first) and a collector; stop both afterwards."""
    started = []

    def start(advisor, collector_args, **settings):
        store = toondb.store(deadline=5)
        commander = RunningCommander(store, advisor, **settings)
        started.append(commander)
        wait_until(lambda: "no data" in commander.output(), 30, "the commander")
        collector = Proc("collector", ["process_a_collector.py", "--interval",
                                       INTERVAL, *collector_args], toondb.env(),
                         tmp_path)
        started.append(collector)
        return commander, collector, store

    yield start
    for item in reversed(started):
        if isinstance(item, Proc):
            if item.process.returncode is None:   # not killed by the test
                assert item.stop() == 0
        else:
            item.close()


def test_a_useless_action_is_followed_by_the_cure(world):
    advisor = ScriptedAdvisor(["scale_out", "rollback_deployment"])
    commander, _, store = world(advisor, ["--scenario", "bad-deploy"])

    resolved = wait_until(lambda: only_incident(store, incidents.RESOLVED), 90,
                          "the incident to resolve")
    kinds = [(a["kind"], a["status"], a.get("helped")) for a in resolved["actions"]]
    assert kinds == [("scale_out", "no_effect", None),
                     ("rollback_deployment", "applied", True)]
    states = [s["state"] for s in resolved["history"]]
    assert states == ["OPEN", "MITIGATING", "RESOLVED"]
    assert resolved["recovery"]["latency_p99_ms"] < 800

    facts = advisor.facts[0]
    assert facts.latency_p99_ms > 1000 and facts.error_rate_pct > 5
    assert [e["kind"] for e in facts.recent_events] == ["deployment"]
    assert facts.detected_at == resolved["opened_at"]

    output = commander.output()
    for text in ("INCIDENT DETECTED", "State transition: NONE -> OPEN",
                 "State transition: OPEN -> MITIGATING", "Retrieved 1 chunks",
                 "MITIGATION PLAN", "did not bring recovery within 4 samples",
                 "State transition: MITIGATING -> RESOLVED", "Incident resolved!"):
        assert text in output
    assert output.index("OK |") < output.index("INCIDENT DETECTED")

    # One trigger trip opened exactly one incident.
    assert output.count("INCIDENT DETECTED") == 1


def test_exhausted_actions_escalate_and_stay_mitigating(world):
    advisor = ScriptedAdvisor(["rollback_deployment", "manual"])
    commander, _, store = world(advisor, ["--scenario", "db-overload"])

    escalated = wait_until(
        lambda: (i := only_incident(store)) and i["events"] and i, 90, "escalation")
    assert escalated["state"] == "MITIGATING"
    assert escalated["events"][-1]["kind"] == "escalation"
    assert escalated["events"][-1]["description"] == (
        "every automatic action was applied without recovery (rollback_deployment); "
        "a human must step in; manual steps in the plan: do manual")
    statuses = [(a["kind"], a["status"]) for a in escalated["actions"]]
    assert statuses == [("rollback_deployment", "no_effect"), ("manual", "manual")]

    # Still breaching: ten more samples change nothing.
    seen = commander.commander.last_seq
    wait_until(lambda: commander.commander.last_seq >= seen + 10, 60, "more samples")
    after = only_incident(store)
    assert after["state"] == "MITIGATING" and len(after["events"]) == 1
    assert commander.output().count("ESCALATION") == 1


def test_require_approval_waits_for_the_approve_command(world, toondb):
    advisor = ScriptedAdvisor(["rollback_deployment"])
    commander, _, store = world(advisor, ["--scenario", "bad-deploy"],
                                require_approval=True)

    waiting = wait_until(
        lambda: (i := only_incident(store)) and i["actions"]
        and i["actions"][0]["status"] == "awaiting_approval" and i, 60, "approval")
    seen = commander.commander.last_seq
    wait_until(lambda: commander.commander.last_seq >= seen + 6, 60, "more samples")
    assert only_incident(store)["actions"][0]["status"] == "awaiting_approval"
    assert store.scan(f"{keys.ACTIONS_REQUESTED}") == {}
    assert f"python -m incident_ops approve {waiting['id']}" in commander.output()

    approved = run_project(["-m", "incident_ops", "approve", waiting["id"]],
                           toondb.env())
    assert approved.returncode == 0, approved.stderr

    resolved = wait_until(lambda: only_incident(store, incidents.RESOLVED), 90,
                          "the incident to resolve")
    action = resolved["actions"][0]
    assert action["status"] == "applied" and action["approved_at"]
    assert action["requested_at"] >= action["approved_at"]


def test_failed_planning_escalates_and_recovery_still_resolves(world, tmp_path):
    series = tmp_path / "series.csv"
    rows = [(1500, 9)] * 4 + [(1100, 6)] * 6 + [(300, 1)] * 6
    lines = [f"2026-01-04T18:00:{i:02d},{p99},{err},50"
             for i, (p99, err) in enumerate(rows)]
    series.write_text("timestamp,latency_p99_ms,error_rate_pct,cpu_pct\n"
                      + "\n".join(lines) + "\n")
    advisor = ScriptedAdvisor([], fail_with=RuntimeError("writer exploded"))
    commander, collector, store = world(advisor, ["--source", f"replay:{series}"])

    resolved = wait_until(lambda: only_incident(store, incidents.RESOLVED), 60,
                          "the incident to resolve")
    assert resolved["plan"] is None
    assert resolved["plan_error"] == "RuntimeError: writer exploded"
    assert [e["kind"] for e in resolved["events"]] == ["escalation"]
    assert "Planning failed (writer exploded)" in commander.output()
    assert resolved["events"][0]["description"] == (
        "planning failed, so no automatic action was tried; a human must step in")
    assert collector.process.wait(timeout=30) == 0


def test_no_index_escalates_once_and_the_incident_proceeds_when_one_appears(world):
    advisor = ScriptedAdvisor(["rollback_deployment"],
                              fail_with=NothingIndexed("no runbooks indexed yet"))
    commander, _, store = world(advisor, ["--scenario", "bad-deploy"],
                                index_grace_s=0.5)

    escalated = wait_until(
        lambda: (i := only_incident(store)) and i["events"] and i, 60, "escalation")
    assert escalated["state"] == "OPEN"
    assert [(e["kind"], e["reason"]) for e in escalated["events"]] == [
        ("escalation", "no_runbooks")]
    assert "no runbooks indexed after" in escalated["events"][0]["description"]
    tries = len(advisor.facts)
    assert tries >= 10

    # Still no index: the plan is retried every poll, the escalation not repeated.
    wait_until(lambda: len(advisor.facts) >= tries + 10, 30, "more plan attempts")
    assert len(only_incident(store)["events"]) == 1
    output = commander.output()
    assert output.count("ESCALATION") == 1
    assert output.count("No plan yet: no runbooks indexed yet") == 1

    advisor.fail_with = None
    mitigating = wait_until(lambda: only_incident(store, incidents.MITIGATING), 30,
                            "MITIGATING once the index appears")
    assert mitigating["plan"] is not None


def test_replay_escalation_says_no_action_could_be_applied(world, tmp_path):
    series = tmp_path / "series.csv"
    lines = [f"2026-01-04T18:00:{i:02d},1500,9,50" for i in range(40)]
    series.write_text("timestamp,latency_p99_ms,error_rate_pct,cpu_pct\n"
                      + "\n".join(lines) + "\n")
    advisor = ScriptedAdvisor(["rollback_deployment"])
    commander, _, store = world(advisor, ["--source", f"replay:{series}"])

    escalated = wait_until(
        lambda: (i := only_incident(store)) and i["events"] and i, 60, "escalation")
    description = ("no automatic action could be applied (rollback_deployment: a "
                   "replayed series cannot act on the service); a human must step in")
    assert escalated["events"][0]["description"] == description
    assert "tried" not in commander.output().split("ESCALATION", 1)[1]


def test_stale_data_neither_opens_nor_resolves(world):
    advisor = ScriptedAdvisor(["rollback_deployment"])
    commander, collector, store = world(advisor, ["--scenario", "bad-deploy"])
    wait_until(lambda: only_incident(store, incidents.MITIGATING), 90, "MITIGATING")

    collector.kill()
    wait_until(lambda: "stays MITIGATING" in commander.output(), 30, "no data")
    watch_until = time.monotonic() + 2
    while time.monotonic() < watch_until:
        assert only_incident(store)["state"] == "MITIGATING"
        assert commander.commander.detector.clear_streak == 0
        time.sleep(0.1)


def test_fast_collector_slow_poll_no_false_no_data_and_no_sample_skipped(
        toondb, tmp_path):
    """Interval 0.1 s, poll 1 s: ten or more samples land between two reads,
    as many as ``metrics/latest`` carries; none may look stale or be skipped."""
    collector = Proc("collector", ["process_a_collector.py", "--interval", "0.1",
                                   "--scenario", "healthy"], toondb.env(), tmp_path)
    commander = Proc("commander", ["process_c_commander.py", "--poll", "1", "-v"],
                     toondb.env(), tmp_path)
    with toondb.store() as store:
        wait_until(lambda: (store.get(keys.METRICS_LATEST) or {}).get("seq", 0) > 1,
                   60, "the collector")
        commander.wait_for("OK |")
        time.sleep(6)
    assert commander.stop() == 0 and collector.stop() == 0

    after_first_ok = commander.output().split("OK |", 1)[1]
    assert "no data" not in after_first_ok
    evaluated = [int(m) for m in re.findall(r"commander: sample (\d+): ",
                                            commander.errors())]
    assert len(evaluated) >= 50
    assert evaluated == list(range(evaluated[0], evaluated[-1] + 1))
    assert "were not evaluated" not in commander.errors()


def test_commander_exits_on_sigterm(toondb, tmp_path):
    """The real process: SIGTERM while idle exits 0 and frees the lock."""
    commander = Proc("commander", ["process_c_commander.py", "--poll", "0.2"],
                     toondb.env(), tmp_path)
    commander.wait_for("no data")
    assert commander.stop(subprocess.signal.SIGTERM) == 0
    assert "SIGTERM received" in commander.errors()
