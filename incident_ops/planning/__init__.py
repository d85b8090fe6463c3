"""Mitigation plans written from incident facts and retrieved runbooks.

    advisor = Advisor(store)             # OpenAI writer if OPENAI_API_KEY is set
    advice = advisor.advise(IncidentFacts(...))
    print(render_plan(advice.plan.to_dict()))
"""

from incident_ops.planning.advisor import Advice, Advisor, PlanWriter, default_writer
from incident_ops.planning.offline import OfflineWriter
from incident_ops.planning.openai_writer import OpenAISettings, OpenAIWriter
from incident_ops.planning.plan import IncidentFacts, Plan, PlanAction, PlanSourceRef
from incident_ops.planning.render import render_plan

__all__ = [
    "Advice",
    "Advisor",
    "IncidentFacts",
    "OfflineWriter",
    "OpenAISettings",
    "OpenAIWriter",
    "Plan",
    "PlanAction",
    "PlanSourceRef",
    "PlanWriter",
    "default_writer",
    "render_plan",
]
