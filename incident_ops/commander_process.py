"""Process C, the incident commander: detects, plans, mitigates, resolves.

    python process_c_commander.py [--db DIR] [--poll S] [--once]
        [--require-approval] [--action-window N] [rule flags]

One commander is active per database; a second one waits as a standby and
takes over when the active one stops or dies.
"""

import argparse
import sys

from incident_ops import config, logs
from incident_ops.commander import Commander, Settings
from incident_ops.detection import (
    add_rule_arguments,
    positive_count,
    rules_from_args,
)
from incident_ops.errors import UserError
from incident_ops.leadership import COMMANDER, RoleLock, wait_for_leadership
from incident_ops.lifecycle import StopFlag, say
from incident_ops.planning.advisor import Advisor
from incident_ops.store import LOOP_DEADLINE_S, Store, StoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="process_c_commander.py",
        description="Watch the metrics, open incidents, request mitigation and "
        "resolve on measured recovery.",
    )
    parser.add_argument("--db", help="database folder (default: $OPS_DB or ./ops_db)")
    parser.add_argument("--poll", type=config.positive_number, default=1.0, metavar="S",
                        help="seconds between reads of the metrics (default "
                        "%(default)g)")
    parser.add_argument("--once", action="store_true",
                        help="exit 0 once the first incident handled is resolved")
    parser.add_argument("--require-approval", action="store_true",
                        help="wait for 'python -m incident_ops approve ID' before "
                        "each action")
    parser.add_argument("--action-window", type=positive_count, default=8,
                        metavar="N",
                        help="samples an applied action gets to start a recovery "
                        "before the next action is tried (default %(default)s)")
    parser.add_argument("--index-grace", type=config.positive_number, default=30.0,
                        metavar="S",
                        help="seconds an open incident waits for indexed runbooks "
                        "before escalating to a human; it keeps waiting after "
                        "(default %(default)g)")
    add_rule_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    try:
        rules = rules_from_args(args)
    except ValueError as error:
        raise UserError(str(error)) from None
    return Settings(rules=rules, poll_s=args.poll, action_window=args.action_window,
                    require_approval=args.require_approval, once=args.once,
                    index_grace_s=args.index_grace)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.verbose)
    stop = StopFlag().install()
    try:
        settings = settings_from(args)
        database = config.db_dir(args.db)
        if not database.is_dir():
            raise UserError(f"no database folder {database}; start the server "
                            "first with ./start_server.sh")
        with Store.open(args.db) as store:
            # Ready before the lock is ours, so a standby takes over at once.
            advisor = Advisor(store)
            lock = RoleLock(database, COMMANDER)
            if not wait_for_leadership(lock, lambda: stop.is_set, say):
                return 0
            try:
                store.deadline = min(store.deadline, LOOP_DEADLINE_S)
                return Commander(store, advisor, settings, stop, say=say).run()
            finally:
                lock.release()
    except (UserError, config.ConfigError, StoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

