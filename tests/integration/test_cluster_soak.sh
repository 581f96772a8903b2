#!/usr/bin/env bash
# Crash safety under fire: 3 workers migrate 20 mailboxes while workers are killed with
# SIGKILL every 1-3 s (each replaced by a new one under a new name), the coordinator is
# killed and restarted, and Redis (append-only file, fsync always) is killed and restarted
# on the same socket while everybody is connected. In the end every job must be done, every
# target must hold exactly its source's messages (a multiset of byte-identical messages per
# folder, with flags and INTERNALDATE: nothing missing, no duplicate), and each job's totals
# must be exact (copied = the source's message count, nothing skipped or failed: the targets
# start empty).
#
# The mailboxes: the generated folder tree of mailbox.py, 21-57 messages each, with
# byte-identical twins and triplets, one Message-ID on different messages (also across
# folders), messages without a Message-ID (identical ones too) and 1-3 messages of
# 200-500 KB, so that appends take a while and kills land in the middle of batches.
#
# Knobs (environment): MH_SOAK_SEED (the chaos schedule; printed), MH_SOAK_USERS (20),
# MH_SOAK_TIMEOUT (seconds for the migration under fire, 240), MH_SOAK_STALL (seconds
# without any progress that count as a hang, 60), MH_SOAK_BATCH (messages per batch, 10),
# MH_SOAK_CLAIM_IDLE (seconds, 3), MH_SOAK_CHAOS=0 (no kills at all: the baseline),
# MH_SOAK_LEASE_WORKAROUND=1 (see the note at start_worker).
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
for b in mailhaul mailhaul-coordinator mailhaul-worker; do mh_require_build_bin "$b"; done
mh=$MH_BUILD_DIR/mailhaul

n_users=${MH_SOAK_USERS:-20}
timeout_s=${MH_SOAK_TIMEOUT:-240}
stall_s=${MH_SOAK_STALL:-60}
chaos=${MH_SOAK_CHAOS:-1}
batch=${MH_SOAK_BATCH:-10}
claim_idle=${MH_SOAK_CLAIM_IDLE:-3}
lease_workaround=${MH_SOAK_LEASE_WORKAROUND:-0}
seed=${MH_SOAK_SEED:-$(( 10#$(date +%N) % 100000 ))}
RANDOM=$seed
t_begin=$SECONDS
mh_log "soak: seed $seed (rerun with MH_SOAK_SEED=$seed), $n_users mailboxes, batches of $batch," \
    "claim idle ${claim_idle}s$([ "$lease_workaround" = 1 ] && echo ", lease workaround on")"

logs=$MH_TMP/logs snaps=$MH_TMP/snap
mkdir -p "$logs" "$snaps"

mh_start_dovecot src --sep /
mh_start_dovecot dst
mh_start_redis --aof=always
"$mh" keygen "$MH_TMP/seal.key" >/dev/null
export MAILHAUL_SEAL_KEY_FILE=$MH_TMP/seal.key MAILHAUL_REDIS=$REDIS_URL MAILHAUL_LOG_FORMAT=text
export MAILHAUL_CLAIM_IDLE=$claim_idle
worker_opts=(--concurrency 2)
if "$MH_BUILD_DIR/mailhaul-worker" --help 2>&1 | grep -q -- --claim-idle; then
    worker_opts+=(--claim-idle "$claim_idle")
else
    mh_log "note: mailhaul-worker has no --claim-idle; relying on MAILHAUL_CLAIM_IDLE=$claim_idle"
fi
rcli() { "$MH_SUPPORT_DIR/redis-ctl" cli "$MH_TMP/redis" "$@"; }

# ---------------------------------------------------------------------------------------
# The mailboxes
# ---------------------------------------------------------------------------------------
users=()
for i in $(seq 1 "$n_users"); do users+=("$(printf 'u%02d' "$i")"); done
for u in "${users[@]}"; do
    mh_adduser src "$u" "src-$u"
    mh_adduser dst "$u" "dst-$u"
done
sleep 1.1 # Dovecot notices a changed passwd-file by its mtime, in whole seconds

# mbx PARALLEL < TASKS : runs mailbox.py command lines given one JSON object a line
# ({"argv": [...], "out": FILE, "ok_rc": [...]}: the command's stdout and stderr go to
# FILE), PARALLEL at a time, all in one Python process: one interpreter start instead of
# one per mailbox. Fails, printing the first failed task's output, when a task exits with
# a status other than 0 and its ok_rc.
cat >"$MH_TMP/mbx.py" <<'EOF'
import importlib.util, json, sys, threading
from concurrent.futures import ThreadPoolExecutor
spec = importlib.util.spec_from_file_location("mh_mailbox_tool", sys.argv[1])
mb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mb)
tasks = [json.loads(line) for line in sys.stdin if line.strip()]
local = threading.local()


class PerThread:
    """sys.stdout and sys.stderr writing to the current task's file."""
    def write(self, text):
        return getattr(local, "out", sys.__stderr__).write(text)

    def flush(self):
        getattr(local, "out", sys.__stderr__).flush()


def run(task):
    with open(task["out"], "w", encoding="utf-8") as out:
        local.out = out
        try:
            rc = mb.main(task["argv"])
        except SystemExit as e:
            if not isinstance(e.code, int) and e.code is not None:
                print(e.code)
                rc = 2
            else:
                rc = e.code
        except Exception as e:  # a bug in the tool: show it
            print("mbx: %s: %r" % (type(e).__name__, e))
            rc = 2
        return rc or 0


real_out = sys.__stdout__
sys.stdout = sys.stderr = PerThread()
with ThreadPoolExecutor(max_workers=int(sys.argv[2])) as pool:
    rcs = list(pool.map(run, tasks))
sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
bad = [(t, rc) for t, rc in zip(tasks, rcs) if rc != 0 and rc not in t.get("ok_rc", [])]
for t, rc in bad[:1]:
    with open(t["out"], encoding="utf-8") as f:
        real_out.write("mailbox.py %s: exit %s\n%s" % (" ".join(t["argv"]), rc, f.read()))
sys.exit(1 if bad else 0)
EOF
mbx() { python3 "$MH_TMP/mbx.py" "$MH_SUPPORT_DIR/mailbox.py" "$1"; }
task() { # OUT [ok:RC] ARGS... : prints one task line for mbx (arguments without control characters)
    local out=$1 ok= a sep=
    shift
    case ${1:-} in ok:*) ok=${1#ok:}; shift ;; esac
    printf '{"out": "%s", "ok_rc": [%s], "argv": [' "$(json_esc "$out")" "$ok"
    for a in "$@"; do printf '%s"%s"' "$sep" "$(json_esc "$a")"; sep=', '; done
    printf ']}\n'
}
json_esc() { local s=${1//\\/\\\\}; printf '%s' "${s//\"/\\\"}"; }
# Every mailbox: 10-38 generated messages + 7 edge cases + 3-9 in duplicate groups + 1-3
# large ones.
fill_tasks() {
    local u i
    for u in "${users[@]}"; do
        i=$((10#${u#u}))
        task "$logs/fill-$u.out" fill --server "$MH_TMP/src" --user "$u" --password "src-$u" \
            --generated --seed $((100 + i)) --count $((10 + i * 17 % 29)) --dups $((1 + i % 4)) \
            --large $((1 + i % 3)) --large-kb 200-500
    done
}
snapshot_tasks() { # SIDE
    local u
    for u in "${users[@]}"; do
        task "$logs/snapshot-$u-$1.out" snapshot --server "$MH_TMP/$1" --user "$u" --password "$1-$u" \
            --json "$snaps/$u-$1.json"
    done
}
mh_log "filling $n_users source mailboxes"
t_phase=$SECONDS
fill_tasks | mbx 4 || mh_fail "could not fill the source mailboxes"
snapshot_tasks src | mbx 4 || mh_fail "could not snapshot the sources"
python3 - "$snaps" "$MH_TMP/sources.json" $((SECONDS - t_phase)) "${users[@]}" <<'EOF' >&2 || mh_fail "the source mailboxes are not as planned"
import collections, json, sys
d, out_file, secs, users = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
s = {}
for u in users:
    snap = json.load(open("%s/%s-src.json" % (d, u)))
    msgs = [m for f in snap["folders"].values() for m in f["messages"]]
    by_hash = collections.Counter(m["sha256"] for m in msgs)
    s[u] = {"messages": len(msgs),
            "bytes": sum(m["size"] for m in msgs),
            "large": sum(1 for m in msgs if m["size"] >= 200 * 1024),
            "no_msgid": sum(1 for m in msgs if not m["message_id"]),
            "identical_copies": sum(c - 1 for c in by_hash.values() if c > 1)}
    assert 20 <= s[u]["messages"] <= 60, (u, s[u])
json.dump(s, open(out_file, "w"))
t = lambda k: sum(v[k] for v in s.values())
print("[soak] sources (%ss): %d mailboxes, %d messages (%d-%d each), %.1f MB, %d of 200+ KB, "
      "%d without Message-ID, %d byte-identical extra copies" % (
          secs, len(s), t("messages"), min(v["messages"] for v in s.values()),
          max(v["messages"] for v in s.values()), t("bytes") / 1048576, t("large"),
          t("no_msgid"), t("identical_copies")))
EOF

# ---------------------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------------------
coord_pid= coord_starts=0
start_coordinator() {
    coord_starts=$((coord_starts + 1))
    echo "==== start $coord_starts at $(date +%H:%M:%S.%N | cut -c1-12)" >>"$logs/coordinator.log"
    "$MH_BUILD_DIR/mailhaul-coordinator" --batch-messages "$batch" 2>>"$logs/coordinator.log" &
    coord_pid=$!
    mh_register_pid "$coord_pid"
}

# Worker slots 0..2, each holding one live worker process. Every replacement gets a name
# never used before (a new pod, a new host-pid), as the issue asks.
# Note: the connection leases of a killed worker stay taken for their TTL (5 minutes,
# imap_connect.h), under holder names of the dead worker: up to 4 per account and side, 40
# per server. A few kills while threads work on one account use up its 4 slots and its
# job stalls for minutes (the stall detector then fails the test, and the diagnostics
# count the leases of killed workers). MH_SOAK_LEASE_WORKAROUND=1 steps around this to
# test the rest: a replacement takes the name of a dead worker (not the one just killed),
# so it owns that worker's leases again and the server-wide count stays bounded, and every
# row allows 64 connections per account (max_connections=64).
worker_pid=() worker_name=() dead_names=() n_workers_started=0
start_worker() { # SLOT
    local name
    if [ "$lease_workaround" = 1 ] && [ ${#dead_names[@]} -gt 0 ]; then
        name=${dead_names[0]}
        dead_names=("${dead_names[@]:1}")
    else
        n_workers_started=$((n_workers_started + 1))
        name=w$n_workers_started
    fi
    echo "==== start at $(date +%H:%M:%S.%N | cut -c1-12)" >>"$logs/worker-$name.log"
    "$MH_BUILD_DIR/mailhaul-worker" "${worker_opts[@]}" --name "$name" 2>>"$logs/worker-$name.log" &
    worker_pid[$1]=$!
    worker_name[$1]=$name
    mh_register_pid "$!"
}

# reap PID : waits for a process we killed (or that died) and forgets it; its exit status
# goes to $reaped. The shell's own "Killed" notice goes to /dev/null.
reaped=0
reap() {
    reaped=0
    { wait "$1" || reaped=$?; } 2>/dev/null
    mh_unregister_pid "$1"
}

alive() { _mh_pid_alive "$1"; }

start_coordinator
for s in 0 1 2; do start_worker "$s"; done

csv=$MH_TMP/jobs.csv
row_opts=
[ "$lease_workaround" = 1 ] && row_opts=";max_connections=64"
{
    echo "source_host,source_port,source_security,source_user,source_password,destination_host,destination_port,destination_security,destination_user,destination_password,options"
    for u in "${users[@]}"; do
        echo "127.0.0.1,$src_IMAPS_PORT,tls,$u,src-$u,127.0.0.1,$dst_IMAPS_PORT,tls,$u,dst-$u,ca_file=$MH_CA_FILE$row_opts"
    done
} >"$csv"

# jobs_state : prints the jobs' states and messages done, e.g. "running=1 done=19
# msgs=790/794", from `mailhaul status --json` (awk: it runs twice a second; a job's own
# "messages" object comes first after its "state", its folders' follow);
# exit 0 only when all jobs exist and are final.
jobs_state() {
    local out
    if ! out=$(timeout 20 "$mh" status --json 2>/dev/null); then
        echo "status unreadable"
        return 2
    fi
    printf '%s\n' "$out" |
        grep -o '"state":"[a-z]*"\|"messages":{"total":[0-9]*,"copied":[0-9]*,"skipped":[0-9]*,"failed":[0-9]*' |
        awk -F'[":{},]+' -v want="$n_users" '
            $2 == "state" { n[$3]++; jobs++; job_level = 1 }
            $2 == "messages" && job_level { total += $4; done += $6 + $8 + $10; job_level = 0 }
            END {
                split("queued planning running paused done partial failed cancelled", order, " ")
                line = ""
                for (i = 1; i <= 8; i++)
                    if (n[order[i]] > 0) line = line order[i] "=" n[order[i]] " "
                printf "%smsgs=%d/%d\n", (jobs ? line : "no jobs "), done, total
                final = n["done"] + n["partial"] + n["failed"] + n["cancelled"]
                exit (jobs == want && final == want) ? 0 : 1
            }'
}

diagnostics() {
    {
        echo "---- mailhaul status"
        timeout 20 "$mh" status || true
        echo "---- redis: pending batches, retries, streams"
        rcli XPENDING mh:batches workers 2>&1 || true
        rcli XINFO GROUPS mh:batches 2>&1 | paste -sd' ' || true
        echo "mh:retry: $(rcli ZCARD mh:retry 2>&1)  mh:results length: $(rcli XLEN mh:results 2>&1)"
        rcli XPENDING mh:results coordinators 2>&1 | paste -sd' ' || true
        local live=" ${worker_name[*]} " k h dead
        for k in $(rcli --scan --pattern 'mh:limit:*' 2>/dev/null); do
            dead=0
            for h in $(rcli ZRANGE "$k" 0 -1); do
                case $h in w[0-9]*-[0-9]*-*) case $live in *" ${h%-*-*} "*) ;; *) dead=$((dead + 1)) ;; esac ;; esac
            done
            echo "$k: $(rcli ZCARD "$k") leases ($dead of killed workers): $(rcli ZRANGE "$k" 0 -1 | paste -sd' ')"
            case $k in
                mh:limit:acct:*)
                    [ "$dead" -ge 4 ] && [ "$lease_workaround" != 1 ] &&
                        echo "  ^ an account whose 4 connection slots are all held by killed workers: its batches wait for the leases to lapse" ;;
            esac
        done
        echo "---- last lines of the coordinator log"
        tail -n 25 "$logs/coordinator.log"
        local f
        for f in $(ls -t "$logs"/worker-*.log | head -n 4); do
            echo "---- last lines of $f"
            tail -n 12 "$f"
        done
    } >&2
}

# ---------------------------------------------------------------------------------------
# Under fire
# ---------------------------------------------------------------------------------------
mh_log "submitting $n_users jobs; 3 workers, concurrency 2; the chaos begins"
"$mh" submit "$csv" --json >"$MH_TMP/jobs.json" 2>"$logs/submit.err" || mh_fail "submit: $(cat "$logs/submit.err")"
t_submit=$SECONDS
kills_worker=0 kills_coord=0 kills_redis=0 self_exits=0 redis_down_s=0 step=0
unexpected=()
last_state=

# exit_text STATUS : "status 1", or "signal SEGV" for 139.
exit_text() {
    if [ "$1" -gt 128 ] && [ "$1" -lt 160 ]; then echo "signal SIG$(kill -l $(($1 - 128)))"; else echo "status $1"; fi
}

# check_alive : a daemon that died without being killed by us is a finding (reported at the
# end, and the test fails); it is replaced so the run goes on.
check_alive() {
    local s why name
    for s in 0 1 2; do
        alive "${worker_pid[$s]}" && continue
        reap "${worker_pid[$s]}"
        why=$(exit_text "$reaped") name=${worker_name[$s]}
        self_exits=$((self_exits + 1))
        unexpected+=("worker $name died by itself ($why) at $(date +%T); log: worker-$name.log")
        mh_log "!! worker $name died by itself ($why); its last words: $(tail -n 2 "$logs/worker-$name.log" | paste -sd'|')"
        start_worker "$s"
        dead_names+=("$name")
    done
    if ! alive "$coord_pid"; then
        reap "$coord_pid"
        why=$(exit_text "$reaped")
        self_exits=$((self_exits + 1))
        unexpected+=("coordinator died by itself ($why) at $(date +%T); log: coordinator.log")
        mh_log "!! coordinator died by itself ($why); its last words: $(tail -n 2 "$logs/coordinator.log" | paste -sd'|')"
        start_coordinator
    fi
}

# pause_or_done MIN_DS MAX_DS : waits a random 0.1 s multiple in [MIN, MAX] deciseconds,
# polling the jobs; returns 0 early when they are all final.
pause_or_done() {
    local ds=$(($1 + RANDOM % ($2 - $1 + 1))) deadline
    deadline=$(( $(date +%s%N) / 100000000 + ds ))
    while :; do
        if last_state=$(jobs_state); then return 0; fi
        [ $(( $(date +%s%N) / 100000000 )) -ge "$deadline" ] && return 1
        sleep 0.5
    done
}

kill_worker() {
    local s=$((RANDOM % 3)) pid name
    pid=${worker_pid[$s]} name=${worker_name[$s]}
    kill -KILL "$pid" 2>/dev/null || true
    reap "$pid"
    echo "==== SIGKILL at $(date +%H:%M:%S.%N | cut -c1-12)" >>"$logs/worker-$name.log"
    kills_worker=$((kills_worker + 1))
    start_worker "$s"
    dead_names+=("$name") # after the start: a replacement never takes the name just killed
    mh_log "kill -9 worker $name -> ${worker_name[$s]} [$last_state]"
}

kill_coordinator() {
    kill -KILL "$coord_pid" 2>/dev/null || true
    reap "$coord_pid"
    echo "==== SIGKILL at $(date +%H:%M:%S.%N | cut -c1-12)" >>"$logs/coordinator.log"
    kills_coord=$((kills_coord + 1))
    sleep "0.$((RANDOM % 8 + 1))"
    start_coordinator
    mh_log "kill -9 coordinator, restarted [$last_state]"
}

kill_redis() {
    local down=$((10 + RANDOM % 11)) jobs_before jobs_after # 1-2 s
    jobs_before=$(rcli ZCARD mh:index)
    mh_kill_redis
    kills_redis=$((kills_redis + 1))
    sleep "$((down / 10)).$((down % 10))"
    mh_restart_redis
    redis_down_s=$((redis_down_s + down))
    jobs_after=$(rcli ZCARD mh:index)
    [ "$jobs_after" = "$jobs_before" ] ||
        mh_fail "Redis lost data over a restart with AOF ($jobs_before jobs before, $jobs_after after): a test setup problem"
    mh_log "kill -9 redis, back after $((down / 10)).$((down % 10)) s on the same socket [$last_state]"
}

give_up() {
    diagnostics
    for line in "${unexpected[@]+"${unexpected[@]}"}"; do echo "  $line" >&2; done
    mh_fail "$* (last: $last_state; $kills_worker worker, $kills_coord coordinator," \
        "$kills_redis redis kills, $self_exits unexpected exits)"
}

# The schedule: the first event kills the coordinator (it is probably planning), the third
# kills Redis; afterwards every 7th event the coordinator and every 11th Redis, the others
# a worker, 1-3 s apart.
progress_mark= progress_at=$SECONDS
while :; do
    if [ $((SECONDS - t_submit)) -ge "$timeout_s" ]; then
        give_up "the jobs did not all finish within ${timeout_s}s under fire"
    fi
    if [ $step = 0 ]; then
        pause_or_done 5 12 && break
    else
        pause_or_done 10 30 && break
    fi
    case $last_state in
        *msgs=*)
            if [ "$last_state" != "$progress_mark" ]; then
                progress_mark=$last_state progress_at=$SECONDS
            elif [ $((SECONDS - progress_at)) -ge "$stall_s" ]; then
                give_up "no progress at all for ${stall_s}s: a hang"
            fi ;;
    esac
    check_alive
    step=$((step + 1))
    [ "$chaos" = 0 ] && continue
    if [ $step = 1 ] || [ $((step % 7)) = 0 ]; then
        kill_coordinator
    elif [ $step = 3 ] || [ $((step % 11)) = 0 ]; then
        kill_redis
    else
        kill_worker
    fi
done
t_fire=$((SECONDS - t_submit))
mh_log "all jobs final after ${t_fire}s under fire: $last_state"
mh_log "kills: $kills_worker workers, $kills_coord coordinator, $kills_redis redis ($((redis_down_s / 10)).$((redis_down_s % 10)) s down in all); $self_exits unexpected exits"
check_alive

# Late duplicates would come from batches still pending or waiting: let them drain first.
quiet=0
for i in $(seq 1 $(( (4 * claim_idle + 10) * 2 ))); do
    pending=$(rcli XPENDING mh:batches workers | head -n 1)
    retry=$(rcli ZCARD mh:retry)
    if [ "$pending" = 0 ] && [ "$retry" = 0 ]; then quiet=1; break; fi
    sleep 0.5
done
[ $quiet = 1 ] || mh_log "note: still $pending batches pending and $retry waiting for a retry after the jobs ended"
for s in 0 1 2; do kill -TERM "${worker_pid[$s]}" 2>/dev/null || true; done
for s in 0 1 2; do
    reap "${worker_pid[$s]}"
    [ "$reaped" = 0 ] || unexpected+=("worker ${worker_name[$s]} ended with $(exit_text "$reaped") on SIGTERM")
done
kill -TERM "$coord_pid" 2>/dev/null || true
reap "$coord_pid"
[ "$reaped" = 0 ] || unexpected+=("coordinator ended with $(exit_text "$reaped") on SIGTERM")

# ---------------------------------------------------------------------------------------
# The verdict
# ---------------------------------------------------------------------------------------
mh_log "comparing every target with its source"
t_phase=$SECONDS
snapshot_tasks dst | mbx 4 || mh_fail "could not snapshot the targets"
"$mh" status --json >"$MH_TMP/status.json"
for u in "${users[@]}"; do
    task "$logs/compare-$u.out" ok:1 compare -v "$snaps/$u-src.json" "$snaps/$u-dst.json"
done | mbx 1 || mh_fail "compare did not run"
dedup_skips=$(cat "$logs"/worker-*.log | grep -c "already copied" || true)
verdict=0
mh_log "targets read and compared in $((SECONDS - t_phase))s"
python3 - "$MH_TMP/sources.json" "$MH_TMP/status.json" "$snaps" "$logs" "${users[@]}" <<'EOF' || verdict=1
import json, re, sys
sources = json.load(open(sys.argv[1]))
jobs = json.load(open(sys.argv[2]))
snaps, logs, users = sys.argv[3], sys.argv[4], sys.argv[5:]

by_user = {}
for j in jobs:
    m = re.search(r"//([^@/]+)@", j["target"] or "")
    by_user.setdefault(m.group(1) if m else "?", []).append(j)
problems = []
print("  %-4s %5s | %-7s %7s %6s %7s %6s | %7s %7s %5s" % (
    "user", "src", "state", "planned", "copied", "skipped", "failed", "missing", "extra", "dupes"))
for u in users:
    src = sources[u]["messages"]
    js = by_user.get(u, [])
    j = js[0] if len(js) == 1 else None
    m = j["messages"] if j else {"total": -1, "copied": -1, "skipped": -1, "failed": -1}
    # the multiset comparison, per folder (mailbox.py compare -v wrote the details)
    table = open("%s/compare-%s.out" % (logs, u)).read()
    tot = re.search(r"^TOTAL\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", table, re.M)
    missing, extra = (int(tot.group(3)), int(tot.group(4))) if tot else (-1, -1)
    identical = "RESULT: identical" in table
    # duplicates: a byte-identical message more often on the target than on the source
    s = json.load(open("%s/%s-src.json" % (snaps, u)))
    d = json.load(open("%s/%s-dst.json" % (snaps, u)))
    def counts(snap):
        c = {}
        for f in snap["folders"].values():
            for msg in f["messages"]:
                c[msg["sha256"]] = c.get(msg["sha256"], 0) + 1
        return c
    sc, dc = counts(s), counts(d)
    dupes = sum(max(0, n - sc.get(h, 0)) for h, n in dc.items())
    print("  %-4s %5d | %-7s %7d %6d %7d %6d | %7d %7d %5d" % (
        u, src, j["state"] if j else "%d jobs" % len(js), m["total"], m["copied"], m["skipped"],
        m["failed"], missing, extra, dupes))
    why = []
    if j is None:
        why.append("%d jobs for this mailbox" % len(js))
    else:
        if j["state"] != "done":
            why.append("state %s" % j["state"])
        if m["total"] != src:
            why.append("planned %d of %d messages" % (m["total"], src))
        if m["copied"] + m["skipped"] != m["total"]:
            why.append("copied+skipped %d != planned %d" % (m["copied"] + m["skipped"], m["total"]))
        if m["failed"] != 0:
            why.append("%d failed" % m["failed"])
        if m["copied"] != src:
            why.append("copied %d, the source has %d" % (m["copied"], src))
    if not identical:
        why.append("target differs: %d missing, %d extra (%d duplicates)" % (missing, extra, dupes))
    if why:
        problems.append((u, why))
if problems:
    print()
    for u, why in problems:
        print("  %s: %s" % (u, "; ".join(why)))
        table = open("%s/compare-%s.out" % (logs, u)).read()
        for line in table.splitlines():
            row = re.match(r"^(.*?)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)(\s+\S.*)?$", line)
            if line.startswith("    ") or (row and not line.startswith("TOTAL") and (
                    row.group(4) != "0" or row.group(5) != "0" or row.group(6))):
                print("      " + line)
    sys.exit(1)
EOF

mh_log "story: ${t_fire}s under fire; killed $kills_worker workers, the coordinator $kills_coord times," \
    "Redis $kills_redis times; $n_workers_started worker processes in all; $self_exits unexpected exits;" \
    "$dedup_skips messages found already copied on redelivery (worker logs); total $((SECONDS - t_begin))s"
if [ ${#unexpected[@]} -gt 0 ]; then
    for line in "${unexpected[@]}"; do echo "  $line" >&2; done
    verdict=1
fi
if [ "$chaos" != 0 ] && { [ $kills_coord -lt 1 ] || [ $kills_redis -lt 1 ] || [ $kills_worker -lt 3 ]; }; then
    mh_fail "the migration ended before the chaos was complete ($kills_worker worker, $kills_coord coordinator," \
        "$kills_redis redis kills): make the mailboxes bigger"
fi
[ $verdict = 0 ] || mh_fail "the targets or the totals are not exact after the kills (table above; logs in $logs with MH_KEEP_TMP=fail)"
echo "PASS: $n_users mailboxes exact after $kills_worker worker kills, $kills_coord coordinator and $kills_redis Redis restarts"
