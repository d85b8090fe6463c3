"""The one path from incident facts to a plan, for the commander and ``plan``.

``Advisor.advise`` builds the retrieval query from the facts, retrieves
runbook context with the hybrid retriever (its index is loaded once and
refreshed when the indexer bumps the version) and hands both to the plan
writer: the OpenAI writer when ``OPENAI_API_KEY`` is set, else the
offline writer.
"""

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from incident_ops.planning.evidence import assess
from incident_ops.planning.offline import OfflineWriter
from incident_ops.planning.openai_writer import OpenAISettings, OpenAIWriter
from incident_ops.planning.plan import IncidentFacts, Plan
from incident_ops.planning.query import TOKEN_BUDGET, TOP_K, incident_queries
from incident_ops.retrieval import Context, Retriever
from incident_ops.store import Store

log = logging.getLogger(__name__)


class PlanWriter(Protocol):
    name: str

    def write(self, facts: IncidentFacts, context: Context) -> Plan: ...


@dataclass
class Advice:
    context: Context
    plan: Plan


def default_writer(environ: Mapping[str, str] = os.environ) -> PlanWriter:
    """The OpenAI writer when a key is configured, else the offline writer.

    Raises ``ConfigError`` for a malformed ``OPENAI_*`` setting.
    """
    settings = OpenAISettings.from_env(environ)
    if settings is None:
        return OfflineWriter()
    return OpenAIWriter(settings)


class Advisor:
    """Retrieves runbook context for incident facts and writes the plan."""

    def __init__(self, store: Store, writer: PlanWriter | None = None,
                 retriever: Retriever | None = None,
                 token_budget: int = TOKEN_BUDGET, top_k: int = TOP_K):
        self.writer = writer or default_writer()
        self.retriever = retriever or Retriever(store)
        self.token_budget = token_budget
        self.top_k = top_k

    def advise(self, facts: IncidentFacts) -> Advice:
        """Context and plan for ``facts``.

        Raises ``NothingIndexed`` when no runbook is indexed yet and
        ``StoreUnavailable`` when the server is gone; model failures never
        raise, they end in the offline plan with its ``fallback_reason``.
        """
        evidence = assess(facts)
        queries = incident_queries(facts, evidence, self.token_budget, self.top_k)
        context = interleave([self.retriever.execute(query) for query in queries],
                             self.token_budget, self.top_k)
        log.info("retrieved %d chunks (%d tokens) from %s for the plan",
                 len(context.chunks), context.total_tokens,
                 ", ".join(context.sources) or "no runbook")
        plan = self.writer.write(facts, context)
        return Advice(context=context, plan=plan)


def interleave(contexts: list[Context], budget: int, top_k: int) -> Context:
    """The contexts' chunks taken in turn (first of each, then second of
    each, ...), each chunk once, whole chunks within ``budget`` tokens."""
    if len(contexts) == 1:
        return contexts[0]

    merged = Context(budget=budget, index_version=contexts[0].index_version)
    seen: set[str] = set()
    depth = max(len(context.chunks) for context in contexts)
    for position in range(depth):
        for context in contexts:
            if position >= len(context.chunks):
                continue
            chunk = context.chunks[position]
            if chunk.chunk_id in seen or len(merged.chunks) >= top_k:
                continue
            if merged.total_tokens + chunk.tokens > budget:
                continue
            seen.add(chunk.chunk_id)
            merged.chunks.append(chunk)
            merged.total_tokens += chunk.tokens
    return merged
