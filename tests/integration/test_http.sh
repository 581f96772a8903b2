#!/usr/bin/env bash
# The coordinator's HTTP server (--http): the dashboard page, /healthz, /metrics in the
# Prometheus format agreeing with the jobs, the JSON API (job list, a job's summary and
# history) agreeing with `mailhaul status`, actions (pause, resume, cancel, sync of a job
# that keeps its passwords, forget of an ended one), and its guards: the bearer token, the X-Mailhaul-Action header
# on POSTs, 404/405/409 with a reason, a bad --http value refused at start.
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
for i in 1 2 3 4; do
    mh_mailbox add-message --server "$MH_TMP/src" --user ann --password pw-src --seed $i >/dev/null
done
mh_mailbox add-message --server "$MH_TMP/src" --user bob --password pw-src --seed 9 >/dev/null

"$mh" keygen "$MH_TMP/seal.key" >/dev/null
export MAILHAUL_SEAL_KEY_FILE=$MH_TMP/seal.key MAILHAUL_REDIS=$REDIS_URL MAILHAUL_LOG_FORMAT=text
export MAILHAUL_FROM_PASSWORD=pw-src MAILHAUL_TO_PASSWORD=pw-dst
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "s3cret-token" >"$MH_TMP/token"

mh_log "a bad --http value is refused at start"
rc=0
"$MH_BUILD_DIR/mailhaul-coordinator" --http "127.0.0.1:notaport" 2>"$MH_TMP/bad.log" || rc=$?
[ $rc -ne 0 ] || mh_fail "the coordinator started with --http 127.0.0.1:notaport"
grep -q "HOST:PORT" "$MH_TMP/bad.log" || mh_fail "no reason given: $(cat "$MH_TMP/bad.log")"

"$MH_BUILD_DIR/mailhaul-coordinator" --http "127.0.0.1:$port" --http-token-file "$MH_TMP/token" \
    2>>"$MH_TMP/coordinator.log" &
mh_register_pid $!
"$MH_BUILD_DIR/mailhaul-worker" 2>>"$MH_TMP/worker.log" &
worker=$!
mh_register_pid $worker
for i in $(seq 50); do grep -q "serving the API" "$MH_TMP/coordinator.log" && break; sleep 0.1; done

migrate() { # USER [OPTIONS] -> the job id
    local user=$1
    shift
    "$mh" migrate --redis "$REDIS_URL" --from "imap://$user@127.0.0.1:$src_IMAP_PORT" \
        --to "imap://$user@127.0.0.1:$dst_IMAP_PORT" --ca-file "$MH_CA_FILE" --json --quiet "$@" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["job"])'
}
ann=$(migrate ann)
bob=$(migrate bob)
"$mh" autosync "$bob" --every 1d >/dev/null # keeps bob's passwords: the API may sync it

mh_log "the API, the metrics and the dashboard"
python3 - "$port" "$ann" "$bob" <<'PY' || mh_fail "HTTP API checks failed"
import json, sys, urllib.request, urllib.error
port, ann, bob = sys.argv[1], sys.argv[2], sys.argv[3]
base = "http://127.0.0.1:%s" % port
TOKEN = {"Authorization": "Bearer s3cret-token"}

def call(path, method="GET", headers=None, want=200):
    req = urllib.request.Request(base + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            code, body, ctype = r.status, r.read().decode(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        code, body, ctype = e.code, e.read().decode(), e.headers.get("Content-Type", "")
    assert code == want, "%s %s: %d (wanted %d): %s" % (method, path, code, want, body)
    return body, ctype

page, ctype = call("/")
assert ctype.startswith("text/html") and "<title>mailhaul dashboard</title>" in page, ctype
assert call("/healthz")[0] == "ok\n"

# the token guards the API and the metrics, not the page
for path in ("/api/jobs", "/metrics", "/api/jobs/" + ann):
    call(path, want=401)
call("/api/jobs", headers={"Authorization": "Bearer wrong"}, want=401)
call("/api/jobs", headers={"Authorization": "Bearer s3cret-token-and-more"}, want=401)

jobs = json.loads(call("/api/jobs", headers=TOKEN)[0])["jobs"]
by_id = {j["job"]: j for j in jobs}
assert by_id[ann]["state"] == "done" and by_id[ann]["messages"]["copied"] == 4, by_id[ann]
assert by_id[bob]["messages"]["copied"] == 1, by_id[bob]
assert jobs[0]["job"] == bob, "newest first"
assert len(json.loads(call("/api/jobs?limit=1", headers=TOKEN)[0])["jobs"]) == 1

one = json.loads(call("/api/jobs/" + ann, headers=TOKEN)[0])
assert one["folders"][0]["source"] == "INBOX" and one["folders"][0]["target_after"] == 4, one["folders"]
runs = json.loads(call("/api/jobs/%s/history" % ann, headers=TOKEN)[0])
assert len(runs) == 1 and runs[0]["copied"] == 4 and runs[0]["state"] == "done", runs
call("/api/jobs/j-nosuchjob", headers=TOKEN, want=404)
call("/api/jobs/j-nosuchjob/history", headers=TOKEN, want=404)
call("/api/jobs/bad..id", headers=TOKEN, want=404)
call("/api/nothing", headers=TOKEN, want=404)

metrics, ctype = call("/metrics", headers=TOKEN)
assert ctype.startswith("text/plain"), ctype
values = {}
for line in metrics.splitlines():
    if line and not line.startswith("#"):
        name, value = line.rsplit(" ", 1)
        values[name] = float(value)
assert values['mailhaul_jobs{state="done"}'] == 2, metrics
assert values['mailhaul_messages{result="copied"}'] == 5, metrics
assert values['mailhaul_jobs{state="cancelled"}'] == 0, metrics
assert values["mailhaul_planner_pools"] >= 1, metrics
assert values["mailhaul_copy_threads_live"] >= 1, metrics
assert values["mailhaul_jobs_autosync"] == 1, metrics

# actions: the header a cross-site form cannot send, then what the job's state allows
call("/api/jobs/%s/pause" % ann, "POST", TOKEN, want=403)
ACT = dict(TOKEN, **{"X-Mailhaul-Action": "1"})
body = call("/api/jobs/%s/pause" % ann, "POST", ACT, want=409)[0]
assert "is done" in json.loads(body)["error"], body
body = call("/api/jobs/%s/sync" % ann, "POST", ACT, want=409)[0]
assert "no passwords" in json.loads(body)["error"], body          # ended, passwords gone
call("/api/jobs/%s/explode" % ann, "POST", ACT, want=404)
call("/api/jobs/%s/pause" % ann, headers=TOKEN, want=405)                # an action wants POST
r = json.loads(call("/api/jobs/%s/sync" % bob, "POST", ACT)[0])   # auto-sync kept them
assert r["action"] == "sync" and r["state"] == "queued", r
print("api ok")
PY

mh_log "a sync started from the API runs"
for i in $(seq 100); do
    [ "$("$mh" history "$bob" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2 ] && break
    sleep 0.2
done
"$mh" history "$bob" --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert len(r) == 2, r' ||
    mh_fail "the sync started from the API did not run"
"$mh" autosync "$bob" --off >/dev/null

mh_log "pause, resume and cancel of a queued job (no worker to take it)"
kill -TERM "$worker"; wait "$worker" || true
printf 'source_host,source_user,source_password,source_port,source_security,destination_host,destination_user,destination_password,destination_port,destination_security\n127.0.0.1,ann,env:MAILHAUL_FROM_PASSWORD,%s,starttls,127.0.0.1,ann,env:MAILHAUL_TO_PASSWORD,%s,starttls\n' \
    "$src_IMAP_PORT" "$dst_IMAP_PORT" >"$MH_TMP/jobs.csv"
"$mh" submit "$MH_TMP/jobs.csv" --redis "$REDIS_URL" --ca-file "$MH_CA_FILE" >"$MH_TMP/submit.out" ||
    mh_fail "submit exited $?"
queued=$("$mh" status --json | python3 -c 'import json,sys; print([j["job"] for j in json.load(sys.stdin) if j["state"] == "queued"][0])')
python3 - "$port" "$queued" <<'PY' || mh_fail "job control through the API failed"
import json, sys, urllib.request
def post(action):
    req = urllib.request.Request("http://127.0.0.1:%s/api/jobs/%s/%s" % (sys.argv[1], sys.argv[2], action),
                                 method="POST", headers={"Authorization": "Bearer s3cret-token",
                                                         "X-Mailhaul-Action": "1"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["state"]
assert post("pause") == "paused"
assert post("resume") == "queued"
assert post("cancel") == "cancelled"
PY
mh_assert_eq "$("$mh" status "$queued" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["state"])')" \
    cancelled "state after cancel through the API"
grep -q "http: cancel $queued: done" "$MH_TMP/coordinator.log" || mh_fail "the action was not logged"

mh_log "forget: an ended or cancelled job's record and traces go"
python3 - "$port" "$ann" "$queued" <<'PY' || mh_fail "forget through the API failed"
import json, sys, urllib.request, urllib.error
port, ann, queued = sys.argv[1:]
H = {"Authorization": "Bearer s3cret-token", "X-Mailhaul-Action": "1"}
def call(path, method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%s%s" % (port, path), method=method, headers=H)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
code, body = call("/api/jobs/%s/forget" % ann, "POST")
assert code == 200 and body["state"] == "forgotten" and body["keys"] > 0, (code, body)
assert call("/api/jobs/" + ann)[0] == 404
assert call("/api/jobs/%s/forget" % ann, "POST")[0] == 404          # gone already
assert call("/api/jobs/%s/forget" % queued, "POST")[0] == 200       # cancelled counts as ended
ids = [j["job"] for j in call("/api/jobs")[1]["jobs"]]
assert ann not in ids and queued not in ids, ids
PY
"$mh" records --json | python3 -c "import json,sys; assert '$ann' not in json.dumps(json.load(sys.stdin))" ||
    mh_fail "the forgotten job's record is still listed"

echo "PASS: the HTTP server serves the dashboard, /healthz, /metrics and the JSON API, acts on jobs, and guards with a token and an action header"
