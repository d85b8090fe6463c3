"""``server start|daemon|status|stop``: what ``start_server.sh`` runs."""

from incident_ops import server


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "server", help="start, inspect or stop the ToonDB server"
    )
    parser.add_argument("action", choices=["start", "daemon", "status", "stop"])
    parser.add_argument("--db", help="database folder (default: $OPS_DB or ./ops_db)")
    parser.set_defaults(run=lambda args: server.main(args.action, args.db))
