# tests/support/lib.sh — sourced by integration tests (bash).
#
#   . "$(dirname "$0")/../support/lib.sh"
#
# On source:
#   MH_SOURCE_DIR   repo root (default: derived from this file's location)
#   MH_BUILD_DIR    build dir (default: $MH_SOURCE_DIR/build)
#   MH_SUPPORT_DIR  this directory
#   MH_TMP          fresh private temp dir, removed on exit (kept when
#                   MH_KEEP_TMP=1, or when the test failed and MH_KEEP_TMP=fail)
#   MH_CORPUS_DIR   $MH_SOURCE_DIR/../shared/corpus/public (read only, never copy it)
#   an EXIT trap that stops every server/process registered below, by PID,
#   whether the test passes or fails; INT/TERM exit through the same trap.
#
# Functions:
#   mh_tmpdir                 prints a new empty dir inside MH_TMP
#   mh_skip "reason"          prints "SKIP: reason", exit 77
#   mh_fail "reason"          prints "FAIL: reason", exit 1
#   mh_log "msg"              timestamped message on stderr
#   mh_require_dovecot / mh_require_redis / mh_require_cmd CMD   skip (77) when missing
#   mh_require_build_bin NAME   fail when $MH_BUILD_DIR/NAME is missing
#   mh_start_dovecot NAME [dovecot-ctl start options]
#         starts a Dovecot in $MH_TMP/NAME and sets (and exports)
#         NAME_IMAP_PORT NAME_IMAPS_PORT NAME_POP3_PORT NAME_POP3S_PORT
#         NAME_CA_FILE NAME_DOVECOT_DIR NAME_DOVECOT_PID NAME_DOVECOT_SEP
#         NAME_DOVECOT_PREFIX NAME_CERT_DIR ... (every line of DIR/env,
#         prefixed with NAME_), plus MH_CA_FILE (the shared CA).
#   mh_adduser NAME USER PASS [QUOTA_MB]
#   mh_stop_dovecot NAME
#   mh_start_redis [NAME] [--port] [--password PW]
#         starts redis-server in $MH_TMP/NAME (default "redis"); sets and
#         exports REDIS_URL REDIS_SOCKET REDIS_PID [REDIS_PORT REDIS_TCP_URL],
#         and, when NAME is given, NAME_REDIS_URL etc. as well.
#   mh_stop_redis [NAME]
#   mh_kill_redis [NAME]      SIGKILL it (a crash); restart with mh_restart_redis
#   mh_restart_redis [NAME] [--kill]
#         (stops, or with --kill SIGKILLs, then) starts again the server of
#         mh_start_redis: same socket, port and URLs; its data survive when it
#         was started with --aof. Updates REDIS_PID (and NAME_REDIS_PID).
#   mh_register_pid PID       kill PID (TERM, then KILL after 5 s) on exit
#   mh_unregister_pid PID     forget PID (it was stopped and reaped already)
#   mh_mailbox ARGS...        python3 tests/support/mailbox.py ARGS...
#   mh_assert_eq A B "what"   fail unless A = B

set -o pipefail

MH_SUPPORT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${MH_SOURCE_DIR:=$(cd "$MH_SUPPORT_DIR/../.." && pwd)}"
: "${MH_BUILD_DIR:=$MH_SOURCE_DIR/build}"
: "${MH_CORPUS_DIR:=$(cd "$MH_SOURCE_DIR/.." && pwd)/shared/corpus/public}"
export MH_SOURCE_DIR MH_BUILD_DIR MH_SUPPORT_DIR MH_CORPUS_DIR

MH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mh-test.XXXXXX")
chmod 0755 "$MH_TMP"
export MH_TMP
: >"$MH_TMP/.cleanup"

mh_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
mh_skip() { echo "SKIP: $*"; exit 77; }
mh_fail() { echo "FAIL: $*" >&2; exit 1; }

mh_assert_eq() {
    [ "$1" = "$2" ] || mh_fail "${3:-values differ}: expected '$2', got '$1'"
}

mh_require_cmd() {
    command -v "$1" >/dev/null 2>&1 || mh_skip "$1 is not installed"
}
mh_require_dovecot() {
    command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || mh_skip "dovecot is not installed"
    [ -d /usr/lib/dovecot/modules ] && [ -e /usr/lib/dovecot/imap ] || mh_skip "dovecot-imapd is not installed"
    mh_require_cmd python3
    mh_require_cmd openssl
}
mh_require_redis() { mh_require_cmd redis-server; }
mh_require_build_bin() {
    [ -x "$MH_BUILD_DIR/$1" ] || mh_fail "$MH_BUILD_DIR/$1 is not built"
}

mh_tmpdir() { mktemp -d "$MH_TMP/t.XXXXXX"; }

mh_register_pid() { echo "pid $1" >>"$MH_TMP/.cleanup"; }

mh_unregister_pid() {
    local tmp
    tmp=$(mktemp "$MH_TMP/.cleanup.XXXXXX")
    grep -vx "pid $1" "$MH_TMP/.cleanup" >"$tmp" || true
    mv "$tmp" "$MH_TMP/.cleanup"
}

mh_mailbox() { python3 "$MH_SUPPORT_DIR/mailbox.py" "$@"; }

# _mh_import_env FILE PREFIX : set+export PREFIX<var> for each VAR=VALUE line.
_mh_import_env() {
    local file=$1 prefix=$2 key value
    while IFS='=' read -r key value; do
        [ -n "$key" ] || continue
        value=${value#\'}; value=${value%\'}
        printf -v "$prefix$key" '%s' "$value"
        export "${prefix?}$key"
    done <"$file"
}

mh_start_dovecot() {
    local name=$1; shift
    [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || mh_fail "mh_start_dovecot: bad name '$name'"
    local dir=$MH_TMP/$name
    echo "dovecot $dir" >>"$MH_TMP/.cleanup"
    "$MH_SUPPORT_DIR/dovecot-ctl" start "$dir" --certs "$MH_TMP/certs" "$@" \
        || mh_fail "could not start dovecot '$name'"
    _mh_import_env "$dir/env" "${name}_"
    MH_CA_FILE=$MH_TMP/certs/ca.pem
    export MH_CA_FILE
}

mh_adduser() {
    "$MH_SUPPORT_DIR/dovecot-ctl" adduser "$MH_TMP/$1" "${@:2}" || mh_fail "adduser $*"
}

mh_stop_dovecot() { "$MH_SUPPORT_DIR/dovecot-ctl" stop "$MH_TMP/$1"; }

mh_start_redis() {
    local name=redis explicit=0
    if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
        name=$1; explicit=1; shift
    fi
    local dir=$MH_TMP/$name
    echo "redis $dir" >>"$MH_TMP/.cleanup"
    "$MH_SUPPORT_DIR/redis-ctl" start "$dir" "$@" || mh_fail "could not start redis '$name'"
    _mh_import_env "$dir/env" ""
    [ $explicit = 1 ] && _mh_import_env "$dir/env" "${name}_"
    return 0
}

mh_stop_redis() { "$MH_SUPPORT_DIR/redis-ctl" stop "$MH_TMP/${1:-redis}"; }

mh_kill_redis() { "$MH_SUPPORT_DIR/redis-ctl" kill "$MH_TMP/${1:-redis}"; }

mh_restart_redis() {
    local name=redis explicit=0
    if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then
        name=$1; explicit=1; shift
    fi
    local dir=$MH_TMP/$name
    "$MH_SUPPORT_DIR/redis-ctl" restart "$dir" "$@" || mh_fail "could not restart redis '$name'"
    _mh_import_env "$dir/env" ""
    [ $explicit = 1 ] && _mh_import_env "$dir/env" "${name}_"
    return 0
}

_mh_pid_alive() {
    kill -0 "$1" 2>/dev/null || return 1
    [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

_mh_kill_pid() {
    local pid=$1 i
    _mh_pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 50); do
        _mh_pid_alive "$pid" || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}

_mh_cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ -f "$MH_TMP/.cleanup" ]; then
        local kind arg
        # Reverse order: processes registered last (clients) go first.
        while read -r kind arg; do
            case $kind in
                pid) _mh_kill_pid "$arg" ;;
                dovecot)
                    if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -f "$arg/dovecot.log" ]; then
                        echo "---- last lines of $arg/dovecot.log" >&2
                        tail -n 30 "$arg/dovecot.log" >&2
                    fi
                    "$MH_SUPPORT_DIR/dovecot-ctl" stop "$arg" ;;
                redis) "$MH_SUPPORT_DIR/redis-ctl" stop "$arg" ;;
            esac
        done < <(tac "$MH_TMP/.cleanup")
    fi
    if [ "${MH_KEEP_TMP:-0}" = 1 ] || { [ "${MH_KEEP_TMP:-0}" = fail ] && [ $rc -ne 0 ] && [ $rc -ne 77 ]; }; then
        echo "kept $MH_TMP" >&2
    else
        rm -rf "$MH_TMP"
    fi
    exit $rc
}
trap _mh_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
