#!/usr/bin/env bash
# A worker dies at the worst moment: the target has just stored an APPEND (a MULTIAPPEND
# of a whole batch) and nothing has been reported yet. Another worker claims the batch
# after the idle time, finds those messages on the target (they are marked in flight in
# Redis) and reports them copied instead of appending them again: the target ends equal
# to the source, with no duplicate, and the totals are exact.
# The crash is injected with MAILHAUL_FAULTS=append-ok:N (common/fault.h), which makes the
# worker exit like a SIGKILL right after the Nth APPEND's OK.
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
"$MH_BUILD_DIR/mailhaul-coordinator" --batch-messages 8 2>>"$MH_TMP/coordinator.log" &
mh_register_pid $!

mh_adduser src ann pw-src
mh_adduser dst ann pw-dst
sleep 1.1 # Dovecot notices a changed passwd-file by its mtime, in whole seconds
# generated mail includes byte-identical twins, with and without Message-ID
mh_mailbox fill --server "$MH_TMP/src" --user ann --password pw-src --generated --count 40 --seed 5 >/dev/null
mh_mailbox snapshot --server "$MH_TMP/src" --user ann --password pw-src --json "$MH_TMP/src.json" >/dev/null
total=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(len(f["messages"]) for f in d["folders"].values()))' "$MH_TMP/src.json")

mh_log "worker 1 exits right after its third APPEND is stored"
MAILHAUL_FAULTS=append-ok:3 "$MH_BUILD_DIR/mailhaul-worker" --concurrency 1 --name doomed \
    --claim-idle 1 2>>"$MH_TMP/worker1.log" &
doomed=$!
mh_register_pid $doomed

MAILHAUL_FROM_PASSWORD=pw-src MAILHAUL_TO_PASSWORD=pw-dst "$mh" migrate --redis "$REDIS_URL" \
    --from "imaps://ann@127.0.0.1:$src_IMAPS_PORT" --to "imaps://ann@127.0.0.1:$dst_IMAPS_PORT" \
    --ca-file "$MH_CA_FILE" --json >"$MH_TMP/ann.json" 2>"$MH_TMP/ann.err" &
follower=$!
mh_register_pid $follower

rc=0
wait $doomed || rc=$?
mh_assert_eq "$rc" 137 "exit status of the worker with the injected crash"
grep -q "fault append-ok" "$MH_TMP/worker1.log" || mh_fail "the fault did not fire: $(tail -5 "$MH_TMP/worker1.log")"
job=$(sed -n 's/^job \(j-[0-9a-f]*\) submitted$/\1/p' "$MH_TMP/ann.err")
[ -n "$job" ] || mh_fail "no job id in: $(cat "$MH_TMP/ann.err")"
inflight=$("$MH_SUPPORT_DIR/redis-ctl" cli "$MH_TMP/redis" HLEN "mh:job:$job:inflight")
[ "$inflight" -gt 0 ] || mh_fail "the crash left nothing in flight (HLEN $inflight): the test proves nothing"
mh_log "$inflight messages on the target but unreported"

mh_log "worker 2 claims the batch and must not append those again"
"$MH_BUILD_DIR/mailhaul-worker" --concurrency 2 --name rescuer --claim-idle 1 2>>"$MH_TMP/worker2.log" &
mh_register_pid $!
rc=0
wait $follower || rc=$?
[ "$rc" = 0 ] || mh_fail "migration exited $rc: $(tail -20 "$MH_TMP/ann.err"; tail -20 "$MH_TMP/worker2.log")"

found=$(grep -c "was already copied" "$MH_TMP/worker2.log" || true)
[ "$found" -gt 0 ] || mh_fail "worker 2 did not look for the earlier copies: $(tail -20 "$MH_TMP/worker2.log")"
mh_log "worker 2 found $found earlier copies"

mh_mailbox snapshot --server "$MH_TMP/dst" --user ann --password pw-dst --json "$MH_TMP/dst.json" >/dev/null
mh_mailbox compare "$MH_TMP/src.json" "$MH_TMP/dst.json" >"$MH_TMP/compare.out" 2>&1 ||
    mh_fail "target differs from source: $(head -20 "$MH_TMP/compare.out")"

python3 - "$MH_TMP/ann.json" "$total" <<'EOF' || mh_fail "totals are not exact"
import json, sys
s = json.load(open(sys.argv[1]))
total = int(sys.argv[2])
m = s["messages"]
got = (m["copied"], m["skipped"], m["failed"], m["total"])
if got != (total, 0, 0, total):
    sys.exit("copied/skipped/failed/messages = %s, expected (%d, 0, 0, %d)" % (got, total, total))
EOF
left=$("$MH_SUPPORT_DIR/redis-ctl" cli "$MH_TMP/redis" HLEN "mh:job:$job:inflight")
mh_assert_eq "$left" 0 "messages still in flight after the job"
echo "PASS: $total messages, $inflight appended by the crashed worker were found, not duplicated"
