"""Detection latency: from the first breaching sample to the incident's OPEN.

Starts its own ToonDB server in a temporary folder, indexes the project's
runbooks once, then for each run starts a fresh bad-deploy collector and a
``--once`` commander as real processes and waits for the commander to
resolve the incident. Latency per incident is ``opened_at`` minus the
collection time of the first sample of the breach streak that opened it,
in seconds and in collector intervals. The rule's bound is the pending
window ((N - 1) intervals after the first breaching sample) plus one
commander poll, plus the time to write and read one sample.

    python bench/detection_bench.py [--runs 3] [--interval 1] [--poll 1]
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from incident_ops import incidents, server  # noqa: E402
from incident_ops.detection import Rules  # noqa: E402
from incident_ops.metrics import now_utc  # noqa: E402
from incident_ops.store import Store  # noqa: E402

RUN_TIMEOUT_S = 300


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--interval", type=float, default=1.0,
                        help="collector seconds between samples")
    parser.add_argument("--poll", type=float, default=1.0,
                        help="commander seconds between polls")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="ops-bench-", dir="/tmp"))
    paths = server.ServerPaths.for_db(str(folder / "db"))
    env = dict(os.environ, OPS_DB=str(paths.database), PYTHONPATH=str(ROOT),
               ORT_DISABLE_TELEMETRY="1")
    env.pop("OPENAI_API_KEY", None)
    server.start_daemon(paths)
    try:
        run([sys.executable, "process_b_indexer.py", "--once"], env, folder, "indexer")
        for number in range(1, args.runs + 1):
            one_run(args, env, folder, number)
        with Store(paths.socket) as store:
            found = incidents.list_incidents(store, now_utc(), months=2)
        report(found, args)
    finally:
        server.stop(paths)
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def one_run(args, env: dict, folder: Path, number: int) -> None:
    log = open(folder / f"collector{number}.log", "wb")
    collector = subprocess.Popen(
        [sys.executable, "process_a_collector.py", "--interval", f"{args.interval:g}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        run([sys.executable, "process_c_commander.py", "--once",
             "--poll", f"{args.poll:g}"], env, folder, f"commander{number}")
    finally:
        collector.send_signal(signal.SIGINT)
        collector.wait(timeout=30)
        log.close()
    print(f"run {number}: incident resolved", flush=True)


def run(command: list[str], env: dict, folder: Path, name: str) -> None:
    with open(folder / f"{name}.log", "wb") as log:
        result = subprocess.run(command, cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT_S)
    if result.returncode != 0:
        raise SystemExit(f"{name} exited {result.returncode}; see "
                         f"{folder / (name + '.log')}")


def report(found: list[dict], args) -> None:
    seconds = []
    for incident in found:
        trigger = incident["trigger"]
        opened = datetime.fromisoformat(incident["opened_at"])
        first = datetime.fromisoformat(trigger["first_breach_at"])
        seconds.append((opened - first).total_seconds())

    rules = Rules()
    bound = (rules.trigger_samples - 1) * args.interval + args.poll
    print(f"\ndetection latency over {len(seconds)} incidents "
          f"(interval {args.interval:g} s, poll {args.poll:g} s, "
          f"N = {rules.trigger_samples}):")
    for label, value in (("min", min(seconds)),
                         ("median", statistics.median(seconds)),
                         ("max", max(seconds))):
        print(f"  {label:<6} {value:6.2f} s = {value / args.interval:5.2f} intervals")
    print(f"  bound  {bound:6.2f} s ((N - 1) intervals + one poll)")


if __name__ == "__main__":
    sys.exit(main())
