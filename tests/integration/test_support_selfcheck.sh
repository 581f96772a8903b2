#!/usr/bin/env bash
# Smoke check of the test-support layer itself (no mailhaul code involved):
# two private Dovecots ('/' and '.' separators) + Redis on loopback, a generated
# mailbox and the shared corpus filled in, snapshots compared against
# themselves, add-message visible in a new snapshot, and nothing left running
# after everything is stopped.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"

mh_require_dovecot
mh_require_redis

mh_start_redis --port
mh_start_dovecot src --sep /
mh_start_dovecot dst
mh_adduser src alice 'src-secret'
mh_adduser dst alice 'dst-secret' 200

[ "$src_DOVECOT_SEP" = / ] || mh_fail "src separator"
[ "$dst_DOVECOT_SEP" = . ] || mh_fail "dst separator"
[ -S "${REDIS_SOCKET:?}" ] || mh_fail "no redis socket"
[ "$(redis-cli -s "$REDIS_SOCKET" ping)" = PONG ] || mh_fail "redis ping (unix)"
[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping)" = PONG ] || mh_fail "redis ping (tcp)"

# TLS: the server certificate verifies against the generated CA, for the
# implicit-TLS port and for STARTTLS; the expired/selfsigned/wronghost ones do not.
echo | openssl s_client -connect "127.0.0.1:$src_IMAPS_PORT" -CAfile "$MH_CA_FILE" \
    -verify_return_error -verify_ip 127.0.0.1 >/dev/null 2>&1 || mh_fail "IMAPS cert does not verify"
for bad in expired selfsigned wronghost; do
    if openssl verify -CAfile "$MH_CA_FILE" "$MH_TMP/certs/$bad.pem" >/dev/null 2>&1 \
        && [ $bad != wronghost ]; then
        mh_fail "$bad.pem verifies against the CA"
    fi
done
openssl x509 -in "$MH_TMP/certs/wronghost.pem" -noout -checkhost 127.0.0.1 | grep -q "does NOT match" \
    || mh_fail "wronghost.pem matches 127.0.0.1"

src=(--host 127.0.0.1 --port "$src_IMAPS_PORT" --tls --ca "$MH_CA_FILE" --user alice --password src-secret)
dst=(--host 127.0.0.1 --port "$dst_IMAP_PORT" --starttls --ca "$MH_CA_FILE" --user alice --password dst-secret)

mh_log "fill generated source"
mh_mailbox fill "${src[@]}" --generated --count 40 --seed 7 --big-mb 3
mh_log "fill corpus target"
if [ -d "$MH_CORPUS_DIR" ]; then
    mh_mailbox fill "${dst[@]}" --corpus "$MH_CORPUS_DIR" --folder "Corpus/Public" | tee "$MH_TMP/corpus.out"
    n_eml=$(find "$MH_CORPUS_DIR" -maxdepth 1 -name '*.eml' | wc -l)
    grep -q "^appended [0-9]* of $n_eml " "$MH_TMP/corpus.out" || mh_fail "corpus count"
else
    echo "note: no corpus at $MH_CORPUS_DIR"
fi
mh_mailbox fill "${dst[@]}" --generated --count 10 --seed 3

mh_log "snapshots"
mh_mailbox snapshot "${src[@]}" --json "$MH_TMP/src.json"
mh_mailbox snapshot "${dst[@]}" --json "$MH_TMP/dst.json"
mh_mailbox compare "$MH_TMP/src.json" "$MH_TMP/src.json" --check-special-use
mh_mailbox compare "$MH_TMP/dst.json" "$MH_TMP/dst.json"

# The generated tree is there, with decoded non-ASCII names and special-use.
python3 - "$MH_TMP/src.json" <<'EOF'
import json, sys
snap = json.load(open(sys.argv[1]))
f = snap["folders"]
assert snap["separator"] == "/", snap["separator"]
for name in ("INBOX", "Work/Projects", "Work/Projects/Alpha & Beta", "Reçus",
             "日本語", "Sent", "Sent Items", "Empty Folder"):
    assert name in f, (name, sorted(f))
assert "\\Sent" in f["Sent"]["special_use"], f["Sent"]
assert not f["Sent Items"]["special_use"]
assert f["Empty Folder"]["messages"] == []
inbox = f["INBOX"]["messages"]
hashes = [m["sha256"] for m in inbox]
assert len(hashes) != len(set(hashes)), "byte-identical twin missing"
ids = [m["message_id"] for m in inbox if m["message_id"]]
assert len(ids) != len(set(ids)), "shared Message-ID missing"
allm = [m for v in f.values() for m in v["messages"]]
assert any(m["message_id"] is None for m in allm), "message without Message-ID missing"
flags = set(fl for m in allm for fl in m["flags"])
for fl in ("\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted", "$Forwarded", "Project_X"):
    assert fl in flags, fl
assert any(m["size"] > 1024 * 1024 for m in allm), "no big message"
years = set(m["internaldate"][7:11] for m in allm)
assert len(years) > 5, years
print("generated source OK: %d folders, %d messages" % (len(f), len(allm)))
EOF

# A different mailbox must compare as different (exit 1).
if mh_mailbox compare "$MH_TMP/src.json" "$MH_TMP/dst.json" >/dev/null; then
    mh_fail "compare of different mailboxes succeeded"
fi

# add-message shows up with the expected body hash; create-folder works on '.'.
sha=$(mh_mailbox add-message "${src[@]}" --folder "Work/Projects" --seed 99 --flags '\Seen Project_X')
mh_mailbox create-folder "${dst[@]}" --folder "New/Child"
mh_mailbox snapshot "${src[@]}" --json "$MH_TMP/src2.json"
mh_mailbox snapshot "${dst[@]}" --json "$MH_TMP/dst2.json"
python3 - "$MH_TMP/src2.json" "$sha" "$MH_TMP/dst2.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
msgs = s["folders"]["Work/Projects"]["messages"]
assert any(m["sha256"] == sys.argv[2] and m["flags"] == ["Project_X", "\\Seen"] for m in msgs), msgs
d = json.load(open(sys.argv[3]))
assert "New.Child" in d["folders"], sorted(d["folders"])
EOF
if mh_mailbox compare "$MH_TMP/src.json" "$MH_TMP/src2.json" >/dev/null; then
    mh_fail "compare did not notice the added message"
fi

# POP3 and POP3S answer.
python3 - "$dst_POP3_PORT" "$dst_POP3S_PORT" "$MH_CA_FILE" <<'EOF'
import poplib, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[3])
p = poplib.POP3("127.0.0.1", int(sys.argv[1])); p.stls(ctx)
p.user("alice"); p.pass_("dst-secret"); n, _ = p.stat(); p.quit()
p = poplib.POP3_SSL("127.0.0.1", int(sys.argv[2]), context=ctx)
p.user("alice"); p.pass_("dst-secret"); p.quit()
assert n > 0
EOF

# Stop everything explicitly and check that no process is left behind.
pids=("$src_DOVECOT_PID" "$dst_DOVECOT_PID" "$REDIS_PID")
mh_stop_dovecot src
mh_stop_dovecot dst
mh_stop_redis
for pid in "${pids[@]}"; do
    if kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]; then
        mh_fail "process $pid still running"
    fi
    if ps -eo pgid=,stat= | awk -v g="$pid" '$1 == g && $2 !~ /^Z/ {f=1} END {exit !f}'; then
        mh_fail "processes of group $pid still running"
    fi
done
if ps -eo args= | grep -F "$MH_TMP" | grep -v grep; then
    mh_fail "processes referring to $MH_TMP still running"
fi
echo "PASS: support selfcheck"
