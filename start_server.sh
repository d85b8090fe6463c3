#!/usr/bin/env bash
# Start, inspect or stop the ToonDB server for $OPS_DB (default ./ops_db).
#
#   ./start_server.sh            run in the foreground until Ctrl+C
#   ./start_server.sh --daemon   start in the background, return once it answers
#   ./start_server.sh status     exit 0 and print pid, socket, uptime if it answers
#   ./start_server.sh stop       stop it and remove the socket
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/scripts/ensure_venv.sh"

case "${1:-start}" in
  start)    action=start ;;
  --daemon) action=daemon ;;
  status)   action=status ;;
  stop)     action=stop ;;
  *) echo "usage: $0 [--daemon | status | stop]" >&2; exit 2 ;;
esac

exec python -m incident_ops server "$action"
