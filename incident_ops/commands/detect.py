"""``detect --replay FILE.csv``: run the detection rule over a recorded series.

No server is needed. Exit 0 with the incidents found (possibly none); exit
2 with one line when the file cannot be read at all. Rows it can partly
use (a bad value, too few cells, an unreadable timestamp, time going back)
get one warning line each on stderr; an incident at a row without a
timestamp prints ``(no timestamp)``.
"""

import json
import sys

from incident_ops.detection import add_rule_arguments, evaluate_series, rules_from_args
from incident_ops.errors import UserError
from incident_ops.replay import ReplayError, read_rows

UNREADABLE_EXIT = 2
NO_TIMESTAMP = "no timestamp"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "detect",
        help="evaluate the detection rule on a recorded CSV series",
        description="Print where each incident would open and resolve in a "
        "recorded series (columns timestamp,latency_p99_ms,error_rate_pct,"
        "cpu_pct). Indexes count data rows from 0.",
    )
    parser.add_argument("--replay", required=True, metavar="FILE.csv",
                        help="the recorded series")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list, one object per incident")
    add_rule_arguments(parser)
    parser.set_defaults(run=run)


def run(args) -> int:
    try:
        rules = rules_from_args(args)
    except ValueError as error:
        raise UserError(str(error)) from None

    try:
        rows = read_rows(args.replay)
    except ReplayError as error:
        print(f"error: {error}", file=sys.stderr)
        return UNREADABLE_EXIT

    series = [(row.timestamp, row.latency_p99_ms, row.error_rate_pct) for row in rows]
    episodes = evaluate_series(series, rules)

    if args.json:
        print(json.dumps([episode.to_dict() for episode in episodes], indent=2))
        return 0

    for number, episode in enumerate(episodes, start=1):
        opened = (f"opened at sample {episode.opened_index} "
                  f"({episode.opened_at or NO_TIMESTAMP})")
        if episode.resolved_index is None:
            resolved = "still open at the end of the series"
        else:
            resolved = (f"resolved at sample {episode.resolved_index} "
                        f"({episode.resolved_at or NO_TIMESTAMP})")
        print(f"incident {number}: {opened}, {resolved}")
    no_data = sum(1 for _, latency, errors in series if None in (latency, errors))
    print(f"{len(episodes)} incident(s) in {len(rows)} samples "
          f"({no_data} without p99 or error rate)")
    return 0
