"""The incident state machine, its storage, and the incidents/approve commands."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from incident_ops import incidents, keys
from tests.conftest import run_project

T0 = datetime(2026, 1, 4, 18, 0, 0, tzinfo=UTC)
TRIGGER = {"latency_p99_ms": 1500.0, "error_rate_pct": 8.0, "cpu_pct": 60.0}


def opened(incident_id="INC-20260104-180000"):
    return incidents.new_incident(incident_id, T0, TRIGGER, "checkout-api")


def test_states_advance_in_order_with_history():
    incident = opened()
    incident = incidents.transition(incident, incidents.MITIGATING,
                                    T0 + timedelta(seconds=2))
    incident = incidents.transition(incident, incidents.RESOLVED,
                                    T0 + timedelta(seconds=9))

    assert [step["state"] for step in incident["history"]] == [
        "OPEN", "MITIGATING", "RESOLVED"]
    assert incident["resolved_at"] == "2026-01-04T18:00:09.000+00:00"
    assert incident["opened_at"] == "2026-01-04T18:00:00.000+00:00"


@pytest.mark.parametrize("start, target", [
    (incidents.OPEN, incidents.RESOLVED),      # skipping MITIGATING
    (incidents.OPEN, incidents.OPEN),
    (incidents.MITIGATING, incidents.OPEN),    # going back
    (incidents.RESOLVED, incidents.MITIGATING),
])
def test_invalid_transitions_are_refused_and_nothing_changes(start, target):
    incident = opened()
    if start != incidents.OPEN:
        incident = incidents.transition(incident, incidents.MITIGATING, T0)
    if start == incidents.RESOLVED:
        incident = incidents.transition(incident, incidents.RESOLVED, T0)
    before = json.dumps(incident)

    with pytest.raises(incidents.TransitionError, match="is not allowed"):
        incidents.transition(incident, target, T0 + timedelta(seconds=5))
    assert json.dumps(incident) == before


def test_time_never_goes_backwards():
    incident = opened()
    with pytest.raises(incidents.TransitionError, match="earlier than the last change"):
        incidents.transition(incident, incidents.MITIGATING, T0 - timedelta(seconds=1))

    # The commander's clock helper steps past the last change instead.
    moment = incidents.next_moment(incident, T0 - timedelta(seconds=30))
    assert moment == T0 + timedelta(milliseconds=1)
    later = incidents.transition(incident, incidents.MITIGATING, moment)
    assert later["history"][0]["at"] < later["history"][1]["at"]


def test_ids_name_their_month_and_bad_ids_are_refused():
    assert incidents.incident_key("INC-20260104-180000-2") == \
        "incidents/202601/INC-20260104-180000-2"
    with pytest.raises(incidents.IncidentIdError, match="is not an incident id"):
        incidents.incident_key("../../metrics/latest")


def test_storage_round_trip_and_listing(toondb):
    with toondb.store() as store:
        first_id = incidents.new_incident_id(store, T0)
        incidents.save(store, opened(first_id))
        second_id = incidents.new_incident_id(store, T0)
        incidents.save(store, opened(second_id))

        assert (first_id, second_id) == ("INC-20260104-180000", "INC-20260104-180000-2")
        assert incidents.load(store, first_id)["trigger"] == TRIGGER
        listed = incidents.list_incidents(store, T0 + timedelta(days=40), months=2)
        assert [i["id"] for i in listed] == [first_id, second_id]
        assert incidents.list_incidents(store, T0 + timedelta(days=70), months=1) == []


def test_incidents_command_lists_and_shows(toondb):
    now = datetime.now(UTC)
    incident_id = f"INC-{now:%Y%m%d-%H%M%S}"
    record = incidents.new_incident(incident_id, now, TRIGGER, "checkout-api")
    record = incidents.transition(record, incidents.MITIGATING, now)
    record["actions"] = [{"seq": 1, "kind": "rollback_deployment",
                          "text": "Roll back", "status": "planned"}]
    with toondb.store() as store:
        incidents.save(store, record)

    listed = run_project(["-m", "incident_ops", "incidents", "--json"], toondb.env())
    assert listed.returncode == 0, listed.stderr
    [summary] = json.loads(listed.stdout)
    assert summary["id"] == incident_id and summary["state"] == "MITIGATING"
    assert summary["resolved_at"] is None and summary["trigger"] == TRIGGER

    shown = run_project(["-m", "incident_ops", "incidents", "show", incident_id,
                         "--json"], toondb.env())
    assert [s["state"] for s in json.loads(shown.stdout)["history"]] == [
        "OPEN", "MITIGATING"]

    text = run_project(["-m", "incident_ops", "incidents", "show", incident_id],
                       toondb.env())
    assert "rollback_deployment" in text.stdout and "MITIGATING" in text.stdout

    missing = run_project(["-m", "incident_ops", "incidents", "show",
                           "INC-20250101-000000"], toondb.env())
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "error: no incident INC-20250101-000000; list them with: "
        "python -m incident_ops incidents")


def test_approve_writes_one_approval_for_the_next_action(toondb):
    now = datetime.now(UTC)
    incident_id = f"INC-{now:%Y%m%d-%H%M%S}"
    record = incidents.transition(
        incidents.new_incident(incident_id, now, TRIGGER, "checkout-api"),
        incidents.MITIGATING, now)
    record["actions"] = [
        {"seq": 1, "kind": "scale_out", "text": "Add instances", "status": "no_effect"},
        {"seq": 2, "kind": "rollback_deployment", "text": "Roll back",
         "status": "awaiting_approval"},
    ]
    with toondb.store() as store:
        incidents.save(store, record)

    result = run_project(["-m", "incident_ops", "approve", incident_id], toondb.env())
    assert result.returncode == 0, result.stderr
    assert "approved" in result.stdout and "rollback_deployment" in result.stdout
    with toondb.store() as store:
        approval = store.get(f"{keys.APPROVALS}{incident_id}/2")
    assert approval["kind"] == "rollback_deployment"

    again = run_project(["-m", "incident_ops", "approve", incident_id], toondb.env())
    assert again.returncode == 0 and "already approved" in again.stdout

    # The commander requested action 2; a third approve must not pre-approve 3.
    record["actions"][1]["status"] = "requested"
    record["actions"].append({"seq": 3, "kind": "scale_out", "text": "Add more",
                              "status": "planned"})
    with toondb.store() as store:
        incidents.save(store, incidents.updated(record, now, actions=record["actions"]))
    early = run_project(["-m", "incident_ops", "approve", incident_id], toondb.env())
    assert early.returncode == 1 and early.stdout == ""
    assert early.stderr.strip() == (
        f"error: {incident_id} has no action awaiting approval; the next planned "
        "one is action 3 (scale_out): approve it once the commander asks for it")
    with toondb.store() as store:
        assert store.get(f"{keys.APPROVALS}{incident_id}/3") is None

    bad = run_project(["-m", "incident_ops", "approve", "nonsense"], toondb.env())
    assert bad.returncode == 1
    assert "'nonsense' is not an incident id" in bad.stderr
