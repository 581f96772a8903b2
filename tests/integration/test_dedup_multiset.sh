#!/usr/bin/env bash
# "Already on the target" is decided as a multiset of identities (Message-ID, else size +
# header hash): with a target that already holds some of the source's messages, exactly
# the missing ones are copied. Byte-identical twins count twice; two different messages
# sharing a Message-ID are two; messages without a Message-ID are matched by header.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
mh_require_build_bin mailhaul

mh_start_dovecot src
mh_start_dovecot dst
mh_adduser src erin p1
mh_adduser dst erin p2

# append.py PORT USER PASS LETTERS : appends the named messages to INBOX over IMAPS
cat >"$MH_TMP/append.py" <<'PY'
import imaplib, ssl, sys
port, user, pw, letters = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
def msg(letter):
    mid = {"A": "<twin@example.com>", "B": "<b@example.com>", "E": "<shared@example.com>",
           "F": "<shared@example.com>"}.get(letter)
    head = f"From: x@example.com\r\nTo: y@example.com\r\nSubject: message {letter}\r\n"
    if mid:
        head += f"Message-ID: {mid}\r\n"
    head += f"Date: Mon, 1 Jan 2018 10:00:0{ord(letter) % 10} +0000\r\n"
    return (head + f"\r\nbody of {letter}\r\n").encode()
ctx = ssl.create_default_context(cafile=sys.argv[5])
m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
m.login(user, pw)
for letter in letters:
    typ, _ = m.append("INBOX", "(\\Seen)", '"01-Jan-2018 10:00:00 +0000"', msg(letter))
    assert typ == "OK"
m.logout()
PY
python3 "$MH_TMP/append.py" "$src_IMAPS_PORT" erin p1 AABCDEF "$MH_CA_FILE"   # A twice: twins
python3 "$MH_TMP/append.py" "$dst_IMAPS_PORT" erin p2 ACE "$MH_CA_FILE"       # one twin, C (no id), E

export MAILHAUL_FROM_PASSWORD=p1 MAILHAUL_TO_PASSWORD=p2
"$MH_BUILD_DIR/mailhaul" migrate --from "imaps://erin@127.0.0.1:$src_IMAPS_PORT" \
    --to "imaps://erin@127.0.0.1:$dst_IMAPS_PORT" --ca-file "$MH_CA_FILE" --json --quiet >"$MH_TMP/run.json" ||
    mh_fail "migrate exited $?"
python3 - "$MH_TMP/run.json" <<'PY' || mh_fail "wrong copy/skip split"
import json, sys
d = json.load(open(sys.argv[1]))["messages"]
# copied: the second A, B, D, F; skipped: one A, C, E
assert (d["total"], d["copied"], d["skipped"], d["failed"]) == (7, 4, 3, 0), d
PY
mh_mailbox snapshot --server "$MH_TMP/src" --user erin --password p1 --json "$MH_TMP/src.json" >/dev/null
mh_mailbox snapshot --server "$MH_TMP/dst" --user erin --password p2 --json "$MH_TMP/dst.json" >/dev/null
mh_mailbox compare "$MH_TMP/src.json" "$MH_TMP/dst.json" || mh_fail "target is not the source's multiset"
echo "PASS: exactly the missing messages were copied (multiset)"
