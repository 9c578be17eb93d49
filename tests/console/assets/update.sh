#!/usr/bin/env bash
# Re-fetches axe-core (the accessibility rules the browser tests run, see tests/console/axe.py)
# from the npm registry at the pinned version and copies axe.min.js here; prints its SHA-256,
# which must match VENDORED.md. Bump the version here and there in the same commit.
#   tests/console/assets/update.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

AXE=axe-core@4.14.1

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "$AXE" >/dev/null
tar -xzf axe-core-*.tgz
cp package/axe.min.js "$here/axe.min.js"

cd "$here"
sha256sum axe.min.js
