#!/usr/bin/env bash
# The dashboard's script (web/dashboard.html) run by Node.js against a fake DOM and API
# (tests/web/test_dashboard.js). Skipped, saying so, when node is not installed.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
if ! command -v node >/dev/null 2>&1; then
    echo "SKIP: node is not installed (apt-get install nodejs): the dashboard script is not run"
    exit 77
fi
node "$MH_SOURCE_DIR/tests/web/test_dashboard.js" "$MH_SOURCE_DIR/web/dashboard.html" ||
    mh_fail "the dashboard script failed"
echo "PASS: the dashboard fills its job table, header and job details from the API"
