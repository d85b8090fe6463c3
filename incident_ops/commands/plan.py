"""``plan``: the mitigation plan for given incident facts, from the shell.

The same path as the commander (``planning.Advisor``): the facts become
a retrieval query over the indexed runbooks, and the plan comes from the
OpenAI writer when ``OPENAI_API_KEY`` is set, else the offline writer.
"""

import argparse
import json
from datetime import UTC, datetime, timedelta

from incident_ops.config import finite_number
from incident_ops.errors import UserError
from incident_ops.planning import Advisor, IncidentFacts, render_plan
from incident_ops.planning.evidence import SIGNAL_RULES, topics_in
from incident_ops.store import Store

DEFAULT_EVENT_AGE_MIN = 5.0


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "plan", help="write the mitigation plan for given incident facts",
        description="Retrieve runbook context for the facts and print the "
                    "mitigation plan, as the commander would on an incident.")
    parser.add_argument("--latency", type=finite_number, required=True,
                        metavar="MS", help="p99 latency in milliseconds")
    parser.add_argument("--error-rate", type=finite_number, required=True,
                        metavar="PCT", help="error rate in percent")
    parser.add_argument("--cpu", type=finite_number, metavar="PCT",
                        help="CPU in percent")
    parser.add_argument(
        "--event", action="append", default=[], metavar="TEXT",
        help="a recent event, e.g. 'deployed checkout-api v2.14.0'; one naming "
             "a deploy, release or rollout counts as a deployment (repeatable)")
    parser.add_argument(
        "--event-age", type=finite_number, default=DEFAULT_EVENT_AGE_MIN,
        metavar="MIN",
        help=f"minutes before now the events happened "
             f"(default: {DEFAULT_EVENT_AGE_MIN:g})")
    parser.add_argument(
        "--signal", action="append", default=[], metavar="NAME=VALUE",
        help=f"a further measurement: {', '.join(SIGNAL_RULES)} (repeatable)")
    parser.add_argument("--service", default="checkout-api",
                        help="service name (default: checkout-api)")
    parser.add_argument("--db", help="database folder (default: $OPS_DB or ./ops_db)")
    parser.add_argument("--json", action="store_true",
                        help="print the plan as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    facts = facts_from_args(args)
    with Store.for_command(args.db) as store:
        advice = Advisor(store).advise(facts)

    if args.json:
        print(json.dumps(advice.plan.to_dict(), ensure_ascii=False, indent=2))
        return 0
    context = advice.context
    print(f"Retrieved {len(context.chunks)} runbook chunks "
          f"({context.total_tokens} of {context.budget} tokens) from "
          f"{', '.join(context.sources) or 'no runbook'}.")
    print(render_plan(advice.plan.to_dict()))
    return 0


def facts_from_args(args: argparse.Namespace, now: datetime | None = None
                    ) -> IncidentFacts:
    """The incident facts the arguments describe; ``UserError`` if invalid."""
    _check_range("--latency", args.latency, 0, None)
    _check_range("--error-rate", args.error_rate, 0, 100)
    if args.cpu is not None:
        _check_range("--cpu", args.cpu, 0, 100)
    _check_range("--event-age", args.event_age, 0, None)

    now = now or datetime.now(UTC)
    event_time = (now - timedelta(minutes=args.event_age)).isoformat()
    events = []
    for text in args.event:
        if not text.strip():
            raise UserError("--event needs some text, e.g. 'deployed api v2.3'")
        kind = "deployment" if "deployment" in topics_in(text) else "note"
        events.append({"at": event_time, "kind": kind, "description": text.strip()})

    return IncidentFacts(
        latency_p99_ms=args.latency, error_rate_pct=args.error_rate,
        cpu_pct=args.cpu, detected_at=now.isoformat(), recent_events=events,
        service=args.service, signals=_signals(args.signal))


def _signals(raw: list[str]) -> dict[str, float]:
    signals = {}
    for item in raw:
        name, separator, value = item.partition("=")
        name = name.strip()
        if not separator or name not in SIGNAL_RULES:
            raise UserError(f"--signal {item!r}: use NAME=VALUE with NAME one of "
                            f"{', '.join(SIGNAL_RULES)}")
        try:
            signals[name] = finite_number(value)
        except argparse.ArgumentTypeError as error:
            raise UserError(f"--signal {item!r}: {error}") from None
    return signals


def _check_range(flag: str, value: float, low: float, high: float | None) -> None:
    if value != value or value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else \
            f"{low:g} or more"
        raise UserError(f"{flag} {value:g} is out of range: give a number {bounds}")
