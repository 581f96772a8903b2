#!/usr/bin/env bash
# Flag sync and delete propagation (mailhaul sync --sync-flags / --propagate-deletes):
# source flag changes reach the copies (also of messages found on the target already),
# CONDSTORE keeps the source read to the changed messages, an unchanged folder costs one
# STATUS, a change made on the target to a message unchanged on the source is kept,
# nothing happens without the options, deletions (expunged or \Deleted on the source)
# remove exactly the copies and never a message someone marked \Deleted on the target;
# without CONDSTORE/ESEARCH every message's flags are compared; the source is never
# written to (no STORE/EXPUNGE/SELECT in its transcript).
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
for b in mailhaul mailhaul-coordinator mailhaul-worker; do mh_require_build_bin "$b"; done
mh=$MH_BUILD_DIR/mailhaul

mh_start_dovecot src
mh_start_dovecot dst
mh_start_redis
for u in ann bob; do
    mh_adduser src $u pw-src
    mh_adduser dst $u pw-dst
done
sleep 1.1 # Dovecot notices a changed passwd-file by its mtime, in whole seconds
box() { # SIDE USER COMMAND [ARGS...]
    local side=$1 user=$2 cmd=$3
    shift 3
    mh_mailbox "$cmd" --server "$MH_TMP/$side" --user "$user" --password "pw-$side" "$@"
}
add() { box src "$1" add-message --folder "$2" --seed "$3" "${@:4}" >/dev/null; }
for i in 1 2 3 4 5; do add ann INBOX $i; done
add ann INBOX 6 --flags '\Seen'
box src ann create-folder --folder Work >/dev/null
add ann Work 11
add ann Work 12
# already on the target before the migration: skipped, yet its flags are synced too
add ann INBOX 7 --flags '\Seen'
box dst ann add-message --folder INBOX --seed 7 --flags '\Seen' >/dev/null
# a target-only message somebody marked \Deleted: no deletion of ours may expunge it
box dst ann add-message --folder INBOX --seed 99 --flags '\Deleted' >/dev/null
for i in 21 22 23; do add bob INBOX $i; done

"$mh" keygen "$MH_TMP/seal.key" >/dev/null
export MAILHAUL_SEAL_KEY_FILE=$MH_TMP/seal.key MAILHAUL_REDIS=$REDIS_URL MAILHAUL_LOG_FORMAT=text
export MAILHAUL_FROM_PASSWORD=pw-src MAILHAUL_TO_PASSWORD=pw-dst
trace=$MH_TMP/trace
"$MH_BUILD_DIR/mailhaul-coordinator" 2>>"$MH_TMP/coordinator.log" &
mh_register_pid $!
start_worker() { # [ENV=VALUE...]
    env "$@" MAILHAUL_TRACE_FILE="$trace" "$MH_BUILD_DIR/mailhaul-worker" 2>>"$MH_TMP/worker.log" &
    worker=$!
    mh_register_pid $worker
}
start_worker
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
migrate() { # USER OUT [OPTIONS...]
    local user=$1 out=$2
    shift 2
    "$mh" migrate --redis "$REDIS_URL" --from "imap://$user@127.0.0.1:$src_IMAP_PORT" \
        --to "imap://$user@127.0.0.1:$dst_IMAP_PORT" --ca-file "$MH_CA_FILE" --json --quiet "$@" >"$out" ||
        mh_fail "migrate $user exited $?"
    json "$out" 'd["job"]'
}
# flags of USER's messages on SIDE in FOLDER, by seed order of the source: "sha flags" lines
flags_of() { # SIDE USER FOLDER
    box "$1" "$2" snapshot --json "$MH_TMP/snap.json" 2>/dev/null >/dev/null
    python3 - "$MH_TMP/snap.json" "$3" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for m in d["folders"].get(sys.argv[2], {"messages": []})["messages"]:
    print(m["sha256"], " ".join(m["flags"]) or "-", m["uid"])
PY
}
# the target flags of the source message at INDEX (0 = oldest) of USER's FOLDER
dst_flags_of_src() { # USER FOLDER INDEX
    flags_of src "$1" "$2" >"$MH_TMP/src.flags"
    flags_of dst "$1" "$2" >"$MH_TMP/dst.flags"
    local sha
    sha=$(sed -n "$(($3 + 1))p" "$MH_TMP/src.flags" | cut -d' ' -f1)
    grep "^$sha " "$MH_TMP/dst.flags" | head -1 | cut -d' ' -f2- | sed 's/ [0-9]*$//'
}
# the target UID of the copy of the source message at INDEX
dst_uid_of_src() { # USER FOLDER INDEX
    flags_of src "$1" "$2" >"$MH_TMP/src.flags"
    flags_of dst "$1" "$2" >"$MH_TMP/dst.flags"
    local sha
    sha=$(sed -n "$(($3 + 1))p" "$MH_TMP/src.flags" | cut -d' ' -f1)
    grep "^$sha " "$MH_TMP/dst.flags" | head -1 | awk '{print $NF}'
}
count() { flags_of "$1" "$2" "$3" | wc -l; }
no_source_writes() {
    if grep -Eq '^source > [^ ]+ (UID STORE|STORE|EXPUNGE|UID EXPUNGE|SELECT|APPEND|DELETE|CLOSE)' "$trace"; then
        mh_fail "the source was written to: $(grep -E '^source > [^ ]+ (UID STORE|STORE|EXPUNGE|UID EXPUNGE|SELECT|APPEND|DELETE|CLOSE)' "$trace" | head -3)"
    fi
}

mh_log "migrate with --sync-flags (deletions not propagated)"
job=$(migrate ann "$MH_TMP/run1.json" --sync-flags)
mh_assert_eq "$(json "$MH_TMP/run1.json" 'd["messages"]["copied"]')" 8 "copied by the migration"
mh_assert_eq "$(json "$MH_TMP/run1.json" 'd["messages"]["skipped"]')" 1 "skipped (already on the target)"
mh_assert_eq "$(json "$MH_TMP/run1.json" 'd["sync"]["flags"]')" True "flag sync recorded with the job"
"$mh" status "$job" | grep -q "\[syncs: flags\]" || mh_fail "status does not show the sync options: $("$mh" status "$job")"

mh_log "flag changes on the source; one on the target of a message unchanged on the source"
box src ann set-flags --folder INBOX --index 0 --flags '\Seen \Flagged' >/dev/null
box src ann set-flags --folder INBOX --index 5 --flags '' >/dev/null            # \Seen taken away
box src ann set-flags --folder INBOX --index 6 --flags '\Answered $Label1' >/dev/null # the skipped one
box dst ann set-flags --folder INBOX --uid "$(dst_uid_of_src ann INBOX 3)" --flags '\Flagged' >/dev/null # the user, on the new host
: >"$trace"
"$mh" sync "$job" --json >"$MH_TMP/sync1.json" || mh_fail "sync exited $?"
mh_assert_eq "$(json "$MH_TMP/sync1.json" 'd["state"]')" done "state after the flag sync"
mh_assert_eq "$(json "$MH_TMP/sync1.json" 'd["sync"]["flags_updated"]')" 3 "copies given their source's flags"
mh_assert_eq "$(dst_flags_of_src ann INBOX 0)" '\Flagged \Seen' "flags of message 0 on the target"
mh_assert_eq "$(dst_flags_of_src ann INBOX 5)" '-' "flags of message 5 (\\Seen removed)"
mh_assert_eq "$(dst_flags_of_src ann INBOX 6)" '$Label1 \Answered' "flags of the skipped message"
mh_assert_eq "$(dst_flags_of_src ann INBOX 3)" '\Flagged' "a target change to a message unchanged on the source"
grep -Eq '^source > [^ ]+ UID FETCH 1:[0-9]+ \(UID FLAGS\) \(CHANGEDSINCE [0-9]+\)' "$trace" ||
    mh_fail "the source's flags were not read by CHANGEDSINCE"
grep -Eq '^target > [^ ]+ UID STORE [0-9:,]+ \(UNCHANGEDSINCE [0-9]+\) FLAGS.SILENT' "$trace" ||
    mh_fail "the target STORE was not conditional"
grep -q '^source > .* STATUS Work (UIDNEXT UIDVALIDITY MESSAGES HIGHESTMODSEQ)' "$trace" ||
    mh_fail "no STATUS of the unchanged folder"
if grep -Eq '^source > .* EXAMINE Work' "$trace"; then mh_fail "the unchanged folder was read"; fi
no_source_writes

mh_log "a second sync with no change reads no flags"
: >"$trace"
"$mh" sync "$job" --json >"$MH_TMP/sync2.json" || mh_fail "second sync exited $?"
mh_assert_eq "$(json "$MH_TMP/sync2.json" 'd["sync"]["flags_updated"]')" 3 "flag updates after a sync without changes"
if grep -q 'FLAGS' <(grep '^source >' "$trace"); then mh_fail "an unchanged mailbox's flags were read"; fi

mh_log "deletions: not propagated without --propagate-deletes"
box src ann delete-message --folder INBOX --index 1 >/dev/null                # expunged
box src ann set-flags --folder INBOX --index 1 --flags '\Deleted' >/dev/null  # was index 2: marked only
before=$(count dst ann INBOX)
"$mh" sync "$job" --json >"$MH_TMP/sync3.json" || mh_fail "third sync exited $?"
mh_assert_eq "$(count dst ann INBOX)" "$before" "target messages after a sync without --propagate-deletes"
mh_assert_eq "$(json "$MH_TMP/sync3.json" 'd["sync"]["deleted"]')" 0 "copies deleted without the option"

mh_log "--propagate-deletes: exactly the two copies go; the target's own \\Deleted message stays"
: >"$trace"
"$mh" sync "$job" --propagate-deletes --json >"$MH_TMP/sync4.json" || mh_fail "fourth sync exited $?"
mh_assert_eq "$(json "$MH_TMP/sync4.json" 'd["sync"]["deleted"]')" 2 "copies deleted"
mh_assert_eq "$(count dst ann INBOX)" "$((before - 2))" "target messages after propagating deletions"
flags_of dst ann INBOX | grep -q '\\Deleted' || mh_fail "the target-only \\Deleted message was expunged"
grep -Eq '^target > [^ ]+ UID EXPUNGE [0-9:,]+$' "$trace" || mh_fail "copies were not expunged by UID"
if grep -Eq '^target > [^ ]+ (EXPUNGE|CLOSE)$' "$trace"; then mh_fail "a plain EXPUNGE or CLOSE on the target"; fi
no_source_writes
# what is left on the target is the source without its \Deleted message (plus the target's own)
box src ann snapshot --json "$MH_TMP/src.json" >/dev/null 2>&1
box dst ann snapshot --json "$MH_TMP/dst.json" >/dev/null 2>&1
mh_mailbox compare "$MH_TMP/src.json" "$MH_TMP/dst.json" --ignore-deleted --allow-extra --no-flags >/dev/null ||
    mh_fail "target differs from the source after the deletions"
"$mh" status "$job" | grep -q "\[syncs: flags, deletes\]" || mh_fail "status does not show deletes: $("$mh" status "$job")"
"$mh" history "$job" --json >"$MH_TMP/history.json"
python3 - "$MH_TMP/history.json" <<'PY' || mh_fail "history: $(cat "$MH_TMP/history.json")"
import json, sys
runs = json.load(open(sys.argv[1]))
assert [r["flags_updated"] for r in runs] == [0, 3, 0, 0, 0], runs
assert [r["deleted"] for r in runs] == [0, 0, 0, 0, 2], runs
PY
"$mh" history "$job" | head -1 | grep -q "FLAGS *DELETED" || mh_fail "history text has no flag/delete columns"

mh_log "a job without --sync-flags leaves flags alone"
bobjob=$(migrate bob "$MH_TMP/bob1.json")
box src bob set-flags --folder INBOX --index 0 --flags '\Flagged' >/dev/null
"$mh" sync "$bobjob" --json >"$MH_TMP/bob2.json" || mh_fail "bob's sync exited $?"
mh_assert_eq "$(dst_flags_of_src bob INBOX 0)" '-' "target flags without --sync-flags"

mh_log "without CONDSTORE and ESEARCH: every flag compared, plain SEARCH; turned on by sync --sync-flags"
kill -TERM "$worker"; wait "$worker" || true
start_worker MAILHAUL_IMAP_DISABLE_CAPS=CONDSTORE,ESEARCH
: >"$trace"
"$mh" sync "$bobjob" --sync-flags --propagate-deletes --json >"$MH_TMP/bob3.json" || mh_fail "bob's sync exited $?"
mh_assert_eq "$(dst_flags_of_src bob INBOX 0)" '\Flagged' "target flags after sync --sync-flags"
grep -Eq '^source > [^ ]+ UID FETCH 1:[0-9]+ \(UID FLAGS\)$' "$trace" || mh_fail "no full flag comparison"
grep -Eq '^source > [^ ]+ UID SEARCH UID 1:[0-9]+ UNDELETED$' "$trace" || mh_fail "no plain SEARCH"
box src bob delete-message --folder INBOX --index 2 >/dev/null
"$mh" sync "$bobjob" --json >"$MH_TMP/bob4.json" || mh_fail "bob's last sync exited $?"
mh_assert_eq "$(json "$MH_TMP/bob4.json" 'd["sync"]["deleted"]')" 1 "bob's copies deleted"
mh_assert_eq "$(count dst bob INBOX)" 2 "bob's target messages"
no_source_writes
# ann's mailboxes have MODSEQs (Dovecot sends HIGHESTMODSEQ even to a client that does not
# see CONDSTORE): without the capability they are not used
box src ann set-flags --folder INBOX --index 0 --flags '\Answered' >/dev/null
: >"$trace"
"$mh" sync "$job" --json >"$MH_TMP/sync5.json" || mh_fail "ann's sync without CONDSTORE exited $?"
mh_assert_eq "$(dst_flags_of_src ann INBOX 0)" '\Answered' "flags after a sync without CONDSTORE"
if grep -Eq 'CHANGEDSINCE|UNCHANGEDSINCE|\(CONDSTORE\)' "$trace"; then
    mh_fail "CONDSTORE used without the capability: $(grep -E 'CHANGEDSINCE|UNCHANGEDSINCE|\(CONDSTORE\)' "$trace" | head -2)"
fi

mh_log "refused: flag sync of a POP3 source, an option with its --no- form"
rc=0
"$mh" migrate --from "pop3://bob@127.0.0.1:$src_POP3_PORT" --to "imap://bob@127.0.0.1:$dst_IMAP_PORT" \
    --sync-flags 2>"$MH_TMP/pop3.err" || rc=$?
mh_assert_eq "$rc" 2 "exit status of migrate --sync-flags from POP3"
grep -q "need an IMAP source" "$MH_TMP/pop3.err" || mh_fail "no reason given: $(cat "$MH_TMP/pop3.err")"
if "$mh" sync "$bobjob" --sync-flags --no-sync-flags 2>/dev/null; then mh_fail "accepted --sync-flags --no-sync-flags"; fi
"$mh" sync "$bobjob" --no-sync-flags --no-propagate-deletes --json >/dev/null || mh_fail "sync --no-sync-flags exited $?"
"$mh" status "$bobjob" | grep -q "syncs:" && mh_fail "the options are still on after --no-..."

echo "PASS: flag sync applies source flag changes (CONDSTORE and without), keeps target changes, deletes exactly the copies of deleted messages and only with --propagate-deletes"
