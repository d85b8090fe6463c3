"""The incident facts a plan is written from, and the plan itself.

One plan structure, whoever wrote it: the offline writer and the OpenAI
writer both return a ``Plan``, and ``Plan.to_dict()`` is what the commander
stores with the incident and ``render_plan`` prints.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

from incident_ops.actions import MANUAL, is_known

PLAN_SOURCES = ("openai", "offline")


@dataclass
class IncidentFacts:
    """What is known about the service when an incident opens.

    ``recent_events`` are the collector's events, newest last, each at least
    ``{"at": ISO 8601, "kind": str, "description": str}``; deployments have
    ``kind == "deployment"``. ``signals`` carries any further measurement the
    collector has, by name (see ``planning.evidence`` for the names read);
    unknown names are ignored.
    """

    latency_p99_ms: float | None
    error_rate_pct: float | None
    cpu_pct: float | None
    detected_at: str
    recent_events: list[dict] = field(default_factory=list)
    service: str = "checkout-api"
    signals: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlanAction:
    """One immediate action: what to do, its catalog kind, its grounds."""

    text: str
    kind: str
    chunk_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.kind != MANUAL and not is_known(self.kind):
            raise ValueError(f"action kind {self.kind!r} is not in the catalog")
        if not self.chunk_ids:
            raise ValueError(f"action {self.text[:40]!r} cites no runbook chunk")

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "kind": self.kind, "chunk_ids": list(self.chunk_ids)}


@dataclass(frozen=True)
class PlanSourceRef:
    """A runbook chunk the plan used."""

    chunk_id: str
    source: str
    heading: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class Plan:
    """A grounded mitigation plan.

    Every action cites at least one chunk listed in ``sources``. When the
    offline writer stood in for a failed OpenAI call, ``plan_source`` is
    ``offline`` and ``fallback_reason`` says why; ``rejected`` lists the
    parts of a model's answer that were dropped in validation.
    """

    root_cause: str
    actions: list[PlanAction]
    next_steps: list[str]
    sources: list[PlanSourceRef]
    plan_source: str
    model: str | None = None
    fallback_reason: str | None = None
    rejected: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.plan_source not in PLAN_SOURCES:
            raise ValueError(f"plan_source {self.plan_source!r} is not one of "
                             f"{', '.join(PLAN_SOURCES)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "root_cause": self.root_cause,
            "actions": [action.to_dict() for action in self.actions],
            "next_steps": list(self.next_steps),
            "sources": [source.to_dict() for source in self.sources],
            "plan_source": self.plan_source,
            "model": self.model,
            "fallback_reason": self.fallback_reason,
            "rejected": list(self.rejected),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Plan":
        """The plan ``to_dict`` produced; raises ``ValueError`` if malformed."""
        try:
            return cls(
                root_cause=str(data["root_cause"]),
                actions=[
                    PlanAction(
                        text=str(action["text"]),
                        kind=str(action["kind"]),
                        chunk_ids=tuple(str(c) for c in action["chunk_ids"]),
                    )
                    for action in data["actions"]
                ],
                next_steps=[str(step) for step in data.get("next_steps", [])],
                sources=[
                    PlanSourceRef(
                        chunk_id=str(source["chunk_id"]),
                        source=str(source["source"]),
                        heading=str(source["heading"]),
                    )
                    for source in data.get("sources", [])
                ],
                plan_source=str(data["plan_source"]),
                model=data.get("model"),
                fallback_reason=data.get("fallback_reason"),
                rejected=[str(item) for item in data.get("rejected", [])],
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a stored plan: missing or bad {error}") from None
