#!/usr/bin/env bash
# Smoke test of the README's first command: Herald started with no flags, no
# environment and no other set-up (embedded NATS, ./data in its working
# directory) answers at http://localhost:8080, on loopback only (dev mode
# lets any client act as any user), keeps its data across a restart, and
# exits 0 on SIGTERM. Bounded in time; loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
work="$(mktemp -d)"
pid=""
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then
	echo "smoke: port 8080 is already in use; stop whatever listens there and retry" >&2
	exit 1
fi
go build -o "$work/herald" "$root/cmd/herald"

start() {
	(cd "$work" && exec env -i PATH="$PATH" HOME="$work" ./herald >>"$work/herald.log" 2>&1) &
	pid=$!
	for _ in $(seq 1 150); do
		if curl -fsS --max-time 2 http://localhost:8080/readyz >/dev/null 2>&1; then return 0; fi
		sleep 0.1
	done
	echo "smoke: Herald did not become ready on 127.0.0.1:8080 within 15s" >&2
	cat "$work/herald.log" >&2
	exit 1
}

# A stop serves HTTP for the whole --drain-timeout (10s by default) first.
stop() {
	kill -TERM "$pid"
	for _ in $(seq 1 300); do
		if ! kill -0 "$pid" 2>/dev/null; then break; fi
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then echo "smoke: Herald did not exit within 30s of SIGTERM" >&2; exit 1; fi
	if ! wait "$pid"; then echo "smoke: Herald exited non-zero after SIGTERM" >&2; cat "$work/herald.log" >&2; exit 1; fi
	pid=""
}

gql() {
	curl -fsS --max-time 10 http://localhost:8080/graphql -H 'Content-Type: application/json' -H 'X-Herald-User: smoke' -d "$1"
}

start
curl -fsS --max-time 5 http://localhost:8080/ | grep -qi graphiql || { echo "smoke: / does not serve GraphiQL" >&2; exit 1; }
gql '{"query":"mutation { createRoom(name: \"smoke\") { id name } }"}' | grep -q '"name":"smoke"'
stop
[ -d "$work/data" ] || { echo "smoke: no ./data directory was created" >&2; exit 1; }
start
gql '{"query":"{ rooms { nodes { name } } }"}' | grep -q '"name":"smoke"' || { echo "smoke: the room did not survive a restart" >&2; exit 1; }
stop
grep -q "INSECURE development authentication" "$work/herald.log" || { echo "smoke: no dev-mode warning at start" >&2; exit 1; }
grep -q "Herald is serving.* addr=127.0.0.1:8080" "$work/herald.log" || { echo "smoke: dev mode is not on loopback by default" >&2; cat "$work/herald.log" >&2; exit 1; }
echo "smoke: herald started with no set-up, answered on 127.0.0.1:8080, kept its data across a restart and exited 0"
