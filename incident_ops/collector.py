"""The collector: one sample per interval into the store, and the actions it
was asked to apply.

Each tick reads the open action requests, applies the new ones to the
source (only the simulated service can act), takes one sample, then writes
in this order: events, simulator state, action outcomes, history, latest.
Every write is an idempotent put, so a tick interrupted by a server outage
is written again, whole, once the server is back; the sample is taken
once and kept until it is stored, so no acknowledged sample is lost and
none is invented. While the server is down no new sample is taken: the
simulated service pauses with it, and a real source would show a gap.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from incident_ops import action_requests, keys
from incident_ops.actions import is_known
from incident_ops.events import prune_events, record_event
from incident_ops.lifecycle import OutageLog, StopFlag
from incident_ops.metric_log import (
    RECENT_SAMPLES,
    prune_history,
    read_latest,
    write_sample,
)
from incident_ops.metrics import METRIC_FIELDS, Sample, iso, now_utc, vet_value
from incident_ops.replay import Row
from incident_ops.simulator import ServiceModel
from incident_ops.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

OUTAGE_RETRY_S = 0.5


@dataclass
class Reading:
    """What a source produced for one tick."""

    values: dict[str, float | None]
    signals: dict[str, float] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    problems: tuple[str, ...] = ()
    source_at: str | None = None


class SimulatedSource:
    """The simulated service: it produces metrics and accepts actions."""

    def __init__(self, model: ServiceModel) -> None:
        self.model = model
        self.label = f"simulate:{model.scenario}"

    def read(self) -> Reading | None:
        values, signals, events = self.model.step()
        return Reading(values=values, signals=signals, events=events)

    def apply(self, request: dict) -> tuple[str, str]:
        if not is_known(request["kind"]):
            return (action_requests.UNKNOWN_KIND,
                    f"{request['kind']!r} is not in the action catalog")
        detail = self.model.apply(request["kind"], request["request_id"])
        return action_requests.APPLIED, detail

    def state(self) -> dict | None:
        return self.model.to_dict()


class ReplaySource:
    """Rows of a recorded CSV, one per tick; it cannot act on anything."""

    def __init__(self, rows: list[Row], name: str) -> None:
        self.rows = rows
        self.position = 0
        self.label = f"replay:{name}"

    def read(self) -> Reading | None:
        if self.position >= len(self.rows):
            return None
        row = self.rows[self.position]
        self.position += 1
        return Reading(
            values={name: getattr(row, name) for name in METRIC_FIELDS},
            problems=row.problems,
            source_at=row.timestamp,
        )

    def apply(self, request: dict) -> tuple[str, str]:
        return (action_requests.NOT_APPLIED,
                "a replayed series cannot act on the service")

    def state(self) -> dict | None:
        return None


@dataclass
class PendingTick:
    """A tick taken but not yet fully stored."""

    sample: Sample
    events: list[dict]
    outcomes: list[tuple[dict, str, str]]
    source_state: dict | None


class Collector:
    """Samples ``source`` every ``interval_s`` seconds into ``store``."""

    def __init__(
        self,
        store: Store,
        source: SimulatedSource | ReplaySource,
        interval_s: float,
        stop: StopFlag,
        history_retention: timedelta,
        clock: Callable[[], datetime] = now_utc,
        print_line: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.store = store
        self.source = source
        self.interval_s = interval_s
        self.stop = stop
        self.history_retention = history_retention
        self.clock = clock
        self.print_line = print_line
        self.outage = OutageLog(store.socket_path)
        self.recent: list[Sample] = []
        self.next_seq: int | None = None
        self.answered: set[str] = set()
        self.pending: PendingTick | None = None
        self.pruned_minute: str | None = None
        self.samples_written = 0

    def run(self) -> int:
        """Collect until stopped or the replay ends; returns the exit code."""
        log.info("collecting from %s every %g s", self.source.label, self.interval_s)
        finished = False
        next_due = 0.0
        while not self.stop.is_set and not finished:
            try:
                finished = self.tick()
                self.outage.succeeded()
            except StoreUnavailable as error:
                self.outage.failed(error)
                self.stop.sleep(OUTAGE_RETRY_S)
                continue
            next_due = _next_due(next_due, self.interval_s)
            self.stop.sleep(max(0.0, next_due - time.monotonic()))
        if finished:
            log.info("%s finished after %d sample(s)", self.source.label,
                     self.samples_written)
        return 0

    def tick(self) -> bool:
        """Take (or retry storing) one sample; True when the source is done."""
        if self.next_seq is None:
            self._resume_sequence()
        if self.pending is None:
            self.pending = self._take()
            if self.pending is None:
                return True
        self._store(self.pending)
        self._announce(self.pending)
        self.pending = None
        self._prune()
        return False

    def _resume_sequence(self) -> None:
        self.recent = read_latest(self.store)
        self.next_seq = self.recent[-1].seq + 1 if self.recent else 1
        if self.recent:
            log.info("continuing after sample %d", self.recent[-1].seq)

    def _take(self) -> PendingTick | None:
        now = self.clock()
        requests = self._new_requests(now)

        outcomes = []
        for request in requests:
            outcome, detail = self.source.apply(request)
            outcomes.append((request, outcome, detail))

        reading = self.source.read()
        if reading is None:
            return None

        values, problems = {}, list(reading.problems)
        for name in METRIC_FIELDS:
            value, problem = vet_value(name, reading.values.get(name))
            values[name] = value
            if problem:
                problems.append(problem)
        if problems and not reading.problems:
            log.warning("sample %d: %s; recorded as missing", self.next_seq,
                        "; ".join(problems))

        sample = Sample(seq=self.next_seq, at=iso(now), interval_s=self.interval_s,
                        source=self.source.label, invalid=tuple(problems),
                        source_at=reading.source_at, signals=reading.signals,
                        **values)
        return PendingTick(sample, reading.events, outcomes, self.source.state())

    def _new_requests(self, now: datetime) -> list[dict]:
        fresh = []
        for request in action_requests.open_requests(self.store, now):
            request_id = request["request_id"]
            if request_id in self.answered:
                continue
            if action_requests.read_outcome(self.store, request_id) is not None:
                self.answered.add(request_id)
                continue
            fresh.append(request)
        return fresh

    def _store(self, tick: PendingTick) -> None:
        moment = datetime.fromisoformat(tick.sample.at)
        for event in tick.events:
            details = {key: value for key, value in event.items()
                       if key not in ("kind", "description")}
            record_event(self.store, moment, event["kind"], event["description"],
                         **details)
        if tick.source_state is not None:
            self.store.put(keys.SIMULATOR_STATE, tick.source_state)
        for request, outcome, detail in tick.outcomes:
            action_requests.write_outcome(self.store, request, outcome, detail, moment)
            self.answered.add(request["request_id"])
        write_sample(self.store, tick.sample, [*self.recent, tick.sample])

        self.recent = [*self.recent, tick.sample][-RECENT_SAMPLES:]
        self.next_seq = tick.sample.seq + 1
        self.samples_written += 1

    def _announce(self, tick: PendingTick) -> None:
        stamp = tick.sample.console_line().split("]")[0] + "]"
        for event in tick.events:
            self.print_line(f"{stamp} Event: {event['kind']}: {event['description']}")
            log.info("recorded %s event: %s", event["kind"], event["description"])
        for request, outcome, detail in tick.outcomes:
            verb = "Applied" if outcome == action_requests.APPLIED else "Did not apply"
            self.print_line(f"{stamp} {verb} {request['kind']} for "
                            f"{request['incident_id']}: {detail}")
            log.info("request %s (%s): %s, %s", request["request_id"],
                     request["kind"], outcome, detail)
        self.print_line(tick.sample.console_line())

    def _prune(self) -> None:
        now = self.clock()
        minute = now.strftime("%Y%m%d%H%M")
        if minute == self.pruned_minute:
            return
        prune_history(self.store, now, self.history_retention)
        prune_events(self.store, now)
        self.pruned_minute = minute


def _next_due(previous_due: float, interval_s: float) -> float:
    """The next tick time: on a fixed grid, unless the last tick ran late."""
    now = time.monotonic()
    if previous_due == 0.0 or now - previous_due > interval_s:
        return now + interval_s
    return previous_due + interval_s
