#!/usr/bin/env bash
# A sync of a folder that grew reads only what is new: on the source the messages from the
# recorded next UID on, on the target only the messages no source message accounts for
# (asserted from the transcript: no "UID FETCH 1:*" on either side), and still decides as
# a full comparison would (multiset): a new message identical to an old one is copied, one
# delivered to the target as well is skipped, and a message expunged and delivered again
# finds its old copy.
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
add() { # SIDE SEED
    mh_mailbox add-message --server "$MH_TMP/$1" --user ann --password "pw-$1" --folder INBOX --seed "$2" >/dev/null
}
for i in 1 2 3 4 5 6; do add src $i; done

"$mh" keygen "$MH_TMP/seal.key" >/dev/null
export MAILHAUL_SEAL_KEY_FILE=$MH_TMP/seal.key MAILHAUL_REDIS=$REDIS_URL MAILHAUL_LOG_FORMAT=text
export MAILHAUL_FROM_PASSWORD=pw-src MAILHAUL_TO_PASSWORD=pw-dst
trace=$MH_TMP/trace
"$MH_BUILD_DIR/mailhaul-coordinator" 2>>"$MH_TMP/coordinator.log" &
mh_register_pid $!
MAILHAUL_TRACE_FILE=$trace "$MH_BUILD_DIR/mailhaul-worker" 2>>"$MH_TMP/worker.log" &
mh_register_pid $!
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

"$mh" migrate --redis "$REDIS_URL" --from "imap://ann@127.0.0.1:$src_IMAP_PORT" \
    --to "imap://ann@127.0.0.1:$dst_IMAP_PORT" --ca-file "$MH_CA_FILE" --json --quiet >"$MH_TMP/run1.json" ||
    mh_fail "migrate exited $?"
job=$(json "$MH_TMP/run1.json" 'd["job"]')
mh_assert_eq "$(json "$MH_TMP/run1.json" 'd["messages"]["copied"]')" 6 "copied by the migration"

mh_log "new mail: a twin of an old message, one delivered to both, one expunged and delivered again, one plain"
add src 1                                                   # identical to an old one: copied
add src 7; add dst 7                                        # on the target already: skipped
mh_mailbox delete-message --server "$MH_TMP/src" --user ann --password pw-src --folder INBOX --index 1 >/dev/null
add src 2                                                   # seed 2 again: its old copy is there: skipped
add src 8                                                   # copied
: >"$trace"
"$mh" sync "$job" --json >"$MH_TMP/sync.json" || mh_fail "sync exited $?"
mh_assert_eq "$(json "$MH_TMP/sync.json" 'd["messages"]["copied"]')" 8 "copied in all (6 + the twin + seed 8)"
mh_assert_eq "$(json "$MH_TMP/sync.json" 'd["messages"]["skipped"]')" 2 "skipped (on the target already)"

mh_log "only the new is read"
if grep -Eq '^(source|target) > [^ ]+ UID FETCH 1:\*' "$trace"; then
    mh_fail "a whole folder was listed: $(grep -E '^(source|target) > [^ ]+ UID FETCH 1:\*' "$trace" | head -2)"
fi
grep -Eq '^source > [^ ]+ UID FETCH 7:\* \(UID RFC822.SIZE' "$trace" || mh_fail "the new source messages were not read from UID 7 on"
grep -q "INBOX grew: 4 new messages read, 2 of 7 target messages unaccounted for" "$MH_TMP/worker.log" ||
    mh_fail "the worker did not read in part: $(grep grew "$MH_TMP/worker.log" || true)"

mh_log "the target holds the source as a multiset"
mh_mailbox snapshot --server "$MH_TMP/src" --user ann --password pw-src --json "$MH_TMP/src.json" >/dev/null
mh_mailbox snapshot --server "$MH_TMP/dst" --user ann --password pw-dst --json "$MH_TMP/dst.json" >/dev/null
mh_mailbox compare "$MH_TMP/src.json" "$MH_TMP/dst.json" >/dev/null || mh_fail "target differs from source"
mh_assert_eq "$(json "$MH_TMP/dst.json" 'len(d["folders"]["INBOX"]["messages"])')" 9 "target messages"

mh_log "a second sync with nothing new reads nothing"
: >"$trace"
"$mh" sync "$job" --json >"$MH_TMP/sync2.json" || mh_fail "second sync exited $?"
mh_assert_eq "$(json "$MH_TMP/sync2.json" 'd["messages"]["copied"]')" 8 "copied after an empty sync"
if grep -Eq '^source > [^ ]+ (EXAMINE|UID FETCH)' "$trace"; then mh_fail "an unchanged folder was read"; fi

echo "PASS: a grown folder's sync reads only the new source messages and the unaccounted target ones, and copies as a full comparison would"
