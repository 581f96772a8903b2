#!/usr/bin/env bash
# Operating jobs in a cluster (coordinator and worker daemons, `mailhaul --redis`):
#  - the target's quota runs out: the job ends partial, the failures are listed with the
#    reason; after the quota is raised `mailhaul requeue` completes it without duplicates;
#  - pause: workers park the job's batches and nothing is copied; resume finishes it;
#  - cancel stops a job;
#  - a target that is down for a moment: the batches fail transiently and are retried
#    automatically after a backoff, and the job completes.
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
export MAILHAUL_BATCH_MESSAGES=5
# The coordinator plans here (the workers do not), so that jobs are planned while no worker
# runs: the pause and cancel cases need batches waiting in the queue.
"$MH_BUILD_DIR/mailhaul-coordinator" --planners 1 2>>"$MH_TMP/coordinator.log" &
mh_register_pid $!

start_worker() { # [CONCURRENCY]
    "$MH_BUILD_DIR/mailhaul-worker" --planners 0 --concurrency "${1:-2}" 2>>"$MH_TMP/worker.log" &
    worker=$!
    mh_register_pid $worker
}
stop_worker() { kill -TERM "$worker"; wait "$worker" || mh_fail "worker exited $? on SIGTERM"; }
job_field() { # JOB PYTHON-EXPR over the status JSON object d
    "$mh" status "$1" --json | python3 -c 'import json,sys; d=json.load(sys.stdin)[0]; print(eval(sys.argv[1]))' "$2"
}
wait_state() { # JOB STATE...
    local job=$1 i s; shift
    for i in $(seq 300); do
        s=$(job_field "$job" 'd["state"]')
        for want in "$@"; do [ "$s" = "$want" ] && return 0; done
        sleep 0.2
    done
    "$mh" failures "$job" >&2 || true
    mh_fail "job $job stayed $s, expected $*"
}
fill() { # USER COUNT
    mh_adduser src "$1" pw-src
    sleep 1.1 # Dovecot's auth reads a changed users file at most once a second
    for i in $(seq "$2"); do
        mh_mailbox add-message --server "$MH_TMP/src" --user "$1" --password pw-src --seed "$i" --size-kb 100 >/dev/null
    done
}
compare() { # USER
    mh_mailbox snapshot --server "$MH_TMP/src" --user "$1" --password pw-src --json "$MH_TMP/$1-src.json" >/dev/null
    mh_mailbox snapshot --server "$MH_TMP/dst" --user "$1" --password pw-dst --json "$MH_TMP/$1-dst.json" >/dev/null
    mh_mailbox compare "$MH_TMP/$1-src.json" "$MH_TMP/$1-dst.json" >/dev/null || mh_fail "$1: target differs from source"
}
submit() { # USER [MIGRATE-OPTION...] : starts `mailhaul migrate --redis` in the background; sets job and follower
    local user=$1 i; shift
    MAILHAUL_FROM_PASSWORD=pw-src MAILHAUL_TO_PASSWORD=pw-dst "$mh" migrate --redis "$REDIS_URL" \
        --from "imaps://$user@127.0.0.1:$src_IMAPS_PORT" --to "imaps://$user@127.0.0.1:$dst_IMAPS_PORT" \
        --ca-file "$MH_CA_FILE" --json "$@" >"$MH_TMP/$user.json" 2>"$MH_TMP/$user.err" &
    follower=$!
    mh_register_pid $follower
    job=
    for i in $(seq 100); do
        # the background shell may not have opened its stderr file yet (seen under load)
        job=$(sed -n 's/^job \(j-[0-9a-f]*\) submitted$/\1/p' "$MH_TMP/$user.err" 2>/dev/null || true)
        [ -n "$job" ] && return 0
        sleep 0.1
    done
    mh_fail "no job submitted for $user: $(cat "$MH_TMP/$user.err")"
}

mh_log "quota runs out, then requeue"
# One thread: Dovecot checks a quota against the usage when an APPEND starts, so
# concurrent APPENDs could overshoot it together.
fill quota 24                        # 24 x ~140 KB
mh_adduser dst quota pw-dst 1        # 1 MB
start_worker 1
# The health check that opens every job sees the source will not fit and stops it at once.
submit quota
rc=0; wait $follower || rc=$?
mh_assert_eq "$rc" 3 "exit status of a job the health check stopped"
mh_assert_eq "$(job_field "$job" 'd["state"]')" failed "state after a blocking check"
mh_assert_eq "$(job_field "$job" 'd["error"]["code"]')" OVER_QUOTA "the check's blocking problem"
mh_assert_eq "$(job_field "$job" 'd["check"]["verdict"]')" blocked "the check's verdict kept with the job"
mh_assert_eq "$(job_field "$job" 'd["messages"]["copied"]')" 0 "copied after a blocking check"
"$mh" summary "$job" >"$MH_TMP/blocked-summary.txt"
grep -q "Health check (blocked)" "$MH_TMP/blocked-summary.txt" &&
    grep -q "BLOCKING OVER_QUOTA .*but the source holds" "$MH_TMP/blocked-summary.txt" &&
    grep -q "fix: raise the quota" "$MH_TMP/blocked-summary.txt" || mh_fail "summary of a blocked job: $(cat "$MH_TMP/blocked-summary.txt")"
# Past the check, the quota runs out mid-migration.
submit quota --skip-check
rc=0; wait $follower || rc=$?
mh_assert_eq "$rc" 1 "exit status of a partial migration"
mh_assert_eq "$(job_field "$job" 'd["state"]')" partial "state after the quota ran out"
failed=$(job_field "$job" 'd["messages"]["failed"]')
[ "$failed" -gt 0 ] || mh_fail "no failures recorded"
"$mh" failures "$job" --csv >"$MH_TMP/failures.csv"
[ "$(grep -c OVER_QUOTA "$MH_TMP/failures.csv")" = "$failed" ] || mh_fail "failures not explained: $(cat "$MH_TMP/failures.csv")"
grep -q "raise the quota" "$MH_TMP/failures.csv" || mh_fail "no fix in the failure list"
"$mh" summary "$job" >"$MH_TMP/partial-summary.txt"
grep -q "OVER_QUOTA ($failed): the destination mailbox is full" "$MH_TMP/partial-summary.txt" &&
    grep -q "mailhaul requeue $job" "$MH_TMP/partial-summary.txt" ||
    mh_fail "summary of a partial job: $(cat "$MH_TMP/partial-summary.txt")"
mh_adduser dst quota pw-dst 100      # raised
sleep 1.1                            # Dovecot's auth reads a changed users file at most once a second
"$mh" requeue "$job" 2>&1 | grep -q "requeued" && mh_fail "requeue without passwords should refuse (credentials were purged)"
MAILHAUL_FROM_PASSWORD=pw-src MAILHAUL_TO_PASSWORD=pw-dst "$mh" requeue "$job" --error OVER_QUOTA |
    grep -q "$failed failed messages requeued" || mh_fail "requeue did not take the failures"
wait_state "$job" done
mh_assert_eq "$(job_field "$job" 'd["messages"]["failed"]')" 0 "failures after the requeue"
mh_assert_eq "$(job_field "$job" 'd["messages"]["copied"]')" 24 "copied after the requeue"
compare quota

mh_log "pause parks the batches; resume finishes"
stop_worker
fill pausing 10
mh_adduser dst pausing pw-dst
submit pausing
wait_state "$job" running
"$mh" pause "$job" | grep -q paused || mh_fail "pause did not answer"
start_worker
sleep 2
mh_assert_eq "$(job_field "$job" 'd["state"]')" paused "state while paused"
mh_assert_eq "$(job_field "$job" 'd["messages"]["copied"]')" 0 "copied while paused"
"$mh" resume "$job" | grep -q running || mh_fail "resume did not answer"
wait $follower || mh_fail "the resumed job did not end well"
compare pausing

mh_log "cancel"
stop_worker
fill cancelled 3
mh_adduser dst cancelled pw-dst
submit cancelled
wait_state "$job" running
"$mh" cancel "$job" | grep -q cancelled || mh_fail "cancel did not answer"
rc=0; wait $follower || rc=$?
[ "$rc" != 0 ] || mh_fail "a cancelled job reported success"
"$mh" resume "$job" >/dev/null 2>&1 && mh_fail "a cancelled job was resumed"

mh_log "target down for a moment: automatic retry"
fill retried 10
mh_adduser dst retried pw-dst
submit retried
wait_state "$job" running
conf=$dst_DOVECOT_DIR/dovecot.conf
mh_stop_dovecot dst
start_worker
for i in $(seq 100); do grep -q "retry in" "$MH_TMP/coordinator.log" && break; sleep 0.1; done
grep -q "retry in" "$MH_TMP/coordinator.log" || mh_fail "no retry was scheduled"
dovecot -F -c "$conf" 2>>"$MH_TMP/dst-restart.log" &   # same ports as before
mh_register_pid $!
wait $follower || mh_fail "the retried job did not end well: $(cat "$MH_TMP/retried.json")"
mh_assert_eq "$(job_field "$job" 'd["messages"]["copied"]')" 10 "copied after retries"
compare retried
stop_worker
echo "PASS: quota + requeue, pause/resume, cancel and automatic retries"
