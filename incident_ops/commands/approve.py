"""``approve INCIDENT_ID``: let a ``--require-approval`` commander act.

Approves the incident's next action: the one waiting for approval, or if
the commander has not asked yet, the next planned one. The approval is one
record at ``approvals/<incident id>/<action seq>``, which the commander
reads before requesting that action.
"""

import getpass

from incident_ops import incidents, keys
from incident_ops.commands.incidents import find_incident
from incident_ops.errors import UserError
from incident_ops.metrics import iso, now_utc
from incident_ops.store import Store


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "approve", help="approve the next mitigation action of an incident"
    )
    parser.add_argument("incident_id", metavar="INCIDENT_ID")
    parser.add_argument("--db", help="database folder (default: $OPS_DB or ./ops_db)")
    parser.set_defaults(run=run)


def run(args) -> int:
    with Store.for_command(args.db) as store:
        incident = find_incident(store, args.incident_id)
        action = next_to_approve(incident)
        key = f"{keys.APPROVALS}{incident['id']}/{action['seq']}"
        if store.get(key) is not None:
            print(f"{incident['id']} action {action['seq']} ({action['kind']}) "
                  "was already approved; the commander requests it at its next poll")
            return 0
        store.put(key, {"incident_id": incident["id"], "seq": action["seq"],
                        "kind": action["kind"], "approved_at": iso(now_utc()),
                        "by": getpass.getuser()})
    print(f"approved {incident['id']} action {action['seq']}: {action['kind']} "
          f"- {action['text']}")
    return 0


def next_to_approve(incident: dict) -> dict:
    if incident["state"] == incidents.RESOLVED:
        raise UserError(f"{incident['id']} is already RESOLVED; nothing to approve")
    for wanted in (incidents.AWAITING_APPROVAL, incidents.PLANNED):
        for action in incident["actions"]:
            if action["status"] == wanted:
                return action
    if incident["state"] == incidents.OPEN:
        raise UserError(f"{incident['id']} has no plan yet; try again in a moment")
    raise UserError(f"{incident['id']} has no action waiting for approval "
                    f"(actions: {_statuses(incident)})")


def _statuses(incident: dict) -> str:
    return ", ".join(f"{a['seq']} {a['kind']} {a['status']}"
                     for a in incident["actions"]) or "none"
