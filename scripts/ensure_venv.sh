# Sourced by the top-level scripts: make sure .venv exists and holds
# requirements.txt, then put it first on PATH. The install runs only when
# requirements.txt changed since the last one, so later runs work offline.

project_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$project_root/.venv"
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$project_root/requirements.txt" | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ]; then
  echo "Creating virtual environment in $venv" >&2
  python3 -m venv "$venv" || {
    echo "error: 'python3 -m venv' failed; install Python 3.11+ with venv" >&2
    exit 1
  }
fi

if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "Installing requirements.txt into $venv (first run only)" >&2
  "$venv/bin/python" -m pip install --disable-pip-version-check \
      --progress-bar on -r "$project_root/requirements.txt" >&2 || {
    echo "error: installing requirements.txt failed; see pip's output above" >&2
    exit 1
  }
  echo "$wanted" > "$stamp"
fi

export PATH="$venv/bin:$PATH"
export PYTHONPATH="$project_root${PYTHONPATH:+:$PYTHONPATH}"
# onnxruntime otherwise writes a telemetry database under ~/.cache.
export ORT_DISABLE_TELEMETRY=1
