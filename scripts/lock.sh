#!/usr/bin/env bash
# Refresh constraints.txt, the lock that `make demo`, `make test` and CI install from.
# pyproject.toml keeps version *ranges* for library users; this file pins the exact versions CI tested, so a fresh
# clone resolves the same set on any day. It resolves the newest versions the ranges allow in a throw-away venv
# (scripts/setup.sh with DEEPPRUNE_UNLOCKED=1, i.e. exactly what `make test-latest` tests), then pins them.
# Local version labels (+cpu) are dropped: `torch==2.13.0` matches the CPU build and any other build of that release.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
DEEPPRUNE_UNLOCKED=1 bash scripts/setup.sh "$TMP/venv" "$PY"
{
  echo "# The lock: exact versions that CI tested. Refresh with \`make lock\` (scripts/lock.sh); test the newest"
  echo "# versions pyproject.toml allows with \`make test-latest\`. Generated $(date -u +%Y-%m-%d) with $("$TMP/venv/bin/python" -V)."
  "$TMP/venv/bin/python" -m pip list --format=freeze --exclude-editable --exclude pip --exclude setuptools \
    | sed -E 's/\+[A-Za-z0-9.]+$//' | grep -viE '^deepprune[-_]agents==' | LC_ALL=C sort -f
} > constraints.txt
echo "wrote constraints.txt: $(grep -vc '^#' constraints.txt) pins"
