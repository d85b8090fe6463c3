"""Service events (deployments) in day buckets, as the collector records them.

Key: ``events/<YYYYMMDD>/<epoch_ms>-<kind>``. A reader wanting the last
half hour scans at most today's and yesterday's bucket.
"""

from datetime import datetime, timedelta

from incident_ops import keys
from incident_ops.metrics import iso, parse_time
from incident_ops.retention import prune_expired
from incident_ops.store import Store

RECENT_WINDOW = timedelta(minutes=30)
RETENTION = timedelta(days=30)
BUCKET_SPAN = timedelta(days=1)


def day_bucket(moment: datetime) -> str:
    return moment.strftime("%Y%m%d")


def record_event(store: Store, at: datetime, kind: str, description: str,
                 **details: object) -> dict:
    """Write one event; returns the record written."""
    event = {"at": iso(at), "kind": kind, "description": description, **details}
    epoch_ms = int(at.timestamp() * 1000)
    store.put(f"{keys.EVENTS}{day_bucket(at)}/{epoch_ms}-{kind}", event)
    return event


def recent_events(store: Store, now: datetime,
                  window: timedelta = RECENT_WINDOW) -> list[dict]:
    """Events from the last ``window`` (at most a day), oldest first."""
    since = now - window
    found = []
    for day in sorted({day_bucket(since), day_bucket(now)}):
        records = store.scan(f"{keys.EVENTS}{day}/")
        found += [records[key] for key in sorted(records)]
    return [event for event in found if since <= parse_time(event["at"]) <= now]


def prune_events(store: Store, now: datetime) -> int:
    return prune_expired(store, keys.EVENTS, keys.EVENTS_PRUNED, day_bucket,
                         BUCKET_SPAN, RETENTION, now)
