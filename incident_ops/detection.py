"""The detection rule, shared by the commander and ``detect --replay``.

An incident opens when p99 latency AND error rate are strictly above their
trigger thresholds for ``trigger_samples`` fresh samples in a row. It
clears when both are strictly below the lower clear thresholds for
``clear_samples`` fresh samples in a row. Between the two bands a sample
neither opens nor clears, so a metric hovering at the trigger line keeps
an open incident open without ever opening a second one. A sample that is
stale or lacks a value is "no data": it breaks both streaks and counts as
neither bad nor healthy.

Everything here is pure: no clock, no store. ``Detector.observe`` returns
a new detector instead of changing itself, so a caller can keep the old
one when it fails to record what the new one decided.
"""

import argparse
from dataclasses import dataclass, replace
from enum import Enum

from incident_ops.config import non_negative_number, positive_number

Step = tuple["Detector", "Change | None"]


class Verdict(Enum):
    BREACH = "breach"
    HEALTHY = "healthy"
    BETWEEN = "between"
    NO_DATA = "no data"


class Change(Enum):
    OPEN = "open"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class Rules:
    trigger_p99_ms: float = 1000.0
    trigger_error_pct: float = 5.0
    clear_p99_ms: float = 800.0
    clear_error_pct: float = 2.0
    trigger_samples: int = 3
    clear_samples: int = 3
    # A sample older than this many of its own collection intervals is stale.
    stale_intervals: float = 3.0

    def __post_init__(self) -> None:
        if self.clear_p99_ms >= self.trigger_p99_ms:
            raise ValueError(
                f"clear p99 {self.clear_p99_ms:g} ms is not below the trigger "
                f"{self.trigger_p99_ms:g} ms; the clear band must be lower"
            )
        if self.clear_error_pct >= self.trigger_error_pct:
            raise ValueError(
                f"clear error rate {self.clear_error_pct:g} % is not below the "
                f"trigger {self.trigger_error_pct:g} %; it must be lower"
            )
        if self.trigger_samples < 1 or self.clear_samples < 1:
            raise ValueError("trigger and clear sample counts must be at least 1")
        if self.stale_intervals <= 0:
            raise ValueError("the staleness window must be positive")


def classify(
    latency_p99_ms: float | None,
    error_rate_pct: float | None,
    rules: Rules,
    stale: bool = False,
) -> Verdict:
    """Where one sample falls against the rules."""
    if stale or latency_p99_ms is None or error_rate_pct is None:
        return Verdict.NO_DATA
    if (latency_p99_ms > rules.trigger_p99_ms
            and error_rate_pct > rules.trigger_error_pct):
        return Verdict.BREACH
    if latency_p99_ms < rules.clear_p99_ms and error_rate_pct < rules.clear_error_pct:
        return Verdict.HEALTHY
    return Verdict.BETWEEN


@dataclass(frozen=True)
class Detector:
    """Streak counting over a sample stream; ``active`` while an incident is open.

    ``breach_start`` is the position (caller's choice: an index or sequence
    number) of the first sample of the current breach streak, so the caller
    can measure detection latency from it.
    """

    rules: Rules
    active: bool = False
    breach_streak: int = 0
    clear_streak: int = 0
    breach_start: int | None = None

    def observe(self, verdict: Verdict, position: int = 0) -> Step:
        """The detector after one more sample, and the change it decided."""
        if self.active:
            return self._observe_active(verdict)
        return self._observe_quiet(verdict, position)

    def _observe_quiet(self, verdict: Verdict, position: int) -> Step:
        if verdict is not Verdict.BREACH:
            return replace(self, breach_streak=0, breach_start=None), None

        streak = self.breach_streak + 1
        start = position if self.breach_streak == 0 else self.breach_start
        if streak < self.rules.trigger_samples:
            return replace(self, breach_streak=streak, breach_start=start), None
        opened = replace(self, active=True, breach_streak=0, clear_streak=0,
                         breach_start=start)
        return opened, Change.OPEN

    def _observe_active(self, verdict: Verdict) -> Step:
        if verdict is not Verdict.HEALTHY:
            return replace(self, clear_streak=0), None

        streak = self.clear_streak + 1
        if streak < self.rules.clear_samples:
            return replace(self, clear_streak=streak), None
        return Detector(self.rules), Change.RESOLVE


@dataclass(frozen=True)
class Episode:
    """One incident found in a series: where it opened and resolved."""

    opened_index: int
    opened_at: str | None
    first_breach_index: int
    resolved_index: int | None = None
    resolved_at: str | None = None

    def to_dict(self) -> dict:
        return {
            "opened_index": self.opened_index,
            "opened_at": self.opened_at,
            "resolved_index": self.resolved_index,
            "resolved_at": self.resolved_at,
            "first_breach_index": self.first_breach_index,
        }


def evaluate_series(
    rows: list[tuple[str | None, float | None, float | None]], rules: Rules
) -> list[Episode]:
    """The incidents the rules find in ``(timestamp, p99, error rate)`` rows.

    Rows are taken as consecutive fresh samples; a missing value is no data.
    Known shortcoming: a gap between two rows' timestamps is not treated
    as stale data, since a CSV does not say its collection interval.
    """
    detector = Detector(rules)
    episodes: list[Episode] = []
    for index, (timestamp, latency, errors) in enumerate(rows):
        detector, change = detector.observe(classify(latency, errors, rules), index)
        if change is Change.OPEN:
            episodes.append(Episode(index, timestamp, detector.breach_start or 0))
        elif change is Change.RESOLVE:
            episodes[-1] = replace(episodes[-1], resolved_index=index,
                                   resolved_at=timestamp)
    return episodes


def positive_count(text: str) -> int:
    """An argparse type: a whole number of at least 1 (a count of samples)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_rule_arguments(parser: argparse.ArgumentParser) -> None:
    """The rule flags, the same for the commander and ``detect``."""
    defaults = Rules()
    group = parser.add_argument_group("detection rule")
    group.add_argument("--trigger-p99", type=non_negative_number,
                       default=defaults.trigger_p99_ms,
                       metavar="MS", help="open above this p99 latency "
                       "(default %(default)g)")
    group.add_argument("--trigger-error", type=non_negative_number,
                       default=defaults.trigger_error_pct, metavar="PCT",
                       help="... and above this error rate (default %(default)g)")
    group.add_argument("--clear-p99", type=non_negative_number,
                       default=defaults.clear_p99_ms,
                       metavar="MS", help="clear below this p99 latency "
                       "(default %(default)g)")
    group.add_argument("--clear-error", type=non_negative_number,
                       default=defaults.clear_error_pct,
                       metavar="PCT", help="... and below this error rate "
                       "(default %(default)g)")
    group.add_argument("--trigger-samples", type=positive_count,
                       default=defaults.trigger_samples, metavar="N",
                       help="breaching samples in a row to open (default %(default)s)")
    group.add_argument("--clear-samples", type=positive_count,
                       default=defaults.clear_samples,
                       metavar="M",
                       help="healthy samples in a row to resolve (default %(default)s)")
    group.add_argument("--stale-intervals", type=positive_number,
                       default=defaults.stale_intervals, metavar="K",
                       help="a sample older than K collection intervals is stale "
                       "(default %(default)g)")


def rules_from_args(args: argparse.Namespace) -> Rules:
    """The rules the flags describe; ``ValueError`` names a bad combination."""
    return Rules(
        trigger_p99_ms=args.trigger_p99,
        trigger_error_pct=args.trigger_error,
        clear_p99_ms=args.clear_p99,
        clear_error_pct=args.clear_error,
        trigger_samples=args.trigger_samples,
        clear_samples=args.clear_samples,
        stale_intervals=args.stale_intervals,
    )
