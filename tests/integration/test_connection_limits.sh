#!/usr/bin/env bash
# Fleet-wide connection limits: six worker threads in three processes share one account
# whose row says max_connections=2; counted at the target server, never more than two
# connections are open at once, and the mailbox still arrives complete.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
mh_require_cmd ss
for b in mailhaul mailhaul-coordinator mailhaul-worker; do mh_require_build_bin "$b"; done
mh=$MH_BUILD_DIR/mailhaul

mh_start_dovecot src
mh_start_dovecot dst
mh_start_redis
mh_adduser src hal pw1
mh_adduser dst hal pw2
sleep 1.1 # Dovecot notices a changed passwd-file by its mtime, in whole seconds
for i in $(seq 30); do
    mh_mailbox add-message --server "$MH_TMP/src" --user hal --password pw1 --seed "$i" --size-kb 60 >/dev/null
done
mh_mailbox snapshot --server "$MH_TMP/src" --user hal --password pw1 --json "$MH_TMP/src.json" >/dev/null

"$mh" keygen "$MH_TMP/seal.key" >/dev/null
export MAILHAUL_SEAL_KEY_FILE=$MH_TMP/seal.key MAILHAUL_REDIS=$REDIS_URL MAILHAUL_LOG_FORMAT=text
MAILHAUL_BATCH_MESSAGES=2 "$MH_BUILD_DIR/mailhaul-coordinator" 2>>"$MH_TMP/coordinator.log" &
mh_register_pid $!
for w in 1 2 3; do
    "$MH_BUILD_DIR/mailhaul-worker" --concurrency 2 --name "w$w" 2>>"$MH_TMP/worker$w.log" &
    mh_register_pid $!
done
sleep 0.5

# count established client connections to the target's IMAPS port, every 20 ms
( while :; do ss -Htn state established "( dport = :$dst_IMAPS_PORT )" | wc -l; sleep 0.02; done ) >"$MH_TMP/conns" &
sampler=$!
mh_register_pid $sampler

printf 'source_host,source_port,source_user,source_password,destination_host,destination_port,destination_user,destination_password,options\n127.0.0.1,%s,hal,pw1,127.0.0.1,%s,hal,pw2,max_connections=2\n' \
    "$src_IMAPS_PORT" "$dst_IMAPS_PORT" >"$MH_TMP/jobs.csv"
"$mh" submit "$MH_TMP/jobs.csv" --ca-file "$MH_CA_FILE" >/dev/null
for i in $(seq 600); do
    state=$("$mh" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])')
    [ "$state" = done ] && break
    sleep 0.2
done
kill $sampler
mh_assert_eq "$state" done "job state"
max=$(sort -n "$MH_TMP/conns" | tail -1)
mh_log "most connections seen at the target at once: $max"
[ "$max" -le 2 ] || mh_fail "$max connections to one account, limit 2"
[ "$max" -ge 1 ] || mh_fail "the sampler saw no connection at all"
mh_mailbox snapshot --server "$MH_TMP/dst" --user hal --password pw2 --json "$MH_TMP/dst.json" >/dev/null
mh_mailbox compare "$MH_TMP/src.json" "$MH_TMP/dst.json" >/dev/null || mh_fail "target differs"
echo "PASS: at most $max connections to the account (limit 2) with 6 worker threads"
