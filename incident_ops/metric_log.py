"""Where samples live in the store: the latest record and the history.

``metrics/latest`` is one record holding the newest sample and, in order,
the few before it (``recent``). A reader polling more slowly than the
collector writes still sees every sample in sequence, with one get, and
can tell a gap from the sequence numbers. The history keeps one record
per sample in minute buckets (``metrics/hist/<YYYYMMDDHHMM>/<epoch_ms>``),
so one bucket holds at most 600 samples even at 0.1 s intervals, and
whole buckets age out after the retention.
"""

from datetime import datetime, timedelta

from incident_ops import keys
from incident_ops.metrics import Sample, parse_time
from incident_ops.retention import prune_expired
from incident_ops.store import Store

RECENT_SAMPLES = 10
DEFAULT_RETENTION = timedelta(hours=24)
BUCKET_SPAN = timedelta(minutes=1)


def history_bucket(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M")


def history_key(sample: Sample) -> str:
    moment = parse_time(sample.at)
    epoch_ms = int(moment.timestamp() * 1000)
    return f"{keys.METRICS_HISTORY}{history_bucket(moment)}/{epoch_ms}"


def write_sample(store: Store, sample: Sample, recent: list[Sample]) -> None:
    """Write the history record, then the latest record with ``recent``.

    History first: once ``latest`` names a sample, its history record is
    already durable.
    """
    store.put(history_key(sample), sample.to_dict())
    record = sample.to_dict()
    record["recent"] = [earlier.to_dict() for earlier in recent[-RECENT_SAMPLES:]]
    store.put(keys.METRICS_LATEST, record)


def read_latest(store: Store) -> list[Sample]:
    """The newest samples in sequence order, the newest last; [] if none."""
    record = store.get(keys.METRICS_LATEST)
    if record is None:
        return []
    return [Sample.from_dict(item) for item in record.get("recent") or [record]]


def read_history_bucket(store: Store, minute: datetime) -> list[Sample]:
    """The samples collected during one minute, in time order."""
    records = store.scan(f"{keys.METRICS_HISTORY}{history_bucket(minute)}/")
    return [Sample.from_dict(records[key]) for key in sorted(records)]


def prune_history(store: Store, now: datetime,
                  keep: timedelta = DEFAULT_RETENTION) -> int:
    return prune_expired(store, keys.METRICS_HISTORY, keys.METRICS_PRUNED,
                         history_bucket, BUCKET_SPAN, keep, now)
