"""The reader's copy of the runbook index: chunks, vectors and BM25, in memory.

Built from the store's manifest and one ``get`` per document (never a
scan: at 10,000 chunks a scan's reply would pass the engine's 16 MiB
cap). Records that are missing, unreadable or from another embedder than
the manifest's are left out and logged, so a reader racing the indexer
sees the documents that are complete.
"""

import logging
from dataclasses import dataclass

import numpy as np

from incident_ops import keys
from incident_ops.errors import UserError
from incident_ops.indexing import records
from incident_ops.indexing.chunking import search_text
from incident_ops.retrieval.keyword import KeywordIndex
from incident_ops.store import Store

log = logging.getLogger(__name__)


class NothingIndexed(UserError):
    """No runbook index in the store yet, or an empty one."""


@dataclass(frozen=True)
class IndexedChunk:
    chunk_id: str
    doc_id: str
    source: str
    title: str
    heading: str
    text: str
    tokens: int


class SearchIndex:
    """Everything one index version holds, ready to score queries."""

    def __init__(self, manifest: dict, documents: list[dict]):
        self.version = manifest.get("version")
        self.stamp = index_stamp(manifest)
        self.embedder = manifest.get("embedder")
        self.dim = int(manifest.get("dim") or 0)
        self.documents = {doc["doc_id"]: doc for doc in documents}

        self.chunks: list[IndexedChunk] = []
        blocks = []
        chunk_docs = []
        for position, doc in enumerate(documents):
            chunk_docs.extend([position] * len(doc["chunks"]))
            for chunk in doc["chunks"]:
                self.chunks.append(IndexedChunk(
                    chunk_id=chunk["chunk_id"], doc_id=doc["doc_id"],
                    source=doc["source"], title=doc["title"],
                    heading=chunk["heading"], text=chunk["text"],
                    tokens=int(chunk["tokens"]),
                ))
            blocks.append(doc["_vectors"])
        self.vectors = (
            np.vstack(blocks) if blocks else np.zeros((0, self.dim), np.float32)
        )
        # One title vector per document, and each chunk's document position.
        self.title_vectors = (
            np.vstack([doc["_title_vector"] for doc in documents])
            if documents else np.zeros((0, self.dim), np.float32)
        )
        self.chunk_docs = np.array(chunk_docs, dtype=np.int64)
        self.tokens = [chunk.tokens for chunk in self.chunks]
        self.keywords = KeywordIndex([
            search_text(c.title, c.heading, c.text) for c in self.chunks
        ])

    def __len__(self) -> int:
        return len(self.chunks)


def index_stamp(manifest: dict) -> dict:
    """What tells two index builds apart, as the version key stores it.

    The time is part of it: a wiped database rebuilt by the indexer starts
    again at version 1.
    """
    return {
        "version": manifest.get("version"),
        "updated_at": manifest.get("updated_at"),
        "embedder": manifest.get("embedder"),
    }


def read_manifest(store: Store) -> dict:
    """The stored manifest, or ``NothingIndexed`` saying how to make one."""
    manifest = store.get(keys.RUNBOOK_INDEX)
    if not manifest:
        raise NothingIndexed(
            "no runbooks have been indexed yet: run "
            "`python process_b_indexer.py --once` against this database first"
        )
    return manifest


def load_index(store: Store, manifest: dict,
               cached: SearchIndex | None = None) -> SearchIndex:
    """The index ``manifest`` describes, reusing ``cached`` documents when unchanged."""
    reusable = {}
    if cached is not None and cached.embedder == manifest.get("embedder"):
        reusable = cached.documents

    documents = []
    for document_id, entry in sorted(manifest.get("docs", {}).items()):
        previous = reusable.get(document_id)
        if previous is not None and previous["sha256"] == entry["sha256"]:
            documents.append(previous)
            continue
        record = _read_document(store, document_id, manifest)
        if record is not None:
            documents.append(record)

    index = SearchIndex(manifest, documents)
    if not len(index):
        raise NothingIndexed(
            "the runbook index is empty: add .md or .txt runbooks to the folder "
            "and run the indexer"
        )
    log.debug("loaded index version %s: %d chunks from %d runbooks",
              index.version, len(index), len(documents))
    return index


def _read_document(store: Store, document_id: str, manifest: dict) -> dict | None:
    record = store.get(records.doc_key(document_id))
    if record is None:
        log.warning("runbook record %s is missing; searching without it", document_id)
        return None
    if record.get("format") != records.INDEX_FORMAT:
        log.warning("runbook record %s has format %s, not %d; searching without "
                    "it until the indexer rewrites it", document_id,
                    record.get("format"), records.INDEX_FORMAT)
        return None
    if record.get("embedder") != manifest.get("embedder"):
        log.warning("runbook %s was embedded with %s, the index with %s; "
                    "searching without it until the indexer catches up",
                    record.get("source"), record.get("embedder"),
                    manifest.get("embedder"))
        return None
    try:
        vectors = records.decode_vectors(record["vectors"], int(manifest["dim"]))
        title_vector = records.decode_vectors(record["title_vector"],
                                              int(manifest["dim"]))
    except (KeyError, ValueError, TypeError) as error:
        log.warning("runbook record %s is damaged (%s); searching without it",
                    document_id, error)
        return None
    if len(vectors) != len(record["chunks"]):
        log.warning("runbook record %s has %d vectors for %d chunks; skipped",
                    document_id, len(vectors), len(record["chunks"]))
        return None
    record["_vectors"] = vectors
    record["_title_vector"] = title_vector[0]
    return record
