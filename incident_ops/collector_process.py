"""Process A, the collector: writes service metrics and events to ToonDB.

    python process_a_collector.py [--db DIR] [--interval S]
        [--source simulate|replay:FILE.csv] [--scenario NAME] [--seed N]

One collector is active per database, since the metric keys have one
writer; a second one waits as a standby and takes over when the active one
stops or dies.
"""

import argparse
import logging
import sys
from datetime import timedelta
from pathlib import Path

from incident_ops import config, keys, logs
from incident_ops.collector import Collector, ReplaySource, SimulatedSource
from incident_ops.errors import UserError
from incident_ops.leadership import COLLECTOR, RoleLock, wait_for_leadership
from incident_ops.lifecycle import StopFlag, say
from incident_ops.replay import ReplayError, read_rows
from incident_ops.simulator import DEFAULT_SCENARIO, SCENARIOS, ServiceModel
from incident_ops.store import LOOP_DEADLINE_S, Store, StoreError

log = logging.getLogger("incident_ops.collector")

MIN_INTERVAL_S = 0.1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="process_a_collector.py",
        description="Write one metric sample per interval to the ToonDB store.",
    )
    parser.add_argument("--db", help="database folder (default: $OPS_DB or ./ops_db)")
    parser.add_argument("--interval", type=config.positive_number, default=5.0,
                        metavar="S",
                        help="seconds between samples (default %(default)g)")
    parser.add_argument("--source", default="simulate",
                        help="simulate (default) or replay:FILE.csv")
    parser.add_argument("--scenario", default=DEFAULT_SCENARIO, choices=SCENARIOS,
                        help="simulated scenario (default %(default)s)")
    parser.add_argument("--seed", type=int, default=7,
                        help="noise seed of the simulation (default %(default)s)")
    parser.add_argument("--resume", action="store_true",
                        help="carry on with the simulated service stored in the "
                        "database (same scenario) instead of starting it over")
    parser.add_argument("--retention-hours", type=config.positive_number,
                        default=24.0, metavar="H",
                        help="keep metric history this long (default %(default)g)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    return parser


def read_replay(args: argparse.Namespace) -> ReplaySource | None:
    """The replayed series, or None for the simulation; bad input refused early."""
    if args.source.startswith("replay:"):
        path = Path(args.source.removeprefix("replay:"))
        try:
            rows = read_rows(path)
        except ReplayError as error:
            raise UserError(f"cannot replay: {error}") from None
        return ReplaySource(rows, path.name)
    if args.source != "simulate":
        raise UserError(f"--source {args.source!r}: use simulate or replay:FILE.csv")
    return None


def resume_model(args: argparse.Namespace, store: Store) -> ServiceModel:
    """A fresh simulated service, or with ``--resume`` the stored one.

    Starting over is the default so that every run plays its scenario from
    the start; ``--resume`` keeps the service as the last collector left it,
    the way a real service does not reset when its monitor restarts.
    """
    saved = store.get(keys.SIMULATOR_STATE) if args.resume else None
    if saved is not None and saved.get("scenario") == args.scenario:
        model = ServiceModel.from_dict(saved)
        log.info("resuming the simulated service (%s) at sample %d",
                 model.scenario, model.step_count)
        return model
    if args.resume:
        log.info("no stored %s simulation to resume; starting it over",
                 args.scenario)
    return ServiceModel(scenario=args.scenario, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.setup(args.verbose)
    stop = StopFlag().install()
    try:
        if args.interval < MIN_INTERVAL_S:
            raise UserError(f"--interval {args.interval:g} is too short; use at "
                            f"least {MIN_INTERVAL_S:g} s")
        replay = read_replay(args)
        with Store.open(args.db) as store:
            lock = RoleLock(config.db_dir(args.db), COLLECTOR)
            if not wait_for_leadership(lock, lambda: stop.is_set, say):
                return 0
            try:
                # Only now: the stored simulation is the active collector's.
                source = replay or SimulatedSource(resume_model(args, store))
                store.deadline = min(store.deadline, LOOP_DEADLINE_S)
                collector = Collector(
                    store, source, args.interval, stop,
                    history_retention=timedelta(hours=args.retention_hours),
                )
                return collector.run()
            finally:
                lock.release()
    except (UserError, config.ConfigError, StoreError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

