#!/usr/bin/env bash
# Cluster mode (mailhaul-coordinator + mailhaul-worker daemons, `mailhaul migrate --redis`)
# with a 50 MB message: it arrives byte-identical while the worker's peak RSS stays far
# below the message size, because bodies stream from the source's FETCH literal into the
# target's APPEND literal. Also: the daemons stop cleanly on SIGTERM.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
for b in mailhaul mailhaul-coordinator mailhaul-worker; do mh_require_build_bin "$b"; done

mh_start_dovecot src
mh_start_dovecot dst --sep /
mh_adduser src bob pw1
mh_adduser dst bob pw2
mh_start_redis
mh_log "appending a 50 MB message and a few small ones"
mh_mailbox add-message --server "$MH_TMP/src" --user bob --password pw1 --size-kb 51200 --flags '\Seen' >/dev/null
for i in 1 2 3; do
    mh_mailbox add-message --server "$MH_TMP/src" --user bob --password pw1 --seed "$i" --flags '\Flagged' >/dev/null
done
mh_mailbox snapshot --server "$MH_TMP/src" --user bob --password pw1 --json "$MH_TMP/src.json" >/dev/null

"$MH_BUILD_DIR/mailhaul" keygen "$MH_TMP/seal.key" >/dev/null
export MAILHAUL_SEAL_KEY_FILE=$MH_TMP/seal.key MAILHAUL_REDIS=$REDIS_URL MAILHAUL_LOG_FORMAT=text
# ASan keeps freed memory in quarantine; keep it small so RSS shows what we really hold.
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:quarantine_size_mb=1:malloc_context_size=5
"$MH_BUILD_DIR/mailhaul-coordinator" 2>"$MH_TMP/coordinator.log" &
coord=$!
mh_register_pid $coord
"$MH_BUILD_DIR/mailhaul-worker" --concurrency 1 2>"$MH_TMP/worker.log" &
worker=$!
mh_register_pid $worker

export MAILHAUL_FROM_PASSWORD=pw1 MAILHAUL_TO_PASSWORD=pw2
"$MH_BUILD_DIR/mailhaul" migrate --redis "$REDIS_URL" --from "imap://bob@127.0.0.1:$src_IMAP_PORT" \
    --to "imaps://bob@127.0.0.1:$dst_IMAPS_PORT" --ca-file "$MH_CA_FILE" --json --quiet >"$MH_TMP/run.json" ||
    { cat "$MH_TMP/worker.log" "$MH_TMP/coordinator.log" >&2; mh_fail "migrate exited $?"; }
python3 - "$MH_TMP/run.json" <<'PY' || mh_fail "unexpected summary"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["state"] == "done", d
assert d["messages"]["copied"] == 4, d["messages"]
assert d["bytes"]["copied"] > 50 * 1024 * 1024, d["bytes"]
PY

# Every copied message is recorded with its target UID (APPENDUID), for retries to check.
done_values=$("$MH_SUPPORT_DIR/redis-ctl" cli "$MH_TMP/redis" --no-raw EVAL \
    "local r = {} for _, k in ipairs(redis.call('KEYS', 'mh:job:*:done')) do for _, v in ipairs(redis.call('HVALS', k)) do r[#r+1] = v end end return r" 0)
mh_assert_eq "$(grep -cE '"c[0-9]+"' <<<"$done_values")" 4 "copied messages recorded with their target UID"

# Redis holds metadata only: no password, no message content, anywhere in it.
"$MH_SUPPORT_DIR/redis-ctl" cli "$MH_TMP/redis" --no-raw EVAL "
local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  out[#out+1] = k
  local t = redis.call('TYPE', k).ok
  if t == 'hash' then for _, v in ipairs(redis.call('HGETALL', k)) do out[#out+1] = v end
  elseif t == 'stream' then
    for _, e in ipairs(redis.call('XRANGE', k, '-', '+')) do for _, v in ipairs(e[2]) do out[#out+1] = v end end
  elseif t == 'zset' then for _, v in ipairs(redis.call('ZRANGE', k, 0, -1)) do out[#out+1] = v end
  elseif t == 'string' then out[#out+1] = redis.call('GET', k) end
end
return out" 0 >"$MH_TMP/redis-dump.txt"
[ "$(wc -l <"$MH_TMP/redis-dump.txt")" -gt 10 ] || mh_fail "the Redis dump looks empty"
grep -qE 'pw1|pw2' "$MH_TMP/redis-dump.txt" && mh_fail "a plaintext password is in Redis"
grep -qiE 'Subject:|Content-Type:|^.{0,4}From: ' "$MH_TMP/redis-dump.txt" && mh_fail "message content is in Redis"

hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$worker/status")
mh_log "worker peak RSS: $((hwm_kb / 1024)) MB"
limit_kb=$((25 * 1024))
if grep -q libasan "/proc/$worker/maps" 2>/dev/null; then
    limit_kb=$((45 * 1024)) # the sanitizer runtime's own shadow memory and allocator
fi
[ "$hwm_kb" -lt "$limit_kb" ] || mh_fail "worker peak RSS $((hwm_kb / 1024)) MB for a 50 MB message (limit $((limit_kb / 1024)) MB)"

mh_mailbox snapshot --server "$MH_TMP/dst" --user bob --password pw2 --json "$MH_TMP/dst.json" >/dev/null
mh_mailbox compare "$MH_TMP/src.json" "$MH_TMP/dst.json" || mh_fail "target differs"

mh_log "SIGTERM stops the daemons with status 0"
kill -TERM $worker $coord
wait $worker || mh_fail "worker exited $? on SIGTERM"
wait $coord || mh_fail "coordinator exited $? on SIGTERM"
grep -q pw1 "$MH_TMP/worker.log" "$MH_TMP/coordinator.log" && mh_fail "a password is in the logs"
echo "PASS: 50 MB message copied byte-identical with worker peak RSS $((hwm_kb / 1024)) MB"
