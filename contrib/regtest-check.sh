#!/usr/bin/env bash
# Checks contrib/regtest.sh end to end: starts it in the background, runs the curl line it
# prints (expects 201 and the node's id), then stops it and checks that the node's directory
# and every lightningd/clnrest process of it are gone. Four runs:
#   http  - the printed curl line, Swagger UI, then SIGINT (as Ctrl-C);
#   https - the printed curl line with --cacert, then SIGTERM;
#   crash - lightningd killed under the script: it must clean up by itself and fail;
#   early - SIGINT while the node is still starting.
# Exits non-zero on the first failure.
#
# Environment: LIGHTNINGD (or lightningd on the PATH), as for regtest.sh; CLNREST_BIN (default
# target/debug/clnrest, built with `cargo build` when missing).
# Usage: LIGHTNINGD=/path/to/lightningd CLNREST_BIN=target/debug/clnrest contrib/regtest-check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'regtest-check: %s\n' "$*" >&2; }

export CLNREST_BIN=${CLNREST_BIN:-target/debug/clnrest}
if [ ! -x "$CLNREST_BIN" ]; then
    say "building $CLNREST_BIN (cargo build)"
    cargo build --bin clnrest >&2
fi
plugin_real=$(readlink -f "$CLNREST_BIN")

work=$(mktemp -d "${TMPDIR:-/tmp}/clnrest-regtest-check.XXXXXX")
script_pid=
on_exit() {
    local status=$?
    if [ -n "$script_pid" ] && kill -0 "$script_pid" 2>/dev/null; then
        kill -TERM "$script_pid" 2>/dev/null || true
        wait "$script_pid" 2>/dev/null || true
    fi
    if [ "$status" -ne 0 ] && [ -f "$work/out" ]; then
        say "regtest.sh's output:"
        cat "$work/out" "$work/err" >&2 || true
    fi
    rm -rf "$work"
}
trap on_exit EXIT

fail() {
    say "FAIL: $*"
    exit 1
}

# The start time of a running process (nothing for a zombie: it has finished).
start_time() {
    local stat
    stat=$(cat /proc/"$1"/stat 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    [ "$1" != Z ] || return 1
    echo "${20}"
}

# "pid:start-time" of lightningd and every child of it.
node_processes() {
    local node=$1 stat_file stat pid
    echo "$node:$(start_time "$node")"
    for stat_file in /proc/[0-9]*/stat; do
        stat=$(cat "$stat_file" 2>/dev/null) || continue
        stat=${stat##*) }
        # shellcheck disable=SC2086
        set -- $stat
        [ "$2" = "$node" ] || continue
        pid=${stat_file#/proc/}
        pid=${pid%/stat}
        echo "$pid:${20}"
    done
}

# One run of regtest.sh: $1 is http, https, crash or early.
run() {
    local mode=$1 protocol=http line dir node_pid node_id status body code processes p
    [ "$mode" = https ] && protocol=https
    say "--- $mode ---"
    : >"$work/out"
    : >"$work/err"
    # A non-interactive shell starts background commands with SIGINT ignored, and a shell
    # started so cannot trap it: python3 restores the default before running the script (job
    # control, on for this line, gives it its own process group, as a terminal's job has).
    set -m
    CLNREST_PROTOCOL=$protocol python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' contrib/regtest.sh >"$work/out" 2>"$work/err" &
    script_pid=$!
    set +m

    local deadline=$((SECONDS + 120))
    if [ "$mode" = early ]; then
        # SIGINT while the node is still starting (the script runs lightning-cli, python3...).
        until line=$(grep -m1 'starting lightningd (pid' "$work/err"); do
            kill -0 "$script_pid" 2>/dev/null || fail "regtest.sh exited before starting lightningd"
            [ "$SECONDS" -lt "$deadline" ] || fail "lightningd not started within 120 s"
            sleep 0.05
        done
        node_pid=$(sed -n 's/.*(pid \([0-9]*\)) in .*/\1/p' <<<"$line")
        dir=${line##* in }
        sleep "${REGTEST_CHECK_EARLY_DELAY:-0.5}"
        processes=$(node_processes "$node_pid")
    else
        until line=$(grep -m1 '^curl ' "$work/out"); do
            kill -0 "$script_pid" 2>/dev/null || fail "regtest.sh exited before printing a curl line"
            [ "$SECONDS" -lt "$deadline" ] || fail "no curl line within 120 s"
            sleep 0.2
        done
        dir=$(awk '$1 == "directory:" { print $2 }' "$work/out")
        node_pid=$(sed -n 's/.*(lightningd pid \([0-9]*\)).*/\1/p' "$work/out")
        [[ -n "$dir" && -d "$dir" ]] || fail "no node directory in the output"
        [ -n "$node_pid" ] || fail "no lightningd pid in the output"
        processes=$(node_processes "$node_pid")
        local found_plugin=
        for p in $processes; do
            [ "$(readlink -f /proc/"${p%%:*}"/exe 2>/dev/null)" = "$plugin_real" ] && found_plugin=1
        done
        [ -n "$found_plugin" ] || fail "no $CLNREST_BIN process under lightningd $node_pid"

        local cli
        cli="$(dirname "$(readlink -f "${LIGHTNINGD:-$(command -v lightningd)}")")/lightning-cli"
        [ -x "$cli" ] || cli=lightning-cli
        node_id=$("$cli" --lightning-dir="$dir" --network=regtest getinfo |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

        if [ "$mode" = https ]; then
            case "$line" in
                *"--cacert $dir/regtest/ca.pem"*) ;;
                *) fail "the https curl line has no --cacert $dir/regtest/ca.pem: $line" ;;
            esac
        fi

        if [ "$mode" != crash ]; then
            say "$line"
            code=$(eval "$line -sS -o \"\$work/body\" -w '%{http_code}'") || fail "curl failed"
            [ "$code" = 201 ] || fail "curl answered $code, not 201: $(cat "$work/body")"
            body=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["id"])' \
                "$work/body") || fail "no id in the answer: $(cat "$work/body")"
            [ "$body" = "$node_id" ] || fail "the answer's id $body is not the node's $node_id"
            say "201 with the node's id $node_id"
        fi
        if [ "$mode" = http ]; then
            local swagger
            swagger=$(awk '$1 == "Swagger" { print $3 }' "$work/out")
            code=$(curl -sS -L -o /dev/null -w '%{http_code}' "$swagger") || fail "curl $swagger failed"
            [ "$code" = 200 ] || fail "Swagger UI $swagger answered $code"
        fi

    fi

    local expected
    case "$mode" in
        http | early)
            kill -INT "$script_pid"
            expected=130
            ;;
        https)
            kill -TERM "$script_pid"
            expected=143
            ;;
        crash)
            kill -KILL "$node_pid"
            expected=1
            ;;
    esac
    deadline=$((SECONDS + 30))
    while kill -0 "$script_pid" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || fail "regtest.sh still runs 30 s after the $mode stop"
        sleep 0.1
    done
    status=0
    wait "$script_pid" || status=$?
    script_pid=
    [ "$status" = "$expected" ] || fail "regtest.sh exited with $status, expected $expected"

    [ ! -e "$dir" ] || fail "$dir is still there"
    for p in $processes; do
        if [ "$(start_time "${p%%:*}" || true)" = "${p##*:}" ]; then
            fail "process ${p%%:*} ($(tr '\0' ' ' </proc/"${p%%:*}"/cmdline)) is still running"
        fi
    done
    for p in /proc/[0-9]*/cmdline; do
        if grep -qF -- "$dir" "$p" 2>/dev/null; then
            fail "a process still names $dir: $(tr '\0' ' ' <"$p")"
        fi
    done
    say "$mode: stopped (status $status), $dir removed, no process left"
}

for mode in ${REGTEST_CHECK_MODES:-http https crash early}; do
    run "$mode"
done
say "PASS"
