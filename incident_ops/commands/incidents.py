"""``incidents [--json]`` and ``incidents show ID [--json]``: what happened."""

import argparse
import json

from incident_ops import incidents
from incident_ops.errors import UserError
from incident_ops.incident_report import details, summary_line
from incident_ops.metrics import now_utc
from incident_ops.planning.render import render_plan
from incident_ops.store import Store

SUMMARY_FIELDS = ("id", "state", "service", "opened_at", "resolved_at", "trigger")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "incidents", help="list incidents, or show one with its plan and history"
    )
    parser.add_argument("--db", help="database folder (default: $OPS_DB or ./ops_db)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--months", type=int, default=12, metavar="N",
                        help="list incidents opened in the last N calendar months "
                        "(default %(default)s)")
    parser.set_defaults(run=run_list)

    actions = parser.add_subparsers(dest="action")
    show = actions.add_parser("show", help="one incident in full")
    show.add_argument("incident_id", metavar="ID")
    # SUPPRESS: without it the subcommand's defaults would overwrite
    # ``incidents --db X show ID`` given before the subcommand.
    show.add_argument("--db", default=argparse.SUPPRESS,
                      help="database folder (default: $OPS_DB or ./ops_db)")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                      help="print the whole record")
    show.set_defaults(run=run_show)


def run_list(args) -> int:
    if args.months < 1:
        raise UserError(f"--months {args.months}: give at least 1")
    with Store.for_command(args.db) as store:
        found = incidents.list_incidents(store, now_utc(), args.months)

    if args.json:
        print(json.dumps([{name: incident.get(name) for name in SUMMARY_FIELDS}
                          for incident in found], indent=2))
        return 0
    if not found:
        print(f"no incidents in the last {args.months} month(s)")
    for incident in found:
        print(summary_line(incident))
    return 0


def find_incident(store: Store, incident_id: str) -> dict:
    """The incident ``incident_id``; a ``UserError`` if there is none."""
    try:
        incidents.month_of(incident_id)
    except incidents.IncidentIdError as error:
        raise UserError(str(error)) from None
    incident = incidents.load(store, incident_id)
    if incident is None:
        raise UserError(f"no incident {incident_id}; list them with: "
                        "python -m incident_ops incidents")
    return incident


def run_show(args) -> int:
    with Store.for_command(args.db) as store:
        incident = find_incident(store, args.incident_id)

    if args.json:
        print(json.dumps(incident, indent=2))
        return 0
    plan_text = render_plan(incident["plan"]) if incident.get("plan") else None
    print(details(incident, plan_text))
    return 0
