"""Hybrid retrieval: a semantic leg and a BM25 leg fused by weighted RRF.

The reader keeps its own copy of the index (see ``index.py``) and checks
the manifest's version on every query, one small ``get``, reloading only
the documents that changed when it moves.
"""

import logging
import threading

import numpy as np

from incident_ops import keys
from incident_ops.errors import UserError
from incident_ops.indexing.embedder import Embedder, embedder_named
from incident_ops.retrieval import ranking
from incident_ops.retrieval.context import Context, ContextChunk
from incident_ops.retrieval.index import (
    NothingIndexed,
    SearchIndex,
    index_stamp,
    load_index,
    read_manifest,
)
from incident_ops.retrieval.query import MODES, HybridQuery
from incident_ops.store import Store

log = logging.getLogger(__name__)

# Weight of the runbook title's cosine against the chunk's own in the
# semantic score: equal, so the score is the mean of the two. A chunk's own
# words often leave out what the runbook is about. On the prometheus-
# operator corpus the vector leg's MRR rose with it from 0.901 (weight 0.4)
# to 0.919, and also with queries made of the alert summary alone
# (0.863 -> 0.875) or the description alone (0.874 -> 0.887). Known
# shortcoming: it was chosen on that one corpus; hybrid gained there
# (MRR 0.926 -> 0.936) but was flat with summary-only queries.
TITLE_WEIGHT = 1.0


class Retriever:
    """Answers ``HybridQuery`` objects over the runbooks indexed in ``store``.

    ``embedder`` embeds the query; by default it is the one the index was
    built with. Safe to share between threads.
    """

    def __init__(self, store: Store, embedder: Embedder | None = None):
        self.store = store
        self._embedder = embedder
        self._index: SearchIndex | None = None
        self._lock = threading.Lock()
        try:
            self.refresh()
        except NothingIndexed:
            # The indexer may simply not have run yet; execute() says so.
            log.debug("no runbook index yet; will load it on the first query")

    @property
    def index_version(self) -> int | None:
        return self._index.version if self._index else None

    def refresh(self) -> SearchIndex:
        """The current index, reloaded when the stored version moved.

        Reads the small version key first; the manifest (tens of kB per
        thousand runbooks) is read only when the version differs.
        """
        with self._lock:
            current = self._index
            stamp = self.store.get(keys.RUNBOOK_VERSION)
            if current is not None and stamp and stamp == current.stamp:
                return current

            manifest = read_manifest(self.store)
            if current is None or current.stamp != index_stamp(manifest):
                self._index = load_index(self.store, manifest, cached=current)
                if current is not None:
                    log.info("runbook index refreshed to version %s (%d chunks)",
                             self._index.version, len(self._index))
            return self._index

    def execute(self, query: HybridQuery, mode: str = "hybrid") -> Context:
        """The best chunks for ``query`` in ``mode`` ("hybrid", "vector" or
        "keyword"), whole and in rank order, within the token budget.

        Raises ``NothingIndexed`` when no runbook has been indexed yet, and
        ``UserError`` for a malformed query.
        """
        if mode not in MODES:
            raise UserError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        try:
            query.validate()
        except ValueError as error:
            raise UserError(str(error)) from None

        index = self.refresh()
        size = len(index)
        use_vector = mode in ("hybrid", "vector") and query.vector_query.strip()
        use_keyword = mode in ("hybrid", "keyword") and query.keyword_query.strip()

        similarity = np.zeros(size, dtype=np.float32)
        if use_vector:
            query_vector = self._embed_query(index, query.vector_query)
            title_similarity = (index.title_vectors @ query_vector)[index.chunk_docs]
            similarity = (index.vectors @ query_vector
                          + TITLE_WEIGHT * title_similarity) / (1 + TITLE_WEIGHT)
        keyword = np.zeros(size, dtype=np.float32)
        if use_keyword:
            keyword = index.keywords.scores(query.keyword_query)
        keyword_matched = keyword > 0

        if mode == "vector":
            scores, candidates = similarity, np.ones(size, dtype=bool)
        elif mode == "keyword":
            scores, candidates = keyword, keyword_matched
        else:
            legs, weights = [], []
            if use_vector:
                legs.append(ranking.ranks(similarity))
                weights.append(query.vector_weight)
            if use_keyword:
                legs.append(ranking.ranks(keyword, keyword_matched))
                weights.append(query.keyword_weight)
            scores = ranking.weighted_rrf(legs, weights, query.rrf_k)
            candidates = scores > 0

        packed = ranking.pack(
            ranking.ranked(scores, candidates),
            tokens=index.tokens,
            vectors=index.vectors,
            top_k=query.top_k,
            budget=query.token_budget,
            dedup_threshold=(
                query.dedup_threshold if query.dedup == "semantic" else None
            ),
        )
        note = packed.note
        if not candidates.any():
            note = "no indexed chunk matches any of the query's keywords"

        chunks = [
            ContextChunk(
                chunk_id=index.chunks[i].chunk_id, source=index.chunks[i].source,
                title=index.chunks[i].title, heading=index.chunks[i].heading,
                text=index.chunks[i].text, score=float(scores[i]),
                tokens=index.chunks[i].tokens,
                also_in=_other_sources(index, i, duplicates),
            )
            for i, duplicates in zip(packed.chosen, packed.merged, strict=True)
        ]
        return Context(chunks=chunks, total_tokens=packed.total_tokens,
                       budget=query.token_budget, note=note,
                       index_version=index.version)

    def _embed_query(self, index: SearchIndex, text: str) -> np.ndarray:
        if self._embedder is None or self._embedder.name != index.embedder:
            if self._embedder is not None:
                raise UserError(
                    f"the index was built with {index.embedder} but queries are "
                    f"embedded with {self._embedder.name}: re-run the indexer "
                    "with the same OPS_EMBEDDER"
                )
            self._embedder = embedder_named(index.embedder)
        return self._embedder.embed([text])[0]


def _other_sources(index: SearchIndex, kept: int, duplicates: list[int]) -> tuple:
    """The runbooks of ``duplicates`` other than the kept chunk's own, once each.

    A near-duplicate from the same runbook (an overlap between two of its
    chunks) adds nothing a reader does not already see.
    """
    own = index.chunks[kept].source
    others = (index.chunks[d].source for d in duplicates)
    return tuple(dict.fromkeys(s for s in others if s != own))
