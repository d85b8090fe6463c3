"""Finding runbook files in a folder and reading them defensively.

Only ``.md``/``.markdown`` and ``.txt`` files are runbooks. Anything else,
and files that are empty, binary or over the size limit, is skipped with a
reason the indexer logs once. Hidden files and folders (``.git``, editor
swap files) are passed over silently: they are never runbooks, and a
warning per file in ``.git`` would drown the real ones.
"""

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from incident_ops import config

log = logging.getLogger(__name__)

RUNBOOK_EXTENSIONS = {".md", ".markdown", ".txt"}
DEFAULT_MAX_BYTES = 2 * 1024 * 1024

# Bytes looked at to tell text from binary.
_SNIFF_BYTES = 8192


@dataclass(frozen=True)
class SourceFile:
    """One file under the runbook folder, as last seen on disk."""

    path: Path
    source: str          # path relative to the folder, with '/' separators
    size: int
    mtime_ns: int

    @property
    def signature(self) -> tuple[int, int]:
        return self.size, self.mtime_ns


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


@dataclass(frozen=True)
class RunbookText:
    text: str
    sha256: str
    # Set when the bytes were not valid UTF-8 and were decoded with
    # replacement characters.
    decode_problem: str | None = None


class SkipFile(Exception):
    """This file is not a usable runbook; the message says why."""


def max_file_bytes() -> int:
    return int(config.env_float("OPS_RUNBOOK_MAX_BYTES", DEFAULT_MAX_BYTES))


def discover(root: Path) -> tuple[list[SourceFile], list[Skipped]]:
    """Runbook files under ``root`` (recursively, sorted), and files passed over."""
    found: list[SourceFile] = []
    skipped: list[Skipped] = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            source = path.relative_to(root).as_posix()
            if path.suffix.lower() not in RUNBOOK_EXTENSIONS:
                skipped.append(Skipped(source, f"unknown extension {path.suffix!r}"
                                       " (only .md and .txt are runbooks)"))
                continue
            try:
                stat = path.stat()
            except OSError as error:
                skipped.append(Skipped(source, f"cannot stat: {error.strerror}"))
                continue
            found.append(SourceFile(path, source, stat.st_size, stat.st_mtime_ns))
    return found, skipped


def read_runbook(file: SourceFile, max_bytes: int | None = None) -> RunbookText:
    """The file's text and content hash, or ``SkipFile`` saying why not.

    ``OSError`` propagates: an unreadable file is a failure, not a skip.
    """
    limit = max_file_bytes() if max_bytes is None else max_bytes
    if file.size > limit:
        raise SkipFile(f"{file.size:,} bytes is over the {limit:,}-byte limit "
                       "(OPS_RUNBOOK_MAX_BYTES)")

    data = file.path.read_bytes()
    if len(data) > limit:
        raise SkipFile(f"{len(data):,} bytes is over the {limit:,}-byte limit "
                       "(OPS_RUNBOOK_MAX_BYTES)")
    if not data.strip():
        raise SkipFile("empty file")
    if _looks_binary(data[:_SNIFF_BYTES]):
        raise SkipFile("binary content, not text")

    sha256 = hashlib.sha256(data).hexdigest()
    try:
        return RunbookText(data.decode("utf-8"), sha256)
    except UnicodeDecodeError as error:
        problem = (f"not valid UTF-8 (first bad byte at offset {error.start}); "
                   "decoded with replacement characters")
        return RunbookText(data.decode("utf-8", errors="replace"), sha256, problem)


def _looks_binary(head: bytes) -> bool:
    """NUL bytes, or mostly control bytes, mean the file is not text.

    UTF-16 text has NULs too; it is treated as binary, which the warning
    makes visible.
    """
    if b"\x00" in head:
        return True
    control = sum(1 for byte in head if byte < 32 and byte not in b"\t\n\r\f\b")
    return control > len(head) * 0.1
