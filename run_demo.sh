#!/usr/bin/env bash
# Run the whole system in this terminal: ToonDB server, indexer, collector
# and commander, their output interleaved. On a fresh clone it first creates
# .venv and installs requirements.txt. Options: ./run_demo.sh --help
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source scripts/ensure_venv.sh
exec python -m incident_ops.demo "$@"
