"""The incident commander: watches samples, opens, mitigates and resolves.

Each poll reads ``metrics/latest`` (the newest samples, in order) and:

1. finishes an OPEN incident: retrieval and plan through the advisor,
   then OPEN -> MITIGATING with one action entry per catalog action; while
   no runbook is indexed the plan is retried every poll, and after a grace
   period (``index_grace_s`` and at least ``INDEX_GRACE_POLLS`` polls) an
   escalation is recorded once so that a human knows the incident waits;
2. feeds every new sample to the detection rule (stale or incomplete
   samples are "no data"); the rule opens an incident, or resolves the
   MITIGATING one. A sample is stale when it is older than
   ``stale_intervals`` of its collection intervals plus the time since the
   previous read, so a slow poll never makes fresh samples look old. When
   the collector wrote more samples since the previous read than
   ``metrics/latest`` carries, the missed ones are read from the history;
   only a gap longer than ``CATCH_UP_MINUTES`` (or history already pruned)
   breaks the streaks instead;
3. moves the current action along: approval (with ``--require-approval``),
   request to the collector, applied, and, if the service has not started
   to recover within the action window, on to the next action; when none
   is left it records an escalation and keeps watching.

Every change is one put of the whole incident record. The in-memory
detector and sample position advance only after that put succeeded, so an
outage in the middle of a change makes the next poll redo it, never skip
it. Only the holder of the commander lock runs this loop.

Known shortcomings: staleness compares this process's clock with the
collector's timestamps, so both must run on one host or on synchronised
clocks; and a stop signal during a slow plan call (an OpenAI timeout) is
acted on only when the call returns (a second signal exits at once).
"""

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from incident_ops import action_requests, incidents, keys
from incident_ops.actions import CATALOG
from incident_ops.detection import Change, Detector, Rules, Verdict, classify
from incident_ops.events import recent_events
from incident_ops.incident_report import (
    banner,
    incident_status,
    no_data_status,
    quiet_status,
    stamp,
)
from incident_ops.lifecycle import OutageLog, StopFlag
from incident_ops.metric_log import read_history_bucket, read_latest
from incident_ops.metrics import Sample, age_seconds, iso, now_utc, parse_time
from incident_ops.planning.plan import IncidentFacts
from incident_ops.planning.render import render_plan
from incident_ops.retrieval.index import NothingIndexed
from incident_ops.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

SERVICE = "checkout-api"
OUTAGE_RETRY_S = 0.5
# How often the "no data" line repeats while samples stay stale.
NO_DATA_REPEAT_S = 10.0
STATUS_EVERY_S = 5.0
# The longest stretch of missed samples read back from the history; a
# longer one (a commander stopped for a long while) is skipped as no data.
CATCH_UP_MINUTES = 10
# The fewest polls without an index before escalating, however short the poll.
INDEX_GRACE_POLLS = 10
# The ``reason`` of the escalation an unindexed store causes; it does not
# stand for the later one about exhausted actions.
NO_RUNBOOKS = "no_runbooks"


class Advisor(Protocol):
    """Retrieval plus plan writing; ``advise`` returns ``.context`` and ``.plan``."""

    def advise(self, facts: IncidentFacts) -> Any: ...


@dataclass(frozen=True)
class Settings:
    rules: Rules = field(default_factory=Rules)
    poll_s: float = 1.0
    # Samples an applied action gets to start a recovery before the next one.
    action_window: int = 8
    require_approval: bool = False
    # Seconds an OPEN incident waits for a runbook index before escalating.
    index_grace_s: float = 30.0
    once: bool = False
    service: str = SERVICE


class Commander:
    """Drives incidents for one database; call ``run`` while holding the lock."""

    def __init__(
        self,
        store: Store,
        advisor: Advisor,
        settings: Settings,
        stop: StopFlag,
        clock: Callable[[], datetime] = now_utc,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.store = store
        self.advisor = advisor
        self.settings = settings
        self.rules = settings.rules
        self.stop = stop
        self.clock = clock
        self.say = say
        self.outage = OutageLog(store.socket_path)

        self.detector = Detector(self.rules)
        self.incident: dict | None = None
        self.last_seq: int | None = None
        self.resumed = False
        self.resolved_one = False
        self.index_wait_since: float | None = None
        self.index_wait_polls = 0
        self.last_read_at: float | None = None
        self.last_sample_at: str | None = None
        self.no_data_since: float | None = None
        self.no_data_said_at = 0.0
        self.status_written_at = 0.0
        self.started_at = iso(clock())

    # -- the loop ----------------------------------------------------------

    def run(self) -> int:
        """Poll until stopped (or, with ``once``, until an incident resolves)."""
        while not self.stop.is_set:
            try:
                if not self.resumed:
                    self._resume()
                self.poll()
                self.outage.succeeded()
            except StoreUnavailable as error:
                self.outage.failed(error)
                self.stop.sleep(OUTAGE_RETRY_S)
                continue
            if self.settings.once and self.resolved_one:
                log.info("--once: the incident is resolved; exiting")
                return 0
            self.stop.sleep(self.settings.poll_s)
        return 0

    def _resume(self) -> None:
        """Pick up an incident a previous commander left unresolved."""
        now = self.clock()
        open_ones = incidents.unresolved(self.store, now)
        if open_ones:
            self.incident = open_ones[-1]
            self.detector = Detector(self.rules, active=True)
            for stale in open_ones[:-1]:
                log.warning("incident %s is also unresolved; only %s is driven",
                            stale["id"], self.incident["id"])
            self.say(f"Resuming incident {self.incident['id']} in state "
                     f"{self.incident['state']} (history kept: "
                     f"{' -> '.join(s['state'] for s in self.incident['history'])})")
            self._add_event(self.incident, "takeover",
                            f"commander pid {os.getpid()} resumed the incident")
        self.resumed = True

    def poll(self) -> None:
        """One step; raises ``StoreUnavailable`` with nothing half-applied."""
        if incidents.state_of(self.incident) == incidents.OPEN:
            if not self._plan_and_mitigate():
                # Samples stay unread: an OPEN incident can neither resolve
                # nor take actions until it has a plan.
                self._write_status()
                return

        samples = read_latest(self.store)
        self._consume(samples)

        if incidents.state_of(self.incident) == incidents.MITIGATING:
            self._drive_actions()
        self._write_status()

    # -- samples -------------------------------------------------------------

    def _consume(self, samples: list[Sample]) -> None:
        now = self.clock()
        since_last_read = (self.settings.poll_s if self.last_read_at is None
                           else max(self.settings.poll_s,
                                    now.timestamp() - self.last_read_at))
        self.last_read_at = now.timestamp()
        fresh_new = [s for s in samples
                     if self.last_seq is None or s.seq > self.last_seq]

        if not fresh_new:
            newest = samples[-1] if samples else None
            if newest is None or self._is_stale(newest, now, since_last_read):
                self._no_data(newest, now)
            return

        if self.last_seq is not None and fresh_new[0].seq > self.last_seq + 1:
            fresh_new = self._missed(fresh_new[0]) + fresh_new
        if self.last_seq is not None and fresh_new[0].seq > self.last_seq + 1:
            # Samples were missed and the history could not supply them:
            # the streaks they would have continued are broken.
            log.warning("samples %d to %d were not evaluated", self.last_seq + 1,
                        fresh_new[0].seq - 1)
            self.detector, _ = self.detector.observe(Verdict.NO_DATA)

        for sample in fresh_new:
            stale = self._is_stale(sample, now, since_last_read)
            verdict = classify(sample.latency_p99_ms, sample.error_rate_pct,
                               self.rules, stale=stale)
            log.debug("sample %d: %s", sample.seq, verdict.value)
            detector, change = self.detector.observe(verdict, sample.seq)
            incident_before = self.incident
            if change is Change.OPEN:
                announce = self._open(sample, detector, [*fresh_new, *samples])
            elif change is Change.RESOLVE:
                announce = self._resolve(sample)
            else:
                announce = None
            self.detector = detector
            self.last_seq = sample.seq
            self.last_sample_at = sample.at
            self._report(sample, verdict, stale, now, incident_before, change)
            if announce:
                self.say(announce)
            if change is Change.OPEN:
                # Plan first; the remaining samples wait for the next poll.
                break

    def _missed(self, first_new: Sample) -> list[Sample]:
        """The samples between the last one evaluated and ``first_new``, from
        the history's minute buckets; [] when the gap is too long to read."""
        if self.last_sample_at is None:
            return []
        start = parse_time(self.last_sample_at).replace(second=0, microsecond=0)
        end = parse_time(first_new.at)
        if end - start > timedelta(minutes=CATCH_UP_MINUTES):
            return []
        found: dict[int, Sample] = {}
        minute = start
        while minute <= end:
            for sample in read_history_bucket(self.store, minute):
                if self.last_seq < sample.seq < first_new.seq:
                    found[sample.seq] = sample
            minute += timedelta(minutes=1)
        missed = [found[seq] for seq in sorted(found)]
        # Only a complete run continues the streaks; a partial one is a gap.
        if len(missed) != first_new.seq - self.last_seq - 1:
            return []
        log.debug("read %d sample(s) written since the last poll from the history",
                  len(missed))
        return missed

    def _is_stale(self, sample: Sample, now: datetime,
                  since_last_read: float) -> bool:
        limit = self.rules.stale_intervals * sample.interval_s + since_last_read
        return age_seconds(sample, now) > limit

    def _report(self, sample: Sample, verdict: Verdict, stale: bool, now: datetime,
                incident: dict | None, change: Change | None) -> None:
        """The sample's status line, as things stood when it arrived."""
        if verdict is Verdict.NO_DATA:
            reason = (f"sample {sample.seq} is {age_seconds(sample, now):.0f} s old"
                      if stale else f"sample {sample.seq} lacks p99 or error rate")
            self.say(no_data_status(stamp(sample.at), reason))
            return
        self.no_data_since = None
        if incident is None:
            streak = (self.rules.trigger_samples if change is Change.OPEN
                      else self.detector.breach_streak)
            self.say(quiet_status(sample, streak, self.rules))
        else:
            streak = (self.rules.clear_samples if change is Change.RESOLVE
                      else self.detector.clear_streak)
            self.say(incident_status(sample, incident, streak, self.rules,
                                     self._action_note()))

    def _no_data(self, newest: Sample | None, now: datetime) -> None:
        self.detector, _ = self.detector.observe(Verdict.NO_DATA)
        monotonic = now.timestamp()
        if self.no_data_since is None:
            self.no_data_since = monotonic
        elif monotonic - self.no_data_said_at < NO_DATA_REPEAT_S:
            return
        self.no_data_said_at = monotonic
        if newest is None:
            reason = "no sample in the store yet (is the collector running?)"
        else:
            reason = (f"newest sample {newest.seq} is {age_seconds(newest, now):.0f} s "
                      "old (is the collector running?)")
        if self.incident:
            reason += f"; {self.incident['id']} stays {self.incident['state']}"
        self.say(no_data_status(stamp(now), reason))

    # -- state changes -----------------------------------------------------

    def _open(self, sample: Sample, detector: Detector, samples: list[Sample]) -> str:
        """Write the new OPEN incident; returns what to print once committed."""
        now = self.clock()
        events = recent_events(self.store, now)
        first = next((s for s in samples if s.seq == detector.breach_start), sample)
        trigger = {
            "latency_p99_ms": sample.latency_p99_ms,
            "error_rate_pct": sample.error_rate_pct,
            "cpu_pct": sample.cpu_pct,
            "signals": sample.signals,
            "sample_seq": sample.seq,
            "sample_at": sample.at,
            "first_breach_seq": detector.breach_start,
            "first_breach_at": first.at,
            "samples": self.rules.trigger_samples,
        }
        incident_id = incidents.new_incident_id(self.store, now)
        incident = incidents.new_incident(incident_id, now, trigger,
                                          self.settings.service)
        incidents.save(self.store, incident)
        self.incident = incident

        log.info("opened %s: p99 %s ms, errors %s %%", incident_id,
                 sample.latency_p99_ms, sample.error_rate_pct)
        return (f"{banner(incident, self.rules, events)}\n"
                f"State transition: NONE -> OPEN ({incident_id})")

    def _plan_and_mitigate(self) -> bool:
        """OPEN -> MITIGATING once there is a plan; False while waiting for one."""
        incident = self.incident
        if incident["plan"] is None and not incident.get("plan_error"):
            incident = self._advise(incident)
            if incident is None:
                return False

        actions = self._action_entries(incident.get("plan"))
        now = incidents.next_moment(incident, self.clock())
        mitigating = incidents.transition(incident, incidents.MITIGATING, now)
        mitigating["actions"] = actions
        incidents.save(self.store, mitigating)
        self.incident = mitigating
        self.say(f"State transition: OPEN -> MITIGATING ({incident['id']}, "
                 f"{sum(a['status'] == incidents.PLANNED for a in actions)} "
                 "action(s) to try)")
        return True

    def _advise(self, incident: dict) -> dict | None:
        """Retrieval and plan, stored with the incident while still OPEN.

        None while no runbook is indexed yet: the plan is retried next poll.
        """
        now = self.clock()
        trigger = incident["trigger"]
        facts = IncidentFacts(
            latency_p99_ms=trigger["latency_p99_ms"],
            error_rate_pct=trigger["error_rate_pct"],
            cpu_pct=trigger["cpu_pct"],
            detected_at=incident["opened_at"],
            recent_events=recent_events(self.store, now),
            service=incident["service"],
            signals=dict(trigger.get("signals") or {}),
        )
        if self.index_wait_since is None:
            self.say("Retrieving runbook context and writing a mitigation plan...")
        try:
            advice = self.advisor.advise(facts)
        except StoreUnavailable:
            raise
        except NothingIndexed as error:
            self._wait_for_index(incident, error)
            return None
        except Exception as error:
            # A failed plan must not stall the incident: mitigation goes on
            # with no automatic action, and the record says why.
            log.exception("planning failed for %s", incident["id"])
            self.say(f"Planning failed ({error}); escalating to a human")
            changed = incidents.updated(incident, self.clock(),
                                        plan_error=f"{type(error).__name__}: {error}")
            incidents.save(self.store, changed)
            self.incident = changed
            return changed

        self.index_wait_since = None
        self.index_wait_polls = 0
        context = advice.context
        plan = advice.plan.to_dict()
        summary = {
            "chunks": len(context.chunks),
            "tokens": context.total_tokens,
            "budget": context.budget,
            "chunk_ids": [chunk.chunk_id for chunk in context.chunks],
            "runbooks": sorted({chunk.source for chunk in context.chunks}),
            "note": context.note,
        }
        changed = incidents.updated(incident, self.clock(), plan=plan, context=summary)
        incidents.save(self.store, changed)
        self.incident = changed

        self.say(f"Retrieved {summary['chunks']} chunks from "
                 f"{len(summary['runbooks'])} runbook(s), {summary['tokens']} tokens "
                 f"used of a {summary['budget']}-token budget"
                 + (f" ({context.note})" if context.note else ""))
        self.say(render_plan(plan))
        return changed

    def _wait_for_index(self, incident: dict, error: NothingIndexed) -> None:
        """Say once that the plan waits; escalate once after the grace period."""
        now = self.clock().timestamp()
        if self.index_wait_since is None:
            self.say(f"No plan yet: {error}. Waiting for the indexer.")
            self.index_wait_since = now
        self.index_wait_polls += 1

        waited = now - self.index_wait_since
        if (waited < self.settings.index_grace_s
                or self.index_wait_polls < INDEX_GRACE_POLLS
                or any(event.get("reason") == NO_RUNBOOKS
                       for event in incident["events"])):
            return
        description = (f"no runbooks indexed after {waited:.0f} s of waiting: "
                       "a human must act")
        self._add_event(incident, "escalation", description, reason=NO_RUNBOOKS)
        self.say(f"ESCALATION {incident['id']}: {description}. Still OPEN; the plan "
                 "is retried every poll until an index appears.")

    @staticmethod
    def _action_entries(plan: dict | None) -> list[dict]:
        """One entry per distinct catalog action, in plan order; manual ones kept."""
        entries, seen = [], set()
        for action in (plan or {}).get("actions") or []:
            kind = action["kind"]
            if kind in seen:
                continue
            seen.add(kind)
            status = incidents.PLANNED if kind in CATALOG else incidents.MANUAL
            entries.append({"seq": len(entries) + 1, "kind": kind,
                            "text": action["text"], "status": status})
        return entries

    def _resolve(self, sample: Sample) -> str:
        """Write the RESOLVED incident; returns what to print once committed."""
        incident = self.incident
        now = incidents.next_moment(incident, self.clock())
        resolved = incidents.transition(incident, incidents.RESOLVED, now)
        for action in resolved["actions"]:
            if action["status"] == incidents.APPLIED:
                # The action in effect when the service recovered.
                action["helped"] = True
                action["finished_at"] = iso(now)
            elif action["status"] in (incidents.PLANNED, incidents.AWAITING_APPROVAL):
                action["status"] = incidents.NOT_NEEDED
        resolved["recovery"] = {
            "latency_p99_ms": sample.latency_p99_ms,
            "error_rate_pct": sample.error_rate_pct,
            "cpu_pct": sample.cpu_pct,
            "sample_seq": sample.seq,
            "healthy_samples": self.rules.clear_samples,
        }
        incidents.save(self.store, resolved)
        self.incident = None
        self.resolved_one = True

        log.info("resolved %s", resolved["id"])
        opened = datetime.fromisoformat(resolved["opened_at"])
        return (f"State transition: MITIGATING -> RESOLVED\n"
                f"Incident resolved! {resolved['id']} after "
                f"{(now - opened).total_seconds():.0f} s: p99 "
                f"{sample.latency_p99_ms:.0f}ms, errors {sample.error_rate_pct:.1f}% "
                f"for {self.rules.clear_samples} samples in a row")

    # -- actions -------------------------------------------------------------

    def _drive_actions(self) -> None:
        if self.last_seq is None:
            # Action windows count samples; wait until there is one.
            return
        incident = self.incident
        current = next((a for a in incident["actions"]
                        if a["status"] in incidents.IN_PROGRESS), None)
        if current is None:
            current = next((a for a in incident["actions"]
                            if a["status"] == incidents.PLANNED), None)
            if current is None:
                self._escalate_once(incident)
                return

        status = current["status"]
        if status == incidents.PLANNED:
            if self.settings.require_approval:
                self._await_approval(incident, current)
            else:
                self._request(incident, current)
        elif status == incidents.AWAITING_APPROVAL:
            approval_key = f"{keys.APPROVALS}{incident['id']}/{current['seq']}"
            approval = self.store.get(approval_key)
            if approval is not None:
                self._request(incident, current, approved=approval)
        elif status == incidents.REQUESTED:
            self._check_applied(incident, current)
        elif status == incidents.APPLIED:
            self._judge(incident, current)

    def _await_approval(self, incident: dict, action: dict) -> None:
        self._change_action(incident, action, status=incidents.AWAITING_APPROVAL,
                            awaiting_since=iso(self.clock()))
        self.say(f"Action {action['seq']} awaits approval: {action['kind']} "
                 f"({action['text']}). Approve with: python -m incident_ops approve "
                 f"{incident['id']}")

    def _request(self, incident: dict, action: dict,
                 approved: dict | None = None) -> None:
        now = self.clock()
        request = action_requests.write_request(
            self.store, incident["id"], action["seq"], action["kind"], action["text"],
            now)
        fields = {"status": incidents.REQUESTED, "request_id": request["request_id"],
                  "requested_at": request["requested_at"]}
        if approved is not None:
            fields["approved_at"] = approved.get("approved_at")
            fields["approved_by"] = approved.get("by")
        self._change_action(incident, action, **fields)
        self.say(f"Action {action['seq']} requested: {action['kind']} - "
                 f"{action['text']}")

    def _check_applied(self, incident: dict, action: dict) -> None:
        outcome = action_requests.read_outcome(self.store, action["request_id"])
        if outcome is None:
            return
        if outcome["outcome"] == action_requests.APPLIED:
            self._change_action(incident, action, status=incidents.APPLIED,
                                applied_at=outcome["at"], detail=outcome["detail"],
                                applied_after_seq=self.last_seq)
            self.say(f"Action {action['seq']} applied: {action['kind']} "
                     f"({outcome['detail']}); watching for recovery over "
                     f"{self.settings.action_window} samples")
        else:
            self._change_action(incident, action, status=incidents.NOT_APPLIED,
                                finished_at=outcome["at"], detail=outcome["detail"])
            self.say(f"Action {action['seq']} not applied: {action['kind']} "
                     f"({outcome['detail']}); moving on")

    def _judge(self, incident: dict, action: dict) -> None:
        """Move on when the window passed without the start of a recovery.

        A healthy streak in progress at the end of the window gets to finish:
        it either completes (RESOLVED) or breaks, and then the action failed.
        """
        waited = self.last_seq - action["applied_after_seq"]
        if waited < self.settings.action_window or self.detector.clear_streak > 0:
            return
        self._change_action(incident, action, status=incidents.NO_EFFECT,
                            finished_at=iso(self.clock()))
        self.say(f"Action {action['seq']} ({action['kind']}) did not bring recovery "
                 f"within {self.settings.action_window} samples; trying the next one")

    def _action_note(self) -> str:
        if self.incident is None:
            return ""
        current = next((a for a in self.incident["actions"]
                        if a["status"] in incidents.IN_PROGRESS), None)
        if current is None:
            return ""
        note = f" | action {current['seq']} {current['kind']}: {current['status']}"
        if current["status"] == incidents.APPLIED and self.last_seq is not None:
            waited = self.last_seq - current["applied_after_seq"]
            note += f" {waited}/{self.settings.action_window} samples"
        return note

    def _escalate_once(self, incident: dict) -> None:
        if any(event["kind"] == "escalation" and event.get("reason") != NO_RUNBOOKS
               for event in incident["events"]):
            return
        manual = [a["text"] for a in incident["actions"]
                  if a["status"] == incidents.MANUAL]
        description = f"{_what_was_tried(incident)}; a human must step in"
        if manual:
            description += f"; manual steps in the plan: {'; '.join(manual)}"
        self._add_event(incident, "escalation", description)
        self.say(f"ESCALATION {incident['id']}: {description}. Staying MITIGATING "
                 "and watching the metrics.")

    # -- record writes -----------------------------------------------------

    def _change_action(self, incident: dict, action: dict, **fields: object) -> None:
        actions = [dict(a, **fields) if a["seq"] == action["seq"] else a
                   for a in incident["actions"]]
        changed = incidents.updated(incident, self.clock(), actions=actions)
        incidents.save(self.store, changed)
        self.incident = changed

    def _add_event(self, incident: dict, kind: str, description: str,
                   **details: str) -> None:
        event = {"at": iso(self.clock()), "kind": kind, "description": description,
                 **details}
        changed = incidents.updated(incident, self.clock(),
                                    events=[*incident["events"], event])
        incidents.save(self.store, changed)
        self.incident = changed

    def _write_status(self) -> None:
        now = self.clock()
        if now.timestamp() - self.status_written_at < STATUS_EVERY_S:
            return
        self.store.put(keys.COMMANDER_STATUS, {
            "pid": os.getpid(),
            "started_at": self.started_at,
            "heartbeat_at": iso(now),
            "incident_id": self.incident["id"] if self.incident else None,
            "state": incidents.state_of(self.incident),
            "last_seq": self.last_seq,
        })
        self.status_written_at = now.timestamp()


def _what_was_tried(incident: dict) -> str:
    """What became of the automatic actions, for the escalation: applied ones
    had no effect, others could not be applied (a replayed series, say)."""
    applied = [a["kind"] for a in incident["actions"]
               if a["status"] == incidents.NO_EFFECT]
    refused = [f"{a['kind']}: {a.get('detail') or 'not applied'}"
               for a in incident["actions"] if a["status"] == incidents.NOT_APPLIED]
    applied_text, refused_text = ", ".join(applied), "; ".join(refused)
    if incident.get("plan_error"):
        return "planning failed, so no automatic action was tried"
    if not applied and not refused:
        return "the plan holds no automatic action"
    if not applied:
        return f"no automatic action could be applied ({refused_text})"
    if not refused:
        return f"every automatic action was applied without recovery ({applied_text})"
    return (f"no automatic action brought recovery (applied: {applied_text}; "
            f"not applied: {refused_text})")
