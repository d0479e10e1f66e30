#!/usr/bin/env bash
# End-to-end tests of Herald with real GraphQL clients (graphql-ws,
# subscriptions-transport-ws, Apollo Client) against two real replicas on
# loopback: replica A embeds NATS and also listens for NATS clients, replica
# B joins A's NATS. The tests subscribe on one replica and post on the other.
#
# Usage: e2e/run.sh [test/FILE.test.js...] [node --test options, e.g. --test-name-pattern=dispose]
#
# HERALD_BIN=/path/to/herald uses that binary instead of building ./cmd/herald.
# Bounded: the whole run stops after HERALD_E2E_TIMEOUT seconds (default 300).
# It kills only the processes it started and removes its temporary directory.
# Needs go, node (20 or later), npm and curl; test/graphiql.test.js also needs
# Debian's chromium at /usr/bin/chromium (it fails without it).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
budget="${HERALD_E2E_TIMEOUT:-300}"
ready_timeout="${HERALD_E2E_READY_TIMEOUT:-20}"
GO="${GO:-go}"

log() { echo "e2e: $*" >&2; }

for tool in node npm curl; do
	command -v "$tool" >/dev/null || { log "$tool is not installed"; exit 1; }
done
if [ -z "${HERALD_BIN:-}" ] && ! command -v "$GO" >/dev/null; then log "$GO is not installed"; exit 1; fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
	log "node 20 or later is needed, found $(node --version)"
	exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/herald-e2e.XXXXXX")"
pids=()          # every process this script started, killed at exit
replica_names=() # parallel to the replica entries in pids
show_logs=0
watchdog=""

print_logs() {
	for name in a b; do
		if [ -f "$work/$name.log" ]; then
			echo "----- replica ${name^^} log ($work/$name.log) -----" >&2
			cat "$work/$name.log" >&2
		fi
	done
	echo "----- end of replica logs -----" >&2
}

# shellcheck source=../scripts/procs.sh
source "$root/scripts/procs.sh"

# stop PID...: SIGTERM, then SIGKILL to whatever is still alive after 5 s.
stop() { stop_within 5 "$@"; }

cleanup() {
	local rc=$? f p
	trap - EXIT INT TERM
	if [ -n "$watchdog" ]; then kill -TERM "$watchdog" 2>/dev/null || true; fi
	# Replicas a test started and has not seen exit (it records each PID
	# in $work/test-pids while the process runs), should the test have
	# been stopped before it could stop them.
	for f in "$work"/test-pids/*; do
		[ -f "$f" ] || continue
		p="$(basename "$f")"
		if alive "$p"; then pids+=("$p"); fi
	done
	if [ ${#pids[@]} -gt 0 ]; then stop "${pids[@]}"; fi
	if [ "$show_logs" = 1 ] || { [ "$rc" != 0 ] && [ "${#replica_names[@]}" -gt 0 ]; }; then print_logs; fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# The watchdog bounds the whole run: it signals this script, whose TERM trap
# ends the current step and cleans up. It kills its own sleep when stopped.
(
	trap 'kill -TERM $sp 2>/dev/null; exit 0' TERM
	sleep "$budget" &
	sp=$!
	wait "$sp"
	echo "e2e: the run took longer than ${budget}s (HERALD_E2E_TIMEOUT); stopping it" >&2
	kill -TERM $$
) &
watchdog=$!

# step CMD...: run a command in the background and wait for it, so that a
# signal to this script is handled at once rather than after the command.
step() {
	"$@" &
	local p=$! rc=0
	pids+=("$p")
	wait "$p" || rc=$?
	unset 'pids[${#pids[@]}-1]'
	return "$rc"
}

if [ -n "${HERALD_BIN:-}" ]; then
	log "using the herald binary $HERALD_BIN (HERALD_BIN)"
	cp "$HERALD_BIN" "$work/herald"
else
	log "building herald"
	step "$GO" build -C "$root" -o "$work/herald" ./cmd/herald
fi

# Free loopback ports, all bound at once so that they differ.
read -r port_a port_b port_nats < <(node -e '
	const net = require("node:net");
	const servers = [0, 1, 2].map(() => net.createServer());
	Promise.all(servers.map((s) => new Promise((ok, fail) => { s.once("error", fail); s.listen(0, "127.0.0.1", ok); })))
		.then(() => { console.log(servers.map((s) => s.address().port).join(" ")); servers.forEach((s) => s.close()); });
')
url_a="http://127.0.0.1:$port_a"
url_b="http://127.0.0.1:$port_b"

# The replicas ignore HERALD_* variables of the caller's environment, so that
# only the flags below configure them.
clean_env=()
while read -r var; do clean_env+=(-u "$var"); done < <(compgen -e | grep '^HERALD_' || true)

# start NAME ARGS...: start a replica as a real process (env execs herald, so
# the PID is herald's own), logging to $work/NAME.log.
start() {
	local name="$1"
	shift
	env ${clean_env[@]+"${clean_env[@]}"} "$work/herald" --auth dev --log-level debug --drain-timeout 1s "$@" >"$work/$name.log" 2>&1 &
	pids+=("$!")
	replica_names+=("$name")
	eval "pid_$name=$!"
}

# wait_ready NAME URL: wait until the replica answers 200 on /readyz.
wait_ready() {
	local name="$1" url="$2" pid
	eval "pid=\$pid_$name"
	local deadline=$((SECONDS + ready_timeout))
	while [ "$SECONDS" -lt "$deadline" ]; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "replica ${name^^} (pid $pid) exited before becoming ready"
			exit 1
		fi
		if curl -fsS --max-time 2 "$url/readyz" >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	log "replica ${name^^} did not become ready at $url/readyz within ${ready_timeout}s; last answer:"
	curl -sS --max-time 2 "$url/readyz" >&2 || true
	echo >&2
	exit 1
}

log "starting replica A on $url_a (embedded NATS, clients on 127.0.0.1:$port_nats)"
start a --addr "127.0.0.1:$port_a" --data-dir "$work/a" --nats-listen "127.0.0.1:$port_nats"
wait_ready a "$url_a"
log "starting replica B on $url_b (joins nats://127.0.0.1:$port_nats)"
start b --addr "127.0.0.1:$port_b" --data-dir "$work/b" --nats-url "nats://127.0.0.1:$port_nats"
wait_ready b "$url_b"
log "both replicas are ready"

# Install the pinned clients when node_modules does not match the lockfile.
lockhash="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$here/node_modules/.lockhash" 2>/dev/null || true)" != "$lockhash" ]; then
	log "installing the pinned npm packages (npm ci)"
	step npm ci --prefix "$here" --no-audit --no-fund --loglevel=error
	echo "$lockhash" >"$here/node_modules/.lockhash"
fi

log "running the tests"
# Arguments ending in .test.js are test files (relative to the current
# directory or to e2e/); the others are options of node --test.
opts=()
files=()
for arg in "$@"; do
	case "$arg" in
	*.test.js) if [ -f "$arg" ]; then files+=("$(cd "$(dirname "$arg")" && pwd)/$(basename "$arg")"); else files+=("$arg"); fi ;;
	*) opts+=("$arg") ;;
	esac
done
export HERALD_A="$url_a" HERALD_B="$url_b"
# For tests that start (and stop) a replica of their own: the binary, A's
# NATS, and where to record its PID (see cleanup) and data.
mkdir -p "$work/test-pids" "$work/test-replicas"
export HERALD_E2E_BIN="$work/herald" HERALD_E2E_NATS_URL="nats://127.0.0.1:$port_nats" \
	HERALD_E2E_PIDS="$work/test-pids" HERALD_E2E_DATA="$work/test-replicas"
cd "$here"
[ ${#files[@]} -gt 0 ] || files=(test/*.test.js)
rc=0
step node --test --test-reporter=spec ${opts[@]+"${opts[@]}"} "${files[@]}" || rc=$?
if [ "$rc" != 0 ]; then
	log "tests failed (exit $rc); replica logs follow"
	show_logs=1
	exit "$rc"
fi
# Nothing is printed after node's summary on success: CI reads its closing lines.
