"""What retrieval hands to its readers: ranked chunks packed under a budget."""

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ContextChunk:
    """One runbook chunk as retrieved, with where it came from."""

    chunk_id: str
    source: str          # runbook path relative to the runbooks folder
    title: str           # the runbook's title
    heading: str         # heading path inside the runbook, "A > B > C"
    text: str
    score: float         # fused score; higher is better
    tokens: int          # tiktoken count of ``text``
    # Other runbooks holding a near-duplicate of this chunk, collapsed into
    # it by dedup: the same steps apply there too.
    also_in: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    """Chunks in rank order, whole, fitting ``budget`` tokens together."""

    chunks: list[ContextChunk] = field(default_factory=list)
    total_tokens: int = 0
    budget: int = 0
    # Why fewer chunks came back than asked for, when that matters to the
    # reader (for example: "budget of 20 tokens is smaller than the first
    # chunk (143 tokens)").
    note: str | None = None
    # The runbook index version these chunks came from.
    index_version: int | None = None

    @property
    def sources(self) -> list[str]:
        """The runbooks the chunks come from, best-ranked first, each once.

        A chunk's own runbook comes before the runbooks it is ``also_in``.
        """
        return list(dict.fromkeys(
            source for chunk in self.chunks for source in chunk_sources(chunk)
        ))

    def to_markdown(self) -> str:
        """The chunks as prompt-ready Markdown, each headed by its id."""
        parts = []
        for chunk in self.chunks:
            also = f"; also in: {', '.join(chunk.also_in)}" if chunk.also_in else ""
            parts.append(
                f"### [{chunk.chunk_id}] {chunk.title} > {chunk.heading}\n"
                f"(source: {chunk.source}{also})\n\n{chunk.text.strip()}\n"
            )
        return "\n".join(parts)


def chunk_sources(chunk: ContextChunk) -> list[str]:
    """The runbook a chunk comes from, then the runbooks it is also in."""
    return [chunk.source, *chunk.also_in]
