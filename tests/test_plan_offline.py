"""The offline writer: grounded, evidence-led plans without any network.

The first half runs on hand-written chunks (``plan_cases``); the scenario
tests at the end run on the shipped runbooks through the real indexer,
the real server and the real retriever, with the facts the simulated
service produces when each scenario breaches.
"""

import logging

import pytest
from indexed_server import indexed_runbooks_server
from plan_cases import DETECTED_AT, all_chunks, facts

from incident_ops.actions import MANUAL
from incident_ops.planning import (
    Advisor,
    IncidentFacts,
    OfflineWriter,
    Plan,
    render_plan,
)
from incident_ops.planning.evidence import assess
from incident_ops.planning.kinds import kind_of
from incident_ops.planning.plan import PlanAction
from incident_ops.planning.steps import ROLE_ACTION, ROLE_VERIFY, extract_steps
from incident_ops.retrieval import Context


def write(incident: IncidentFacts, ctx: Context | None = None) -> dict:
    return OfflineWriter().write(incident, ctx or all_chunks()).to_dict()


def cited_chunks(plan: dict) -> set[str]:
    return {c for action in plan["actions"] for c in action["chunk_ids"]}


# -- hand-written chunks ------------------------------------------------------


@pytest.mark.parametrize("incident, kind, chunk_id", [
    (facts(deployment_minutes_before=5), "rollback_deployment", "release-3"),
    (facts(signals={"db_connections_pct": 96}), "scale_database", "pool-1"),
    (facts(signals={"memory_pct": 91}), "restart_instances", "heap-4"),
    (facts(cpu=93), "scale_out", "slow-2"),
])
def test_the_supported_cause_leads(incident, kind, chunk_id):
    plan = write(incident)

    assert plan["plan_source"] == "offline"
    assert plan["fallback_reason"] is None
    assert plan["actions"][0]["kind"] == kind
    assert chunk_id in plan["actions"][0]["chunk_ids"]


def test_chunks_about_other_topics_contribute_nothing():
    plan = write(facts())

    assert "disk-5" not in cited_chunks(plan)
    assert "pool-1" not in cited_chunks(plan)
    assert "heap-4" not in cited_chunks(plan)
    assert not any("log" in a["text"].lower() for a in plan["actions"])
    assert {s["chunk_id"] for s in plan["sources"]} <= {"slow-2", "slow-9"}


def test_no_rollback_without_a_recent_deployment():
    # pool-1 says "If the saturation started with a release, revert the
    # release"; slow-2 says the same for a release in the last half hour.
    plan = write(facts(signals={"db_connections_pct": 96}))

    assert "rollback_deployment" not in [a["kind"] for a in plan["actions"]]
    assert "no deployment in the 30 minutes" in plan["root_cause"]


def test_a_deployment_outside_the_window_is_not_the_cause():
    plan = write(facts(deployment_minutes_before=29, signals={}))
    assert plan["actions"][0]["kind"] == "rollback_deployment"

    old = facts(events=[{"at": "2026-03-02T08:40:00+00:00", "kind": "deployment",
                         "description": "payments v7.2.9"}])
    plan = write(old)
    assert "rollback_deployment" not in [a["kind"] for a in plan["actions"]]
    assert plan["root_cause"].startswith("Cause not yet determined")


def test_a_deployment_after_detection_is_ignored():
    later = facts(events=[{"at": "2026-03-02T09:45:00+00:00", "kind": "deployment",
                           "description": "payments v7.3.1 hotfix"}])
    assert "deployment" not in assess(later).supported


def test_events_that_name_a_topic_are_evidence():
    warned = facts(events=[{"at": "2026-03-02T09:27:00+00:00", "kind": "warning",
                            "description": "db connection pool saturated"}])
    plan = write(warned)

    assert plan["actions"][0]["kind"] == "scale_database"
    assert "db connection pool saturated" in plan["root_cause"]


def test_event_with_unreadable_time_is_skipped_and_logged(caplog):
    broken = facts(events=[{"at": "yesterday-ish", "kind": "deployment",
                            "description": "payments v7.3.0"}])
    with caplog.at_level(logging.WARNING):
        plan = write(broken)

    assert "rollback_deployment" not in [a["kind"] for a in plan["actions"]]
    assert "unreadable time 'yesterday-ish'" in caplog.text


def test_root_cause_states_the_evidence_and_the_runbook_section():
    plan = write(facts(deployment_minutes_before=5))

    cause = plan["root_cause"]
    assert cause.startswith("Recent deployment")
    for fragment in ("payments v7.3.0", "5 min before detection", "2300 ms",
                     "11.5 %", "Bad release > Remediation", "[release-3]"):
        assert fragment in cause
    assert "release-3" in {s["chunk_id"] for s in plan["sources"]}


def test_citations_merge_and_sources_list_every_cited_chunk():
    plan = write(facts(deployment_minutes_before=5))

    rollback = plan["actions"][0]
    assert rollback["chunk_ids"] == ["release-3", "slow-2"]
    assert cited_chunks(plan) <= {s["chunk_id"] for s in plan["sources"]}
    assert len({a["kind"] for a in plan["actions"] if a["kind"] != MANUAL}) == \
        len([a for a in plan["actions"] if a["kind"] != MANUAL])


def test_observing_steps_become_next_steps():
    plan = write(facts(deployment_minutes_before=5))

    assert not any(a["text"].startswith("Watch") for a in plan["actions"])
    assert plan["next_steps"][0].startswith("Watch the error rate")
    assert "Verify: p99 under one second for ten minutes." in plan["next_steps"]


def test_same_input_same_plan():
    incident = facts(deployment_minutes_before=5, signals={"memory_pct": 91})
    assert write(incident) == write(incident)


def test_empty_context_gives_a_plan_without_actions():
    plan = write(facts(deployment_minutes_before=5), Context())

    assert plan["actions"] == [] and plan["sources"] == []
    assert plan["root_cause"].startswith("Recent deployment")
    assert plan["next_steps"]
    assert "escalate" in render_plan(plan)


def test_render_shows_the_plan_block_and_its_sources():
    plan = write(facts(deployment_minutes_before=5))
    plan["fallback_reason"] = "HTTP 429 from the model's server"

    text = render_plan(plan)

    assert text.index("MITIGATION PLAN") < text.index("Most likely root cause:") \
        < text.index("Immediate actions:") < text.index("Next steps:") \
        < text.index("Sources:")
    assert "  1. Revert the release" in text
    assert "[rollback_deployment]" in text
    assert "[release-3] releases.md > Remediation" in text
    assert "offline writer (model call failed: HTTP 429" in text


def test_plan_structure_refuses_ungrounded_or_unknown_actions():
    with pytest.raises(ValueError, match="not in the catalog"):
        PlanAction(text="Reboot the region", kind="reboot_region", chunk_ids=("a",))
    with pytest.raises(ValueError, match="cites no runbook chunk"):
        PlanAction(text="Scale out", kind="scale_out", chunk_ids=())
    with pytest.raises(ValueError, match="not a stored plan"):
        Plan.from_dict({"actions": []})


@pytest.mark.parametrize("text, kind", [
    ("Roll back the deployment to the previous release.", "rollback_deployment"),
    ("Revert the release to the last good version.", "rollback_deployment"),
    ("kubectl rollout undo deployment/api", "rollback_deployment"),
    ("Scale the database: add a read replica.", "scale_database"),
    ("Raise the connection pool limit on the primary.", "scale_database"),
    ("Do a rolling restart of the API instances.", "restart_instances"),
    ("Scale out the service with `kubectl scale deployment/api --replicas=9`.",
     "scale_out"),
    ("Add instances behind the load balancer.", "scale_out"),
    ("Shed load: enable rate limiting at the gateway.", "shed_load"),
    ("Open the circuit breaker for that dependency.", "enable_circuit_breaker"),
    ("Capture a heap profile before the instance is restarted.", MANUAL),
    ("Do not roll back: the migration cannot be undone.", MANUAL),
    ("Cancel runaway queries that hold locks.", MANUAL),
])
def test_step_wording_maps_to_a_catalog_kind(text, kind):
    assert kind_of(text) == kind


def test_steps_follow_sections_inside_a_merged_chunk():
    text = """\
Apply one change at a time.

1. If a release preceded the spike, revert it.
2. Watch the dashboards for five minutes.

```
1. this numbered line is inside a code block
```

## Verify

- p99 below one second.
"""
    steps = extract_steps(text, "Mitigation, Verify")

    assert [(s.role, s.condition) for s in steps] == [
        (ROLE_ACTION, "a release preceded the spike"),
        (ROLE_VERIFY, None),
        (ROLE_VERIFY, None),
    ]
    assert steps[0].action == "revert it."
    assert steps[2].states_a_check and not steps[1].states_a_check


def test_prose_runbooks_yield_their_imperative_sentences():
    steps = extract_steps(
        "The queue backs up when workers stall. Restart the stalled workers. "
        "Then the backlog drains by itself.", "Resolution")

    assert [s.text for s in steps] == ["Restart the stalled workers."]


# -- the shipped runbooks, through the real indexer, server and retriever -----


@pytest.fixture(scope="module")
def advisor():
    with indexed_runbooks_server() as running:
        with running.store() as store:
            yield Advisor(store, writer=OfflineWriter())


def simulated(latency: float, errors: float, cpu: float, minutes_since_deploy=None,
              **signals: float) -> IncidentFacts:
    """Facts as the simulated service reports them when a scenario breaches."""
    events = []
    if minutes_since_deploy is not None:
        events.append({"at": f"2026-03-02T09:{30 - minutes_since_deploy:02d}:00+00:00",
                       "kind": "deployment",
                       "description": "deployed checkout-api v2.14.0"})
    return IncidentFacts(latency_p99_ms=latency, error_rate_pct=errors, cpu_pct=cpu,
                         detected_at=DETECTED_AT, recent_events=events,
                         signals=signals)


BASELINE_SIGNALS = {"db_connections_pct": 35.0, "db_query_p99_ms": 12.0,
                    "memory_pct": 48.0}


def leading(advice) -> tuple[str, set[str]]:
    plan = advice.plan.to_dict()
    sources = {s["chunk_id"]: s["source"] for s in plan["sources"]}
    first = plan["actions"][0]
    return first["kind"], {sources[c] for c in first["chunk_ids"]}


def test_bad_deploy_leads_with_a_rollback_citing_the_rollback_runbook(advisor):
    advice = advisor.advise(simulated(1802, 9.5, 54, minutes_since_deploy=2,
                                      **BASELINE_SIGNALS))

    kind, sources = leading(advice)
    assert kind == "rollback_deployment"
    assert "deployment-rollback.md" in sources
    assert advice.plan.plan_source == "offline"
    assert advice.plan.root_cause.startswith("Recent deployment")


def test_db_overload_leads_with_a_database_action(advisor):
    advice = advisor.advise(simulated(2198, 8.1, 48, db_connections_pct=89.0,
                                      db_query_p99_ms=752.0, memory_pct=48.0))

    kind, sources = leading(advice)
    assert kind == "scale_database"
    assert sources == {"database-recovery.md"}
    kinds = [a.kind for a in advice.plan.actions]
    assert "rollback_deployment" not in kinds


def test_deploy_before_a_database_overload_plans_for_both_causes(advisor):
    # Two supported causes: one mixed query ranked the deployment runbooks
    # first and left the database mitigation out of the context.
    advice = advisor.advise(simulated(2198, 8.1, 48, minutes_since_deploy=1,
                                      db_connections_pct=89.0,
                                      db_query_p99_ms=752.0, memory_pct=48.0))

    kinds = [a.kind for a in advice.plan.actions]
    assert kinds[0] == "rollback_deployment"
    assert "scale_database" in kinds
    assert "database-recovery.md" in advice.context.sources


def test_memory_leak_leads_with_a_rolling_restart(advisor):
    advice = advisor.advise(simulated(1276, 6.8, 76, db_connections_pct=35.0,
                                      db_query_p99_ms=12.0, memory_pct=72.7))

    kind, sources = leading(advice)
    assert kind == "restart_instances"
    assert sources == {"memory-leak.md"}


def test_latency_incident_gets_no_disk_cleanup(advisor):
    advice = advisor.advise(simulated(1500, 7.0, 60, **BASELINE_SIGNALS))

    plan = advice.plan.to_dict()
    assert plan["actions"], "the latency runbook has mitigation steps"
    assert all(s["source"] != "disk-full.md" for s in plan["sources"])
    assert not any("journal" in a["text"] or "crictl" in a["text"]
                   for a in plan["actions"])
    assert plan["root_cause"].startswith("Cause not yet determined")
