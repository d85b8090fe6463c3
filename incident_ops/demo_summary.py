"""The summary ``./run_demo.sh --once`` prints: what happened, how fast."""

from datetime import datetime

from incident_ops import incidents
from incident_ops.incidents import APPLIED, RESOLVED
from incident_ops.metrics import parse_time
from incident_ops.store import Store


def resolved_since(store: Store, started: datetime) -> dict | None:
    """The first incident resolved at or after ``started``.

    It may have opened in an earlier run that was interrupted: the
    commander resumes such an incident and this run resolves it.
    """
    for incident in incidents.list_incidents(store, datetime.now(started.tzinfo),
                                             months=2):
        if incident["state"] == RESOLVED and (
                parse_time(incident["resolved_at"]) >= started):
            return incident
    return None


def summary_lines(incident: dict) -> list[str]:
    opened = parse_time(incident["opened_at"])
    resolved = parse_time(incident["resolved_at"])
    first_breach = parse_time(incident["trigger"]["first_breach_at"])
    plan = incident.get("plan") or {}
    source = plan.get("plan_source", "none")
    if plan.get("model"):
        source += f" ({plan['model']})"
    if plan.get("fallback_reason"):
        source += f", fallback because: {plan['fallback_reason']}"
    applied = [a["kind"] for a in incident["actions"] if a["status"] == APPLIED]

    return [
        f"incident {incident['id']}: RESOLVED",
        f"time to detect: {(opened - first_breach).total_seconds():.1f} s "
        "(first breaching sample to OPEN)",
        f"time to resolve: {(resolved - opened).total_seconds():.1f} s "
        "(OPEN to RESOLVED)",
        f"plan source: {source}",
        f"actions applied: {', '.join(applied) or 'none'}",
    ]
