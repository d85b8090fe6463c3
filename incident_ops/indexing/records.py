"""The stored shape of the runbook index, shared by its writer and readers.

Three key families (see ``incident_ops.keys``):

- ``runbooks/index``: the manifest, ``{"version", "format", "embedder",
  "dim", "updated_at", "root", "docs": {doc_id: {"source", "sha256",
  "title", "chunks"}}}``. ``version`` grows by one after every pass that
  changed something; readers refresh when it moves.
- ``runbooks/version``: the manifest's version, time and embedder alone,
  written after it, so that readers can check for a new index with a tiny
  read per query.
- ``runbooks/docs/<doc_id>``: one record per document with its chunks,
  their vectors (base64 of little-endian float32, one row per chunk) and
  the vector of its title (``title_vector``, one row).

With no transactions in the engine, the writer puts document records
before the manifest that names them (and the version key after it), and
drops a document from the manifest before deleting its record; readers
skip a record that is missing or that does not match the manifest's
embedder.
"""

import base64
import hashlib
from datetime import UTC, datetime

import numpy as np

from incident_ops import keys

VECTOR_DTYPE = np.dtype("<f4")

# Bumped whenever chunking or the record shape changes, so that the
# indexer rebuilds records that an older version wrote.
INDEX_FORMAT = 4


def doc_id(source: str) -> str:
    """A stable id for the runbook at relative path ``source``.

    Derived from the path alone, so a renamed file is a new document and
    the old one is deleted.
    """
    return hashlib.sha1(source.encode("utf-8")).hexdigest()[:16]


def doc_key(document_id: str) -> str:
    return keys.RUNBOOK_DOCS + document_id


def encode_vectors(vectors: np.ndarray) -> str:
    return base64.b64encode(
        np.ascontiguousarray(vectors, dtype=VECTOR_DTYPE).tobytes()
    ).decode("ascii")


def decode_vectors(encoded: str, dim: int) -> np.ndarray:
    """The (n x dim) float32 matrix stored as ``encoded``."""
    raw = np.frombuffer(base64.b64decode(encoded), dtype=VECTOR_DTYPE)
    if dim <= 0 or raw.size % dim:
        raise ValueError(f"{raw.size} floats do not make rows of {dim}")
    return raw.reshape(-1, dim).astype(np.float32)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
