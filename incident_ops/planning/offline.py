"""The offline plan writer: runbook steps chosen and ordered by the evidence.

Deterministic and local. From the retrieved chunks it keeps those about
this incident (the relevance cutoff), reads their mitigation steps, drops
steps whose condition the facts contradict, orders the rest so that steps
about the best-supported cause come first, maps each to a catalog kind and
cites the chunks it came from.
"""

import logging
import re
from dataclasses import dataclass

from incident_ops.actions import MANUAL
from incident_ops.planning.evidence import SYMPTOMS, Evidence, assess, topics_in
from incident_ops.planning.kinds import kind_of
from incident_ops.planning.plan import (
    IncidentFacts,
    Plan,
    PlanAction,
    PlanSourceRef,
)
from incident_ops.planning.steps import ROLE_ACTION, Step, extract_steps
from incident_ops.retrieval.context import Context, ContextChunk

log = logging.getLogger(__name__)

# Relevance of a chunk to the incident, 0..1 (see ``relevance``); chunks
# below the cutoff contribute nothing, so a latency incident does not pick
# up disk-cleanup steps that retrieval ranked somewhere in its list.
RELEVANCE_CUTOFF = 0.5
MAX_ACTIONS = 5
MAX_MANUAL_ACTIONS = 2
MAX_NEXT_STEPS = 5
MAX_CITATIONS = 3

CAUSE_WORDING = {
    "deployment": "Recent deployment",
    "database": "Database overload",
    "memory": "Memory exhaustion, most likely a leak",
    "cpu": "CPU saturation",
    "traffic": "Traffic surge",
    "dependency": "Failing dependency",
    "disk": "Disk full",
}

_DESCRIBES_CAUSE = re.compile(r"symptom|cause|diagnos|overview|summary|signs",
                              re.IGNORECASE)

DEFAULT_NEXT_STEPS = (
    "Confirm recovery: p99 latency and error rate back under the alert "
    "thresholds for several consecutive samples.",
    "Write the incident timeline and the confirmed cause into the ticket.",
)


def relevance(chunk: ContextChunk, evidence: Evidence) -> float:
    """How much ``chunk`` is about this incident, from 0 to 1.

    A runbook whose title and heading name topics is judged by them: 1.0
    when they name a cause the facts support, 0.6 when they name only the
    symptoms, 0 when they name only other or contradicted topics. A chunk
    whose title names no known topic is judged by the share of the
    incident's topics its text mentions.
    """
    title_topics = topics_in(f"{chunk.title} > {chunk.heading}")
    if title_topics:
        if title_topics & set(evidence.findings):
            return 1.0
        if title_topics & set(evidence.contradicted):
            return 0.0
        return 0.6 if title_topics & set(SYMPTOMS) else 0.0

    text_topics = topics_in(chunk.text)
    if text_topics & set(evidence.contradicted) - set(SYMPTOMS):
        return 0.0
    return len(text_topics & evidence.profile) / len(evidence.profile)


@dataclass
class _Candidate:
    step: Step
    chunk: ContextChunk
    rank: int
    kind: str
    tier: int                 # index of the finding it addresses; lower first
    # The chunk's runbook is about that finding (not just a step's condition).
    on_topic: bool

    def sort_key(self) -> tuple:
        return (self.tier, not self.on_topic, self.kind == MANUAL, self.rank,
                self.step.position)


class OfflineWriter:
    """Plans from a ``Context`` and the facts alone; never touches a network."""

    name = "offline"

    def __init__(self, max_actions: int = MAX_ACTIONS):
        self.max_actions = max_actions

    def write(self, facts: IncidentFacts, context: Context,
              fallback_reason: str | None = None) -> Plan:
        """A plan; ``fallback_reason`` says why it stands in for a model's."""
        evidence = assess(facts)
        relevant = [(rank, chunk) for rank, chunk in enumerate(context.chunks)
                    if relevance(chunk, evidence) >= RELEVANCE_CUTOFF]
        skipped = len(context.chunks) - len(relevant)
        if skipped:
            log.info("offline plan: %d of %d chunks below the relevance cutoff",
                     skipped, len(context.chunks))

        actions_taken, follow_ups = self._candidates(relevant, evidence)
        actions = self._actions(actions_taken)
        cause_chunk = self._cause_chunk(relevant, evidence)
        cited = [chunk_id for action in actions for chunk_id in action.chunk_ids]
        if cause_chunk is not None:
            cited.append(cause_chunk.chunk_id)

        return Plan(
            root_cause=self._root_cause(facts, evidence, cause_chunk),
            actions=actions,
            next_steps=self._next_steps(follow_ups, actions),
            sources=_sources(cited, context),
            plan_source="offline",
            fallback_reason=fallback_reason,
        )

    def _candidates(self, relevant: list[tuple[int, ContextChunk]],
                    evidence: Evidence) -> tuple[list[_Candidate], list[_Candidate]]:
        actions, follow_ups = [], []
        for rank, chunk in relevant:
            chunk_topics = topics_in(f"{chunk.title} > {chunk.heading}")
            for step in extract_steps(chunk.text, chunk.heading):
                holds = (evidence.condition_holds(step.condition)
                         if step.condition else None)
                if holds is False:
                    log.debug("dropping step, condition contradicted: %s", step.text)
                    continue
                topics = set(chunk_topics)
                if holds:
                    topics |= topics_in(step.condition or "")
                tier = _tier(topics, evidence)
                candidate = _Candidate(
                    step=step, chunk=chunk, rank=rank, kind=kind_of(step.action),
                    tier=tier, on_topic=tier == _tier(chunk_topics, evidence))
                if step.role != ROLE_ACTION:
                    follow_ups.append(candidate)
                elif (candidate.kind == "rollback_deployment"
                      and "deployment" in evidence.contradicted):
                    log.debug("dropping rollback: %s",
                              evidence.contradicted["deployment"])
                else:
                    actions.append(candidate)
        return actions, follow_ups

    def _actions(self, candidates: list[_Candidate]) -> list[PlanAction]:
        """The ordered actions, one per catalog kind, citations merged."""
        chosen: dict[str, tuple[_Candidate, list[str]]] = {}
        manual = 0
        for candidate in sorted(candidates, key=_Candidate.sort_key):
            if candidate.kind == MANUAL:
                key = " ".join(candidate.step.action.lower().split())
            else:
                key = candidate.kind
            if key in chosen:
                citations = chosen[key][1]
                if (candidate.chunk.chunk_id not in citations
                        and len(citations) < MAX_CITATIONS):
                    citations.append(candidate.chunk.chunk_id)
                continue
            if len(chosen) >= self.max_actions:
                continue
            if candidate.kind == MANUAL:
                if manual >= MAX_MANUAL_ACTIONS:
                    continue
                manual += 1
            chosen[key] = (candidate, [candidate.chunk.chunk_id])

        return [PlanAction(text=candidate.step.text, kind=candidate.kind,
                           chunk_ids=tuple(citations))
                for candidate, citations in chosen.values()]

    def _next_steps(self, follow_ups: list[_Candidate],
                    actions: list[PlanAction]) -> list[str]:
        acted_on = {chunk_id for action in actions for chunk_id in action.chunk_ids}
        # Checks from the runbooks the actions came from first: they say how
        # to tell whether those actions worked.
        ordered = sorted(follow_ups, key=lambda c: (
            c.chunk.chunk_id not in acted_on, c.tier, c.rank, c.step.position))
        steps: list[str] = []
        for candidate in ordered:
            text = candidate.step.text
            if candidate.step.states_a_check:
                text = f"Verify: {text}"
            if text not in steps:
                steps.append(text)
        return steps[:MAX_NEXT_STEPS] or list(DEFAULT_NEXT_STEPS)

    @staticmethod
    def _cause_chunk(relevant: list[tuple[int, ContextChunk]],
                     evidence: Evidence) -> ContextChunk | None:
        """The chunk the root cause cites.

        A chunk about the leading cause, and among those one that describes
        it (symptoms, diagnosis) rather than one that only says what to do;
        without a finding, the same preference over every relevant chunk.
        """
        chunks = [chunk for _, chunk in relevant]
        for topic in evidence.findings:
            about = [c for c in chunks
                     if topic in topics_in(f"{c.title} > {c.heading}")]
            if about:
                chunks = about
                break
        describing = [c for c in chunks if _DESCRIBES_CAUSE.search(c.heading)]
        return (describing or chunks or [None])[0]

    @staticmethod
    def _root_cause(facts: IncidentFacts, evidence: Evidence,
                    chunk: ContextChunk | None) -> str:
        symptoms = evidence.supported["latency"]
        where = (f" Runbook: {chunk.title} > {chunk.heading.split('>')[-1].strip()}"
                 f" [{chunk.chunk_id}]." if chunk else "")
        if not evidence.findings:
            ruled_out = "; ".join(evidence.contradicted.values())
            return (f"Cause not yet determined: {facts.service} shows {symptoms}"
                    f"{' (' + ruled_out + ')' if ruled_out else ''}, and no other "
                    f"signal points at a cause.{where}")

        leading, *others = evidence.findings
        sentence = (f"{CAUSE_WORDING.get(leading, leading)}: "
                    f"{evidence.supported[leading]}, while {facts.service} shows "
                    f"{symptoms}.")
        if others:
            sentence += " Also seen: " + "; ".join(
                evidence.supported[topic] for topic in others) + "."
        if "deployment" in evidence.contradicted:
            # The first suspect in most incidents; say why it is not this one.
            sentence += f" Ruled out: {evidence.contradicted['deployment']}."
        return sentence + where


def _tier(topics: set[str], evidence: Evidence) -> int:
    findings = evidence.findings
    ranks = [findings.index(topic) for topic in topics if topic in findings]
    return min(ranks) if ranks else len(findings)


def _sources(cited: list[str], context: Context) -> list[PlanSourceRef]:
    by_id = {chunk.chunk_id: chunk for chunk in context.chunks}
    sources: dict[str, PlanSourceRef] = {}
    for chunk_id in cited:
        chunk = by_id[chunk_id]
        sources.setdefault(chunk_id, PlanSourceRef(
            chunk_id=chunk_id, source=chunk.source, heading=chunk.heading))
    return list(sources.values())
