#!/usr/bin/env bash
# One-command set-up: a virtual environment in .venv with the tested versions.
# Usage: ./setup.sh            (core + dev extras)
#        EXTRAS=dev,torch ./setup.sh
#        EXTRAS=dev,web ./setup.sh   (the local web page: docs/web.md)
set -euo pipefail
cd "$(dirname "$0")"
PYTHON="${PYTHON:-python3}"
EXTRAS="${EXTRAS:-dev}"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "a2v-jax needs Python >= 3.11"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c constraints.txt -e ".[${EXTRAS}]"
echo "a2v-jax is set up: activate with 'source .venv/bin/activate'"
