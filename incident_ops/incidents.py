"""The incident record and its state machine: NONE -> OPEN -> MITIGATING -> RESOLVED.

The engine has no multi-key transactions and no compare-and-set, so an
incident is one self-contained record, rewritten whole at every change:
state, time-ordered history, trigger values, plan and actions travel
together, and a single put of that record is atomic and durable. Only the
active commander (holding the OS lock) writes incidents.

Record fields: ``id``, ``service``, ``state``, ``opened_at``,
``resolved_at`` (null until RESOLVED), ``trigger`` (the values that opened
it), ``history`` (``[{"state", "at"}]`` from OPEN), ``plan`` (the plan
dict, null until written), ``context`` (retrieval summary), ``actions``
(``[{"seq", "kind", "text", "status", ...times}]``), ``events``
(escalations, takeovers) and ``updated_at``.

Keys: ``incidents/<YYYYMM>/<id>``; the id (``INC-YYYYMMDD-HHMMSS``, with a
``-N`` suffix if two open in one second) names its month bucket. Known
shortcoming: one month's bucket is read in one scan, so about a thousand
incidents a month (records of 5-15 KB) is the ceiling before that scan
nears the engine's 16 MiB reply cap; per-day buckets would raise it.
"""

import copy
import re
from datetime import datetime, timedelta

from incident_ops import keys
from incident_ops.metrics import iso, parse_time
from incident_ops.store import Store

NONE = "NONE"
OPEN = "OPEN"
MITIGATING = "MITIGATING"
RESOLVED = "RESOLVED"

# The one allowed successor of each state: no skipping, no going back.
NEXT_STATE = {NONE: OPEN, OPEN: MITIGATING, MITIGATING: RESOLVED}

ID_PATTERN = re.compile(r"^INC-(\d{4})(\d{2})\d{2}-\d{6}(-\d+)?$")

# Action statuses, in the order an action can move through them.
PLANNED = "planned"
AWAITING_APPROVAL = "awaiting_approval"
REQUESTED = "requested"
APPLIED = "applied"
NOT_APPLIED = "not_applied"
NO_EFFECT = "no_effect"
NOT_NEEDED = "not_needed"
MANUAL = "manual"
IN_PROGRESS = (AWAITING_APPROVAL, REQUESTED, APPLIED)


class TransitionError(Exception):
    """A state change the machine does not allow; nothing was written."""


class IncidentIdError(ValueError):
    """Text that is not an incident id."""


def state_of(incident: dict | None) -> str:
    return NONE if incident is None else incident["state"]


def new_incident(incident_id: str, opened_at: datetime, trigger: dict,
                 service: str) -> dict:
    """The record of an incident that has just opened (NONE -> OPEN)."""
    at = iso(opened_at)
    return {
        "id": incident_id,
        "service": service,
        "state": OPEN,
        "opened_at": at,
        "resolved_at": None,
        "trigger": trigger,
        "history": [{"state": OPEN, "at": at}],
        "plan": None,
        "context": None,
        "actions": [],
        "events": [],
        "updated_at": at,
    }


def transition(incident: dict, new_state: str, at: datetime) -> dict:
    """A copy of ``incident`` in ``new_state``; raises ``TransitionError``.

    Refused: any state but the one successor of the current state, and a
    time earlier than the record's last change (history never goes back).
    """
    current = incident["state"]
    if NEXT_STATE.get(current) != new_state:
        raise TransitionError(
            f"{incident['id']}: {current} -> {new_state} is not allowed; "
            f"the next state after {current} is {NEXT_STATE.get(current, 'none')}"
        )
    stamp = iso(at)
    if stamp < incident["updated_at"]:
        raise TransitionError(
            f"{incident['id']}: {new_state} at {stamp} is earlier than the last "
            f"change at {incident['updated_at']}"
        )

    changed = copy.deepcopy(incident)
    changed["state"] = new_state
    changed["history"].append({"state": new_state, "at": stamp})
    changed["updated_at"] = stamp
    if new_state == RESOLVED:
        changed["resolved_at"] = stamp
    return changed


def updated(incident: dict, at: datetime, **fields: object) -> dict:
    """A copy with ``fields`` replaced and ``updated_at`` moved to ``at``."""
    changed = copy.deepcopy(incident)
    changed.update(copy.deepcopy(fields))
    changed["updated_at"] = max(iso(at), incident["updated_at"])
    return changed


def next_moment(incident: dict | None, now: datetime) -> datetime:
    """``now``, or just after the record's last change if the clock is behind.

    Keeps every history entry strictly after the one before, even when the
    wall clock steps back or two changes land in the same millisecond.
    """
    if incident is None:
        return now
    last = parse_time(incident["updated_at"])
    return now if now > last else last + timedelta(milliseconds=1)


# -- storage ---------------------------------------------------------------

def month_of(incident_id: str) -> str:
    match = ID_PATTERN.match(incident_id)
    if not match:
        raise IncidentIdError(
            f"{incident_id!r} is not an incident id (like INC-20260104-180000); "
            "list them with: python -m incident_ops incidents"
        )
    return match.group(1) + match.group(2)


def incident_key(incident_id: str) -> str:
    return f"{keys.INCIDENTS}{month_of(incident_id)}/{incident_id}"


def new_incident_id(store: Store, opened_at: datetime) -> str:
    """A fresh id for an incident opening at ``opened_at``."""
    base = f"INC-{opened_at.strftime('%Y%m%d-%H%M%S')}"
    candidate, number = base, 1
    while store.get(incident_key(candidate)) is not None:
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def save(store: Store, incident: dict) -> None:
    store.put(incident_key(incident["id"]), incident)


def load(store: Store, incident_id: str) -> dict | None:
    return store.get(incident_key(incident_id))


def list_incidents(store: Store, now: datetime, months: int) -> list[dict]:
    """Incidents opened in the last ``months`` calendar months, oldest first."""
    found = []
    year, month = now.year, now.month
    for _ in range(months):
        found += store.scan(f"{keys.INCIDENTS}{year:04d}{month:02d}/").values()
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return sorted(found, key=lambda incident: (incident["opened_at"], incident["id"]))


def unresolved(store: Store, now: datetime, months: int = 2) -> list[dict]:
    """Incidents not yet RESOLVED among the recent ones, oldest first.

    Known shortcoming: an incident left unresolved for more than two
    calendar months is not resumed; an index of open incidents would lift
    that limit if such incidents ever matter.
    """
    return [incident for incident in list_incidents(store, now, months)
            if incident["state"] != RESOLVED]
