"""Splitting one runbook into chunks along its own structure.

A runbook is cut at its headings (``#`` to ``######``, and the underlined
``===``/``---`` form), in Markdown and plain text alike; lines inside
fenced code blocks are never headings. Each chunk keeps the document's
title and the path of headings above it, so a chunk that only says
"Restart affected instances" still says which runbook and section it
belongs to. Sections longer than ``max_tokens`` are split on line
boundaries into even pieces with an overlap (a line with no sentence or
word boundary to cut at, such as a base64 blob, is cut by tokens, so no
chunk passes the limit); fragments under ``min_tokens`` are merged into
their neighbour, never dropped. YAML front matter is read as metadata
(its ``title`` names the document) and is not chunk text.
"""

import logging
import math
import re
from dataclasses import dataclass, field

import yaml

from incident_ops.tokens import count_tokens, encoding

log = logging.getLogger(__name__)

# MiniLM was trained on texts of up to 128 word pieces and reads at most
# 256; chunks near the training length embed best. On the prometheus-
# operator corpus, 120-token chunks raised the vector leg's MRR by about
# 0.01 over 200-token ones and kept hybrid recall@3 at 0.98 or better.
MAX_CHUNK_TOKENS = 120
MIN_CHUNK_TOKENS = 60
OVERLAP_TOKENS = 20

HEADING_SEPARATOR = " > "

_ATX_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_FRONT_MATTER = re.compile(
    r"\A---[ \t]*\r?\n(.*?)\r?\n(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL
)
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
_SHORTCODE = re.compile(r"\{\{[<%].*?[>%]\}\}", re.DOTALL)
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_URL = re.compile(r"<?\b(?:https?|ftp)://[^\s)>]+>?")
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


@dataclass(frozen=True)
class Chunk:
    heading: str        # heading path inside the document, "A > B"
    text: str
    tokens: int


@dataclass
class ParsedDocument:
    title: str
    metadata: dict = field(default_factory=dict)
    chunks: list[Chunk] = field(default_factory=list)
    # False when nothing but front matter (or whitespace) is in the file.
    has_body: bool = True


@dataclass
class _Section:
    path: list[str]
    lines: list[str]

    @property
    def body(self) -> str:
        return "\n".join(self.lines).strip("\n")


def chunk_document(
    text: str,
    fallback_title: str,
    max_tokens: int = MAX_CHUNK_TOKENS,
    min_tokens: int = MIN_CHUNK_TOKENS,
    overlap_tokens: int = OVERLAP_TOKENS,
    source: str | None = None,
) -> ParsedDocument:
    """The title, front matter and chunks of one runbook's text.

    The title is the front matter's ``title``, else the first top-level
    heading, else ``fallback_title``. Every chunk has non-empty text; a
    document with no text at all has no chunks. ``source`` names the file
    in log lines (default: ``fallback_title``).
    """
    metadata, body = split_front_matter(text, source or fallback_title)
    sections = _sections(body)

    title = str(metadata.get("title") or "").strip() or _first_h1(sections)
    title = title or fallback_title
    for section in sections:
        # The document title repeated as the first heading adds nothing.
        if section.path and _same_words(section.path[0], title):
            section.path = section.path[1:]

    pieces: list[_Section] = []
    for section in sections:
        if not section.path and not section.body.strip():
            continue
        pieces.extend(_split_long(section, max_tokens, overlap_tokens))
    chunks = _merge_small(pieces, max_tokens, min_tokens)
    return ParsedDocument(title=title, metadata=metadata, chunks=chunks,
                          has_body=bool(body.strip()))


def split_front_matter(text: str, source: str = "runbook") -> tuple[dict, str]:
    """YAML front matter as a dict, and the text after it.

    Front matter that is not valid YAML (or not a mapping) is still taken
    out of the text, since it was written as metadata, and is logged with
    ``source`` as the file's name.
    """
    text = text.lstrip("\ufeff")
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    rest = text[match.end():]
    try:
        metadata = yaml.safe_load(match.group(1))
    except yaml.YAMLError as error:
        log.warning("%s: front matter is not valid YAML, ignored: %s",
                    source, str(error).splitlines()[0])
        return {}, rest
    if not isinstance(metadata, dict):
        return {}, rest
    return metadata, rest


def search_text(title: str, heading: str, text: str) -> str:
    """What the embedder and the keyword index see for one chunk.

    The title and heading path go first: they name the situation the
    chunk answers, which its own words often leave implicit. Link targets,
    bare URLs, site-generator shortcodes and HTML tags are left out: their
    words ("docs", "cluster", another runbook's file name) describe where a
    link points, not what the chunk says.
    """
    label = HEADING_SEPARATOR.join(part for part in (title, heading) if part)
    return f"{label}\n{strip_markup(text)}"


def strip_markup(text: str) -> str:
    """``text`` without link targets, URLs, shortcodes and HTML tags."""
    text = _SHORTCODE.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(" ", text)
    return _HTML_TAG.sub(" ", text)


# -- sections ---------------------------------------------------------------


def _sections(body: str) -> list[_Section]:
    """The text cut at every heading, each part with its heading path."""
    lines = body.splitlines()
    sections = [_Section(path=[], lines=[])]
    levels: list[tuple[int, str]] = []
    fence: str | None = None

    index = 0
    while index < len(lines):
        line = lines[index]
        heading = None

        fence_match = _FENCE.match(line)
        if fence_match:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
        elif fence is None:
            heading = _heading_at(lines, index)

        if heading is None:
            sections[-1].lines.append(line)
            index += 1
            continue

        level, name, consumed = heading
        while levels and levels[-1][0] >= level:
            levels.pop()
        levels.append((level, name))
        sections.append(_Section(path=[name for _, name in levels], lines=[]))
        index += consumed

    return [s for s in sections if s.path or s.body.strip()]


def _heading_at(lines: list[str], index: int) -> tuple[int, str, int] | None:
    """(level, name, lines used) when a heading starts at ``lines[index]``."""
    match = _ATX_HEADING.match(lines[index])
    if match:
        return len(match.group(1)), _clean_heading(match.group(2)), 1

    # Underlined form: a text line directly under a blank line (or the
    # start) with === or --- below it. A bare --- elsewhere is a rule.
    if index + 1 < len(lines) and lines[index].strip():
        underline = _SETEXT_UNDERLINE.match(lines[index + 1])
        previous_blank = index == 0 or not lines[index - 1].strip()
        if underline and previous_blank and not lines[index].startswith(("-", "*")):
            level = 1 if underline.group(1).startswith("=") else 2
            return level, _clean_heading(lines[index]), 2
    return None


def _clean_heading(raw: str) -> str:
    return raw.strip().strip("*_`").strip()


def _first_h1(sections: list[_Section]) -> str:
    for section in sections:
        if len(section.path) == 1:
            return section.path[0]
    return ""


def _same_words(a: str, b: str) -> bool:
    def words(s: str) -> str:
        return re.sub(r"[^0-9a-z]", "", s.lower())

    return words(a) == words(b)


# -- long sections ----------------------------------------------------------


def _split_long(section: _Section, max_tokens: int, overlap: int) -> list[_Section]:
    """``section`` as pieces of at most ``max_tokens``, overlapping a little.

    Cuts fall between lines; a line longer than the limit is cut between
    sentences, and a sentence longer than that between words.
    """
    if count_tokens(section.body) <= max_tokens:
        return [section]

    units = []
    for line in section.body.split("\n"):
        units.extend(_line_units(line, max_tokens))

    # Aim for pieces of equal size rather than full ones and a scrap at the
    # end: a 150-token section becomes two of about 85, not 120 and 30.
    total = sum(tokens for _, tokens in units)
    count = math.ceil((total - overlap) / max(1, max_tokens - overlap))
    target = math.ceil((total + (count - 1) * overlap) / max(1, count))
    limit = min(max_tokens, target + target // 10)

    pieces: list[list[tuple[str, int]]] = []
    current: list[tuple[str, int]] = []
    size = 0
    for unit in units:
        if current and size + unit[1] > limit:
            pieces.append(current)
            current = _tail(current, overlap)
            size = sum(tokens for _, tokens in current)
        current.append(unit)
        size += unit[1]
    if any(text.strip() for text, _ in current):
        pieces.append(current)

    return [
        _Section(path=section.path, lines=[text for text, _ in piece])
        for piece in pieces
    ]


def _line_units(line: str, max_tokens: int) -> list[tuple[str, int]]:
    tokens = count_tokens(line) + 1
    if tokens <= max_tokens:
        return [(line, tokens)]

    units = []
    for sentence in _SENTENCE_END.split(line):
        sentence_tokens = count_tokens(sentence) + 1
        if sentence_tokens <= max_tokens:
            units.append((sentence, sentence_tokens))
            continue
        units.extend(_word_runs(sentence.split(), max(1, max_tokens // 2)))
    return units


def _word_runs(words: list[str], limit: int) -> list[tuple[str, int]]:
    """Consecutive words grouped into runs of at most ``limit`` tokens."""
    runs = []
    current: list[str] = []
    size = 0
    for word in words:
        tokens = count_tokens(" " + word)
        if tokens > limit:
            # A base64 blob or a minified line: no word boundary to cut at.
            if current:
                runs.append((" ".join(current), size + 1))
                current, size = [], 0
            pieces = _token_slices(word, limit)
            runs.extend((piece, count + 1) for piece, count in pieces)
            continue
        if current and size + tokens > limit:
            runs.append((" ".join(current), size + 1))
            current, size = [], 0
        current.append(word)
        size += tokens
    if current:
        runs.append((" ".join(current), size + 1))
    return runs


def _token_slices(text: str, limit: int) -> list[tuple[str, int]]:
    """``text`` cut into consecutive pieces of at most ``limit`` tokens.

    Cuts fall where a token starts, never inside a character.
    """
    tokens = encoding().encode(text, disallowed_special=())
    decoded, offsets = encoding().decode_with_offsets(tokens)
    cuts = offsets[::limit] + [len(decoded)]
    return [
        (decoded[start:end], min(limit, len(tokens) - n * limit))
        for n, (start, end) in enumerate(zip(cuts, cuts[1:], strict=False))
        if start < end
    ]


def _tail(units: list[tuple[str, int]], overlap: int) -> list[tuple[str, int]]:
    """The last lines of a piece that fit in ``overlap`` tokens."""
    kept: list[tuple[str, int]] = []
    size = 0
    for unit in reversed(units):
        if size + unit[1] > overlap:
            break
        kept.insert(0, unit)
        size += unit[1]
    return kept


# -- small fragments --------------------------------------------------------


def _merge_small(pieces: list[_Section], max_tokens: int,
                 min_tokens: int) -> list[Chunk]:
    """Pieces as chunks, a small piece joined to its neighbour when it fits.

    A piece under ``min_tokens`` joins its neighbour if together they stay
    within ``max_tokens + min_tokens``: a stray sentence is worth more in
    the company of its section than alone. A merged chunk carries its
    pieces' own headings inside its text, so no heading is lost, and its
    heading path is their shared part plus the names below it.
    """
    groups: list[list[_Section]] = []
    sizes: list[int] = []
    for piece in pieces:
        size = count_tokens(_render([piece]))
        if groups:
            joined = sizes[-1] + size
            small = sizes[-1] < min_tokens or size < min_tokens
            if small and joined <= max_tokens + min_tokens:
                groups[-1].append(piece)
                sizes[-1] = count_tokens(_render(groups[-1]))
                continue
        groups.append([piece])
        sizes.append(size)

    chunks = []
    for group in groups:
        text = _render(group).strip()
        heading = _merged_heading([piece.path for piece in group])
        if not text:
            # Headings with nothing under them: the headings are the text.
            text = heading
        if text:
            chunks.append(Chunk(heading=heading, text=text,
                                tokens=count_tokens(text)))
    return chunks


def _render(group: list[_Section]) -> str:
    """The pieces' text; every piece after the first under its own heading."""
    parts = []
    for position, piece in enumerate(group):
        body = piece.body.strip("\n")
        starts_section = position > 0 and piece.path != group[position - 1].path
        if starts_section and piece.path:
            marks = "#" * min(len(piece.path) + 1, 6)
            body = f"{marks} {piece.path[-1]}\n\n{body}".rstrip()
        if body.strip():
            parts.append(body)
    return "\n\n".join(parts)


def _merged_heading(paths: list[list[str]]) -> str:
    shared: list[str] = []
    for names in zip(*paths, strict=False):
        if len(set(names)) != 1:
            break
        shared.append(names[0])

    below = []
    for path in paths:
        if len(path) > len(shared) and path[len(shared)] not in below:
            below.append(path[len(shared)])
    parts = shared + ([", ".join(below)] if below else [])
    return HEADING_SEPARATOR.join(parts)
