#!/usr/bin/env bash
# "Sync now": after a migration, `mailhaul sync JOB` copies only what is new on the source
# (new messages in existing folders, new folders); a folder that did not change costs one
# STATUS and is not read (asserted from the worker's IMAP transcript); a source folder
# recreated with a new UIDVALIDITY is compared in full and nothing is copied twice.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
for b in mailhaul mailhaul-coordinator mailhaul-worker; do mh_require_build_bin "$b"; done
mh=$MH_BUILD_DIR/mailhaul

mh_start_dovecot src
mh_start_dovecot dst
mh_start_redis
mh_adduser src ann pw-src
mh_adduser dst ann pw-dst
sleep 1.1 # Dovecot notices a changed passwd-file by its mtime, in whole seconds
add() { # FOLDER SEED
    mh_mailbox add-message --server "$MH_TMP/src" --user ann --password pw-src --folder "$1" --seed "$2" >/dev/null
}
mh_mailbox create-folder --server "$MH_TMP/src" --user ann --password pw-src --folder Work >/dev/null
for i in 1 2 3; do add INBOX "$i"; done
for i in 11 12; do add Work "$i"; done

"$mh" keygen "$MH_TMP/seal.key" >/dev/null
export MAILHAUL_SEAL_KEY_FILE=$MH_TMP/seal.key MAILHAUL_REDIS=$REDIS_URL MAILHAUL_LOG_FORMAT=text
export MAILHAUL_FROM_PASSWORD=pw-src MAILHAUL_TO_PASSWORD=pw-dst
trace=$MH_TMP/trace
start_coordinator() {
    "$MH_BUILD_DIR/mailhaul-coordinator" 2>>"$MH_TMP/coordinator.log" &
    coordinator=$!
    mh_register_pid $coordinator
}
start_coordinator
MAILHAUL_TRACE_FILE=$trace "$MH_BUILD_DIR/mailhaul-worker" 2>>"$MH_TMP/worker.log" &
mh_register_pid $!
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
compare() {
    mh_mailbox snapshot --server "$MH_TMP/src" --user ann --password pw-src --json "$MH_TMP/src.json" >/dev/null
    mh_mailbox snapshot --server "$MH_TMP/dst" --user ann --password pw-dst --json "$MH_TMP/dst.json" >/dev/null
    mh_mailbox compare "$MH_TMP/src.json" "$MH_TMP/dst.json" >/dev/null || mh_fail "target differs from source ($1)"
}

mh_log "migrate"
"$mh" migrate --redis "$REDIS_URL" --from "imap://ann@127.0.0.1:$src_IMAP_PORT" \
    --to "imap://ann@127.0.0.1:$dst_IMAP_PORT" --ca-file "$MH_CA_FILE" --json --quiet >"$MH_TMP/run1.json" ||
    mh_fail "migrate exited $?"
job=$(json "$MH_TMP/run1.json" 'd["job"]')
mh_assert_eq "$(json "$MH_TMP/run1.json" 'd["messages"]["copied"]')" 5 "copied by the migration"
compare "after the migration"

mh_log "new mail in INBOX and a new folder: sync copies exactly those"
add INBOX 4
add INBOX 5
mh_mailbox create-folder --server "$MH_TMP/src" --user ann --password pw-src --folder New >/dev/null
add New 21
: >"$trace"
"$mh" sync "$job" --json >"$MH_TMP/sync1.json" || mh_fail "sync exited $?"
mh_assert_eq "$(json "$MH_TMP/sync1.json" 'd["state"]')" done "state after the sync"
mh_assert_eq "$(json "$MH_TMP/sync1.json" 'd["messages"]["copied"]')" 8 "copied in all after the sync"
mh_assert_eq "$(json "$MH_TMP/sync1.json" 'd["messages"]["total"]')" 8 "messages in all after the sync"
compare "after the sync"
# the unchanged folder: one STATUS, never selected nor fetched
grep -q '^source > .* STATUS Work (UIDNEXT UIDVALIDITY)' "$trace" || mh_fail "no STATUS of the unchanged folder"
if grep -Eq '^source > .* (EXAMINE|SELECT) Work$' "$trace"; then mh_fail "the unchanged folder was read"; fi
grep -Eq '^source > .* EXAMINE INBOX$' "$trace" || mh_fail "the changed INBOX was not read"

mh_log "a sync with nothing new copies nothing"
"$mh" sync "$job" --json >"$MH_TMP/sync2.json" || mh_fail "second sync exited $?"
mh_assert_eq "$(json "$MH_TMP/sync2.json" 'd["messages"]["copied"]')" 8 "copied in all after an empty sync"

mh_log "a source folder recreated (new UIDVALIDITY): compared in full, nothing twice"
python3 - "$src_IMAP_PORT" <<'PY'
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.starttls()
m.login("ann", "pw-src")
m.delete("Work")
m.create("Work")
m.logout()
PY
sleep 1.1 # a new UIDVALIDITY is a timestamp
for i in 11 12; do add Work "$i"; done
add Work 13
"$mh" sync "$job" --json >"$MH_TMP/sync3.json" || mh_fail "third sync exited $?"
mh_assert_eq "$(json "$MH_TMP/sync3.json" 'd["messages"]["copied"]')" 9 "copied in all after the recreated folder"
json "$MH_TMP/sync3.json" 'd["warning"]' | grep -q "UIDVALIDITY" || mh_fail "the summary does not say the folder was compared in full"
compare "after the recreated folder"
mh_log "history: one line per run with what it copied"
"$mh" history "$job" --json >"$MH_TMP/history.json" || mh_fail "history exited $?"
python3 - "$MH_TMP/history.json" <<'PY' || mh_fail "history: $(cat "$MH_TMP/history.json")"
import json, sys
runs = json.load(open(sys.argv[1]))
assert [r["copied"] for r in runs] == [5, 3, 0, 1], runs
assert all(r["state"] == "done" and r["ended"] >= r["started"] for r in runs), runs
assert runs[3]["skipped"] == 2, runs   # the recreated folder's two old messages, found on the target
PY
"$mh" history "$job" | grep -q "^4 " || mh_fail "history text: $("$mh" history "$job")"

mh_log "auto-sync every 2 s, through a coordinator restart; --off stops it"
copied() { "$mh" status "$job" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["messages"]["copied"])'; }
wait_copied() { # N
    local i
    for i in $(seq 150); do [ "$(copied)" = "$1" ] && return 0; sleep 0.2; done
    mh_fail "auto-sync did not copy up to $1 messages (copied: $(copied))"
}
"$mh" autosync "$job" --every 2s | grep -q "auto-sync every" || mh_fail "autosync did not answer"
"$mh" status "$job" | grep -q "auto-sync every 2s, next in" || mh_fail "status does not show the schedule: $("$mh" status "$job")"
"$mh" status "$job" --json | python3 -c 'import json,sys; a=json.load(sys.stdin)[0]["autosync"]; assert a["every_s"] == 2 and a["next_ms"] > 0, a' ||
    mh_fail "status --json does not show the schedule"
add INBOX 6
wait_copied 10
kill -TERM "$coordinator"; wait "$coordinator" || true
start_coordinator                  # the schedule lives in Redis
add INBOX 7
wait_copied 11
compare "after auto-syncs"
[ "$(grep -c "auto-syncs started" "$MH_TMP/coordinator.log")" -ge 2 ] || mh_fail "no auto-sync was logged"
"$mh" autosync "$job" --off | grep -q "auto-sync off" || mh_fail "autosync --off did not answer"
add INBOX 8
sleep 4
mh_assert_eq "$(copied)" 11 "copied after auto-sync was turned off"
"$mh" status "$job" --json | python3 -c 'import json,sys; assert json.load(sys.stdin)[0]["autosync"] is None' ||
    mh_fail "status still shows a schedule"
mh_log "failures: a sync retries only transient ones; --retry-failed retries all"
mh_adduser src cy pw-src
mh_adduser dst cy pw-dst 1          # 1 MB quota
sleep 1.1
for i in 31 32 33; do
    mh_mailbox add-message --server "$MH_TMP/src" --user cy --password pw-src --seed "$i" --size-kb 400 >/dev/null
done
rc=0
"$mh" migrate --redis "$REDIS_URL" --skip-check --ca-file "$MH_CA_FILE" --from "imap://cy@127.0.0.1:$src_IMAP_PORT" \
    --to "imap://cy@127.0.0.1:$dst_IMAP_PORT" --json --quiet >"$MH_TMP/cy1.json" || rc=$?
cy=$(json "$MH_TMP/cy1.json" 'd["job"]')
mh_assert_eq "$(json "$MH_TMP/cy1.json" 'd["state"]')" partial "the over-quota migration"
cy_copied=$(json "$MH_TMP/cy1.json" 'd["messages"]["copied"]')
mh_adduser dst cy pw-dst 100        # raised
sleep 1.1
"$mh" sync "$cy" --json >"$MH_TMP/cy2.json" || true
mh_assert_eq "$(json "$MH_TMP/cy2.json" 'd["messages"]["copied"]')" "$cy_copied" "copied by a sync (OVER_QUOTA is not transient)"
"$mh" sync "$cy" --retry-failed --json >"$MH_TMP/cy3.json" || mh_fail "sync --retry-failed exited $?"
mh_assert_eq "$(json "$MH_TMP/cy3.json" 'd["state"]')" done "state after --retry-failed"
mh_assert_eq "$(json "$MH_TMP/cy3.json" 'd["messages"]["copied"]')" 3 "copied after --retry-failed"
mh_mailbox snapshot --server "$MH_TMP/dst" --user cy --password pw-dst --json "$MH_TMP/cy-dst.json" >/dev/null
mh_assert_eq "$(json "$MH_TMP/cy-dst.json" 'len(d["folders"]["INBOX"]["messages"])')" 3 "cy's target (no duplicates)"

echo "PASS: sync copies only what is new, reads no unchanged folder, survives a UIDVALIDITY change; auto-sync runs on schedule across a coordinator restart and stops"
