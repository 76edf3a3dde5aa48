#!/usr/bin/env bash
# Starts a throw-away regtest Core Lightning node with this clnrest plugin, prints its REST URL,
# a rune and a curl line, and runs until Ctrl-C (SIGINT/SIGTERM) or until lightningd exits;
# either way it stops the node and removes its directory.
#
# No bitcoind needed: contrib/regtest/fake_bitcoind.py replaces lightningd's bcli backend and
# keeps the node at height 0 with no chain (no channels, no funds; invoices, runes, datastore,
# paying its own invoices with xpay, notifications all work).
#
# Environment:
#   LIGHTNINGD        lightningd binary (default: `lightningd` on the PATH). lightning-cli is
#                     taken from beside it, else from the PATH.
#   CLNREST_BIN       an existing clnrest binary; without it `cargo build --release` builds one.
#   CLNREST_PORT      REST port (default 3010; when the default is busy a free port is used).
#   CLNREST_PROTOCOL  http (default) or https (then curl needs --cacert <dir>/regtest/ca.pem).
#
# Usage: LIGHTNINGD=/path/to/lightningd contrib/regtest.sh
set -euo pipefail

# Started in the background by a non-interactive shell (`contrib/regtest.sh &` in a script),
# bash has SIGINT ignored and cannot trap it: start again with SIGINT restored, so that SIGINT
# stops the node however the script was started.
if [ -z "${CLNREST_REGTEST_SIGINT_RESTORED:-}" ] && [ -r /proc/$$/status ]; then
    while read -r key value; do
        if [ "$key" = SigIgn: ] && (((0x$value & 2) != 0)); then
            export CLNREST_REGTEST_SIGINT_RESTORED=1
            exec python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "${BASH_SOURCE[0]}" "$@"
        fi
    done </proc/$$/status
fi

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
fake_backend="$repo/contrib/regtest/fake_bitcoind.py"

say() { printf 'regtest.sh: %s\n' "$*" >&2; }
die() {
    say "$*"
    exit 1
}

# --- Tools -----------------------------------------------------------------------------------

command -v python3 >/dev/null || die "python3 is needed (the fake Bitcoin backend, JSON parsing)"

if [ -n "${LIGHTNINGD:-}" ]; then
    lightningd=$LIGHTNINGD
    [ -x "$lightningd" ] || lightningd=$(command -v "$lightningd" || true)
    [[ -n "$lightningd" && -x "$lightningd" ]] || die "LIGHTNINGD=$LIGHTNINGD is not an executable"
else
    lightningd=$(command -v lightningd || true)
    [ -n "$lightningd" ] || die "lightningd is not on the PATH: set LIGHTNINGD=/path/to/lightningd"
fi
lightningd=$(cd "$(dirname "$lightningd")" && pwd)/$(basename "$lightningd")

if [ -x "$(dirname "$lightningd")/lightning-cli" ]; then
    lightning_cli="$(dirname "$lightningd")/lightning-cli"
else
    lightning_cli=$(command -v lightning-cli || true)
    [ -n "$lightning_cli" ] || die "no lightning-cli beside $lightningd nor on the PATH"
fi

protocol=$(printf '%s' "${CLNREST_PROTOCOL:-http}" | tr '[:upper:]' '[:lower:]')
case "$protocol" in
    http | https) ;;
    *) die "CLNREST_PROTOCOL must be http or https, not '$CLNREST_PROTOCOL'" ;;
esac

if [ -n "${CLNREST_BIN:-}" ]; then
    plugin=$CLNREST_BIN
    [ -x "$plugin" ] || die "CLNREST_BIN=$plugin is not an executable"
else
    command -v cargo >/dev/null || die "cargo is not on the PATH: install Rust or set CLNREST_BIN"
    say "building the plugin (cargo build --release)"
    (cd "$repo" && cargo build --release --bin clnrest) >&2
    plugin="${CARGO_TARGET_DIR:-$repo/target}/release/clnrest"
    [ -x "$plugin" ] || die "cargo build did not produce $plugin"
fi
plugin=$(cd "$(dirname "$plugin")" && pwd)/$(basename "$plugin")

# --- Ports -----------------------------------------------------------------------------------

# Exit status 0 when 127.0.0.1:$1 can be bound (no one listens there). SO_REUSEADDR as the
# plugin sets it: connections in TIME_WAIT from an earlier run do not make the port busy.
port_free() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ -n "${CLNREST_PORT:-}" ]; then
    case "$CLNREST_PORT" in
        '' | *[!0-9]*) die "CLNREST_PORT must be a port number, not '$CLNREST_PORT'" ;;
    esac
    port=$CLNREST_PORT
    port_free "$port" || die "CLNREST_PORT=$port is in use"
else
    port=3010
    if ! port_free "$port"; then
        port=$(free_port)
        say "port 3010 is in use: using $port"
    fi
fi
p2p_port=$(free_port)

# --- The node and its cleanup ----------------------------------------------------------------

dir=$(mktemp -d "${TMPDIR:-/tmp}/clnrest-regtest.XXXXXX")
node_pid=
startup_kids=
cleaned=

# Runs a command in the background and waits for it. While bash runs a command in the
# foreground, a SIGINT sent to the script alone (not to its process group, as Ctrl-C does) is
# dropped when the command does not die of it; the `wait` builtin lets the trap run at once.
interruptible() {
    "$@" &
    wait "$!"
}

cli() { "$lightning_cli" --lightning-dir="$dir" --network=regtest "$@"; }

alive() { [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; }

# lightningd's children (plugins, subdaemons) as "pid:start-time", so that the ones left
# behind can be killed after lightningd has gone without hitting a reused pid.
children() {
    local stat_file stat
    for stat_file in /proc/[0-9]*/stat; do
        { read -r stat <"$stat_file"; } 2>/dev/null || continue
        stat=${stat##*) }
        # The fields after "(comm) ": state, ppid, ..., starttime (the 20th).
        # shellcheck disable=SC2086
        set -- $stat
        [ "$2" = "$node_pid" ] || continue
        stat_file=${stat_file#/proc/}
        echo "${stat_file%/stat}:${20}"
    done
}

# Whether "pid:start-time" still runs (a zombie has finished).
same_process() {
    local pid=${1%%:*} start=${1##*:} stat
    read -r stat 2>/dev/null </proc/"$pid"/stat || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    [ "$1" != Z ] && [ "${20}" = "$start" ]
}

log_tail() {
    if [ -f "$dir/log" ]; then
        say "last lines of lightningd's log:"
        tail -n 30 "$dir/log" >&2
    fi
    if [ -s "$dir/lightningd.out" ]; then
        say "lightningd's output:"
        tail -n 30 "$dir/lightningd.out" >&2
    fi
}

cleanup() {
    local status=$?
    [ -n "$cleaned" ] && return
    cleaned=1
    # A second Ctrl-C must not cut the cleanup short; it takes a few seconds at most.
    trap '' INT TERM
    local kids kid
    # The children seen at startup too: once lightningd has died they are no longer its own.
    kids=$( (echo "$startup_kids"; [ -z "$node_pid" ] || children) | sort -u) || true
    if alive; then
        say "stopping the node"
        timeout 10 "$lightning_cli" --lightning-dir="$dir" --network=regtest stop \
            >/dev/null 2>&1 || true
        for _ in $(seq 100); do
            alive || break
            sleep 0.1
        done
        if alive; then
            say "lightningd did not stop: killing it"
            kill -TERM "$node_pid" 2>/dev/null || true
            sleep 1
            kill -KILL "$node_pid" 2>/dev/null || true
        fi
    fi
    [ -n "$node_pid" ] && { wait "$node_pid" 2>/dev/null || true; }
    # Plugins and subdaemons exit when lightningd closes their pipes; give them a moment.
    for kid in $kids; do
        for _ in $(seq 30); do
            same_process "$kid" || break
            sleep 0.1
        done
        if same_process "$kid"; then
            say "killing ${kid%%:*}, left behind by lightningd"
            kill -KILL "${kid%%:*}" 2>/dev/null || true
        fi
    done
    [ "$status" -ne 0 ] && [ "$status" -ne 130 ] && [ "$status" -ne 143 ] && log_tail
    rm -rf "$dir"
    say "node stopped, $dir removed"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$lightningd" \
    --network=regtest \
    --lightning-dir="$dir" \
    --bind-addr=127.0.0.1:"$p2p_port" \
    --disable-plugin=bcli \
    --plugin="$fake_backend" \
    --disable-dns \
    --log-file="$dir/log" \
    --log-level=debug \
    --plugin="$plugin" \
    --clnrest-port="$port" \
    --clnrest-protocol="$protocol" \
    </dev/null >"$dir/lightningd.out" 2>&1 &
node_pid=$!

# --- Wait for the REST port ------------------------------------------------------------------

say "starting lightningd (pid $node_pid) in $dir"
url="$protocol://127.0.0.1:$port"
answers() {
    python3 - "$url" <<'EOF'
import ssl, sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1] + "/", timeout=2, context=ssl._create_unverified_context())
except urllib.error.HTTPError:
    pass  # any HTTP answer will do
except Exception:
    sys.exit(1)
EOF
}
deadline=$((SECONDS + ${CLNREST_START_TIMEOUT:-60}))
until interruptible answers; do
    alive || die "lightningd exited before the REST port answered"
    [ "$SECONDS" -lt "$deadline" ] || die "the REST port $port did not answer within ${CLNREST_START_TIMEOUT:-60}s"
    interruptible sleep 0.2
done

children >"$dir/children"
read -r -d '' startup_kids <"$dir/children" || true

# Field $2 of the JSON object in file $1, into file $3.
json_field() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2" >"$3"
}
interruptible cli createrune >"$dir/createrune.json" || die "createrune failed"
interruptible cli getinfo >"$dir/getinfo.json" || die "getinfo failed"
interruptible json_field "$dir/createrune.json" rune "$dir/rune" || die "no rune from createrune"
interruptible json_field "$dir/getinfo.json" id "$dir/id" || die "no id from getinfo"
read -r rune <"$dir/rune"
read -r node_id <"$dir/id"

if [ "$protocol" = https ]; then
    curl_line="curl --cacert $dir/regtest/ca.pem -X POST $url/v1/getinfo -H \"Rune: $rune\""
else
    curl_line="curl -X POST $url/v1/getinfo -H \"Rune: $rune\""
fi

cat <<EOF

clnrest regtest node is up (lightningd pid $node_pid)
  node id:       $node_id
  directory:     $dir
  REST URL:      $url
  Swagger UI:    $url/swagger-ui
  rune:          $rune
  lightning-cli: $lightning_cli --lightning-dir=$dir --network=regtest getinfo

Try:
$curl_line

Ctrl-C stops the node and removes its directory.
EOF

# `wait` returns early when a trapped signal arrives, so Ctrl-C is handled at once (the trap
# exits); when it returns by itself lightningd has exited.
status=0
wait "$node_pid" || status=$?
if [ "$status" -eq 0 ]; then
    say "lightningd exited"
else
    die "lightningd exited (status $status)"
fi
