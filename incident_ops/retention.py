"""Age-based retention for key families laid out in time buckets.

The engine has no expiry, so the family's single writer deletes whole
buckets once they are older than the retention. A watermark record says
up to which bucket that is done, so a writer that was down for a while
catches up where it stopped, a bounded number of buckets per call.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from incident_ops.store import Store

log = logging.getLogger(__name__)


def prune_expired(
    store: Store,
    family: str,
    watermark_key: str,
    bucket_name: Callable[[datetime], str],
    bucket_span: timedelta,
    keep: timedelta,
    now: datetime,
    max_buckets: int = 60,
) -> int:
    """Delete the buckets of ``family`` that ended more than ``keep`` ago.

    ``bucket_name`` maps a time to its bucket; buckets are ``bucket_span``
    long. Without a watermark (a fresh database) nothing older than now
    minus ``keep`` exists, so that point becomes the watermark. Returns how
    many records were deleted.
    """
    horizon = now - keep
    mark = store.get(watermark_key)
    if mark is None:
        store.put(watermark_key, {"through": horizon.isoformat()})
        return 0

    cursor = datetime.fromisoformat(mark["through"]) + bucket_span
    deleted = 0
    buckets = 0
    while cursor + bucket_span <= horizon and buckets < max_buckets:
        prefix = f"{family}{bucket_name(cursor)}/"
        for key in store.scan(prefix):
            store.delete(key)
            deleted += 1
        buckets += 1
        store.put(watermark_key, {"through": cursor.isoformat()})
        cursor += bucket_span

    if deleted:
        log.info("retention: deleted %d record(s) from %d bucket(s) of %s",
                 deleted, buckets, family)
    return deleted
