#!/usr/bin/env bash
# Folder structure across server styles: a Courier-style source (personal namespace
# "INBOX.", separator '.') to a '/' target and on to another "INBOX." server; a "Sent Items"
# folder without special-use attributes lands in the target's \Sent folder "Sent"; nested
# and non-ASCII names keep their hierarchy.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
mh_require_build_bin mailhaul

mh_start_dovecot courier --prefix INBOX.
mh_start_dovecot slash --sep /
mh_start_dovecot courier2 --prefix INBOX.
mh_adduser courier dave p1
mh_adduser slash dave p2
mh_adduser courier2 dave p3

for f in "Sent Items" Projects "Projects/2024" "Projects/2024/Q1" "Überweisungen" "Deleted Items"; do
    mh_mailbox create-folder --server "$MH_TMP/courier" --user dave --password p1 --folder "$f" >/dev/null
done
i=0
for f in INBOX "Sent Items" Projects "Projects/2024" "Projects/2024/Q1" "Überweisungen" "Deleted Items"; do
    for n in 1 2; do
        i=$((i + 1))
        mh_mailbox add-message --server "$MH_TMP/courier" --user dave --password p1 --folder "$f" --seed "$i" \
            --flags '\Seen $Forwarded' >/dev/null
    done
done
# The targets already have their special-use folders, under other names than the source's.
mh_mailbox create-folder --server "$MH_TMP/slash" --user dave --password p2 --folder Sent --special-use '\Sent' >/dev/null
mh_mailbox create-folder --server "$MH_TMP/slash" --user dave --password p2 --folder Trash --special-use '\Trash' >/dev/null

migrate() { # FROM_DIR FROM_PW TO_DIR TO_PW
    local from_port to_port
    from_port=$(. "$MH_TMP/$1/env"; echo "$IMAPS_PORT")
    to_port=$(. "$MH_TMP/$3/env"; echo "$IMAPS_PORT")
    MAILHAUL_FROM_PASSWORD=$2 MAILHAUL_TO_PASSWORD=$4 "$MH_BUILD_DIR/mailhaul" migrate \
        --from "imaps://dave@127.0.0.1:$from_port" --to "imaps://dave@127.0.0.1:$to_port" \
        --ca-file "$MH_CA_FILE" --quiet
}
snapshot() { mh_mailbox snapshot --server "$MH_TMP/$1" --user dave --password "$2" --json "$MH_TMP/$1.json" >/dev/null; }

mh_log "Courier-style '.' with INBOX. prefix -> '/' without prefix"
migrate courier p1 slash p2 >"$MH_TMP/run1.txt" || { cat "$MH_TMP/run1.txt"; mh_fail "first leg failed"; }
snapshot courier p1
snapshot slash p2
python3 - "$MH_TMP/slash.json" <<'PY' || mh_fail "unexpected target folders"
import json, sys
folders = json.load(open(sys.argv[1]))["folders"]
names = set(folders)
want = {"INBOX", "Sent", "Trash", "Projects", "Projects/2024", "Projects/2024/Q1", "Überweisungen"}
assert want <= names, f"missing {want - names}; have {sorted(names)}"
assert "Sent Items" not in names and "Deleted Items" not in names, sorted(names)
assert not any(n.startswith("INBOX/") for n in names), sorted(names)
PY
mh_mailbox compare --map 'Sent Items=Sent' --map 'Deleted Items=Trash' "$MH_TMP/courier.json" "$MH_TMP/slash.json" ||
    mh_fail "first leg: target differs"

mh_log "'/' without prefix -> Courier-style INBOX. prefix"
migrate slash p2 courier2 p3 >"$MH_TMP/run2.txt" || { cat "$MH_TMP/run2.txt"; mh_fail "second leg failed"; }
snapshot courier2 p3
mh_mailbox compare "$MH_TMP/slash.json" "$MH_TMP/courier2.json" || mh_fail "second leg: target differs"
python3 - "$MH_TMP/courier2.json" <<'PY' || mh_fail "prefix not applied on the Courier-style target"
import json, sys
d = json.load(open(sys.argv[1]))
raw = [f.get("raw", n) for n, f in d["folders"].items()]
print("courier2 folders:", sorted(d["folders"]))
PY
echo "PASS: namespaces, separators and special-use folders mapped"
