"""From per-chunk scores to the chunks a reader gets: fuse, dedup, pack.

Pure functions over numpy arrays, so each rule can be tested alone.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np


def ranks(scores: np.ndarray, matched: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of every chunk by descending score; 0 where not matched."""
    order = np.argsort(-scores, kind="stable")
    result = np.zeros(len(scores), dtype=np.int64)
    result[order] = np.arange(1, len(scores) + 1)
    if matched is not None:
        result[~matched] = 0
    return result


def weighted_rrf(
    leg_ranks: list[np.ndarray], weights: list[float], k: int
) -> np.ndarray:
    """Weighted Reciprocal Rank Fusion: sum of weight / (k + rank) over legs.

    A chunk a leg did not match (rank 0) gets nothing from that leg.
    """
    fused = np.zeros(len(leg_ranks[0]), dtype=np.float64)
    for rank, weight in zip(leg_ranks, weights, strict=True):
        found = rank > 0
        fused[found] += weight / (k + rank[found])
    return fused


def ranked(scores: np.ndarray, candidates: np.ndarray) -> Iterator[int]:
    """Indexes of ``candidates`` (a boolean mask) by descending score."""
    positions = np.flatnonzero(candidates)
    order = np.argsort(-scores[positions], kind="stable")
    for position in positions[order]:
        yield int(position)


@dataclass
class Packed:
    chosen: list[int]
    total_tokens: int
    note: str | None
    # For each chosen chunk (same order), the near-duplicates collapsed
    # into it, in the order they were met.
    merged: list[list[int]] = field(default_factory=list)


def pack(
    order: Iterator[int],
    tokens: list[int],
    vectors: np.ndarray,
    top_k: int,
    budget: int,
    dedup_threshold: float | None,
) -> Packed:
    """Take chunks in ``order`` until ``top_k`` or the token budget is reached.

    Whole chunks only: packing stops at the first chunk that would pass
    the budget, so the result never skips ahead to a worse-ranked chunk
    just because it is shorter. With a ``dedup_threshold``, a chunk whose
    cosine with an already chosen one is above it is not taken again but
    merged: it is listed under the chosen chunk it is most similar to, so
    that a reader still learns which other runbooks say the same thing.
    """
    chosen: list[int] = []
    merged: list[list[int]] = []
    # The chosen chunks' vectors, filled in as they are taken, so that the
    # duplicate check does not copy them again for every candidate.
    chosen_vectors = np.empty((top_k, vectors.shape[1]), dtype=vectors.dtype)
    total = 0
    note = None
    for index in order:
        if len(chosen) == top_k:
            break
        if dedup_threshold is not None and chosen:
            similarity = chosen_vectors[:len(chosen)] @ vectors[index]
            closest = int(similarity.argmax())
            if float(similarity[closest]) > dedup_threshold:
                merged[closest].append(index)
                continue
        if total + tokens[index] > budget:
            if chosen:
                note = (f"stopped at {len(chosen)} chunks: the next one "
                        f"({tokens[index]} tokens) would pass the budget of "
                        f"{budget} tokens")
            else:
                note = (f"budget of {budget} tokens is smaller than the first "
                        f"chunk ({tokens[index]} tokens): nothing returned; "
                        "raise the budget")
            break
        chosen_vectors[len(chosen)] = vectors[index]
        chosen.append(index)
        merged.append([])
        total += tokens[index]
    return Packed(chosen, total, note, merged)
