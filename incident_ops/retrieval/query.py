"""The question a reader asks of the runbook index."""

from dataclasses import dataclass

MODES = ("hybrid", "vector", "keyword")
DEDUP_STRATEGIES = ("semantic", "none")


@dataclass
class HybridQuery:
    """One retrieval request: what to find, how to weigh it, how much to return.

    ``vector_query`` feeds the semantic leg and ``keyword_query`` the BM25
    leg (they are often the same text). The legs' rankings are fused by
    weighted Reciprocal Rank Fusion with constant ``rrf_k``. At most
    ``top_k`` whole chunks come back, fitting ``token_budget`` tokens
    together. With ``dedup="semantic"``, chunks whose vectors have a
    cosine above ``dedup_threshold`` with a better-ranked chunk are left
    out.
    """

    vector_query: str
    keyword_query: str
    vector_weight: float = 0.6
    keyword_weight: float = 0.4
    token_budget: int = 1500
    top_k: int = 8
    dedup: str = "semantic"
    rrf_k: int = 60
    dedup_threshold: float = 0.95

    @classmethod
    def for_text(cls, text: str, **options) -> "HybridQuery":
        """The same text for both legs."""
        return cls(vector_query=text, keyword_query=text, **options)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field."""
        if not (self.vector_query.strip() or self.keyword_query.strip()):
            raise ValueError("the query is empty: give some words to search for")
        if self.vector_weight < 0 or self.keyword_weight < 0:
            raise ValueError("weights must be zero or more")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {self.top_k}")
        if self.token_budget < 0:
            raise ValueError(
                f"token budget must be zero or more, not {self.token_budget}"
            )
        if self.rrf_k < 1:
            raise ValueError(f"rrf_k must be at least 1, not {self.rrf_k}")
        if self.dedup not in DEDUP_STRATEGIES:
            raise ValueError(
                f"dedup must be one of {DEDUP_STRATEGIES}, not {self.dedup!r}"
            )
