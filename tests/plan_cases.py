"""Hand-written runbook chunks and incident facts for the planning tests.

The text is written for these tests (not the shipped runbooks), in the
shape the indexer produces: a title, a heading path, the section's text.
"""

from incident_ops.planning import IncidentFacts
from incident_ops.retrieval.context import Context, ContextChunk
from incident_ops.tokens import count_tokens

DETECTED_AT = "2026-03-02T09:30:00+00:00"

RUNBOOK_SECTIONS = {
    "release-3": ("releases.md", "Bad release", "Remediation", """\
Undo first, debug later.

1. Revert the release to the last good version with
   `deployctl undo payments --to previous`.
2. Watch the error rate on the release dashboard until it flattens.
3. Pause the release train for this service until a fix is reviewed.
"""),
    "slow-2": ("slow.md", "Slow responses and timeouts", "Mitigation", """\
1. If a release went out in the last half hour, revert that release.
2. If CPU is pinned on the service hosts, scale out the service by adding
   instances behind the load balancer.
3. If one downstream call is timing out, open the circuit breaker for that
   dependency.
"""),
    "pool-1": ("db.md", "Database saturation", "Immediate actions", """\
- Add database capacity: provision a read replica and raise the connection
  pool size on the primary.
- Kill the longest running queries that hold locks.
- If the saturation started with a release, revert the release.
"""),
    "heap-4": ("heap.md", "Memory leak in the API", "Mitigation", """\
1. Do a rolling restart of the API instances, one zone at a time.
2. Capture a heap profile from one instance before it is restarted.
"""),
    "disk-5": ("disk.md", "Disk pressure on workers", "Cleanup", """\
1. Delete rotated logs older than a week from /var/log.
2. Prune unused container images with `crictl rmi --prune`.
"""),
    "slow-9": ("slow.md", "Slow responses and timeouts", "Verify", """\
- p99 under one second for ten minutes.
- Error budget burn back to normal.
"""),
}


def chunk(chunk_id: str, score: float = 0.02) -> ContextChunk:
    source, title, heading, text = RUNBOOK_SECTIONS[chunk_id]
    return ContextChunk(chunk_id=chunk_id, source=source, title=title,
                        heading=heading, text=text, score=score,
                        tokens=count_tokens(text))


def context(*chunk_ids: str) -> Context:
    chunks = [chunk(c, score=0.03 - i * 0.001) for i, c in enumerate(chunk_ids)]
    return Context(chunks=chunks, total_tokens=sum(c.tokens for c in chunks),
                   budget=4000)


def all_chunks() -> Context:
    return context(*RUNBOOK_SECTIONS)


def facts(deployment_minutes_before: float | None = None,
          signals: dict | None = None, cpu: float = 45.0,
          events: list[dict] | None = None) -> IncidentFacts:
    recent = list(events or [])
    if deployment_minutes_before is not None:
        minute = 30 - deployment_minutes_before
        recent.append({"at": f"2026-03-02T09:{minute:02.0f}:00+00:00",
                       "kind": "deployment",
                       "description": "payments v7.3.0 rolled out"})
    return IncidentFacts(latency_p99_ms=2300.0, error_rate_pct=11.5, cpu_pct=cpu,
                         detected_at=DETECTED_AT, recent_events=recent,
                         service="payments", signals=signals or {})
