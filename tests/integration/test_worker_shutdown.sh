#!/usr/bin/env bash
# SIGTERM stops a worker within its grace period: a batch that does not finish in time
# (here a transfer that stalls forever, injected with MAILHAUL_FAULTS=body-stall:N) has its
# connections cut and goes back to the queue at once (no wait for the claim timeout); the
# worker exits 0. Another worker then completes the job: the target equals the source and
# the totals are exact.
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
"$MH_BUILD_DIR/mailhaul-coordinator" --batch-messages 10 2>>"$MH_TMP/coordinator.log" &
mh_register_pid $!

mh_adduser src ann pw-src
mh_adduser dst ann pw-dst
sleep 1.1 # Dovecot notices a changed passwd-file by its mtime, in whole seconds
for i in $(seq 24); do
    mh_mailbox add-message --server "$MH_TMP/src" --user ann --password pw-src --seed "$i" >/dev/null
done
mh_mailbox snapshot --server "$MH_TMP/src" --user ann --password pw-src --json "$MH_TMP/src.json" >/dev/null

# the claim timeout is long: a batch must come back because it was handed back, not claimed
MAILHAUL_FAULTS=body-stall:15 "$MH_BUILD_DIR/mailhaul-worker" --concurrency 1 --name stopping \
    --shutdown-grace 1 --claim-idle 600 2>>"$MH_TMP/worker1.log" &
stopping=$!
mh_register_pid $stopping

MAILHAUL_FROM_PASSWORD=pw-src MAILHAUL_TO_PASSWORD=pw-dst "$mh" migrate --redis "$REDIS_URL" \
    --from "imaps://ann@127.0.0.1:$src_IMAPS_PORT" --to "imaps://ann@127.0.0.1:$dst_IMAPS_PORT" \
    --ca-file "$MH_CA_FILE" --json >"$MH_TMP/ann.json" 2>"$MH_TMP/ann.err" &
follower=$!
mh_register_pid $follower

for i in $(seq 200); do
    grep -q "fault body-stall" "$MH_TMP/worker1.log" && break
    sleep 0.1
done
grep -q "fault body-stall" "$MH_TMP/worker1.log" || mh_fail "the transfer never stalled: $(tail -5 "$MH_TMP/worker1.log")"

mh_log "SIGTERM to the worker stuck in a batch (grace period 1 s)"
t0=$(date +%s%N)
kill -TERM $stopping
rc=0
for i in $(seq 100); do kill -0 $stopping 2>/dev/null || break; sleep 0.1; done
kill -0 $stopping 2>/dev/null && mh_fail "the worker is still running 10 s after SIGTERM"
wait $stopping || rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
mh_assert_eq "$rc" 0 "exit status after SIGTERM"
grep -q "handed back" "$MH_TMP/worker1.log" || mh_fail "nothing was handed back: $(tail -10 "$MH_TMP/worker1.log")"
mh_log "worker stopped in $ms ms and handed its batch back"

"$MH_BUILD_DIR/mailhaul-worker" --concurrency 2 --name finisher 2>>"$MH_TMP/worker2.log" &
mh_register_pid $!
rc=0
for i in $(seq 300); do kill -0 $follower 2>/dev/null || break; sleep 0.1; done
kill -0 $follower 2>/dev/null && mh_fail "the job did not finish within 30 s of a new worker: $(tail -20 "$MH_TMP/worker2.log")"
wait $follower || rc=$?
mh_assert_eq "$rc" 0 "exit status of the migration"

mh_mailbox snapshot --server "$MH_TMP/dst" --user ann --password pw-dst --json "$MH_TMP/dst.json" >/dev/null
mh_mailbox compare "$MH_TMP/src.json" "$MH_TMP/dst.json" >"$MH_TMP/compare.out" 2>&1 ||
    mh_fail "target differs from source: $(head -20 "$MH_TMP/compare.out")"
python3 - "$MH_TMP/ann.json" <<'PY' || mh_fail "totals are not exact"
import json, sys
m = json.load(open(sys.argv[1]))["messages"]
got = (m["copied"], m["skipped"], m["failed"], m["total"])
if got != (24, 0, 0, 24):
    sys.exit("copied/skipped/failed/total = %s, expected (24, 0, 0, 24)" % (got,))
PY
echo "PASS: stopped in $ms ms with a stalled batch; it was handed back and completed elsewhere"
