#!/usr/bin/env bash
# docs/errors.md is what `mailhaul errors --markdown` prints from common/errors.def, and the
# command explains every code of the table (text, --json, lookups by name). Needs only the
# built mailhaul binary (skipped, exit 77, without it).
set -euo pipefail

src=${MH_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${MH_BUILD_DIR:-$src/build}/mailhaul
if [ ! -x "$bin" ]; then
    echo "SKIP: $bin is not built"
    exit 77
fi
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. the page is up to date
"$bin" errors --markdown >"$tmp/errors.md"
if ! diff -u "$src/docs/errors.md" "$tmp/errors.md" >"$tmp/diff"; then
    cat "$tmp/diff" >&2
    fail "docs/errors.md is out of date: run 'mailhaul errors --markdown > docs/errors.md'"
fi

# 2. every code of the table is on the page and can be looked up
codes=$(sed -n 's/^MH_ERR(\([A-Z0-9_]*\),.*/\1/p' "$src/common/errors.def")
[ "$(wc -l <<<"$codes")" -gt 30 ] || fail "cannot read the codes from errors.def"
for code in $codes; do
    [ "$code" = OK ] && continue
    grep -q "^| \`$code\` | " "$src/docs/errors.md" || fail "$code is not in docs/errors.md"
    out=$("$bin" errors "$code") || fail "mailhaul errors $code failed"
    grep -q "^$code (" <<<"$out" || fail "mailhaul errors $code: $out"
    grep -q "^    fix: " <<<"$out" || fail "mailhaul errors $code has no fix: $out"
done
lower=$(tr 'A-Z' 'a-z' <<<"OVER_QUOTA")
"$bin" errors "$lower" | grep -q '^OVER_QUOTA (account)' || fail "lookups ignore case"
rc=0
"$bin" errors NO_SUCH_CODE >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" = 2 ] || fail "an unknown code exits $rc, not 2"
grep -q 'no error code "NO_SUCH_CODE"' "$tmp/err" || fail "unknown code: $(cat "$tmp/err")"
rc=0
"$bin" errors --markdown AUTH_FAILED >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "--markdown with a code exits $rc, not 2"
"$bin" errors --help | grep -q -- '--markdown' || fail "--help does not mention --markdown"
"$bin" --help | grep -q '^  errors ' || fail "mailhaul --help does not list errors"

# 3. --json, for programs
if command -v python3 >/dev/null 2>&1; then
    "$bin" errors --json >"$tmp/all.json"
    "$bin" errors AUTH_FAILED --json >"$tmp/one.json"
    python3 - "$tmp/all.json" "$tmp/one.json" $codes <<'EOF' || fail "--json output is wrong"
import json, sys
all_ = json.load(open(sys.argv[1]))
one = json.load(open(sys.argv[2]))
want = set(sys.argv[3:]) - {"OK"}
got = {e["code"] for e in all_}
assert got == want, (want - got, got - want)
for e in all_:
    assert set(e) == {"code", "class", "text", "fix", "retried"}, e
    assert e["text"] and e["fix"], e
    assert e["retried"] == (e["class"] == "connection"), e
assert one["code"] == "AUTH_FAILED" and one["class"] == "account" and one["retried"] is False, one
EOF
else
    echo "note: python3 missing, --json not checked"
fi

# 4. the README points to the command and the page
grep -q 'mailhaul errors' "$src/README.md" || fail "README does not mention 'mailhaul errors'"
grep -q 'docs/errors.md' "$src/README.md" || fail "README does not point to docs/errors.md"
echo "PASS: docs/errors.md matches 'mailhaul errors --markdown'; every code is explained"
