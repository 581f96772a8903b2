#!/usr/bin/env bash
# End to end through Redis: a generated mailbox (nested folders, non-ASCII names, flags,
# keywords, old dates, MB-sized attachments, duplicates) and the real-world corpus, from a
# '/' server to a '.' server. Proves with the independent checker (tests/support/mailbox.py)
# that the target equals the source, that the source is unchanged and was only read
# (from the protocol transcript), and that a second run copies nothing.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
mh_require_build_bin mailhaul

mh_start_dovecot src --sep /
mh_start_dovecot dst
mh_adduser src alice pw-src
mh_adduser dst alice pw-dst
mh_mailbox fill --server "$MH_TMP/src" --user alice --password pw-src --generated --count 200 --big-mb 4 >/dev/null
if [ -d "$MH_CORPUS_DIR" ]; then
    mh_mailbox fill --server "$MH_TMP/src" --user alice --password pw-src --corpus "$MH_CORPUS_DIR" \
        --folder "Real world" >/dev/null
else
    echo "corpus not found at $MH_CORPUS_DIR: skipping the real-world messages"
fi
mh_mailbox snapshot --server "$MH_TMP/src" --user alice --password pw-src --json "$MH_TMP/src-before.json" >/dev/null

export MAILHAUL_FROM_PASSWORD=pw-src MAILHAUL_TO_PASSWORD=pw-dst
migrate() {
    "$MH_BUILD_DIR/mailhaul" migrate --from "imaps://alice@127.0.0.1:$src_IMAPS_PORT" \
        --to "imap://alice@127.0.0.1:$dst_IMAP_PORT" --ca-file "$MH_CA_FILE" --json --quiet "$@"
}
json() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

mh_log "first run"
migrate --trace "$MH_TMP/trace1" >"$MH_TMP/run1.json" || mh_fail "first run exited $?"
total=$(json "$MH_TMP/run1.json" 'd["messages"]["total"]')
mh_assert_eq "$(json "$MH_TMP/run1.json" 'd["state"]')" done "state after the first run"
mh_assert_eq "$(json "$MH_TMP/run1.json" 'd["messages"]["copied"]')" "$total" "copied on the first run"
mh_assert_eq "$(json "$MH_TMP/run1.json" 'd["messages"]["failed"]')" 0 "failed on the first run"
expected=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(len(f["messages"]) for f in d["folders"].values()))' "$MH_TMP/src-before.json")
mh_assert_eq "$total" "$expected" "messages planned (the source holds $expected)"

mh_log "independent comparison"
mh_mailbox snapshot --server "$MH_TMP/dst" --user alice --password pw-dst --json "$MH_TMP/dst.json" >/dev/null
mh_mailbox compare "$MH_TMP/src-before.json" "$MH_TMP/dst.json" || mh_fail "target differs from source"
# The summary's per-folder target counts agree with an independent count of the target.
python3 - "$MH_TMP/run1.json" "$MH_TMP/dst.json" <<'PY' || mh_fail "summary counts disagree with the target"
import json, sys
run, dst = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert run["verified"] is True and run["verify_error"] is None, run
assert run["folders"], run
for f in run["folders"]:
    held = len(dst["folders"].get(f["target"], {}).get("messages", []))
    assert f["target_after"] == held, (f, held)
    assert f["target_after"] == f["target_before"] + f["messages"]["copied"], f
    assert f["messages"]["total"] == f["messages"]["copied"] + f["messages"]["skipped"] + f["messages"]["failed"], f
PY
mh_mailbox snapshot --server "$MH_TMP/src" --user alice --password pw-src --json "$MH_TMP/src-after.json" >/dev/null
mh_mailbox compare "$MH_TMP/src-before.json" "$MH_TMP/src-after.json" || mh_fail "the source changed"

mh_log "the source was only read (transcript)"
grep -q '^source > ' "$MH_TMP/trace1" || mh_fail "no source commands in the transcript"
# Every command sent to the source: tag, then one of the read-only commands.
bad=$(grep '^source > ' "$MH_TMP/trace1" | cut -d' ' -f3- |
    grep -Ev '^[A-Za-z0-9]+ (CAPABILITY|STARTTLS|LOGIN|AUTHENTICATE|NAMESPACE|LIST|EXAMINE|UID FETCH|NOOP|LOGOUT|ID)( |$)|^<' || true)
[ -z "$bad" ] || mh_fail "commands other than reads reached the source: $(echo "$bad" | head -5)"
grep '^source > ' "$MH_TMP/trace1" | grep -Eiq 'BODY\[|RFC822( |\)|\.HEADER|\.TEXT)' &&
    mh_fail "a FETCH without PEEK (which sets \\Seen) reached the source"
grep -Eq '^source > [A-Za-z0-9]+ LOGIN .*pw-src' "$MH_TMP/trace1" && mh_fail "the password is in the transcript"
grep -Eq '^target > [A-Za-z0-9]+ APPEND ' "$MH_TMP/trace1" || mh_fail "no APPEND reached the target"

mh_log "second run copies nothing"
migrate --trace "$MH_TMP/trace2" >"$MH_TMP/run2.json" || mh_fail "second run exited $?"
mh_assert_eq "$(json "$MH_TMP/run2.json" 'd["messages"]["copied"]')" 0 "copied on the second run"
mh_assert_eq "$(json "$MH_TMP/run2.json" 'd["messages"]["skipped"]')" "$total" "skipped on the second run"
grep -Eq '^target > [A-Za-z0-9]+ APPEND ' "$MH_TMP/trace2" && mh_fail "the second run appended"
mh_mailbox snapshot --server "$MH_TMP/dst" --user alice --password pw-dst --json "$MH_TMP/dst2.json" >/dev/null
mh_mailbox compare "$MH_TMP/src-before.json" "$MH_TMP/dst2.json" || mh_fail "target changed on the second run"
echo "PASS: $total messages migrated byte-identical; source untouched; second run skipped all"
