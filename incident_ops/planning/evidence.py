"""What the incident facts say about the likely cause, topic by topic.

Runbook text and incident facts meet on a small vocabulary of topics
(deployment, database, memory, ...). The facts make a topic *supported*
(a deployment 4 minutes before the breach, a connection pool at 97 %),
*contradicted* (no deployment in the last 30 minutes, CPU at 20 %) or leave
it unknown. The query, the offline writer's relevance cutoff and its
reading of conditional runbook steps ("If a deployment preceded the spike,
roll back") all use this one assessment.

Signals the collector may put in ``IncidentFacts.signals`` (percentages
0-100, times in ms); any other name is ignored:

    db_connections_pct          database connection pool in use, % of its max
    db_query_p99_ms             database query latency, p99
    memory_pct                  service memory in use, % of its limit
    memory_growth_pct_per_hour  steady growth of that percentage
    disk_used_pct               fullest filesystem of the service's nodes

Events other than deployments count as evidence for a topic when their
description names it ("db connection pool saturated" supports database).
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from incident_ops.planning.plan import IncidentFacts

log = logging.getLogger(__name__)

# A deployment this long before the breach is a suspect; older ones are not.
RECENT_WINDOW = timedelta(minutes=30)
# Collector and commander clocks may disagree by a little.
CLOCK_SLACK = timedelta(seconds=60)

# The two topics every incident here has: it was detected on them.
SYMPTOMS = ("latency", "errors")

# Known shortcoming: this vocabulary is English SRE wording. A runbook whose
# title uses other words is judged by its text alone, and a step condition in
# other words counts as unknown; widen these patterns when such runbooks come.
TOPIC_PATTERNS = {
    "latency": r"latenc|\bslow|\bp99\b|response time|timeouts?\b",
    "errors": r"\berrors?\b|\b5xx\b|\b50[0-4]\b|failures?\b|exceptions?\b",
    "deployment": r"deploy|\breleases?\b|rollout|\bversion\b|canary|\bbuild\b",
    "database": r"database|\bdb\b|connection pool|\bquer(?:y|ies)\b|replica"
                r"|postgres|mysql|\bsql\b",
    "memory": r"memory|\bheap\b|\boom|\bleak|garbage collect|\bgc\b",
    "cpu": r"\bcpu\b",
    "traffic": r"traffic|\bsurge\b|request rate|\bload spike",
    "dependency": r"dependenc|downstream|upstream",
    "disk": r"\bdisks?\b|filesystem|file system|no space|\binodes?\b",
}
_COMPILED = {topic: re.compile(p, re.IGNORECASE) for topic, p in TOPIC_PATTERNS.items()}

# Words added to the retrieval query when the facts support a topic.
SEARCH_TERMS = {
    "deployment": "recent deployment bad release roll back",
    "database": "database overloaded connection pool exhausted slow queries",
    "memory": "memory leak growing memory rolling restart",
    "cpu": "CPU saturation scale out",
    "traffic": "traffic surge shed load",
    "dependency": "failing dependency circuit breaker",
    "disk": "disk full no space left",
}


@dataclass(frozen=True)
class SignalRule:
    topic: str
    supports_at: float       # at or above: the topic is supported
    contradicts_below: float  # below: the topic is contradicted
    wording: str


SIGNAL_RULES = {
    "db_connections_pct": SignalRule(
        "database", 85, 50, "database connection pool at {value:g} % of its limit"),
    "db_query_p99_ms": SignalRule(
        "database", 500, 50, "database query p99 at {value:g} ms"),
    # Known shortcoming: one reading of the level is weak evidence of a leak
    # (the growth rate below is better), but the simulated service reports
    # only the level, about 70 % when its leak breaches the alert.
    "memory_pct": SignalRule(
        "memory", 70, 55, "service memory at {value:g} % of its limit"),
    "memory_growth_pct_per_hour": SignalRule(
        "memory", 5, 0.5, "memory growing {value:g} % per hour"),
    "disk_used_pct": SignalRule("disk", 90, 70, "disk {value:g} % full"),
}
CPU_RULE = SignalRule("cpu", 85, 50, "CPU at {value:g} %")


def topics_in(text: str) -> set[str]:
    """The topics ``text`` speaks of."""
    return {topic for topic, pattern in _COMPILED.items() if pattern.search(text)}


@dataclass
class Evidence:
    """Per topic: why the facts support it, or why they contradict it.

    ``supported`` keeps insertion order, strongest evidence first: a recent
    deployment, then measured signals, then events that name a topic.
    """

    supported: dict[str, str] = field(default_factory=dict)
    contradicted: dict[str, str] = field(default_factory=dict)
    deployment: dict | None = None    # the most recent deployment in the window
    minutes_before: float | None = None

    @property
    def findings(self) -> list[str]:
        """Supported topics beyond the symptoms, strongest first."""
        return [topic for topic in self.supported if topic not in SYMPTOMS]

    @property
    def profile(self) -> set[str]:
        """The topics a relevant runbook should be about."""
        return set(SYMPTOMS) | set(self.findings)

    def condition_holds(self, condition: str) -> bool | None:
        """Does a runbook step's condition hold? ``None`` when unknown.

        A condition that names a contradicted topic fails ("If a recent
        deployment introduced the slow queries" with no deployment); with
        "or" every topic it names must be contradicted for it to fail. It
        holds when it names a supported topic other than the symptoms, which
        every incident has.
        """
        topics = topics_in(condition)
        contradicted = topics & set(self.contradicted)
        if re.search(r"\bor\b", condition, re.IGNORECASE):
            if topics and topics <= set(self.contradicted):
                return False
        elif contradicted:
            return False
        if topics & set(self.findings):
            return True
        return None

    def record(self, topic: str, reason: str, supports: bool) -> None:
        target = self.supported if supports else self.contradicted
        other = self.contradicted if supports else self.supported
        if topic in other:
            # Mixed evidence (an event names the database but the pool is
            # fine): the topic stays unknown rather than either.
            log.debug("mixed evidence on %s: %s / %s", topic, other[topic], reason)
            other.pop(topic)
            return
        target.setdefault(topic, reason)


def assess(facts: IncidentFacts) -> Evidence:
    """The evidence in ``facts``, topic by topic."""
    evidence = Evidence()
    evidence.supported["latency"] = _symptom_wording(facts)
    evidence.supported["errors"] = evidence.supported["latency"]

    detected = parse_time(facts.detected_at, "detected_at")
    recent = [event for event in facts.recent_events
              if _within_window(event, detected)]

    _assess_deployments(evidence, recent, detected)
    _assess_signals(evidence, facts)
    for event in recent:
        if event.get("kind") == "deployment":
            continue
        description = str(event.get("description", ""))
        for topic in topics_in(description) - set(SYMPTOMS):
            evidence.record(topic, f"event at {event.get('at')}: {description}", True)
    return evidence


def _symptom_wording(facts: IncidentFacts) -> str:
    parts = []
    if facts.latency_p99_ms is not None:
        parts.append(f"p99 latency {facts.latency_p99_ms:g} ms")
    if facts.error_rate_pct is not None:
        parts.append(f"error rate {facts.error_rate_pct:g} %")
    return " and ".join(parts) or "no metric values"


def _assess_deployments(evidence: Evidence, recent: list[dict],
                        detected: datetime | None) -> None:
    deployments = [event for event in recent if event.get("kind") == "deployment"]
    if not deployments:
        evidence.record("deployment", "no deployment in the "
                        f"{RECENT_WINDOW.seconds // 60} minutes before detection",
                        False)
        return

    latest = max(deployments, key=lambda e: parse_time(e.get("at"), "event") or
                 datetime.min.replace(tzinfo=UTC))
    evidence.deployment = latest
    at = parse_time(latest.get("at"), "event")
    if at is not None and detected is not None:
        evidence.minutes_before = max(0.0, (detected - at).total_seconds() / 60)
    when = f"at {latest.get('at')}"
    if evidence.minutes_before is not None:
        when = (f"{evidence.minutes_before:.0f} min before detection"
                if evidence.minutes_before >= 1 else
                f"{evidence.minutes_before * 60:.0f} s before detection")
    evidence.record(
        "deployment",
        f"deployment '{latest.get('description', 'unnamed')}' {when}", True)


def _assess_signals(evidence: Evidence, facts: IncidentFacts) -> None:
    readings = [(CPU_RULE, facts.cpu_pct)]
    for name, value in (facts.signals or {}).items():
        rule = SIGNAL_RULES.get(name)
        if rule is None:
            log.debug("ignoring unknown signal %r", name)
            continue
        readings.append((rule, value))

    for rule, value in readings:
        if not isinstance(value, int | float) or value != value:
            continue
        reason = rule.wording.format(value=value)
        if value >= rule.supports_at:
            evidence.record(rule.topic, reason, True)
        elif value < rule.contradicts_below:
            evidence.record(rule.topic, reason, False)


def _within_window(event: dict, detected: datetime | None) -> bool:
    if detected is None:
        return True
    at = parse_time(event.get("at"), "event")
    if at is None:
        return False
    return detected - RECENT_WINDOW <= at <= detected + CLOCK_SLACK


def parse_time(raw: object, what: str) -> datetime | None:
    """An aware datetime from ISO 8601 (naive means UTC); ``None`` if bad."""
    try:
        parsed = datetime.fromisoformat(str(raw))
    except ValueError:
        log.warning("skipping %s with unreadable time %r", what, raw)
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
