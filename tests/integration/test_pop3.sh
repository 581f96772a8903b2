#!/usr/bin/env bash
# POP3 sources against Dovecot's POP3 (STLS and POP3S) into an IMAP target, through a
# cluster (Redis, coordinator and worker daemons): byte-identical bodies, no flags by
# default, INTERNALDATE from Received/Date; the source untouched and never sent DELE or
# RSET (transcript); a second run copies nothing (UIDL dedup in Redis, and an embedded run
# by Message-ID or header hash against the target); new messages are
# copied by the next run; --pop3-folder/--pop3-flags; a bulk CSV row; a wrong password;
# a POP3 target refused; a server without UIDL (size and header identities, warned about).
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
for b in mailhaul mailhaul-coordinator mailhaul-worker; do mh_require_build_bin "$b"; done
mh=$MH_BUILD_DIR/mailhaul

mh_start_dovecot src
mh_start_dovecot dst
mh_start_redis
for u in bob carol dave; do
    mh_adduser src "$u" "src-$u"
    mh_adduser dst "$u" "dst-$u"
done
sleep 1.1 # Dovecot notices a changed passwd-file by its mtime, in whole seconds
fill() { python3 "$MH_SUPPORT_DIR/pop3_fill.py" 127.0.0.1 "$src_IMAP_PORT" "$1" "src-$1" "$2"; }
fill bob base
fill carol base
fill dave base
mh_mailbox snapshot --server "$MH_TMP/src" --user bob --password src-bob --json "$MH_TMP/src-before.json" >/dev/null

"$mh" keygen "$MH_TMP/seal.key" >/dev/null
export MAILHAUL_SEAL_KEY_FILE=$MH_TMP/seal.key MAILHAUL_REDIS=$REDIS_URL MAILHAUL_LOG_FORMAT=text
# the daemons talk to the servers: their transcript is the one to read
trace=$MH_TMP/cluster-trace
MAILHAUL_TRACE_FILE=$trace "$MH_BUILD_DIR/mailhaul-coordinator" 2>>"$MH_TMP/coordinator.log" &
mh_register_pid $!
workers=()
for w in 1 2; do
    MAILHAUL_TRACE_FILE=$trace "$MH_BUILD_DIR/mailhaul-worker" --concurrency 2 --name "w$w" 2>>"$MH_TMP/worker$w.log" &
    mh_register_pid $!
    workers+=($!)
done

json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
migrate() { # USER SOURCE-URL-SCHEME PORT [options...]
    local u=$1 scheme=$2 port=$3
    shift 3
    MAILHAUL_FROM_PASSWORD=${FROM_PW:-src-$u} MAILHAUL_TO_PASSWORD=dst-$u \
        "$mh" migrate --from "$scheme://$u@127.0.0.1:$port" --to "imap://$u@127.0.0.1:$dst_IMAP_PORT" \
        --ca-file "$MH_CA_FILE" --json --quiet "$@"
}

mh_log "first run (pop3:// with STLS)"
migrate bob pop3 "$src_POP3_PORT" --redis "$REDIS_URL" >"$MH_TMP/run1.json" ||
    mh_fail "first run exited $?"
mh_assert_eq "$(json "$MH_TMP/run1.json" 'd["state"]')" done "state after the first run"
mh_assert_eq "$(json "$MH_TMP/run1.json" 'd["messages"]["copied"]')" 5 "copied on the first run"
python3 - "$MH_TMP/run1.json" <<'PY' || mh_fail "summary folders"
import json, sys
d = json.load(open(sys.argv[1]))
assert [(f["source"], f["target"]) for f in d["folders"]] == [("POP3 INBOX", "INBOX")], d["folders"]
assert d["verified"] is True and d["folders"][0]["target_after"] == 5, d["folders"]
PY
grep -q "^source > STLS" "$trace" || mh_fail "pop3:// did not use STLS"
grep -q "^source > RETR" "$trace" || mh_fail "the transcript holds no RETR"
if grep -Eq "^source > (DELE|RSET)" "$trace"; then mh_fail "DELE or RSET was sent to the source"; fi
cp "$trace" "$MH_TMP/trace1"
: >"$trace"

mh_log "byte-identical, no flags, INTERNALDATE from Received, else Date"
mh_mailbox snapshot --server "$MH_TMP/dst" --user bob --password dst-bob --json "$MH_TMP/dst1.json" >/dev/null
python3 - "$MH_TMP/src-before.json" "$MH_TMP/dst1.json" <<'PY' || mh_fail "target differs from the POP3 source"
import json, sys
src, dst = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
s = src["folders"]["INBOX"]["messages"]
t = dst["folders"]["INBOX"]["messages"]
assert sorted(m["sha256"] for m in s) == sorted(m["sha256"] for m in t), "bodies differ"
assert all(m["flags"] == [] for m in t), [m["flags"] for m in t]
dates = [m["internaldate"] for m in t]
received = [m for m in t if m["internaldate"] == "02-Oct-2024 08:15:00 +0000"]
assert len(received) == 1, dates                        # first Received header's date
assert any(m["internaldate"] == "04-May-2019 21:38:09 +0000" for m in t), dates  # Date (+0930), in UTC
assert any(m["internaldate"] == "01-Jan-2020 00:00:00 +0000" and m["size"] > 300000 for m in t), dates
PY
mh_mailbox snapshot --server "$MH_TMP/src" --user bob --password src-bob --json "$MH_TMP/src-after.json" >/dev/null
# every message is still there, byte for byte; Dovecot's POP3 marks retrieved messages
# \Seen (pop3_no_flag_updates = no, its default), as the README warns: flags may change
mh_mailbox compare --no-flags "$MH_TMP/src-before.json" "$MH_TMP/src-after.json" >/dev/null ||
    mh_fail "the source lost or changed messages"

mh_log "second run (pop3s://): nothing copied, everything skipped"
migrate bob pop3s "$src_POP3S_PORT" --redis "$REDIS_URL" >"$MH_TMP/run2.json" ||
    mh_fail "second run exited $?"
mh_assert_eq "$(json "$MH_TMP/run2.json" 'd["messages"]["copied"]')" 0 "copied on the second run"
mh_assert_eq "$(json "$MH_TMP/run2.json" 'd["messages"]["skipped"]')" 5 "skipped on the second run"
grep -q "^source > UIDL" "$trace" || mh_fail "the second run's transcript holds no UIDL"
if grep -q "^source > STLS" "$trace"; then mh_fail "pop3s:// sent STLS"; fi

mh_log "new messages on the source: only they are copied"
fill bob new1
fill bob new2
migrate bob pop3 "$src_POP3_PORT" --redis "$REDIS_URL" >"$MH_TMP/run3.json" || mh_fail "third run exited $?"
mh_assert_eq "$(json "$MH_TMP/run3.json" 'd["messages"]["copied"]')" 2 "copied on the third run"
mh_assert_eq "$(json "$MH_TMP/run3.json" 'd["messages"]["skipped"]')" 5 "skipped on the third run"
mh_mailbox snapshot --server "$MH_TMP/dst" --user bob --password dst-bob --json "$MH_TMP/dst3.json" >/dev/null
mh_assert_eq "$(json "$MH_TMP/dst3.json" 'len(d["folders"]["INBOX"]["messages"])')" 7 "target messages after three runs"

mh_log "--pop3-folder and --pop3-flags"
migrate carol pop3s "$src_POP3S_PORT" --redis "$REDIS_URL" --pop3-folder "Old mail" --pop3-flags '\Seen' \
    >"$MH_TMP/carol.json" || mh_fail "carol's run exited $?"
mh_assert_eq "$(json "$MH_TMP/carol.json" 'd["messages"]["copied"]')" 5 "copied for carol"
mh_mailbox snapshot --server "$MH_TMP/dst" --user carol --password dst-carol --json "$MH_TMP/carol-dst.json" >/dev/null
python3 - "$MH_TMP/carol-dst.json" <<'PY' || mh_fail "carol's target"
import json, sys
d = json.load(open(sys.argv[1]))["folders"]
assert len(d["Old mail"]["messages"]) == 5, d.keys()
assert len(d.get("INBOX", {"messages": []})["messages"]) == 0
assert all(m["flags"] == ["\\Seen"] for m in d["Old mail"]["messages"]), d["Old mail"]
PY

mh_log "a bulk CSV row with source_protocol pop3"
csv=$MH_TMP/jobs.csv
{
    echo "source_protocol,source_host,source_port,source_security,source_user,source_password,destination_host,destination_port,destination_security,destination_user,destination_password,options"
    echo "pop3,127.0.0.1,$src_POP3S_PORT,tls,dave,src-dave,127.0.0.1,$dst_IMAPS_PORT,tls,dave,dst-dave,ca_file=$MH_CA_FILE;pop3_folder=Imported"
} >"$csv"
"$mh" submit "$csv" --json >"$MH_TMP/submit.json" || mh_fail "submit exited $?"
job=$(json "$MH_TMP/submit.json" 'd[0]["job"]')
for i in $(seq 300); do
    state=$("$mh" status "$job" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])')
    case $state in done | partial | failed | cancelled) break ;; esac
    sleep 0.2
done
mh_assert_eq "$state" done "the CSV job's state"
mh_mailbox snapshot --server "$MH_TMP/dst" --user dave --password dst-dave --json "$MH_TMP/dave-dst.json" >/dev/null
mh_assert_eq "$(json "$MH_TMP/dave-dst.json" 'len(d["folders"]["Imported"]["messages"])')" 5 "dave's Imported folder"

mh_log "wrong POP3 password"
rc=0
FROM_PW=wrong migrate bob pop3 "$src_POP3_PORT" --redis "$REDIS_URL" --skip-check >"$MH_TMP/wrong.json" || rc=$?
mh_assert_eq "$rc" 3 "exit status for a wrong POP3 password"
mh_assert_eq "$(json "$MH_TMP/wrong.json" 'd["error"]["code"]')" AUTH_FAILED "the summary's error"

mh_log "a POP3 destination is refused"
rc=0
MAILHAUL_FROM_PASSWORD=x MAILHAUL_TO_PASSWORD=y "$mh" migrate --from "imap://bob@127.0.0.1:$src_IMAP_PORT" \
    --to "pop3://bob@127.0.0.1:$dst_POP3_PORT" 2>"$MH_TMP/pop3-target.err" || rc=$?
mh_assert_eq "$rc" 2 "exit status for a POP3 destination"
grep -q "destination must be IMAP" "$MH_TMP/pop3-target.err" || mh_fail "no clear error: $(cat "$MH_TMP/pop3-target.err")"

mh_log "a server without UIDL (embedded run): identities from size and headers, with a warning"
mh_adduser dst erin dst-erin
mh_adduser src erin src-erin
sleep 1.1
fill erin base
MAILHAUL_POP3_DISABLE_CAPS=UIDL MAILHAUL_FROM_PASSWORD=src-erin MAILHAUL_TO_PASSWORD=dst-erin \
    "$mh" migrate --from "pop3s://erin@127.0.0.1:$src_POP3S_PORT" --to "imap://erin@127.0.0.1:$dst_IMAP_PORT" \
    --ca-file "$MH_CA_FILE" --json --quiet --trace "$MH_TMP/trace-nouidl" >"$MH_TMP/erin.json" ||
    mh_fail "the run without UIDL exited $?"
mh_assert_eq "$(json "$MH_TMP/erin.json" 'd["messages"]["copied"]')" 5 "copied without UIDL"
json "$MH_TMP/erin.json" 'd["warning"]' | grep -q "no UIDL" || mh_fail "no warning about the missing UIDL"
if grep -q "^source > UIDL" "$MH_TMP/trace-nouidl"; then mh_fail "UIDL was sent although disabled"; fi
grep -q "^source > TOP" "$MH_TMP/trace-nouidl" || mh_fail "headers were not read with TOP"

mh_log "an embedded run again: its private Redis (and the UIDL record) are gone, the target decides"
MAILHAUL_FROM_PASSWORD=src-erin MAILHAUL_TO_PASSWORD=dst-erin \
    "$mh" migrate --from "pop3s://erin@127.0.0.1:$src_POP3S_PORT" --to "imap://erin@127.0.0.1:$dst_IMAP_PORT" \
    --ca-file "$MH_CA_FILE" --json --quiet >"$MH_TMP/erin2.json" || mh_fail "the second embedded run exited $?"
mh_assert_eq "$(json "$MH_TMP/erin2.json" 'd["messages"]["copied"]')" 0 "copied by a second embedded run"
mh_assert_eq "$(json "$MH_TMP/erin2.json" 'd["messages"]["skipped"]')" 5 "skipped by a second embedded run"
mh_mailbox snapshot --server "$MH_TMP/dst" --user erin --password dst-erin --json "$MH_TMP/erin-dst.json" >/dev/null
mh_assert_eq "$(json "$MH_TMP/erin-dst.json" 'len(d["folders"]["INBOX"]["messages"])')" 5 "erin's target (no duplicates)"

mh_log "health check of a POP3 source: count, volume, largest message, UIDL"
MAILHAUL_FROM_PASSWORD=src-bob MAILHAUL_TO_PASSWORD=dst-bob "$mh" check --json --ca-file "$MH_CA_FILE" \
    --from "pop3s://bob@127.0.0.1:$src_POP3S_PORT" --to "imap://bob@127.0.0.1:$dst_IMAP_PORT" \
    >"$MH_TMP/check.json" || mh_fail "check exited $?"
MAILHAUL_POP3_DISABLE_CAPS=UIDL MAILHAUL_FROM_PASSWORD=src-bob MAILHAUL_TO_PASSWORD=dst-bob "$mh" check --json \
    --ca-file "$MH_CA_FILE" --from "pop3s://bob@127.0.0.1:$src_POP3S_PORT" \
    --to "imap://bob@127.0.0.1:$dst_IMAP_PORT" >"$MH_TMP/check-nouidl.json" || mh_fail "check without UIDL exited $?"
python3 - "$MH_TMP/check.json" "$MH_TMP/check-nouidl.json" <<'PY' || mh_fail "check of a POP3 source: $(cat "$MH_TMP/check.json")"
import json, sys
d, n = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
src = d["source"]
assert d["verdict"] in ("ok", "warnings"), d["verdict"]
assert src["messages"] == 7 and src["bytes"] > 300000 and src["largest"] > 300000, src
assert all(s["status"] in ("ok", "skipped") for s in src["steps"].values()), src["steps"]
assert not any("UIDL" in p["cause"] for p in d["problems"]), d["problems"]
assert any("UIDL" in p["cause"] and p["severity"] == "warning" for p in n["problems"]), n["problems"]
PY

mh_log "a worker killed right after an APPEND: the message is found on the target, not copied twice"
kill -KILL "${workers[@]}"
mh_adduser dst fred dst-fred
mh_adduser src fred src-fred
sleep 1.1
fill fred base
# the whole batch goes in one MULTIAPPEND: the worker dies once the target accepted it,
# before anything is recorded
MAILHAUL_FAULTS=append-ok:1 "$MH_BUILD_DIR/mailhaul-worker" --concurrency 1 --name doomed \
    2>>"$MH_TMP/worker-doomed.log" &
mh_register_pid $!
doomed=$!
MAILHAUL_FROM_PASSWORD=src-fred MAILHAUL_TO_PASSWORD=dst-fred "$mh" migrate --redis "$REDIS_URL" \
    --from "pop3s://fred@127.0.0.1:$src_POP3S_PORT" --to "imap://fred@127.0.0.1:$dst_IMAP_PORT" \
    --ca-file "$MH_CA_FILE" --json --quiet >"$MH_TMP/fred.json" &
mh_register_pid $!
follower=$!
for i in $(seq 600); do kill -0 "$doomed" 2>/dev/null || break; sleep 0.1; done
kill -0 "$doomed" 2>/dev/null && kill -KILL "$doomed"
grep -q "fault append-ok" "$MH_TMP/worker-doomed.log" ||
    mh_fail "the fault did not fire: $(tail -5 "$MH_TMP/worker-doomed.log")"
"$MH_BUILD_DIR/mailhaul-worker" --concurrency 2 --name rescuer --claim-idle 1 2>>"$MH_TMP/worker-rescuer.log" &
mh_register_pid $!
wait "$follower" || mh_fail "the rescued job did not end well: $(cat "$MH_TMP/fred.json")"
mh_assert_eq "$(json "$MH_TMP/fred.json" 'd["messages"]["copied"]')" 5 "copied after the crash"
mh_mailbox snapshot --server "$MH_TMP/dst" --user fred --password dst-fred --json "$MH_TMP/fred-dst.json" >/dev/null
mh_assert_eq "$(json "$MH_TMP/fred-dst.json" 'len(d["folders"]["INBOX"]["messages"])')" 5 "fred's target (no duplicates)"

if grep -Eq "^source > (DELE|RSET)" "$trace" "$MH_TMP/trace-nouidl"; then
    mh_fail "DELE or RSET was sent to a source"
fi
echo "PASS: POP3 sources"
