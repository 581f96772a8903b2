#!/usr/bin/env bash
# Validates the deployment files (deploy/ and docker-compose.yml) without running Docker,
# Kubernetes or systemd: YAML structure, MAILHAUL_* variables and binary names against
# common/config.h and CMakeLists.txt, the Dockerfile's packages, redis.conf (loaded by a real
# redis-server when there is one), and the systemd units (systemd-analyze verify when there
# is one). Checks whose tool is missing are skipped with a message; the others still run.
# Prints what was checked and what was skipped; exit 1 when anything failed.
set -euo pipefail
. "$(dirname "$0")/../support/lib.sh"
cd "$MH_SOURCE_DIR"

checked=()
skipped=()
failed=()
mark=0
# begin: starts a check; ok MSG then records it as passed unless bad was called since.
begin() { mark=${#failed[@]}; }
ok() {
    if [ ${#failed[@]} -eq $mark ]; then checked+=("$1"); echo "ok:   $1"; else echo "FAIL: $1" >&2; fi
}
skip() { skipped+=("$1"); echo "skip: $1"; }
bad() { failed+=("$1"); echo "FAIL: $1" >&2; }
has() { command -v "$1" >/dev/null 2>&1; }

compose=docker-compose.yml
dockerfile=deploy/Dockerfile
redis_conf=deploy/redis/redis.conf
k8s=deploy/kubernetes
units=(deploy/systemd/mailhaul-coordinator.service deploy/systemd/mailhaul-worker@.service)
env_example=deploy/systemd/mailhaul.env.example

# ---- 1. the files exist ---------------------------------------------------------------------
begin
missing=()
for f in "$compose" "$dockerfile" "$redis_conf" deploy/README.md deploy/secrets/.gitignore \
    "$k8s"/namespace.yaml "$k8s"/redis.yaml "$k8s"/coordinator.yaml "$k8s"/worker.yaml \
    "$k8s"/secret-example.yaml "$k8s"/kustomization.yaml "${units[@]}" "$env_example"; do
    [ -f "$f" ] || missing+=("$f")
done
[ ${#missing[@]} -eq 0 ] && ok "all deployment files present" || mh_fail "missing: ${missing[*]}"

# ---- 2. what the project defines --------------------------------------------------------------
# Daemon variables: the MAILHAUL_* names documented in common/config.h.
mapfile -t config_vars < <(grep -oE 'MAILHAUL_[A-Z0-9_]+' common/config.h | sort -u)
# Every MAILHAUL_* name the sources read (the CLI's too): allowed in comments.
mapfile -t source_vars < <(grep -rhoE 'MAILHAUL_[A-Z0-9_]+' common cli coordinator worker | sort -u)
# Binaries: add_executable(NAME ...) with a literal name (not the ${name} test loops).
mapfile -t binaries < <(grep -oE 'add_executable\([A-Za-z0-9_.-]+' CMakeLists.txt | sed 's/.*(//' | sort -u)
[ ${#config_vars[@]} -ge 5 ] || mh_fail "found only ${#config_vars[@]} MAILHAUL_ names in common/config.h"
[ ${#binaries[@]} -eq 3 ] || mh_fail "expected 3 binaries in CMakeLists.txt, found: ${binaries[*]}"
echo "info: config.h variables: ${config_vars[*]}"
echo "info: binaries: ${binaries[*]}"
in_list() { # in_list WORD LIST...
    local w=$1 x; shift
    for x in "$@"; do [ "$x" = "$w" ] && return 0; done
    return 1
}

# ---- 3. MAILHAUL_* names in the deployment files ------------------------------------------------
# Outside comments only the daemons' variables (config.h) may appear; comments may also name
# the CLI's (MAILHAUL_FROM_PASSWORD...), but nothing the sources do not know.
begin
env_files=("$compose" "$dockerfile" "$k8s"/*.yaml "${units[@]}" "$env_example")
declare -A is_config_var=() is_source_var=()
for v in "${config_vars[@]}"; do is_config_var[$v]=1; done
for v in "${source_vars[@]}"; do is_source_var[$v]=1; done
n=0
# One line per use: FILE KIND NAME (KIND: code or comment, by the line it is on).
while read -r f kind v; do
    n=$((n + 1))
    if [ "$kind" = code ]; then
        [ -n "${is_config_var[$v]-}" ] || bad "$f: $v is not a daemon variable of common/config.h"
    else
        [ -n "${is_source_var[$v]-}" ] || bad "$f: comment names $v, which no source reads"
    fi
done < <(awk '{
        kind = ($0 ~ /^[[:space:]]*#/) ? "comment" : "code"
        line = $0
        while (match(line, /MAILHAUL_[A-Z0-9_]+/)) {
            print FILENAME, kind, substr(line, RSTART, RLENGTH)
            line = substr(line, RSTART + RLENGTH)
        }
    }' "${env_files[@]}")
ok "MAILHAUL_* names ($n uses in ${#env_files[@]} files) exist in common/config.h (comments: in the sources)"

# ---- 4. binaries named by the deployment files -------------------------------------------------
begin
# compose and Kubernetes commands are written as flow lists: command: ["NAME", ...]
while IFS= read -r cmd; do
    case $cmd in
    mailhaul*) in_list "$cmd" "${binaries[@]}" || bad "command $cmd is not built by CMakeLists.txt" ;;
    redis-server | redis-cli) ;;
    *) bad "unexpected command '$cmd' in compose/Kubernetes files" ;;
    esac
done < <(grep -hoE 'command: *\[ *"[^"]+"' "$compose" "$k8s"/*.yaml | sed -E 's/.*"([^"]+)"$/\1/' | sort -u)
for b in "${binaries[@]}"; do
    grep -qE "command: *\[ *\"$b\"" "$compose" "$k8s"/*.yaml || [ "$b" = mailhaul ] \
        || bad "no compose/Kubernetes command runs $b"
done
for u in "${units[@]}"; do
    exe=$(sed -nE 's/^ExecStart=[-@:+!]*([^ ]+).*/\1/p' "$u")
    [ -n "$exe" ] || { bad "$u: no ExecStart="; continue; }
    in_list "$(basename "$exe")" "${binaries[@]}" || bad "$u: ExecStart runs $exe, not a built binary"
done
ok "commands in compose, Kubernetes and systemd files are binaries CMakeLists.txt builds"

# ---- 5. Dockerfile -------------------------------------------------------------------------------
begin
# Joined logical lines (backslash continuations), comments dropped.
df_lines=$(sed -e '/^[[:space:]]*#/d' "$dockerfile" | sed -e ':a' -e '/\\$/{N;s/\\\n/ /;ba}')
mapfile -t froms < <(grep -iE '^FROM ' <<<"$df_lines")
[ ${#froms[@]} -ge 2 ] || bad "Dockerfile: expected a multi-stage build (found ${#froms[@]} FROM)"
for fr in "${froms[@]}"; do
    grep -qE '^FROM +debian:12-slim( |$)' <<<"$fr" || bad "Dockerfile: stage not on debian:12-slim: $fr"
done
build_stage=$(awk '/^FROM /{n++} n==1' <<<"$df_lines")
runtime_stage=$(awk -v last=${#froms[@]} '/^FROM /{n++} n==last' <<<"$df_lines")
# apt_packages STAGE_TEXT: the package arguments of its apt-get install commands.
apt_packages() {
    grep -E 'apt-get install' <<<"$1" | sed 's/&&/\n/g' | grep -E 'apt-get install' \
        | sed -E 's/.*apt-get install//' | tr ' ' '\n' | grep -vE '^(-.*|)$' | sort -u
}
mapfile -t build_pkgs < <(apt_packages "$build_stage")
mapfile -t runtime_pkgs < <(apt_packages "$runtime_stage")
echo "info: Dockerfile build packages: ${build_pkgs[*]}"
echo "info: Dockerfile runtime packages: ${runtime_pkgs[*]}"
for p in build-essential cmake pkg-config libhiredis-dev libssl-dev libmsgpack-dev libevent-dev; do
    in_list "$p" "${build_pkgs[@]}" || bad "Dockerfile: build stage does not install $p"
done
if grep -qE 'pkg_check_modules\(CMOCKA REQUIRED' CMakeLists.txt; then
    in_list libcmocka-dev "${build_pkgs[@]}" || bad "Dockerfile: CMakeLists.txt requires cmocka; build stage lacks libcmocka-dev"
fi
for p in "${runtime_pkgs[@]}"; do
    case $p in *-dev | build-essential | cmake | pkg-config | gcc | make) bad "Dockerfile: runtime stage installs build tool $p" ;; esac
done
in_list ca-certificates "${runtime_pkgs[@]}" || bad "Dockerfile: runtime stage lacks ca-certificates"
grep -qE 'CMAKE_BUILD_TYPE=Release' <<<"$build_stage" || bad "Dockerfile: not a Release build"
user=$(grep -E '^USER ' <<<"$runtime_stage" | tail -1 | awk '{print $2}')
case ${user%%:*} in
'' | root | 0) bad "Dockerfile: runtime stage does not switch to a non-root USER (got '$user')" ;;
esac
grep -qE 'useradd .*mailhaul' <<<"$runtime_stage" || bad "Dockerfile: runtime stage does not create the user mailhaul"
uid=$(grep -oE 'useradd .*--uid [0-9]+' <<<"$runtime_stage" | grep -oE '[0-9]+$' || true)
[ -z "$uid" ] || [ "${user%%:*}" = "$uid" ] || [ "${user%%:*}" = mailhaul ] \
    || bad "Dockerfile: USER $user is not the mailhaul user (uid $uid)"
for b in "${binaries[@]}"; do
    grep -E '^COPY --from=' <<<"$runtime_stage" | grep -qE "/$b( |$).*/usr/local/bin/?$" \
        || bad "Dockerfile: $b is not copied to /usr/local/bin in the runtime stage"
done
grep -qiE '^ADD ' <<<"$df_lines" && bad "Dockerfile: uses ADD (COPY is enough)"
while read -r src; do
    [ -e "$src" ] || bad "Dockerfile: COPY source $src does not exist in the repository"
done < <(grep -E '^COPY ' <<<"$df_lines" | grep -v -- '--from' | awk '{for (i = 2; i < NF; i++) print $i}')
ok "Dockerfile: multi-stage debian:12-slim, Release build, runtime without build tools, non-root user, the ${#binaries[@]} binaries"

# Package names exist in Debian's lists (only when apt lists are present: no apt-get update).
begin
if has apt-cache && compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    # One apt-cache call (it is slow): the Package: names it knows, compared with ours.
    all_pkgs=("${build_pkgs[@]}" "${runtime_pkgs[@]}")
    known=$(apt-cache show --no-all-versions "${all_pkgs[@]}" 2>/dev/null | sed -n 's/^Package: //p' | sort -u || true)
    for p in "${all_pkgs[@]}"; do
        grep -qxF "$p" <<<"$known" || bad "Dockerfile: apt-cache does not know package $p"
    done
    ok "Dockerfile: all ${#all_pkgs[@]} apt package names exist (apt-cache show)"
else
    skip "Dockerfile package names (apt-cache or apt lists absent; not running apt-get update)"
fi

# The runtime stage has a package for every shared library the built binaries link.
# (Sanitizer and C runtime libraries are left out: the image builds without sanitizers and
# debian:12-slim has libc6 and libgcc-s1.)
begin
bins_present=1
for b in "${binaries[@]}"; do [ -x "$MH_BUILD_DIR/$b" ] || bins_present=0; done
if [ $bins_present = 1 ] && has ldd && has dpkg-query; then
    needed=()
    mapfile -t libs < <(for b in "${binaries[@]}"; do ldd "$MH_BUILD_DIR/$b"; done \
        | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)
    # A library's path as dpkg knows it may differ (merged /usr, symlinks): ask for all
    # variants in one dpkg-query call (it is slow), then take the first that is owned.
    declare -A owner=()
    cands=()
    for lib in "${libs[@]}"; do
        real=$(readlink -f "$lib")
        cands+=("$lib" "$real" "/usr$lib" "${lib#/usr}" "/usr$real" "${real#/usr}")
    done
    while IFS= read -r line; do
        owner[${line#*: }]=${line%%:*}
    done < <(dpkg-query -S "${cands[@]}" 2>/dev/null | grep -E '^[^ ,:]+(:[a-z0-9]+)?: /' | sed -E 's/^([^:]+)(:[a-z0-9]+)?: /\1: /' || true)
    for lib in "${libs[@]}"; do
        real=$(readlink -f "$lib")
        pkg=""
        for cand in "$lib" "$real" "/usr$lib" "${lib#/usr}" "/usr$real" "${real#/usr}"; do
            pkg=${owner[$cand]-}
            [ -z "$pkg" ] || break
        done
        [ -n "$pkg" ] || { bad "no Debian package owns $lib"; continue; }
        case $pkg in libc6 | libgcc-s1 | libstdc++6 | libasan* | libubsan* | liblsan* | libtsan*) continue ;; esac
        in_list "$pkg" "${needed[@]+"${needed[@]}"}" || needed+=("$pkg")
    done
    for p in "${needed[@]+"${needed[@]}"}"; do
        in_list "$p" "${runtime_pkgs[@]}" || bad "Dockerfile: the binaries link a library of $p, not installed in the runtime stage"
    done
    ok "Dockerfile: runtime stage installs every library package the built binaries link (${needed[*]-none})"
else
    skip "Dockerfile runtime libraries against ldd (needs ldd, dpkg-query and the binaries in $MH_BUILD_DIR)"
fi

# ---- 6. redis.conf ---------------------------------------------------------------------------------
# directives FILE: the configuration lines, comments and blank lines dropped, spaces squeezed.
directives() { sed -e 's/^[[:space:]]*//' -e '/^#/d' -e '/^$/d' -e 's/[[:space:]]\+/ /g' -e 's/ $//' "$1"; }
begin
conf=$(directives "$redis_conf")
for d in 'appendonly yes' 'appendfsync everysec' 'maxmemory-policy noeviction'; do
    grep -qxF "$d" <<<"$conf" || bad "$redis_conf: lacks '$d'"
done
grep -qE '^save [0-9]' <<<"$conf" || bad "$redis_conf: no RDB 'save' rule"
grep -qF 'deploy/redis/redis.conf:' "$compose" || bad "$compose: does not mount deploy/redis/redis.conf"
ok "redis.conf: appendonly yes, appendfsync everysec, RDB save rules, maxmemory-policy noeviction; mounted by compose"

begin
if has redis-server && has redis-cli; then
    rdir=$(mh_tmpdir)
    # Same file, with the data dir and the listener moved into the temp dir (no TCP port).
    sed -E "s|^[[:space:]]*dir .*|dir $rdir|" "$redis_conf" >"$rdir/redis.conf"
    redis-server "$rdir/redis.conf" --port 0 --bind 127.0.0.1 --protected-mode yes \
        --unixsocket "$rdir/redis.sock" --daemonize no --logfile "$rdir/redis.log" >"$rdir/redis.out" 2>&1 &
    rpid=$!
    mh_register_pid "$rpid"
    up=0
    for _ in $(seq 1 100); do
        if redis-cli -s "$rdir/redis.sock" ping 2>/dev/null | grep -q PONG; then up=1; break; fi
        # Gone (or a zombie: it refused the configuration and exited)?
        case $(awk '{print $3}' "/proc/$rpid/stat" 2>/dev/null) in '' | Z) break ;; esac
        sleep 0.1
    done
    if [ $up = 1 ]; then
        for kv in appendonly=yes appendfsync=everysec maxmemory-policy=noeviction; do
            got=$(redis-cli -s "$rdir/redis.sock" config get "${kv%%=*}" | sed -n 2p)
            [ "$got" = "${kv#*=}" ] || bad "redis-server with $redis_conf: ${kv%%=*} is '$got'"
        done
        redis-cli -s "$rdir/redis.sock" shutdown nosave >/dev/null 2>&1 || true
        wait "$rpid" 2>/dev/null || true
        ok "redis.conf loads in $(redis-server --version | awk '{print $3}') (settings read back with CONFIG GET)"
    else
        bad "redis-server refused $redis_conf: $(cat "$rdir/redis.out" "$rdir/redis.log" 2>/dev/null | tr -s '\n' ' ')"
    fi
else
    skip "loading redis.conf into a real redis-server (not installed)"
fi

# ---- 7. systemd units ------------------------------------------------------------------------------
begin
for u in "${units[@]}"; do
    for d in 'EnvironmentFile=/etc/mailhaul/mailhaul.env' 'KillSignal=SIGTERM' 'TimeoutStopSec=120' \
        'Restart=on-failure' 'NoNewPrivileges=yes' 'ProtectSystem=strict' 'PrivateTmp=yes' \
        'ProtectHome=yes' 'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX'; do
        grep -qxF "$d" "$u" || bad "$u: lacks $d"
    done
    grep -qE '^(DynamicUser=yes|User=mailhaul)$' "$u" || bad "$u: neither DynamicUser=yes nor User=mailhaul"
done
grep -qE '^ExecStart=.*%i' deploy/systemd/mailhaul-worker@.service || bad "worker template does not use its instance name"
ok "systemd units: environment file, SIGTERM with 120 s stop timeout, Restart=on-failure, hardening"

begin
if has systemd-analyze; then
    sdir=$(mh_tmpdir)
    # The binaries need not be installed here: ExecStart runs /bin/true with the same arguments.
    for u in "${units[@]}"; do
        sed -E 's#^ExecStart=([-@:+!]*)[^ ]+#ExecStart=\1/bin/true#' "$u" >"$sdir/$(basename "$u")"
    done
    rc=0
    out=$(cd "$sdir" && systemd-analyze verify --man=no ./mailhaul-coordinator.service \
        ./mailhaul-worker@verify.service 2>&1) || rc=$?
    # Warnings about our units name the unit or its file; anything else is the host's business.
    ours=$(grep -E "$sdir|mailhaul-" <<<"$out" || true)
    if [ -n "$ours" ]; then
        bad "systemd-analyze verify: $ours"
    elif [ $rc != 0 ]; then
        skip "systemd-analyze verify (exit $rc without naming our units: $out)"
    else
        [ -z "$out" ] || echo "info: systemd-analyze (not about our units): $out"
        ok "systemd-analyze verify: both units (worker as instance @verify) without warnings"
    fi
else
    skip "systemd-analyze verify (systemd-analyze not installed)"
fi

# ---- 8. the seal key stays out of git ----------------------------------------------------------------
begin
if has git && git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git check-ignore -q deploy/secrets/seal.key || bad "deploy/secrets/seal.key is not ignored by git"
    git check-ignore -q deploy/secrets/.gitignore && bad "deploy/secrets/.gitignore ignores itself"
    ok "git ignores deploy/secrets/seal.key but not deploy/secrets/.gitignore"
else
    grep -qxF '*' deploy/secrets/.gitignore && grep -qxF '!.gitignore' deploy/secrets/.gitignore \
        || bad "deploy/secrets/.gitignore does not ignore everything but itself"
    ok "deploy/secrets/.gitignore ignores everything but itself (not a git work tree: text check)"
fi

# ---- 9. YAML structure (PyYAML) -----------------------------------------------------------------------
begin
if has python3 && python3 -c 'import yaml' 2>/dev/null; then
    rc=0
    MH_VARS="${config_vars[*]}" MH_BINS="${binaries[*]}" python3 - "$compose" "$k8s" "$redis_conf" <<'EOF' || rc=$?
import glob, os, re, sys
import yaml

compose_path, k8s_dir, redis_conf = sys.argv[1:4]
config_vars = set(os.environ["MH_VARS"].split())
binaries = set(os.environ["MH_BINS"].split())
failures = 0


def fail(msg):
    global failures
    failures += 1
    print("FAIL: " + msg, file=sys.stderr)


def ok(msg):
    print("ok:   " + msg)


def seconds(v):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(v))
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0) if m and v else None


def directives(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(" ".join(line.split()))
    return out


# Every YAML file parses.
docs = {}
for path in sorted([compose_path] + glob.glob("deploy/**/*.yaml", recursive=True)
                   + glob.glob("deploy/**/*.yml", recursive=True)):
    try:
        with open(path) as f:
            docs[path] = [d for d in yaml.safe_load_all(f) if d is not None]
    except yaml.YAMLError as e:
        fail(f"{path}: not valid YAML: {e}")
ok(f"{len(docs)} YAML files parse: {', '.join(docs)}")

# ---- docker-compose.yml
c = docs.get(compose_path, [{}])[0]
services = c.get("services", {})
for name in ("redis", "coordinator", "worker"):
    if name not in services:
        fail(f"compose: no service {name}")
secrets = c.get("secrets", {})
key_secrets = [n for n, s in secrets.items() if s.get("file") == "./deploy/secrets/seal.key"]
if not key_secrets:
    fail("compose: no secret from ./deploy/secrets/seal.key")
for name, s in services.items():
    if not s.get("restart"):
        fail(f"compose: service {name} has no restart policy")
    cmd = s.get("command") or []
    if isinstance(cmd, str):
        cmd = cmd.split()
    if name == "redis":
        if s.get("image", "").split(":")[0] != "redis" or not str(s.get("image")).startswith("redis:7"):
            fail("compose: redis is not redis:7")
        vols = s.get("volumes", [])
        conf_mounts = [v.split(":")[1] for v in vols if isinstance(v, str)
                       and v.startswith("./deploy/redis/redis.conf:")]
        if not conf_mounts or conf_mounts[0] not in cmd:
            fail("compose: redis does not run with the mounted deploy/redis/redis.conf")
        data = [v.split(":")[0] for v in vols if isinstance(v, str) and v.split(":")[1:2] == ["/data"]]
        if not data or data[0] not in (c.get("volumes") or {}):
            fail("compose: redis /data is not a named volume")
        continue
    if not cmd or cmd[0] not in binaries:
        fail(f"compose: service {name} runs {cmd}, not a built binary")
    env = s.get("environment", {})
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    for k in env:
        if k not in config_vars:
            fail(f"compose: service {name} sets {k}, not in common/config.h")
    if not str(env.get("MAILHAUL_REDIS", "")).startswith("redis://redis:"):
        fail(f"compose: service {name}: MAILHAUL_REDIS does not point at the redis service")
    svc_secrets = [x if isinstance(x, str) else x.get("source") for x in s.get("secrets", [])]
    kf = env.get("MAILHAUL_SEAL_KEY_FILE", "")
    if not any(k in svc_secrets and kf == "/run/secrets/" + k for k in key_secrets):
        fail(f"compose: service {name}: MAILHAUL_SEAL_KEY_FILE={kf} is not its seal key secret")
    if s.get("depends_on") and "redis" not in s["depends_on"]:
        fail(f"compose: service {name} does not depend on redis")
w = services.get("worker", {})
if str(w.get("environment", {}).get("MAILHAUL_CONCURRENCY")) != "4":
    fail("compose: worker MAILHAUL_CONCURRENCY is not 4")
if (seconds(w.get("stop_grace_period")) or 0) < 60:
    fail(f"compose: worker stop_grace_period {w.get('stop_grace_period')} is missing or short")
if "container_name" in w or "ports" in w:
    fail("compose: worker has container_name or ports (cannot --scale)")
ok("compose: redis with the repo's redis.conf and a data volume; coordinator and worker "
   "env, commands, seal key secret, restart policies, worker stop_grace_period, scalable worker")

# ---- Kubernetes
kdocs = {}
for path, ds in docs.items():
    if path.startswith(k8s_dir + "/") and not path.endswith("kustomization.yaml"):
        for d in ds:
            for field in ("apiVersion", "kind"):
                if field not in d:
                    fail(f"{path}: a document has no {field}")
            if not d.get("metadata", {}).get("name"):
                fail(f"{path}: a {d.get('kind')} has no metadata.name")
            kdocs.setdefault(path, []).append(d)
kust = docs.get(os.path.join(k8s_dir, "kustomization.yaml"), [{}])[0]
res = kust.get("resources", [])
for r in res:
    if not os.path.isfile(os.path.join(k8s_dir, r)):
        fail(f"kustomization: resource {r} does not exist")
for r in ("namespace.yaml", "redis.yaml", "coordinator.yaml", "worker.yaml"):
    if r not in res:
        fail(f"kustomization: {r} not listed")
alldocs = [d for ds in kdocs.values() for d in ds]
by_kind = {}
for d in alldocs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
secret_names = set(by_kind.get("Secret", {}))
for s in by_kind.get("Secret", {}).values():
    for k, v in (s.get("stringData") or {}).items():
        if re.fullmatch(r"\s*[0-9a-fA-F]{64}\s*", str(v)):
            fail(f"secret-example: {k} looks like a real key; use a placeholder")

workloads = [d for d in alldocs if d["kind"] in ("Deployment", "StatefulSet")]
for d in workloads:
    name = d["metadata"]["name"]
    pod = d["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    for ctr in pod["containers"]:
        image = ctr.get("image", "")
        cmd = ctr.get("command") or []
        if image.split(":")[0].endswith("mailhaul"):
            if not cmd or cmd[0] not in binaries:
                fail(f"k8s {name}: command {cmd} is not a built binary")
        env = {e["name"]: e for e in ctr.get("env", [])}
        for k in env:
            if k not in config_vars:
                fail(f"k8s {name}: env {k} is not in common/config.h")
        if "MAILHAUL_REDIS" in env:
            host = re.sub(r"^redis://(?:[^@]*@)?([^:/]+).*", r"\1", env["MAILHAUL_REDIS"].get("value", ""))
            if host not in by_kind.get("Service", {}):
                fail(f"k8s {name}: MAILHAUL_REDIS host {host} is not a Service")
        if image.split(":")[0].endswith("mailhaul"):
            kf = env.get("MAILHAUL_SEAL_KEY_FILE", {}).get("value", "")
            mounts = [m for m in ctr.get("volumeMounts", []) if kf.startswith(m["mountPath"].rstrip("/") + "/")]
            vol = vols.get(mounts[0]["name"]) if mounts else None
            if not vol or "secret" not in vol:
                fail(f"k8s {name}: MAILHAUL_SEAL_KEY_FILE={kf} is not in a mounted Secret")
            else:
                sec = vol["secret"]
                items = [i["path"] for i in sec.get("items", [])] or [os.path.basename(kf)]
                if os.path.basename(kf) not in items:
                    fail(f"k8s {name}: the Secret volume has no {os.path.basename(kf)}")
                if secret_names and sec["secretName"] not in secret_names:
                    fail(f"k8s {name}: Secret {sec['secretName']} is not the one in secret-example.yaml")
            if not ctr.get("resources", {}).get("requests") or not ctr.get("resources", {}).get("limits"):
                fail(f"k8s {name}: no resource requests/limits")

deps = by_kind.get("Deployment", {})
coord = next((d for n, d in deps.items() if "coordinator" in n), None)
worker = next((d for n, d in deps.items() if "worker" in n), None)
if not coord or coord["spec"].get("replicas") != 1 or coord["spec"].get("strategy", {}).get("type") != "Recreate":
    fail("k8s: the coordinator is not a Deployment with replicas 1 and strategy Recreate")
if not worker:
    fail("k8s: no worker Deployment")
else:
    wpod = worker["spec"]["template"]["spec"]
    if worker["spec"].get("replicas") != 3:
        fail("k8s: worker replicas is not 3")
    if wpod.get("terminationGracePeriodSeconds") != 120:
        fail("k8s: worker terminationGracePeriodSeconds is not 120")
    if wpod["containers"][0].get("resources", {}).get("limits", {}).get("memory") != "128Mi":
        fail("k8s: worker memory limit is not 128Mi")
    wenv = {e["name"]: e.get("value") for e in wpod["containers"][0].get("env", [])}
    if wenv.get("MAILHAUL_CONCURRENCY") != "4":
        fail("k8s: worker MAILHAUL_CONCURRENCY is not \"4\"")

sts = list(by_kind.get("StatefulSet", {}).values())
if len(sts) != 1 or not sts[0]["spec"].get("volumeClaimTemplates"):
    fail("k8s: no Redis StatefulSet with a volumeClaimTemplate")
else:
    pod = sts[0]["spec"]["template"]["spec"]
    cms = [v["configMap"]["name"] for v in pod.get("volumes", []) if "configMap" in v]
    cm = by_kind.get("ConfigMap", {}).get(cms[0]) if cms else None
    if not cm or "redis.conf" not in cm.get("data", {}):
        fail("k8s: the Redis StatefulSet mounts no ConfigMap with redis.conf")
    else:
        with open(redis_conf) as f:
            want = directives(f.read())
        got = directives(cm["data"]["redis.conf"])
        if got != want:
            fail("k8s: the ConfigMap's redis.conf differs from deploy/redis/redis.conf: "
                 f"only in ConfigMap {sorted(set(got) - set(want))}, only in file {sorted(set(want) - set(got))}")
        cmd = pod["containers"][0].get("command", [])
        if not any(a.endswith("/redis.conf") for a in cmd):
            fail("k8s: redis does not start with its redis.conf")
if "redis" not in by_kind.get("Service", {}):
    fail("k8s: no Service named redis")
if not by_kind.get("Namespace"):
    fail("k8s: no Namespace")
ok("k8s: every document has apiVersion/kind/name; kustomization resources exist; env names, "
   "commands and the seal key Secret mount of the workloads; coordinator replicas 1 + Recreate; "
   "worker replicas 3, grace 120 s, 128Mi; Redis StatefulSet with PVC and the same redis.conf")
sys.exit(1 if failures else 0)
EOF
    [ $rc = 0 ] && ok "YAML structure checks (PyYAML)" || bad "YAML structure checks (see above)"
else
    skip "YAML structure checks (python3 with PyYAML not available: install python3-yaml)"
fi

# ---- 10. the real tools, offline, when installed ---------------------------------------------------------
begin
if has kubectl; then
    rc=0
    out=$(timeout 120 kubectl kustomize "$k8s" 2>&1) || rc=$?
    if [ $rc = 0 ]; then
        ok "kubectl kustomize $k8s renders ($(grep -c '^kind:' <<<"$out") objects)"
    else
        bad "kubectl kustomize $k8s: $out"
    fi
else
    skip "kubectl kustomize (kubectl not installed)"
fi
begin
if has docker && docker compose version >/dev/null 2>&1; then
    # A copy with a throwaway key file: the real one is not needed to validate the model.
    cdir=$(mh_tmpdir)
    mkdir -p "$cdir/deploy/secrets" "$cdir/deploy/redis"
    cp "$compose" "$cdir/"
    cp "$redis_conf" "$cdir/deploy/redis/"
    cp "$dockerfile" "$cdir/deploy/"
    printf '%064d\n' 0 >"$cdir/deploy/secrets/seal.key"
    echo dummy-token >"$cdir/deploy/secrets/http.token"
    rc=0
    out=$(cd "$cdir" && timeout 120 docker compose -f docker-compose.yml config --quiet 2>&1) || rc=$?
    [ $rc = 0 ] && ok "docker compose config accepts $compose" || bad "docker compose config: $out"
else
    skip "docker compose config (the compose plugin is not installed)"
fi

# ---- summary -----------------------------------------------------------------------------------------------
echo
echo "checked: ${#checked[@]}, skipped: ${#skipped[@]}, failed: ${#failed[@]}"
for s in "${skipped[@]+"${skipped[@]}"}"; do echo "  skipped: $s"; done
if [ ${#failed[@]} -gt 0 ]; then
    for f in "${failed[@]}"; do echo "  failed: $f" >&2; done
    exit 1
fi
echo "PASS"
