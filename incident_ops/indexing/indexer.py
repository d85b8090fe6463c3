"""The indexer: keeps the store's runbook index equal to a folder.

One pass compares the folder with the stored manifest by content hash,
embeds only new and edited runbooks, writes their document records, then
writes the manifest with a bumped version, then deletes the records of
runbooks that are gone. The folder is the truth: a runbook that is
deleted, renamed or turned into a skipped file (empty, binary, too large)
leaves the index; one that fails to read keeps its previous version.
A runbook whose record would pass the store's value cap is skipped
before it is embedded.
"""

import json
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from incident_ops import keys
from incident_ops.indexing import records
from incident_ops.indexing.chunking import ParsedDocument, chunk_document, search_text
from incident_ops.indexing.embedder import Embedder, EmbedderError, get_embedder
from incident_ops.indexing.sources import (
    SkipFile,
    SourceFile,
    discover,
    read_runbook,
)
from incident_ops.store import MAX_VALUE_BYTES, Store, StoreUnavailable, ValueTooLarge

log = logging.getLogger(__name__)

# Chunks embedded between two checks of the stop flag and progress updates.
EMBED_SLICE = 16
# Beyond this many, removed runbooks are counted in one log line, not named.
MAX_NAMED_REMOVALS = 20


@dataclass
class PassSummary:
    runbooks: int = 0
    chunks: int = 0
    embedded: int = 0          # chunks embedded in this pass
    unchanged: int = 0         # chunks kept from the previous index
    skipped: int = 0
    failed: int = 0
    removed: int = 0
    seconds: float = 0.0
    version: int = 0
    interrupted: bool = False

    def line(self) -> str:
        return (
            f"indexed {self.runbooks} runbooks ({self.chunks} chunks, "
            f"{self.embedded} embedded, {self.unchanged} unchanged), "
            f"{self.skipped} skipped, {self.failed} failed in {self.seconds:.1f} s"
        )


@dataclass
class _Build:
    """A runbook that needs a new document record."""

    file: SourceFile
    sha256: str
    parsed: ParsedDocument
    record: dict | None = None       # set when an existing record can be reused


@dataclass
class _Seen:
    signature: tuple[int, int]
    sha256: str


@dataclass
class Indexer:
    """Indexes ``root`` into ``store``; ``stop`` ends a pass or a watch early."""

    store: Store
    root: Path
    embedder: Embedder = field(default_factory=get_embedder)
    stop: threading.Event = field(default_factory=threading.Event)
    show_progress: bool | None = None
    _seen: dict[str, _Seen] = field(default_factory=dict)
    _warned: set[tuple[str, str]] = field(default_factory=set)
    _known_version: int | None = None

    # -- one pass ---------------------------------------------------------

    def run_pass(self) -> PassSummary:
        """Bring the index up to date with the folder, once.

        Raises ``StoreUnavailable`` when the server is gone and
        ``EmbedderError`` when the embedder cannot run; every problem
        with a single file is logged and counted instead.
        """
        started = time.monotonic()
        summary = PassSummary()
        manifest = self.store.get(keys.RUNBOOK_INDEX) or {}
        old_docs: dict[str, dict] = manifest.get("docs", {})
        reembed_all = self._embedder_changed(manifest)
        if manifest.get("root") not in (None, str(self.root)) and old_docs:
            log.warning("index was built from %s; replacing it with the runbooks "
                        "in %s", manifest["root"], self.root)

        files, passed_over = discover(self.root)
        for skipped in passed_over:
            self._warn_skip(skipped.source, skipped.reason)
        summary.skipped += len(passed_over)

        new_docs: dict[str, dict] = {}
        builds: list[_Build] = []
        for file in files:
            document_id = records.doc_id(file.source)
            old_entry = None if reembed_all else old_docs.get(document_id)
            if old_entry and self._unchanged_on_disk(file, old_entry):
                new_docs[document_id] = old_entry
                continue
            try:
                build = self._prepare(file, old_entry)
            except SkipFile as reason:
                self._warn_skip(file.source, str(reason))
                summary.skipped += 1
                continue
            except OSError as error:
                log.error("failed to read %s: %s; keeping its previous version",
                          file.source, error.strerror or error)
                summary.failed += 1
                if old_entry:
                    new_docs[document_id] = old_entry
                continue
            if build is None:
                new_docs[document_id] = old_entry
            else:
                builds.append(build)

        for build in builds:
            self._find_reusable_record(build, old_docs)
        written = self._write_records(builds, summary)
        new_docs.update(written)
        for build in builds:
            document_id = records.doc_id(build.file.source)
            if document_id not in written and not reembed_all:
                if document_id in old_docs:
                    new_docs[document_id] = old_docs[document_id]

        if self.stop.is_set():
            summary.interrupted = True
            log.info("stopped before the index was complete; the next run "
                     "resumes from the documents already written")
            return self._finish(summary, new_docs, started, manifest)

        removed = [doc for doc in old_docs if doc not in new_docs]
        changed = (
            new_docs != old_docs or reembed_all or not manifest
            or manifest.get("root") != str(self.root)
        )
        if changed:
            manifest = self._write_manifest(manifest, new_docs)
            for document_id in removed:
                self.store.delete(records.doc_key(document_id))
            self._log_removed([old_docs[d]["source"] for d in removed])
        summary.removed = len(removed)
        return self._finish(summary, new_docs, started, manifest)

    def _finish(self, summary: PassSummary, docs: dict[str, dict], started: float,
                manifest: dict) -> PassSummary:
        summary.runbooks = len(docs)
        summary.chunks = sum(entry["chunks"] for entry in docs.values())
        summary.unchanged = summary.chunks - summary.embedded
        summary.seconds = time.monotonic() - started
        if not summary.interrupted:
            self._known_version = manifest.get("version")
        summary.version = manifest.get("version", 0)
        return summary

    def _log_removed(self, sources: list[str]) -> None:
        if len(sources) <= MAX_NAMED_REMOVALS:
            for source in sources:
                log.info("removed %s from the index", source)
        else:
            log.info("removed %d runbooks from the index (%s, ...)",
                     len(sources), ", ".join(sources[:3]))

    def _embedder_changed(self, manifest: dict) -> bool:
        """True when the stored vectors cannot be kept: other embedder or format."""
        if not manifest.get("docs"):
            return False
        previous = manifest.get("embedder")
        if previous != self.embedder.name:
            log.info("index was built with embedder %s; re-embedding every "
                     "runbook with %s", previous, self.embedder.name)
            return True
        if manifest.get("format") != records.INDEX_FORMAT:
            log.info("index has format %s, this indexer writes %d; rebuilding "
                     "every runbook", manifest.get("format"), records.INDEX_FORMAT)
            return True
        return False

    def _unchanged_on_disk(self, file: SourceFile, entry: dict) -> bool:
        """True when size and mtime match a file already hashed to ``entry``."""
        seen = self._seen.get(file.source)
        return (
            seen is not None
            and seen.signature == file.signature
            and seen.sha256 == entry["sha256"]
        )

    def _prepare(self, file: SourceFile, old_entry: dict | None) -> _Build | None:
        """The file read and chunked, or None when its content is indexed already."""
        runbook = read_runbook(file)
        self._seen[file.source] = _Seen(file.signature, runbook.sha256)
        if old_entry and old_entry["sha256"] == runbook.sha256:
            return None
        if runbook.decode_problem:
            log.warning("%s: %s", file.source, runbook.decode_problem)

        parsed = chunk_document(runbook.text, fallback_title=_title_from_name(file),
                                source=file.source)
        if not parsed.chunks and not parsed.has_body:
            raise SkipFile("no text besides front matter")
        if not parsed.chunks:
            # The only heading left out of chunks is the one naming the document.
            raise SkipFile("no text besides its title heading")
        build = _Build(file, runbook.sha256, parsed)
        self._check_record_fits(build)
        return build

    def _check_record_fits(self, build: _Build) -> None:
        """``SkipFile`` when the record would be over the store's value cap.

        Checked before embedding, which takes minutes for a large file. The
        record is sized with zero vectors: base64 of the same number of
        floats has the same length, so the estimate is exact.
        """
        rows = len(build.parsed.chunks) + 1
        placeholder = np.zeros((rows, self.embedder.dim), dtype=np.float32)
        size = len(json.dumps(self._record(build, placeholder),
                              separators=(",", ":")).encode("utf-8"))
        if size > MAX_VALUE_BYTES:
            # One record per runbook keeps a document's chunks and vectors
            # consistent without transactions; splitting a runbook across
            # several records is not supported.
            raise SkipFile(
                f"it would need ~{size / 1e6:.0f} MB in the index "
                f"({len(build.parsed.chunks):,} chunks), over the "
                f"{MAX_VALUE_BYTES // 2**20} MiB per-runbook record limit: "
                "split it into smaller files")

    def _warn_skip(self, source: str, reason: str) -> None:
        # In watch mode every pass sees the same bad files; say it once.
        if (source, reason) not in self._warned:
            self._warned.add((source, reason))
            log.warning("skipped %s: %s", source, reason)

    # -- document records -------------------------------------------------

    def _find_reusable_record(self, build: _Build, old_docs: dict[str, dict]) -> None:
        """Reuse vectors already stored for the same content and embedder.

        Two cases: an earlier pass wrote this record and was stopped before
        its manifest, or the file was renamed (same hash, other id).
        """
        document_id = records.doc_id(build.file.source)
        candidates = [document_id] + [
            other for other, entry in old_docs.items()
            if entry["sha256"] == build.sha256 and other != document_id
        ]
        for candidate in candidates:
            record = self.store.get(records.doc_key(candidate))
            if (
                record
                and record.get("sha256") == build.sha256
                and record.get("embedder") == self.embedder.name
                and record.get("dim") == self.embedder.dim
                and record.get("format") == records.INDEX_FORMAT
            ):
                build.record = {
                    **record,
                    "doc_id": document_id,
                    "source": build.file.source,
                }
                return

    def _write_records(self, builds: list[_Build],
                       summary: PassSummary) -> dict[str, dict]:
        """Embed and store each build; the manifest entries of those written."""
        written: dict[str, dict] = {}
        to_embed = [b for b in builds if b.record is None]
        total = sum(len(b.parsed.chunks) for b in to_embed)

        for build in builds:
            if build.record is not None:
                written.update(self._put_record(build, build.record, summary))

        if not to_embed:
            return written
        log.info("embedding %d chunks from %d runbooks with %s",
                 total, len(to_embed), self.embedder.name)
        with _progress(total, self._use_progress_bar()) as advance:
            for build in to_embed:
                if self.stop.is_set():
                    break
                vectors = self._embed(build, advance)
                if vectors is None:
                    break
                record = self._record(build, vectors)
                entries = self._put_record(build, record, summary)
                if entries:
                    summary.embedded += len(build.parsed.chunks)
                written.update(entries)
        return written

    def _embed(self, build: _Build, advance) -> np.ndarray | None:
        """The title's vector, then one per chunk; None when told to stop."""
        title = build.parsed.title
        texts = [search_text(title, c.heading, c.text) for c in build.parsed.chunks]
        parts = [self.embedder.embed([title])]
        for start in range(0, len(texts), EMBED_SLICE):
            if self.stop.is_set():
                return None
            batch = texts[start:start + EMBED_SLICE]
            parts.append(self.embedder.embed(batch))
            advance(len(batch))
        return np.vstack(parts)

    def _record(self, build: _Build, vectors: np.ndarray) -> dict:
        """The document record; ``vectors`` is the title's row, then the chunks'."""
        document_id = records.doc_id(build.file.source)
        return {
            "format": records.INDEX_FORMAT,
            "doc_id": document_id,
            "source": build.file.source,
            "title": build.parsed.title,
            "metadata": _json_safe(build.parsed.metadata),
            "sha256": build.sha256,
            "embedder": self.embedder.name,
            "dim": int(vectors.shape[1]),
            "chunks": [
                {
                    "chunk_id": f"{document_id}:{n}",
                    "heading": chunk.heading,
                    "text": chunk.text,
                    "tokens": chunk.tokens,
                }
                for n, chunk in enumerate(build.parsed.chunks)
            ],
            "vectors": records.encode_vectors(vectors[1:]),
            "title_vector": records.encode_vectors(vectors[:1]),
        }

    def _put_record(self, build: _Build, record: dict,
                    summary: PassSummary) -> dict[str, dict]:
        try:
            self.store.put(records.doc_key(record["doc_id"]), record)
        except ValueTooLarge as error:
            log.error("failed to store %s: %s", build.file.source, error)
            summary.failed += 1
            return {}
        log.debug("stored %s (%d chunks)", record["source"], len(record["chunks"]))
        return {
            record["doc_id"]: {
                "source": record["source"],
                "sha256": record["sha256"],
                "title": record["title"],
                "chunks": len(record["chunks"]),
            }
        }

    def _write_manifest(self, previous: dict, docs: dict[str, dict]) -> dict:
        version = int(previous.get("version", 0)) + 1
        manifest = {
            "version": version,
            "format": records.INDEX_FORMAT,
            "embedder": self.embedder.name,
            "dim": self.embedder.dim,
            "updated_at": records.now_iso(),
            "root": str(self.root),
            "docs": docs,
        }
        self.store.put(keys.RUNBOOK_INDEX, manifest)
        self.store.put(keys.RUNBOOK_VERSION, {
            "version": version,
            "updated_at": manifest["updated_at"],
            "embedder": manifest["embedder"],
        })
        return manifest

    def _use_progress_bar(self) -> bool:
        if self.show_progress is not None:
            return self.show_progress
        return sys.stderr.isatty()

    # -- watching ---------------------------------------------------------

    def watch(self, poll: float) -> None:
        """Run passes whenever the folder or the stored index changes.

        Checks every ``poll`` seconds: file sizes and mtimes (hashes only
        for files whose stat changed) and the manifest's version, so a
        wiped or restored database is rebuilt too. While the server or the
        embedder is unavailable it logs once and keeps polling.
        """
        last_snapshot: dict[str, tuple[int, int]] | None = None
        blocked = False
        while not self.stop.is_set():
            try:
                snapshot = self._snapshot()
                if snapshot != last_snapshot or self._index_moved():
                    summary = self.run_pass()
                    if not summary.interrupted:
                        last_snapshot = snapshot
                        log.info("%s (index version %d)", summary.line(),
                                 summary.version)
                if blocked:
                    log.info("indexing works again")
                    blocked = False
            except (StoreUnavailable, EmbedderError) as error:
                if not blocked:
                    log.warning("%s; retrying every %g s", error, poll)
                    blocked = True
                last_snapshot = None
            self.stop.wait(poll)

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        files, skipped = discover(self.root)
        snapshot = {file.source: file.signature for file in files}
        snapshot.update({s.source: (-1, hash(s.reason)) for s in skipped})
        return snapshot

    def _index_moved(self) -> bool:
        """True when the stored manifest is not the one this indexer last saw."""
        manifest = self.store.get(keys.RUNBOOK_INDEX) or {}
        return manifest.get("version") != self._known_version


def _title_from_name(file: SourceFile) -> str:
    return file.path.stem.replace("-", " ").replace("_", " ").strip() or file.source


def _json_safe(metadata: dict) -> dict:
    """Front matter with dates and other YAML types turned into strings."""
    safe = {}
    for key, value in metadata.items():
        if isinstance(value, str | int | float | bool) or value is None:
            safe[str(key)] = value
        elif isinstance(value, list):
            safe[str(key)] = [str(item) for item in value]
        else:
            safe[str(key)] = str(value)
    return safe


class _progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.enabled = enabled
        self._bar = None

    def __enter__(self):
        if not self.enabled:
            return lambda count: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("embedding"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )
        self._bar.start()
        task = self._bar.add_task("embedding", total=self.total)
        return lambda count: self._bar.advance(task, count)

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.stop()
