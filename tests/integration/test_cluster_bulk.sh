#!/usr/bin/env bash
# Bulk migrations: `mailhaul submit FILE.csv` validates every row before queueing anything,
# then creates one job per row; three worker processes copy them all; `status` shows every
# job done and each target equals its source. Also the Microsoft 365 format, with the hosts
# and a shared destination password given on the command line.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
for b in mailhaul mailhaul-coordinator mailhaul-worker; do mh_require_build_bin "$b"; done
mh=$MH_BUILD_DIR/mailhaul

mh_start_dovecot src --sep /
mh_start_dovecot dst
mh_start_redis
"$mh" keygen "$MH_TMP/seal.key" >/dev/null
export MAILHAUL_SEAL_KEY_FILE=$MH_TMP/seal.key MAILHAUL_REDIS=$REDIS_URL MAILHAUL_LOG_FORMAT=text
"$MH_BUILD_DIR/mailhaul-coordinator" 2>>"$MH_TMP/coordinator.log" &
mh_register_pid $!
for w in 1 2 3; do
    "$MH_BUILD_DIR/mailhaul-worker" --concurrency 1 --name "w$w" 2>>"$MH_TMP/worker$w.log" &
    mh_register_pid $!
done

users="ann bob cat dan eve fay"
for u in $users gus; do
    mh_adduser src "$u" "src-$u"
    mh_adduser dst "$u" "dst-$u"
done
mh_adduser dst gus dst-shared
sleep 1.1 # Dovecot notices a changed passwd-file by its mtime, in whole seconds
seed=0
for u in $users; do
    for i in 1 2 3 4; do
        seed=$((seed + 1))
        mh_mailbox add-message --server "$MH_TMP/src" --user "$u" --password "src-$u" --seed "$seed" \
            --folder INBOX >/dev/null
    done
done
mh_mailbox create-folder --server "$MH_TMP/src" --user ann --password src-ann --folder "Work/Done" >/dev/null
mh_mailbox add-message --server "$MH_TMP/src" --user ann --password src-ann --folder "Work/Done" --seed 77 >/dev/null
echo "dst-bob" >"$MH_TMP/bob.pw"

csv=$MH_TMP/jobs.csv
{
    echo "# our format: header, then one mailbox per row"
    echo "source_host,source_port,source_security,source_user,source_password,destination_host,destination_port,destination_security,destination_user,destination_password,options"
    for u in $users; do
        pw="dst-$u"
        [ "$u" = bob ] && pw="file:$MH_TMP/bob.pw"
        echo "127.0.0.1,$src_IMAPS_PORT,tls,$u,src-$u,127.0.0.1,$dst_IMAPS_PORT,tls,$u,$pw,ca_file=$MH_CA_FILE"
    done
} >"$csv"

mh_log "a file with bad rows queues nothing"
cp "$csv" "$MH_TMP/bad.csv"
echo "127.0.0.1,99999,tls,zed,pw,127.0.0.1,$dst_IMAPS_PORT,tls,zed,pw2," >>"$MH_TMP/bad.csv"
echo "127.0.0.1,$src_IMAPS_PORT,tls,ann,src-ann,127.0.0.1,$dst_IMAPS_PORT,tls,ann,dst-ann," >>"$MH_TMP/bad.csv"
rc=0
"$mh" submit "$MH_TMP/bad.csv" >"$MH_TMP/bad.out" 2>&1 || rc=$?
mh_assert_eq "$rc" 2 "exit status for a file with bad rows"
grep -q "bad.csv:9:.*port" "$MH_TMP/bad.out" || mh_fail "bad port not reported with its line: $(cat "$MH_TMP/bad.out")"
grep -q "bad.csv:10:.*already on line 3" "$MH_TMP/bad.out" || mh_fail "duplicate destination not reported: $(cat "$MH_TMP/bad.out")"
grep -q "nothing queued" "$MH_TMP/bad.out" || mh_fail "no 'nothing queued'"
grep -qE "src-|dst-|pw2" "$MH_TMP/bad.out" && mh_fail "a password was echoed: $(cat "$MH_TMP/bad.out")"
mh_assert_eq "$("$mh" status --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" 0 "jobs after a refused file"

mh_log "six mailboxes, three workers"
"$mh" submit "$csv" --json >"$MH_TMP/jobs.json"
mh_assert_eq "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$MH_TMP/jobs.json")" 6 "jobs created"
wait_all_done() {
    local i
    for i in $(seq 600); do
        if "$mh" status --json | python3 -c '
import json, sys
jobs = json.load(sys.stdin)
sys.exit(0 if jobs and all(j["state"] == "done" for j in jobs) else 1)'; then
            return 0
        fi
        sleep 0.2
    done
    "$mh" status >&2
    mh_fail "not every job finished"
}
wait_all_done
"$mh" status | grep -c " done " | grep -qx 6 || mh_fail "status does not show six done jobs"
for u in $users; do
    mh_mailbox snapshot --server "$MH_TMP/src" --user "$u" --password "src-$u" --json "$MH_TMP/$u-src.json" >/dev/null
    mh_mailbox snapshot --server "$MH_TMP/dst" --user "$u" --password "dst-$u" --json "$MH_TMP/$u-dst.json" >/dev/null
    mh_mailbox compare "$MH_TMP/$u-src.json" "$MH_TMP/$u-dst.json" >/dev/null || mh_fail "$u: target differs"
done
# more than one worker took part
busy=0
for w in 1 2 3; do grep -q "batch\|consuming" "$MH_TMP/worker$w.log" && busy=$((busy + 1)); done
[ "$busy" -ge 2 ] || mh_fail "the work was not shared between workers"

mh_log "Microsoft 365 format (hosts and the destination password on the command line)"
mh_mailbox add-message --server "$MH_TMP/src" --user gus --password src-gus --seed 5 >/dev/null
printf 'EmailAddress,UserName,Password\r\ngus,gus,src-gus\r\n' >"$MH_TMP/m365.csv"
echo dst-shared >"$MH_TMP/shared.pw"
rc=0
"$mh" submit "$MH_TMP/m365.csv" >"$MH_TMP/m365.out" 2>&1 || rc=$?
mh_assert_eq "$rc" 2 "M365 file without hosts"
grep -q -- "--from-host" "$MH_TMP/m365.out" || mh_fail "missing hosts not explained: $(cat "$MH_TMP/m365.out")"
m365=(--from-host 127.0.0.1 --from-port "$src_IMAP_PORT" --from-security starttls --to-host 127.0.0.1
    --to-port "$dst_IMAP_PORT" --to-security starttls --to-password-file "$MH_TMP/shared.pw" --ca-file "$MH_CA_FILE")
"$mh" submit "$MH_TMP/m365.csv" "${m365[@]}" --dry-run | grep -q "1 rows valid" || mh_fail "M365 dry run"
"$mh" submit "$MH_TMP/m365.csv" "${m365[@]}" >/dev/null
wait_all_done
mh_mailbox snapshot --server "$MH_TMP/src" --user gus --password src-gus --json "$MH_TMP/gus-src.json" >/dev/null
mh_mailbox snapshot --server "$MH_TMP/dst" --user gus --password dst-shared --json "$MH_TMP/gus-dst.json" >/dev/null
mh_mailbox compare "$MH_TMP/gus-src.json" "$MH_TMP/gus-dst.json" >/dev/null || mh_fail "gus: target differs"
echo "PASS: bulk CSV validated, queued and migrated by three workers"
