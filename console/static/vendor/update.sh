#!/usr/bin/env bash
# Re-fetches the vendored browser assets from the npm registry at the pinned versions below and
# copies them here, then prints their SHA-256 (they must match VENDORED.md; when a version is
# bumped, update both this script and VENDORED.md in the same commit).
#   console/static/vendor/update.sh
# Needs npm (Node 20+); fetches with `npm pack`, which checks each tarball against the registry's
# integrity hash. Nothing is installed and no package scripts run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

HTMX=htmx.org@2.0.11      # htmx 2 (not 4.x: the console is written against the htmx 2 API)
SSE=htmx-ext-sse@2.2.4    # the SSE extension for htmx 2

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "$HTMX" "$SSE" >/dev/null
mkdir htmx sse
tar -xzf htmx.org-*.tgz -C htmx
tar -xzf htmx-ext-sse-*.tgz -C sse

cp htmx/package/dist/htmx.min.js "$here/htmx.min.js"
cp sse/package/dist/sse.min.js "$here/htmx-ext-sse.js"

cd "$here"
sha256sum htmx.min.js htmx-ext-sse.js
