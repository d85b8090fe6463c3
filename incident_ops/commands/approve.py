"""``approve INCIDENT_ID``: let a ``--require-approval`` commander act.

Approves only the action the commander is waiting on (status
``awaiting_approval``): the approval is one record at
``approvals/<incident id>/<action seq>``, which the commander reads before
requesting that action. When no action is waiting, nothing is written and
the command exits 1 naming the next planned action, so approving twice
never pre-approves an action the commander has not asked for yet.
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
    """The action awaiting approval; ``UserError`` (one line) when there is none."""
    if incident["state"] == incidents.RESOLVED:
        raise UserError(f"{incident['id']} is already RESOLVED; nothing to approve")
    for action in incident["actions"]:
        if action["status"] == incidents.AWAITING_APPROVAL:
            return action
    if incident["state"] == incidents.OPEN:
        raise UserError(f"{incident['id']} has no plan yet; try again in a moment")
    planned = next((a for a in incident["actions"]
                    if a["status"] == incidents.PLANNED), None)
    if planned is not None:
        raise UserError(
            f"{incident['id']} has no action awaiting approval; the next planned "
            f"one is action {planned['seq']} ({planned['kind']}): approve it once "
            "the commander asks for it")
    raise UserError(f"{incident['id']} has no action waiting for approval "
                    f"(actions: {_statuses(incident)})")


def _statuses(incident: dict) -> str:
    return ", ".join(f"{a['seq']} {a['kind']} {a['status']}"
                     for a in incident["actions"]) or "none"
