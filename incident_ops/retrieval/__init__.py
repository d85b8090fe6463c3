"""Hybrid retrieval over the indexed runbooks.

    retriever = Retriever(Store.open())
    context = retriever.execute(HybridQuery.for_text("p99 latency spike"))
    prompt_part = context.to_markdown()
"""

from incident_ops.retrieval.context import Context, ContextChunk
from incident_ops.retrieval.index import NothingIndexed
from incident_ops.retrieval.query import HybridQuery
from incident_ops.retrieval.retriever import Retriever

__all__ = ["Context", "ContextChunk", "HybridQuery", "NothingIndexed", "Retriever"]
