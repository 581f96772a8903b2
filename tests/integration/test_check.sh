#!/usr/bin/env bash
# `mailhaul check`: the health check against real Dovecot servers on loopback.
#  - a good pair: verdict ok, exit 0, inventory counts and the folder mapping right;
#  - wrong source password, unknown destination user, closed port, an expired and a
#    self-signed certificate: each blocking with the right code and step, exit 3;
#  - a target quota smaller than the source: blocking OVER_QUOTA;
#  - an APPENDLIMIT below the largest message: a warning listing the messages, exit 0;
#  - a target that already holds mail: pointed out.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_build_bin mailhaul
mh=$MH_BUILD_DIR/mailhaul

mh_start_dovecot src
mh_start_dovecot dst
mh_start_dovecot small --quota 1 --appendlimit 300000
mh_start_dovecot expired --cert expired
mh_start_dovecot selfsigned --cert selfsigned
mh_adduser src ann pw-src
mh_adduser dst ann pw-dst
mh_adduser small ann pw-dst
mh_adduser expired ann pw-dst
mh_adduser selfsigned ann pw-dst
sleep 1.1 # Dovecot notices a changed passwd-file by its mtime, in whole seconds
for i in 1 2 3; do
    mh_mailbox add-message --server "$MH_TMP/src" --user ann --password pw-src --seed "$i" --size-kb 500 >/dev/null
done
mh_mailbox create-folder --server "$MH_TMP/src" --user ann --password pw-src --folder "Sent Items" >/dev/null
mh_mailbox add-message --server "$MH_TMP/src" --user ann --password pw-src --seed 9 --folder "Sent Items" >/dev/null

export MAILHAUL_FROM_PASSWORD=pw-src MAILHAUL_TO_PASSWORD=pw-dst
src_url="imaps://ann@127.0.0.1:$src_IMAPS_PORT"

# check NAME EXPECTED-EXIT ARGS... : runs the check, keeps NAME.json and NAME.txt
check() {
    local name=$1 want=$2 rc=0; shift 2
    "$mh" check --ca-file "$MH_CA_FILE" --json "$@" >"$MH_TMP/$name.json" 2>"$MH_TMP/$name.err" || rc=$?
    [ "$rc" = "$want" ] || mh_fail "$name: exit $rc, expected $want: $(cat "$MH_TMP/$name.err" "$MH_TMP/$name.json")"
    rc=0
    "$mh" check --ca-file "$MH_CA_FILE" "$@" >"$MH_TMP/$name.txt" 2>&1 || rc=$?
    [ "$rc" = "$want" ] || mh_fail "$name (text): exit $rc, expected $want"
}
# expect NAME PYTHON-CONDITION over the report r
expect() {
    python3 - "$MH_TMP/$1.json" "$2" <<'PY' || mh_fail "$1: $2 does not hold: $(cat "$MH_TMP/$1.json")"
import json, sys
r = json.load(open(sys.argv[1]))
codes = [p["code"] for p in r["problems"]]
blocking = [p["code"] for p in r["problems"] if p["severity"] == "blocking"]
if not eval(sys.argv[2]):
    sys.exit(1)
PY
}

mh_log "a good pair"
check good 0 --from "$src_url" --to "imaps://ann@127.0.0.1:$dst_IMAPS_PORT"
expect good 'r["verdict"] == "ok" and r["source"]["messages"] == 4 and r["target"]["messages"] == 0'
expect good 'all(s["status"] == "ok" for s in r["source"]["steps"].values())'
expect good 'r["source"]["tls"]["verified"] and r["target"]["tls"]["protocol"].startswith("TLS")'
expect good '[(f["name"], f["target"], f["special_use"]) for f in r["source"]["folders"]] == [("INBOX", "INBOX", None), ("Sent Items", "Sent", "\\Sent")]'
expect good 'r["source"]["largest"] > 500000 and r["estimate_s"] >= 0'
grep -q "Verdict: OK" "$MH_TMP/good.txt" || mh_fail "good: no OK verdict in the text report"
grep -q "Sent Items (\\\\Sent) -> Sent" "$MH_TMP/good.txt" || mh_fail "good: mapping not shown: $(cat "$MH_TMP/good.txt")"

mh_log "wrong source password"
MAILHAUL_FROM_PASSWORD=wrong check badpw 3 --from "$src_url" --to "imaps://ann@127.0.0.1:$dst_IMAPS_PORT"
expect badpw 'blocking == ["AUTH_FAILED"] and r["source"]["steps"]["login"]["status"] == "failed"'
expect badpw 'r["source"]["steps"]["tls"]["status"] == "ok" and r["target"]["steps"]["login"]["status"] == "ok"'

mh_log "unknown destination user"
check nouser 3 --from "$src_url" --to "imaps://zed@127.0.0.1:$dst_IMAPS_PORT"
grep -q "destination mailbox not found: create it on the new server first" "$MH_TMP/nouser.txt" ||
    mh_fail "nouser: the fix is not named: $(cat "$MH_TMP/nouser.txt")"
expect nouser 'r["target"]["steps"]["login"]["status"] == "failed" and blocking == ["DEST_MAILBOX_MISSING"]'

mh_log "closed port"
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
check closed 3 --from "$src_url" --to "imaps://ann@127.0.0.1:$closed"
expect closed 'blocking == ["CONNECT_REFUSED"] and r["target"]["steps"]["connect"]["status"] == "failed"'
grep -q "BLOCKING CONNECT_REFUSED" "$MH_TMP/closed.txt" || mh_fail "closed: $(cat "$MH_TMP/closed.txt")"

mh_log "expired and self-signed certificates"
check expired 3 --from "$src_url" --to "imaps://ann@127.0.0.1:$expired_IMAPS_PORT"
expect expired 'blocking == ["TLS_CERT_EXPIRED"] and r["target"]["steps"]["tls"]["status"] == "failed"'
check selfsigned 3 --from "$src_url" --to "imaps://ann@127.0.0.1:$selfsigned_IMAPS_PORT"
expect selfsigned 'blocking == ["TLS_CERT_SELF_SIGNED"] and r["target"]["steps"]["connect"]["status"] == "ok"'

mh_log "a target quota smaller than the source, and an APPENDLIMIT below the largest message"
check small 3 --from "$src_url" --to "imaps://ann@127.0.0.1:$small_IMAPS_PORT"
expect small '"OVER_QUOTA" in blocking and r["target"]["quota"]["limit"] == 1024 * 1024'
expect small '"MSG_TOO_BIG" in codes and r["too_big"]["count"] == 3 and r["too_big"]["limit"] == 300000'
expect small 'all(m["folder"] == "INBOX" and m["size"] > 300000 for m in r["too_big"]["messages"])'
grep -q "raise the quota of ann" "$MH_TMP/small.txt" || mh_fail "small: no quota fix: $(cat "$MH_TMP/small.txt")"

mh_log "a target that already holds mail"
mh_mailbox add-message --server "$MH_TMP/dst" --user ann --password pw-dst --seed 1 --size-kb 500 >/dev/null
check holds 0 --from "$src_url" --to "imaps://ann@127.0.0.1:$dst_IMAPS_PORT"
expect holds 'r["verdict"] == "warnings" and r["target"]["messages"] == 1 and blocking == []'
grep -q "already holds 1 message in INBOX" "$MH_TMP/holds.txt" || mh_fail "holds: $(cat "$MH_TMP/holds.txt")"

mh_log "usage errors"
rc=0; "$mh" check --from "$src_url" >/dev/null 2>&1 || rc=$?
mh_assert_eq "$rc" 2 "exit status without --to"
echo "PASS: check verdicts for good, wrong password, unknown user, closed port, certificates, quota, size limit"
