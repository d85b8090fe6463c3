"""``./run_demo.sh``: the whole system in one terminal.

Starts the ToonDB server, runs one complete indexing pass, then the
watching indexer, the collector and the commander, with every line
prefixed by its process. With ``--once`` it exits 0 when the first
incident is resolved and prints a summary; it exits non-zero if a process
died or the cycle did not complete in time. Whatever happens, every
process it started is stopped, the server last, and the socket removed.
"""

import argparse
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from incident_ops import config, incidents, logs, server
from incident_ops.config import positive_number
from incident_ops.demo_summary import resolved_since, summary_lines
from incident_ops.planning.openai_writer import DEFAULT_MODEL
from incident_ops.simulator import SCENARIOS
from incident_ops.store import Store, StoreError
from incident_ops.supervisor import Supervisor

PROJECT_ROOT = Path(__file__).resolve().parent.parent

EXIT_FAILED = 1
EXIT_START_FAILED = 3
EXIT_SIGNAL = {2: 130, 15: 143}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./run_demo.sh",
        description="Run the server, indexer, collector and commander together.",
    )
    parser.add_argument("--scenario", default="bad-deploy", choices=SCENARIOS,
                        help="simulated service (default: bad-deploy)")
    parser.add_argument("--interval", type=positive_number, default=1.0,
                        help="seconds between metric samples (default: 1.0)")
    parser.add_argument("--once", action="store_true",
                        help="exit after the first incident is resolved")
    parser.add_argument("--timeout", type=positive_number, default=240.0,
                        help="with --once, seconds allowed for the whole cycle "
                             "(default: 240)")
    parser.add_argument("--fresh", action="store_true",
                        help="start from an empty database")
    parser.add_argument("--runbooks", default=str(PROJECT_ROOT / "runbooks"),
                        help="runbooks folder to index (default: ./runbooks)")
    parser.add_argument("--db", help="database folder (default: $OPS_DB or ./ops_db)")
    return parser.parse_args(argv)


def plan_writer_banner() -> str:
    if not os.environ.get("OPENAI_API_KEY"):
        return "plan writer: offline (set OPENAI_API_KEY to use OpenAI)"
    model = os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL
    where = os.environ.get("OPENAI_BASE_URL") or "api.openai.com"
    return f"plan writer: OpenAI ({model} at {where})"


def python(script: str, *args: str) -> list[str]:
    return [sys.executable, str(PROJECT_ROOT / script), *args]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.setup()
    paths = server.ServerPaths.for_db(args.db)

    if args.fresh:
        if server.answers(paths.socket):
            print(f"error: --fresh needs the server on {paths.socket} stopped "
                  "first (./start_server.sh stop)", file=sys.stderr)
            return EXIT_START_FAILED
        shutil.rmtree(paths.database, ignore_errors=True)

    env = dict(os.environ, OPS_DB=str(paths.database), ORT_DISABLE_TELEMETRY="1")
    supervisor = Supervisor(env, cwd=str(PROJECT_ROOT))
    supervisor.install_signal_handlers()
    supervisor.say(f"database {paths.database}; scenario {args.scenario}, "
                   f"interval {args.interval:g} s; {plan_writer_banner()}")

    started = datetime.now(UTC)
    reused_server = server.answers(paths.socket)
    summary = None
    try:
        outcome = run(supervisor, args, paths, reused_server)
        if outcome == "done" and args.once:
            summary = read_summary(paths, started)
            if summary is None:
                supervisor.say("the commander exited, but no incident was "
                               "resolved in this run; see its lines above")
    except StoreError as error:
        supervisor.say(f"error: {error}")
        outcome = "died"
    finally:
        supervisor.stop_all(last="toondb")
        if not reused_server:
            server.stop(paths)
        supervisor.say("all processes stopped")

    if summary:
        print("\n".join(["", "Summary", *summary]), flush=True)
    if outcome == "signal":
        return EXIT_SIGNAL.get(supervisor.stop_signal, EXIT_FAILED)
    if outcome == "start-failed":
        return EXIT_START_FAILED
    if outcome != "done" or (args.once and not summary):
        return EXIT_FAILED
    return 0


def interrupted_incident(paths: server.ServerPaths) -> bool:
    """True when an earlier run left an incident unresolved."""
    with Store(paths.socket, deadline=10) as store:
        return bool(incidents.unresolved(store, datetime.now(UTC)))


def read_summary(paths: server.ServerPaths, started: datetime) -> list[str] | None:
    """The summary of the incident this run resolved, None if there is none."""
    with Store(paths.socket, deadline=10) as store:
        incident = resolved_since(store, started)
    return summary_lines(incident) if incident else None


def run(supervisor: Supervisor, args: argparse.Namespace,
        paths: server.ServerPaths, reused_server: bool) -> str:
    """Start everything in order; return how the run ended."""
    if reused_server:
        supervisor.say(f"using the ToonDB server already running on {paths.socket}; "
                       "it will be left running")
    else:
        supervisor.start("toondb", [str(PROJECT_ROOT / "start_server.sh")])
        outcome = supervisor.wait_until(lambda: server.answers(paths.socket),
                                        30, "the ToonDB server to answer")
        if outcome != "done":
            return "start-failed" if outcome != "signal" else outcome

    first_pass = supervisor.start(
        "indexer", python("process_b_indexer.py", "--once",
                          "--runbooks", args.runbooks),
        expected_exit=True,
    )
    outcome = supervisor.wait_until(lambda: first_pass.process.poll() is not None,
                                    180, "the first indexing pass")
    if outcome != "done":
        return outcome
    if first_pass.process.returncode != 0:
        supervisor.say("the first indexing pass failed; see the indexer's lines")
        return "start-failed"

    supervisor.start("indexer", python("process_b_indexer.py",
                                       "--runbooks", args.runbooks))
    collector_args = ["--scenario", args.scenario, "--interval", f"{args.interval:g}"]
    if interrupted_incident(paths):
        # The commander will resume that incident; the simulated service
        # must carry on with its fault too, or a fresh, healthy simulation
        # would "resolve" an incident nobody mitigated.
        supervisor.say("an incident from an earlier run is still open: the "
                       "simulated service resumes where that run stopped")
        collector_args.append("--resume")
    supervisor.start("collector", python("process_a_collector.py", *collector_args))
    commander_args = ["--poll", f"{min(args.interval, 1.0):g}"]
    if args.once:
        commander_args.append("--once")
    commander = supervisor.start("commander",
                                 python("process_c_commander.py", *commander_args),
                                 expected_exit=args.once)

    if not args.once:
        return supervisor.wait_until(lambda: False, float("inf"), "Ctrl+C")

    outcome = supervisor.wait_until(lambda: commander.process.poll() is not None,
                                    args.timeout, "the first incident to resolve")
    if outcome == "done" and commander.process.returncode != 0:
        supervisor.say(f"commander exited with code {commander.process.returncode}")
        return "died"
    return outcome


if __name__ == "__main__":
    try:
        sys.exit(main())
    except config.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_START_FAILED)
