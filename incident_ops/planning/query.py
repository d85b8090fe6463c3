"""The retrieval queries an incident asks, built from its facts alone.

The symptoms are always in them; each cause the facts support (see
``evidence``) adds its description and search words, so a database
incident whose facts carry a saturated connection pool reaches the
database runbook. Without such evidence the query can only describe the
symptoms, and retrieval returns the general latency guidance.

When the facts support several causes (a deployment shortly before a
saturated database), one query per cause is asked: a single query mixing
them ranks the strongest cause's runbook first and can leave the other's
mitigation out of the context altogether.
"""

from incident_ops.planning.evidence import SEARCH_TERMS, Evidence
from incident_ops.planning.plan import IncidentFacts
from incident_ops.retrieval import HybridQuery

SYMPTOM_WORDS = "latency spike elevated errors slow responses timeouts"
TOKEN_BUDGET = 2000
TOP_K = 8


def incident_queries(facts: IncidentFacts, evidence: Evidence,
                     token_budget: int = TOKEN_BUDGET,
                     top_k: int = TOP_K) -> list[HybridQuery]:
    """One hybrid query per supported cause, strongest first; one for the
    symptoms alone when the facts support no cause."""
    causes = [[topic] for topic in evidence.findings] or [[]]
    return [incident_query(facts, evidence, token_budget, top_k, findings)
            for findings in causes]


def incident_query(facts: IncidentFacts, evidence: Evidence,
                   token_budget: int = TOKEN_BUDGET,
                   top_k: int = TOP_K,
                   findings: list[str] | None = None) -> HybridQuery:
    """The hybrid query for ``facts`` and ``findings`` (default: every
    supported cause): 0.6 semantic, 0.4 keyword, deduplicated."""
    if findings is None:
        findings = evidence.findings
    described = [f"{facts.service}: {evidence.supported['latency']}, "
                 f"{SYMPTOM_WORDS}."]
    described += [f"{evidence.supported[topic]}; {SEARCH_TERMS[topic]}."
                  for topic in findings]
    keywords = " ".join([SYMPTOM_WORDS] + [SEARCH_TERMS[topic] for topic in findings])
    return HybridQuery(
        vector_query=" ".join(described),
        keyword_query=keywords,
        vector_weight=0.6,
        keyword_weight=0.4,
        token_budget=token_budget,
        top_k=top_k,
        dedup="semantic",
    )
