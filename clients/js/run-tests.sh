#!/usr/bin/env bash
# Tests of @heraldhq/client against real Herald processes (make client-js):
# builds herald into a temporary directory, installs the pinned npm packages
# (npm ci, skipped while node_modules matches the lockfile), builds the
# package (tsc → dist/) and runs its tests (node --test), which start and
# stop their own Herald processes on loopback ports.
#
# HERALD_BIN=/path/to/herald uses that binary instead of building ./cmd/herald.
# Bounded: the run stops after HERALD_JS_TIMEOUT seconds (default 180). It
# stops only processes it started (each step runs in a process group of its
# own, and the tests record their Heralds' PIDs in $HERALD_JS_PIDS) and
# removes its temporary directory, where the Heralds keep their data.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
budget="${HERALD_JS_TIMEOUT:-180}"
GO="${GO:-go}"

log() { echo "client-js: $*" >&2; }

for tool in node npm; do
	command -v "$tool" >/dev/null || { log "$tool is not installed"; exit 1; }
done
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
	log "node 20 or later is needed, found $(node --version)"
	exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/herald-client-js.XXXXXX")"
mkdir -p "$work/pids"
watchdog=""
current=""

# A Herald a test started and could not stop (its PID file is still there):
# SIGTERM, then SIGKILL after 5 s, if it is still the binary we built.
stop_leftovers() {
	local f p i
	for f in "$work"/pids/*; do
		[ -f "$f" ] || continue
		p="$(basename "$f")"
		if kill -0 "$p" 2>/dev/null && grep -qF "$work" "/proc/$p/cmdline" 2>/dev/null; then
			log "stopping herald $p, left by the tests"
			kill -TERM "$p" 2>/dev/null || true
			for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$watchdog" ]; then kill -TERM "$watchdog" 2>/dev/null || true; fi
	# A step still running (the watchdog fired, or a signal) is its own
	# process group (see step): npm, node --test, its test files and the
	# Heralds they started all get the signal.
	if [ -n "$current" ]; then
		kill -TERM -- "-$current" 2>/dev/null || true
		wait "$current" 2>/dev/null || true
	fi
	stop_leftovers
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# The watchdog bounds the whole run; it kills its own sleep when stopped.
(
	trap 'kill -TERM $sp 2>/dev/null; exit 0' TERM
	sleep "$budget" &
	sp=$!
	wait "$sp"
	echo "client-js: the run took longer than ${budget}s (HERALD_JS_TIMEOUT); stopping it" >&2
	kill -TERM $$
) &
watchdog=$!

# step CMD...: run a command in the background, in a process group of its
# own (setsid: its PID is the group's ID), and wait for it, so that a signal
# to this script is handled at once and reaches everything the step started.
step() {
	setsid "$@" &
	current=$!
	local rc=0
	wait "$current" || rc=$?
	current=""
	return "$rc"
}

if [ -n "${HERALD_BIN:-}" ]; then
	log "using the herald binary $HERALD_BIN (HERALD_BIN)"
	cp "$HERALD_BIN" "$work/herald"
else
	log "building herald"
	step "$GO" build -C "$root" -o "$work/herald" ./cmd/herald
fi

cd "$here"
lockhash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat node_modules/.lockhash 2>/dev/null || true)" != "$lockhash" ]; then
	log "installing the pinned npm packages (npm ci)"
	step npm ci --no-audit --no-fund --loglevel=error
	echo "$lockhash" >node_modules/.lockhash
fi
log "building the package (tsc)"
step npm run --silent build
log "running the tests"
mkdir -p "$work/tmp"
export HERALD_BIN="$work/herald" HERALD_JS_PIDS="$work/pids" HERALD_JS_TMP="$work/tmp"
step npm test --silent
