#!/usr/bin/env bash
# Bad input gets a clear error and the documented exit code: usage errors (2), wrong
# password, dead port and untrusted certificate (3); no password ever printed.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
mh_require_build_bin mailhaul

mh_start_dovecot srv
mh_adduser srv carol right-password
export MAILHAUL_FROM_PASSWORD=right-password MAILHAUL_TO_PASSWORD=right-password
good="imap://carol@127.0.0.1:$srv_IMAP_PORT"

# expect CODE PATTERN -- ARGS... : runs mailhaul, checks exit code and that output matches
expect() {
    local code=$1 pattern=$2; shift 3
    local out rc=0
    out=$("$MH_BUILD_DIR/mailhaul" "$@" 2>&1) || rc=$?
    [ "$rc" = "$code" ] || mh_fail "mailhaul $*: exit $rc, expected $code; output: $out"
    grep -Eq -- "$pattern" <<<"$out" || mh_fail "mailhaul $*: output lacks /$pattern/: $out"
    grep -q -- "right-password\|wrong-password" <<<"$out" && mh_fail "a password was printed: $out"
    return 0
}

expect 2 'usage|--from' -- migrate --to "$good"
expect 2 'unknown command' -- frobnicate
expect 2 'scheme|URL' -- migrate --from "http://carol@127.0.0.1:1" --to "$good"
expect 2 'port' -- migrate --from "imap://carol@127.0.0.1:99999" --to "$good"
MAILHAUL_FROM_PASSWORD= expect 2 'no password' -- migrate --from "$good" --to "$good" --ca-file "$MH_CA_FILE"
expect 2 'CA file .* cannot be read' -- migrate --from "$good" --to "$good" --ca-file /nonexistent/ca.pem

MAILHAUL_FROM_PASSWORD=wrong-password expect 3 'AUTH_FAILED' -- \
    migrate --from "$good" --to "$good" --ca-file "$MH_CA_FILE" --quiet
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect 3 'CONNECT_REFUSED' -- migrate --from "imap://carol@127.0.0.1:$port" --to "$good" --ca-file "$MH_CA_FILE" --quiet
expect 3 'TLS_CERT_UNTRUSTED|TLS_CERT_SELF_SIGNED' -- migrate --from "$good" --to "$good" --quiet
# --json carries the same verdict for programs
out=$(MAILHAUL_FROM_PASSWORD=wrong-password "$MH_BUILD_DIR/mailhaul" migrate --from "$good" --to "$good" \
    --ca-file "$MH_CA_FILE" --json 2>/dev/null) && mh_fail "wrong password succeeded"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["state"]=="failed" and d["error"]["code"]=="AUTH_FAILED", d' "$out" ||
    mh_fail "JSON summary lacks the error: $out"
# A password given in the URL is warned about and hidden from ps while the run goes on:
# a server that accepts but never greets keeps the process alive long enough to look.
python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(5); print(s.getsockname()[1], flush=True); time.sleep(60)' >"$MH_TMP/silent.port" &
mh_register_pid $!
for _ in $(seq 50); do [ -s "$MH_TMP/silent.port" ] && break; sleep 0.1; done
silent=$(cat "$MH_TMP/silent.port")
MAILHAUL_FROM_PASSWORD= "$MH_BUILD_DIR/mailhaul" migrate --from "imap://carol:url-secret-42@127.0.0.1:$silent" \
    --to "$good" --quiet 2>"$MH_TMP/url.err" &
pid=$!
mh_register_pid $pid
sleep 1.5
tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q url-secret-42 && mh_fail "the URL password is visible in ps"
kill $pid; wait $pid 2>/dev/null || true
grep -q "password is in the URL" "$MH_TMP/url.err" || mh_fail "no warning about the URL password"
grep -q url-secret-42 "$MH_TMP/url.err" && mh_fail "the URL password was printed"
echo "PASS: usage and connection errors are explained with the documented exit codes"
