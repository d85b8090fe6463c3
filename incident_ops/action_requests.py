"""Action requests (commander -> collector) and their outcomes (collector).

The commander writes ``actions/requests/<YYYYMMDD>/<request id>``; the
collector, which acts on the service, answers with one record at
``actions/applied/<request id>``. Each key has one writer, and both writes
are idempotent, so either side may repeat one after a crash. The request
id is ``<incident id>.<seq>``: the same action of the same incident always
has the same id.

Known shortcoming: requests, outcomes and approvals are never pruned.
They are small and grow by one record per action, and only the last two
request buckets are ever scanned, so this matters only after years.
"""

from datetime import datetime, timedelta

from incident_ops import keys
from incident_ops.metrics import iso
from incident_ops.store import Store

APPLIED = "applied"
UNKNOWN_KIND = "unknown_kind"      # not an action of the catalog
NOT_APPLIED = "not_applied"        # this source cannot act (a replay)

# A request older than this is not acted on any more; it bounds the scan to
# today's and yesterday's bucket.
REQUEST_LIFETIME = timedelta(hours=12)


def request_id(incident_id: str, seq: int) -> str:
    return f"{incident_id}.{seq}"


def write_request(store: Store, incident_id: str, seq: int, kind: str,
                  text: str, at: datetime) -> dict:
    """Ask the collector for one action; returns the request written."""
    request = {
        "request_id": request_id(incident_id, seq),
        "incident_id": incident_id,
        "seq": seq,
        "kind": kind,
        "text": text,
        "requested_at": iso(at),
    }
    key = f"{keys.ACTIONS_REQUESTED}{at.strftime('%Y%m%d')}/{request['request_id']}"
    store.put(key, request)
    return request


def open_requests(store: Store, now: datetime) -> list[dict]:
    """Requests made within ``REQUEST_LIFETIME``, oldest first."""
    since = now - REQUEST_LIFETIME
    found = []
    for day in sorted({since.strftime("%Y%m%d"), now.strftime("%Y%m%d")}):
        found += store.scan(f"{keys.ACTIONS_REQUESTED}{day}/").values()
    return sorted((r for r in found if r["requested_at"] >= iso(since)),
                  key=lambda r: (r["requested_at"], r["request_id"]))


def write_outcome(store: Store, request: dict, outcome: str, detail: str,
                  at: datetime) -> dict:
    record = {
        "request_id": request["request_id"],
        "kind": request["kind"],
        "outcome": outcome,
        "detail": detail,
        "at": iso(at),
    }
    store.put(f"{keys.ACTIONS_APPLIED}{request['request_id']}", record)
    return record


def read_outcome(store: Store, request_id_: str) -> dict | None:
    return store.get(f"{keys.ACTIONS_APPLIED}{request_id_}")
