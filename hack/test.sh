#!/usr/bin/env bash
# The one test command (README, CI): install fluxqueue with its test and sim extras, fetch the real
# kubectl/helm, check lint and formatting, then run the whole pytest suite against real PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e '.[sim,test]'
hack/tools.sh >/dev/null
python3 -m ruff check .
python3 -m ruff format --check .
exec python3 -m pytest "$@"
