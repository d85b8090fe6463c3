"""The keyword leg: BM25 (with IDF) over the same chunks the vectors cover.

Text is cut into words, identifiers are also split into their parts
(``KubePodCrashLooping`` -> kube, pod, crash, looping; ``node_cpu_seconds``
-> node, cpu, seconds, with the whole kept too), stop words are dropped
and the rest is stemmed, so "restarting pods" meets "pod restarts".
"""

import re

import bm25s
import numpy as np
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

_WORD = re.compile(r"[A-Za-z0-9]+(?:[_.][A-Za-z0-9]+)*")
_PART = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_STOPWORDS = frozenset(STOPWORDS_EN)
_stemmer = Stemmer.Stemmer("english")


def keyword_tokens(text: str) -> list[str]:
    """Stemmed, lower-case search terms of ``text``."""
    terms = []
    for match in _WORD.finditer(text):
        word = match.group()
        parts = [p.lower() for p in _PART.findall(word)]
        lowered = word.lower()
        if len(parts) > 1:
            terms.append(lowered)
        terms.extend(parts if parts else [lowered])
    terms = [t for t in terms if t not in _STOPWORDS and len(t) > 1]
    return _stemmer.stemWords(terms)


class KeywordIndex:
    """BM25 scores of every chunk for a query.

    Uses the Lucene form of IDF, log(1 + (N - df + 0.5) / (df + 0.5)),
    which stays positive: the classic form is zero for a term found in
    exactly half the chunks, so on a tiny corpus a real match would score
    nothing.
    """

    def __init__(self, texts: list[str]):
        self.size = len(texts)
        self._bm25 = bm25s.BM25(method="lucene")
        if texts:
            self._bm25.index([keyword_tokens(t) for t in texts], show_progress=False)

    def scores(self, query: str) -> np.ndarray:
        """One BM25 score per chunk, in index order (0 where nothing matched)."""
        terms = keyword_tokens(query)
        if not terms or not self.size:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)
