"""The metric sample: one record per collection, and how raw values are vetted.

A sample carries its own collection interval, so a reader can tell a fresh
sample from a stale one without knowing how the collector was started.
Values that are not real measurements (text, NaN, negatives, an error rate
over 100 %) are stored as ``None``, never as numbers: a reader must treat
a missing value as "no data", not as healthy.
"""

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

METRIC_FIELDS = ("latency_p99_ms", "error_rate_pct", "cpu_pct")

# The largest value each metric can really take; above it the reading is
# broken, not extreme.
UPPER_BOUNDS = {
    "latency_p99_ms": math.inf, "error_rate_pct": 100.0, "cpu_pct": math.inf,
}


@dataclass(frozen=True)
class Sample:
    """One collection of the service's metrics.

    ``seq`` increases by one per sample across collector restarts, so a
    reader can see a gap. ``at`` is when the sample was collected (UTC);
    ``source_at`` is the recorded time of a replayed row, if any.
    """

    seq: int
    at: str
    latency_p99_ms: float | None
    error_rate_pct: float | None
    cpu_pct: float | None
    interval_s: float
    source: str = "simulate"
    invalid: tuple[str, ...] = field(default_factory=tuple)
    source_at: str | None = None
    # Further measurements by name (``IncidentFacts.signals``), if any.
    signals: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        record = asdict(self)
        record["invalid"] = list(self.invalid)
        return record

    @classmethod
    def from_dict(cls, record: dict) -> "Sample":
        return cls(
            seq=int(record["seq"]),
            at=str(record["at"]),
            latency_p99_ms=record.get("latency_p99_ms"),
            error_rate_pct=record.get("error_rate_pct"),
            cpu_pct=record.get("cpu_pct"),
            interval_s=float(record["interval_s"]),
            source=str(record.get("source", "simulate")),
            invalid=tuple(record.get("invalid") or ()),
            source_at=record.get("source_at"),
            signals=dict(record.get("signals") or {}),
        )

    def console_line(self) -> str:
        """``[2026-01-04T18:00:00] Latency P99: 350ms | Error Rate: 1.2% | ...``"""
        stamp = parse_time(self.at).strftime("%Y-%m-%dT%H:%M:%S")
        return f"[{stamp}] {format_metrics(self)}"


def format_metrics(sample: Sample) -> str:
    """The three metrics as the console shows them, ``n/a`` when missing."""
    latency = _shown(sample.latency_p99_ms, "{:.0f}ms")
    errors = _shown(sample.error_rate_pct, "{:.1f}%")
    cpu = _shown(sample.cpu_pct, "{:.1f}%")
    return f"Latency P99: {latency} | Error Rate: {errors} | CPU: {cpu}"


def _shown(value: float | None, pattern: str) -> str:
    return "n/a" if value is None else pattern.format(value)


def vet_value(name: str, raw: object) -> tuple[float | None, str | None]:
    """``(value, problem)``: a usable number, or ``None`` and why it is not.

    An empty or absent reading is simply missing (no problem to report);
    zero traffic, for one, leaves the error rate undefined.
    """
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return None, None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None, f"{name}={raw!r} is not a number"
    if math.isnan(value) or math.isinf(value):
        return None, f"{name}={raw!r} is not a finite number"
    if value < 0:
        return None, f"{name}={raw!r} is negative"
    if value > UPPER_BOUNDS[name]:
        return None, f"{name}={raw!r} is over {UPPER_BOUNDS[name]:g}"
    return value, None


def error_rate_pct(failed: float, total: float) -> float | None:
    """Failed requests as a percentage; undefined (``None``) without traffic."""
    if total <= 0:
        return None
    return 100.0 * failed / total


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with milliseconds, the one time format we store."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; a time without a zone is taken as UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def age_seconds(sample: Sample, now: datetime) -> float:
    return (now - parse_time(sample.at)).total_seconds()
