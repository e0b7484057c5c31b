#!/usr/bin/env bash
# One command to set everything up: a virtual environment in .venv with the runtime stack,
# the test tools and the peers used as test oracles, and the project installed editable.
#   bash setup.sh            # creates ./.venv
#   VENV=/some/dir bash setup.sh
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# torch first: these exact releases are known to work (and are on local disk on our build
# machines); elsewhere pip falls back to the ranges in requirements.txt.
if [ "$(uname -m)" = "x86_64" ]; then
  "$VENV/bin/python" -m pip install --quiet "torch==2.14.1" "torchvision==0.29.1" \
    || echo "note: torch 2.14.1 not available here; using the ranges in requirements.txt"
fi
"$VENV/bin/python" -m pip install --quiet -r requirements-dev.txt
echo "Ready. Start the dashboard with: $VENV/bin/gradcam-explorer app"
