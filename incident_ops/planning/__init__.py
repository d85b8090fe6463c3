"""Mitigation plans written from incident facts and retrieved runbooks."""

from incident_ops.planning.offline import OfflineWriter
from incident_ops.planning.plan import IncidentFacts, Plan, PlanAction, PlanSourceRef
from incident_ops.planning.render import render_plan

__all__ = [
    "IncidentFacts",
    "OfflineWriter",
    "Plan",
    "PlanAction",
    "PlanSourceRef",
    "render_plan",
]
