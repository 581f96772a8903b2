#!/usr/bin/env bash
# Transfer records: `mailhaul records` lists each transfer (source and target with protocol,
# user and server, start and end, messages and bytes copied, skipped, failed, the error),
# never a password; `mailhaul forget JOB` and `forget --user ADDRESS` delete a job's every key
# in Redis and say what they deleted; a job that has not ended cannot be forgotten.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
for b in mailhaul mailhaul-coordinator mailhaul-worker; do mh_require_build_bin "$b"; done
mh=$MH_BUILD_DIR/mailhaul

mh_start_dovecot src
mh_start_dovecot dst
mh_start_redis
"$mh" keygen "$MH_TMP/seal.key" >/dev/null
export MAILHAUL_SEAL_KEY_FILE=$MH_TMP/seal.key MAILHAUL_REDIS=$REDIS_URL MAILHAUL_LOG_FORMAT=text
"$MH_BUILD_DIR/mailhaul-coordinator" 2>>"$MH_TMP/coordinator.log" &
mh_register_pid $!
"$MH_BUILD_DIR/mailhaul-worker" 2>>"$MH_TMP/worker.log" &
mh_register_pid $!
rcli() { "$MH_SUPPORT_DIR/redis-ctl" cli "$MH_TMP/redis" "$@"; }

for u in ann bob; do
    mh_adduser src "$u" "secret-src-$u"
    mh_adduser dst "$u" "secret-dst-$u"
done
sleep 1.1 # Dovecot notices a changed passwd-file by its mtime, in whole seconds
for i in 1 2 3; do
    mh_mailbox add-message --server "$MH_TMP/src" --user ann --password secret-src-ann --seed "$i" >/dev/null
done
mh_mailbox add-message --server "$MH_TMP/src" --user bob --password secret-src-bob --seed 7 >/dev/null

migrate() { # USER SRC-PASSWORD -> prints the job id
    MAILHAUL_FROM_PASSWORD=$2 MAILHAUL_TO_PASSWORD=secret-dst-$1 "$mh" migrate --redis "$REDIS_URL" \
        --from "imaps://$1@127.0.0.1:$src_IMAPS_PORT" --to "imaps://$1@127.0.0.1:$dst_IMAPS_PORT" \
        --ca-file "$MH_CA_FILE" --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"])'
}
ann=$(migrate ann secret-src-ann)
bob=$(migrate bob secret-src-bob)
bad=$(migrate ann wrong-password || true)

mh_log "records"
"$mh" records --json >"$MH_TMP/records.json"
python3 - "$MH_TMP/records.json" "$ann" "$bob" "$bad" "$src_IMAPS_PORT" <<'PY' || mh_fail "records are wrong: $(cat "$MH_TMP/records.json")"
import json, sys
recs = {r["job"]: r for r in json.load(open(sys.argv[1]))}
ann, bob, bad, port = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
a = recs[ann]
assert a["state"] == "done" and a["messages"] == 3 and a["skipped"] == 0 and a["failed"] == 0, a
assert a["bytes"] > 0 and a["source"] == "imaps://ann@127.0.0.1:%s" % port, a
assert a["started"].endswith("Z") and a["ended"].endswith("Z") and a["error"] is None, a
assert recs[bob]["messages"] == 1, recs[bob]
assert recs[bad]["state"] == "failed" and recs[bad]["error"] == "AUTH_FAILED", recs[bad]
PY
"$mh" records >"$MH_TMP/records.txt"
grep -q "$ann  done" "$MH_TMP/records.txt" || mh_fail "text records: $(cat "$MH_TMP/records.txt")"
if grep -rq "secret-" "$MH_TMP/records.json" "$MH_TMP/records.txt"; then mh_fail "a password is in the records"; fi
[ -z "$(rcli --scan --pattern '*' | xargs -r -n1 "$MH_SUPPORT_DIR/redis-ctl" cli "$MH_TMP/redis" DUMP 2>/dev/null | grep -a secret- || true)" ] ||
    mh_fail "a password is in Redis"

mh_log "forget JOB"
"$mh" forget "$ann" >"$MH_TMP/forget.out"
grep -q "forgot $ann: [1-9][0-9]* keys deleted" "$MH_TMP/forget.out" || mh_fail "forget said: $(cat "$MH_TMP/forget.out")"
left=$(rcli --scan --pattern "*$ann*" | wc -l)
mh_assert_eq "$left" 0 "keys of the forgotten job left in Redis"
[ -z "$(rcli ZSCORE mh:index "$ann")" ] || mh_fail "the job is still in mh:index"
rc=0; "$mh" forget "$ann" >/dev/null 2>&1 || rc=$?
mh_assert_eq "$rc" 2 "forgetting an unknown job"

mh_log "forget --user"
"$mh" forget --user BOB >"$MH_TMP/forget-user.out"
grep -q "forgot $bob" "$MH_TMP/forget-user.out" || mh_fail "forget --user: $(cat "$MH_TMP/forget-user.out")"
mh_assert_eq "$(rcli --scan --pattern "*$bob*" | wc -l)" 0 "keys of bob's job left"
"$mh" records --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert [x["job"] for x in r] == [sys.argv[1]], r' "$bad" ||
    mh_fail "records after forgetting: $("$mh" records)"

mh_log "retention: a coordinator forgets jobs that ended more than --record-ttl days ago"
old=$(migrate bob secret-src-bob)
recent=$(migrate ann secret-src-ann)
rcli HSET "mh:job:$old" ended 1000 >/dev/null       # ended in 1970
rcli ZADD mh:index 1000 "$old" >/dev/null
"$MH_BUILD_DIR/mailhaul-coordinator" --name retention --record-ttl 1 2>>"$MH_TMP/coordinator2.log" &
mh_register_pid $!
for i in $(seq 100); do [ -z "$(rcli --scan --pattern "mh:job:$old*")" ] && break; sleep 0.1; done
[ -z "$(rcli --scan --pattern "mh:job:$old*")" ] || mh_fail "an expired job was not forgotten: $(rcli --scan --pattern "mh:job:$old*")"
grep -q "forgot 1 jobs that ended more than 1 days ago" "$MH_TMP/coordinator2.log" || mh_fail "no log of the expiry"
[ "$(rcli HGET "mh:job:$recent" state)" = done ] || mh_fail "a recent job was forgotten"

mh_log "a job that has not ended cannot be forgotten"
rcli HSET "mh:job:j-0000000000000001" state running >/dev/null
rc=0; "$mh" forget j-0000000000000001 >"$MH_TMP/forget-running.out" 2>&1 || rc=$?
mh_assert_eq "$rc" 2 "forgetting a running job"
grep -q "cancel it first" "$MH_TMP/forget-running.out" || mh_fail "$(cat "$MH_TMP/forget-running.out")"
echo "PASS: records listed without passwords; forget by job and by user leaves no key; retention forgets old jobs"
