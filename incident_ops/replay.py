"""Recorded metric series in CSV: read by header name, vetted row by row.

Columns: ``timestamp,latency_p99_ms,error_rate_pct,cpu_pct`` in any order;
extra columns are ignored and CRLF line ends are accepted. A timestamp is
ISO 8601 or epoch seconds. An empty cell is a missing value; a bad cell is
recorded as missing and logged once per row, so one broken reading never
hides the rest of the file. A row with fewer cells than the header lacks
the values of the absent ones, an unreadable timestamp leaves the row
without one, and timestamps that do not increase get one warning for the
whole file; each is said in that one line per row, and rows are always
taken in file order.
"""

import csv
import itertools
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from incident_ops.metrics import METRIC_FIELDS, iso, vet_value

log = logging.getLogger(__name__)

TIMESTAMP = "timestamp"
REQUIRED_COLUMNS = (TIMESTAMP, *METRIC_FIELDS)


class ReplayError(Exception):
    """The file cannot be used at all; the message says why."""


@dataclass(frozen=True)
class Row:
    """One data row: its index (from 0), time and vetted values."""

    index: int
    timestamp: str | None
    latency_p99_ms: float | None
    error_rate_pct: float | None
    cpu_pct: float | None
    problems: tuple[str, ...]


def read_rows(path: Path | str) -> list[Row]:
    """Every data row of ``path``; raises ``ReplayError`` if it is unusable."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _parse(path, handle.read().splitlines())
    except FileNotFoundError:
        raise ReplayError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReplayError(f"{path}: is a folder, not a CSV file") from None
    except PermissionError:
        raise ReplayError(f"{path}: permission denied") from None
    except UnicodeDecodeError as error:
        raise ReplayError(f"{path}: not UTF-8 text ({error.reason})") from None


def _parse(path: Path, lines: list[str]) -> list[Row]:
    reader = csv.DictReader(lines)
    header = [name.strip() for name in reader.fieldnames or []]
    if not header:
        raise ReplayError(f"{path}: empty file, expected a header line")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        raise ReplayError(
            f"{path}: header lacks column(s) {', '.join(missing)}; expected "
            f"{','.join(REQUIRED_COLUMNS)}"
        )
    reader.fieldnames = header

    rows = []
    for index, cells in enumerate(reader):
        rows.append(_row(path, index, cells, len(header)))
    _warn_if_time_goes_back(path, rows)
    return rows


def _row(path: Path, index: int, cells: dict, columns: int) -> Row:
    missing = []
    values = {}
    for name in METRIC_FIELDS:
        value, problem = vet_value(name, cells.get(name))
        values[name] = value
        if problem:
            missing.append(problem)
    notes = [f"{'; '.join(missing)}; recorded as missing"] if missing else []

    timestamp, problem = parse_timestamp(cells.get(TIMESTAMP))
    if problem:
        notes.append(f"{problem}; kept without a timestamp")

    # DictReader fills absent cells with None and gathers extra ones under None.
    extra = cells.pop(None, None) or []
    present = sum(value is not None for value in cells.values()) + len(extra)
    if present != columns:
        notes.append(f"{present} cell(s) where the header has {columns}; "
                     + ("absent ones are missing" if present < columns
                        else "extra ones ignored"))

    if notes:
        log.warning("%s row %d: %s", path.name, index, "; ".join(notes))
    return Row(index=index, timestamp=timestamp, problems=tuple(notes), **values)


def _warn_if_time_goes_back(path: Path, rows: list[Row]) -> None:
    """One warning for the whole file when timestamps do not increase."""
    stamped = [(row.index, datetime.fromisoformat(row.timestamp))
               for row in rows if row.timestamp is not None]
    backwards = [(index, moment, earlier)
                 for (_, earlier), (index, moment) in itertools.pairwise(stamped)
                 if moment <= earlier]
    if backwards:
        index, moment, earlier = backwards[0]
        log.warning("%s: timestamps do not increase at %d row(s), first at row %d "
                    "(%s, after %s); rows are taken in file order", path.name,
                    len(backwards), index, iso(moment), iso(earlier))


def parse_timestamp(raw: str | None) -> tuple[str | None, str | None]:
    """``(ISO 8601 UTC, problem)`` for an ISO or epoch-seconds cell."""
    if raw is None or raw.strip() == "":
        return None, None
    text = raw.strip()
    try:
        return iso(datetime.fromtimestamp(float(text), UTC)), None
    except (ValueError, OverflowError, OSError):
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None, f"timestamp={raw!r} is neither ISO 8601 nor epoch seconds"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return iso(moment), None
