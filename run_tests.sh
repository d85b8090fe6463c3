#!/usr/bin/env bash
# Run the test suite. On a fresh clone this first creates .venv and installs
# requirements.txt; extra arguments go to pytest (e.g. -k store, -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
source scripts/ensure_venv.sh
exec python -m pytest "$@"
