#!/usr/bin/env bash
# A message larger than the target accepts (APPENDLIMIT) fails alone, named with its
# reason and fix; the messages around it (same MULTIAPPEND) still arrive; exit status 1.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
mh_require_dovecot
mh_require_redis
mh_require_build_bin mailhaul

mh_start_dovecot src
mh_start_dovecot dst --appendlimit 300000
mh_adduser src fay p1
mh_adduser dst fay p2
for i in 1 2 3; do
    mh_mailbox add-message --server "$MH_TMP/src" --user fay --password p1 --seed "$i" >/dev/null
done
mh_mailbox add-message --server "$MH_TMP/src" --user fay --password p1 --seed 9 --size-kb 600 --subject "too big" >/dev/null
for i in 4 5 6; do
    mh_mailbox add-message --server "$MH_TMP/src" --user fay --password p1 --seed "$i" >/dev/null
done

export MAILHAUL_FROM_PASSWORD=p1 MAILHAUL_TO_PASSWORD=p2
args=(migrate --from "imaps://fay@127.0.0.1:$src_IMAPS_PORT" --to "imaps://fay@127.0.0.1:$dst_IMAPS_PORT"
    --ca-file "$MH_CA_FILE" --quiet)
rc=0
"$MH_BUILD_DIR/mailhaul" "${args[@]}" --json >"$MH_TMP/run.json" || rc=$?
mh_assert_eq "$rc" 1 "exit status with a failed message"
python3 - "$MH_TMP/run.json" <<'PY' || mh_fail "wrong summary"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["state"] == "partial", d["state"]
m = d["messages"]
assert (m["total"], m["copied"], m["failed"]) == (7, 6, 1), m
f = d["failures"]
assert len(f) == 1 and f[0]["code"] == "MSG_TOO_BIG" and f[0]["folder"] == "INBOX", f
assert f[0]["size"] > 600 * 1024 and "fix" in f[0] and f[0]["fix"], f
# the ledger names the message without showing its subject (privacy by default)
assert f[0]["date"] and f[0]["subject"].startswith("sha256:") and "too big" not in f[0]["subject"], f
PY
# The human summary explains it, and a second run tries only that message again.
rc=0
out=$("$MH_BUILD_DIR/mailhaul" "${args[@]}" --ledger-subjects) || rc=$?
mh_assert_eq "$rc" 1 "exit status of the second run"
grep -q "MSG_TOO_BIG (1): the message is larger than the destination accepts" <<<"$out" || mh_fail "no explanation: $out"
grep -q "6 skipped" <<<"$out" || mh_fail "second run did not skip the six copied messages: $out"
grep -q "subject too big" <<<"$out" || mh_fail "--ledger-subjects did not show the subject: $out"
echo "PASS: an oversized message fails alone with its reason; its neighbours arrive"
