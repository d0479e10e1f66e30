#!/usr/bin/env bash
# Browser tests of examples/nextjs-chat: the Next.js app, built and started
# with `next start`, in Debian's Chromium driven by playwright-core, against
# two Herald replicas behind nginx running deploy/nginx.conf. All on loopback:
#
#   replica A  --nats-listen: embedded NATS that replica B joins
#   replica B  --nats-url A's NATS (the tests SIGKILL it mid-conversation)
#   nginx      deploy/nginx.conf with loopback versions of its two includes
#   the app    next start, NEXT_PUBLIC_HERALD_URL=http://127.0.0.1:<nginx>/graphql
#              (read when a page renders, so the build does not depend on it)
#
# Usage: examples/nextjs-chat/e2e/run.sh [node --test options, e.g. --test-name-pattern=SSE]
# HERALD_BIN=/path/to/herald uses that binary instead of building ./cmd/herald.
# HERALD_NEXTJS_E2E_TIMEOUT bounds the whole run in seconds (default 900).
# On failure, screenshots of each page at the failing step and every process's
# log are copied to examples/nextjs-chat/e2e/artifacts/<time>/ (printed).
# It stops only the processes it started, by PID, and removes its temporary
# directory. Needs go, node 20.9+, npm, curl, nginx (/usr/sbin/nginx) and
# chromium (/usr/bin/chromium); it builds @heraldhq/client (clients/js) first.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
app="$(dirname "$here")"
root="$(cd "$app/../.." && pwd)"
budget="${HERALD_NEXTJS_E2E_TIMEOUT:-900}"
GO="${GO:-go}"
export NEXT_TELEMETRY_DISABLED=1

t_start=$SECONDS
log() { echo "nextjs-e2e [+$((SECONDS - t_start))s]: $*" >&2; }
die() { log "FAIL: $*"; exit 1; }

NGINX="$(command -v nginx || true)"
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; } || true
[ -n "$NGINX" ] || die "nginx is not installed (apt-get install -y nginx)"
[ -x /usr/bin/chromium ] || die "chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)"
for tool in node npm curl; do command -v "$tool" >/dev/null || die "$tool is not installed"; done
if [ -z "${HERALD_BIN:-}" ] && ! command -v "$GO" >/dev/null; then die "$GO is not installed"; fi

work="$(mktemp -d "${TMPDIR:-/tmp}/herald-nextjs-e2e.XXXXXX")"
declare -A pid=() # name -> PID of every process this script runs now
watchdog=""

# stat_field PID N: field N of /proc/PID/stat (3 is the state, 4 the parent),
# read after the command name, which may hold spaces and parentheses. (No ps:
# a fresh CI machine may not have procps.)
stat_field() {
	local s n="$2"
	s="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
	s="${s##*) }"
	# shellcheck disable=SC2086
	set -- $s
	shift $((n - 3))
	echo "$1"
}

# alive PID: the process exists and is not a zombie (never waits: cleanup
# may run inside a signal trap).
alive() {
	local st
	st="$(stat_field "$1" 3)" || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# children PID: the PIDs whose parent is PID.
children() {
	local f p
	for f in /proc/[0-9]*; do
		p="${f#/proc/}"
		[ "$(stat_field "$p" 4 2>/dev/null)" = "$1" ] && echo "$p"
	done
	return 0
}

# stop PID...: SIGTERM, then SIGKILL whatever is alive after 10 s.
stop() {
	local p left
	for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
	for _ in $(seq 1 100); do
		left=0
		for p in "$@"; do if alive "$p"; then left=1; fi; done
		[ "$left" = 0 ] && return 0
		sleep 0.1
	done
	for p in "$@"; do
		if alive "$p"; then
			log "process $p did not stop within 10s of SIGTERM; killing it"
			kill -KILL "$p" 2>/dev/null || true
		fi
	done
}

keep_artifacts() {
	local dest
	dest="$here/artifacts/$(date -u +%Y%m%dT%H%M%SZ)"
	mkdir -p "$dest"
	cp -r "$work/artifacts/." "$dest/" 2>/dev/null || true
	cp "$work"/*.log "$dest/" 2>/dev/null || true
	log "screenshots of the failing step and the logs are in $dest (from $work/artifacts)"
	for f in herald-a herald-b herald-jwt next next-jwt nginx-error; do
		[ -f "$work/$f.log" ] || continue
		echo "----- $f.log (last 60 lines) -----" >&2
		tail -n 60 "$work/$f.log" >&2
	done
}

cleanup() {
	local rc=$? p ps=() name
	local -a children=()
	trap - EXIT INT TERM
	if [ -n "$watchdog" ]; then kill -TERM "$watchdog" 2>/dev/null || true; fi
	# nginx's workers are its children: if the master had to be killed,
	# they would outlive it.
	if [ -n "${pid[nginx]:-}" ]; then
		while read -r p; do children+=("$p"); done < <(children "${pid[nginx]}")
	fi
	for name in step tests next next-jwt nginx; do if [ -n "${pid[$name]:-}" ]; then ps+=("${pid[$name]}"); fi; done
	if [ ${#ps[@]} -gt 0 ]; then stop "${ps[@]}"; fi
	ps=()
	for name in herald-jwt herald-b herald-a; do if [ -n "${pid[$name]:-}" ] && alive "${pid[$name]}"; then ps+=("${pid[$name]}"); fi; done
	if [ ${#ps[@]} -gt 0 ]; then stop "${ps[@]}"; fi
	for p in ${children[@]+"${children[@]}"}; do if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi; done
	if [ "$rc" != 0 ]; then keep_artifacts; fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# The watchdog bounds the whole run: it signals this script, whose TERM trap
# cleans up. It kills its own sleep when stopped.
(
	trap 'kill -TERM $sp 2>/dev/null; exit 0' TERM
	sleep "$budget" &
	sp=$!
	wait "$sp"
	echo "nextjs-e2e: FAIL: the run took longer than ${budget}s (HERALD_NEXTJS_E2E_TIMEOUT); stopping it" >&2
	kill -TERM $$
) &
watchdog=$!

# step CMD...: run a command in the background and wait for it, so that a
# signal to this script is handled at once.
step() {
	"$@" &
	pid[step]=$!
	local rc=0
	wait "${pid[step]}" || rc=$?
	unset 'pid[step]'
	return "$rc"
}

# wait_http NAME URL SECONDS: until URL answers 2xx, while NAME runs.
wait_http() {
	local name="$1" url="$2" deadline=$((SECONDS + $3))
	while [ "$SECONDS" -lt "$deadline" ]; do
		alive "${pid[$name]}" || die "$name (pid ${pid[$name]}) exited: $(tail -n 20 "$work/$name.log" 2>/dev/null)"
		if curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	die "$name did not answer $url within $3s: $(curl -sS --max-time 2 "$url" 2>&1 | head -c 500)"
}

# ---- build --------------------------------------------------------------

if [ -n "${HERALD_BIN:-}" ]; then
	log "using the herald binary $HERALD_BIN (HERALD_BIN)"
	cp "$HERALD_BIN" "$work/herald"
else
	log "building herald"
	step "$GO" build -C "$root" -o "$work/herald" ./cmd/herald
fi

# @heraldhq/client (clients/js), which the app installs from its packed files
# (file:../../clients/js with install-links): its pinned build tools, then
# its dist/. (clients/js/run-tests.sh keeps the same .lockhash.)
client="$root/clients/js"
client_lock="$(sha256sum "$client/package-lock.json" | cut -d' ' -f1)"
if [ "$(cat "$client/node_modules/.lockhash" 2>/dev/null || true)" != "$client_lock" ]; then
	log "installing @heraldhq/client's pinned npm packages (npm ci in clients/js)"
	step npm ci --prefix "$client" --no-audit --no-fund --loglevel=error
	echo "$client_lock" >"$client/node_modules/.lockhash"
fi
log "building @heraldhq/client (tsc)"
step node "$client/node_modules/typescript/bin/tsc" -p "$client/tsconfig.json"

cd "$app"
# The app's packages are installed again when its lock or the client's
# packed files change.
lockhash="$( (sha256sum package-lock.json; cd "$client" && find package.json dist -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)"
if [ "$(cat node_modules/.lockhash 2>/dev/null || true)" != "$lockhash" ]; then
	log "installing the pinned npm packages (npm ci)"
	step npm ci --no-audit --no-fund --loglevel=error
	echo "$lockhash" >node_modules/.lockhash
fi

# The build does not depend on Herald's URL (read at request time), so a
# build of the same sources and lock is reused.
# (Outside a git checkout there is no list of sources: always build.)
sources="$(git -C "$app" ls-files -co --exclude-standard -- . ':!e2e' ':!test' 2>/dev/null | LC_ALL=C sort || true)"
if [ -n "$sources" ]; then
	srchash="$( (xargs -d '\n' sha256sum <<<"$sources" 2>/dev/null || true; echo "$lockhash") | sha256sum | cut -d' ' -f1)"
else
	srchash="unknown-$$-$RANDOM"
fi
if [ -f .next/BUILD_ID ] && [ "$(cat .next/.herald-srchash 2>/dev/null || true)" = "$srchash" ]; then
	log "reusing the Next.js build in .next (same sources)"
else
	log "building the app (next build)"
	step node node_modules/next/dist/bin/next build >"$work/next-build.log" 2>&1 || die "next build failed: $(tail -n 40 "$work/next-build.log")"
	echo "$srchash" >.next/.herald-srchash
fi

# ---- processes ----------------------------------------------------------

read -r port_a port_b port_nats port_nginx port_app port_jwt port_app_jwt < <(node -e '
	const net = require("node:net");
	const servers = [0, 1, 2, 3, 4, 5, 6].map(() => net.createServer());
	Promise.all(servers.map((s) => new Promise((ok, fail) => { s.once("error", fail); s.listen(0, "127.0.0.1", ok); })))
		.then(() => { console.log(servers.map((s) => s.address().port).join(" ")); servers.forEach((s) => s.close()); });
')

# The replicas ignore HERALD_* variables of the caller's environment.
clean_env=()
while read -r var; do clean_env+=(-u "$var"); done < <(compgen -e | grep '^HERALD_' || true)
# A generous mutation rate: the hand-over test posts 20 messages a second as
# one user, and rate limits are not what these tests are about.
herald_flags=(--log-level info --drain-timeout 1s --mutation-rate 200 --mutation-burst 200)

# start_herald NAME FLAGS...; herald_env (NAME=VALUE...) adds to its environment.
herald_env=()
start_herald() {
	local name="$1"
	shift
	env ${clean_env[@]+"${clean_env[@]}"} ${herald_env[@]+"${herald_env[@]}"} \
		"$work/herald" "${herald_flags[@]}" "$@" >>"$work/$name.log" 2>&1 &
	pid[$name]=$!
	# A test SIGKILLs replica B: without this bash would report "Killed"
	# after node's summary, whose closing lines CI reads. (alive and stop
	# never rely on wait.)
	disown "${pid[$name]}"
}

log "starting replica A on 127.0.0.1:$port_a (embedded NATS on 127.0.0.1:$port_nats) and replica B on 127.0.0.1:$port_b"
start_herald herald-a --auth dev --addr "127.0.0.1:$port_a" --data-dir "$work/a" --nats-listen "127.0.0.1:$port_nats"
wait_http herald-a "http://127.0.0.1:$port_a/readyz" 30
start_herald herald-b --auth dev --addr "127.0.0.1:$port_b" --data-dir "$work/b" --nats-url "nats://127.0.0.1:$port_nats"
wait_http herald-b "http://127.0.0.1:$port_b/readyz" 30

# nginx: the shipped deploy/nginx.conf (a symlink), with loopback versions of
# its two includes derived from the shipped ones: heraldN:8080 becomes the
# replicas (the third's lines are dropped; the backup lines are mapped
# alike), `listen 8080` a loopback port.
deploy="$root/deploy"
ngx="$work/nginx"
mkdir -p "$ngx/conf/conf.d" "$ngx/tmp"
ln -s "$deploy/nginx.conf" "$ngx/conf/nginx.conf"
sed -E -e '/^[[:space:]]*(#|$)/d' -e '/^[[:space:]]*resolver[[:space:]]/d' -e 's/[[:space:]]resolve([[:space:];])/\1/' \
	-e "s/\\bherald1:8080\\b/127.0.0.1:$port_a/" -e "s/\\bherald2:8080\\b/127.0.0.1:$port_b/" -e '/\bherald3:8080\b/d' \
	"$deploy/upstreams.conf" >"$ngx/conf/upstreams.conf"
[ "$(grep -E '^server 127\.0\.0\.1:[0-9]+ ' "$ngx/conf/upstreams.conf" | grep -cvE '[[:space:]]backup[[:space:];]')" = 2 ] &&
	! grep -qE 'herald[0-9]|resolve' "$ngx/conf/upstreams.conf" ||
	die "deploy/upstreams.conf no longer has the 'server heraldN:8080 ...' lines this test maps to loopback:
$(cat "$ngx/conf/upstreams.conf")"
sed -E "s/^([[:space:]]*)listen[[:space:]]+8080;/\\1listen 127.0.0.1:$port_nginx;/" "$deploy/listen.conf" >"$ngx/conf/listen.conf"
grep -q "listen 127.0.0.1:$port_nginx;" "$ngx/conf/listen.conf" ||
	die "deploy/listen.conf no longer is the single 'listen 8080;' this test maps to loopback"
for t in client_body proxy fastcgi uwsgi scgi; do echo "${t}_temp_path $ngx/tmp/$t;"; done >"$ngx/conf/conf.d/nextjs-e2e-paths.conf"
# Workers may run as another user (nobody) when this runs as root.
chmod 711 "$work"
chmod 755 "$ngx" "$ngx/tmp"
nginx_args=(-p "$ngx/" -c conf/nginx.conf -e stderr -g "daemon off; pid $ngx/nginx.pid;")
"$NGINX" -t -q "${nginx_args[@]}" >"$work/nginx-test.log" 2>&1 || die "nginx -t rejects deploy/nginx.conf: $(cat "$work/nginx-test.log")"
log "starting nginx on 127.0.0.1:$port_nginx with deploy/nginx.conf"
"$NGINX" "${nginx_args[@]}" >"$work/nginx-access.log" 2>"$work/nginx-error.log" &
pid[nginx]=$!
wait_http nginx "http://127.0.0.1:$port_nginx/readyz" 15

herald_url="http://127.0.0.1:$port_nginx/graphql"
log "starting the app on 127.0.0.1:$port_app (next start, NEXT_PUBLIC_HERALD_URL=$herald_url)"
env -u HERALD_DEV_JWT_SECRET NEXT_PUBLIC_HERALD_URL="$herald_url" \
	node node_modules/next/dist/bin/next start -H 127.0.0.1 -p "$port_app" >"$work/next.log" 2>&1 &
pid[next]=$!
wait_http next "http://127.0.0.1:$port_app/" 60

# `--auth jwt`: a third replica on the same log, which only takes HS256
# tokens, and the same build started again with the development token route
# configured (HERALD_DEV_JWT_SECRET) and pointed at that replica.
jwt_secret="nextjs-e2e-$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')"
app_jwt="http://127.0.0.1:$port_app_jwt"
log "starting a --auth jwt replica on 127.0.0.1:$port_jwt and the app with its token route on 127.0.0.1:$port_app_jwt"
herald_env=(HERALD_JWT_SECRET="$jwt_secret")
start_herald herald-jwt --auth jwt --addr "127.0.0.1:$port_jwt" --data-dir "$work/jwt" \
	--nats-url "nats://127.0.0.1:$port_nats" --allowed-origins "$app_jwt"
wait_http herald-jwt "http://127.0.0.1:$port_jwt/readyz" 30
HERALD_DEV_JWT_SECRET="$jwt_secret" HERALD_ALLOW_DEV_TOKENS=1 NEXT_PUBLIC_HERALD_URL="http://127.0.0.1:$port_jwt/graphql" \
	node node_modules/next/dist/bin/next start -H 127.0.0.1 -p "$port_app_jwt" >"$work/next-jwt.log" 2>&1 &
pid[next-jwt]=$!
wait_http next-jwt "$app_jwt/" 60

# ---- the tests ----------------------------------------------------------

mkdir -p "$work/artifacts"
# One run of node's test runner (one summary, which CI reads): the app's
# node tests (test/: the room page's cache, the time limit on the server
# render's requests to Herald, the token route; no servers needed) and the
# browser tests (this folder; herald-not-answering.test.mjs starts the build
# again against a Herald that never answers).
log "running the app's node tests (test/) and the browser tests"
export APP_URL="http://127.0.0.1:$port_app" HERALD_URL="$herald_url" \
	HERALD_A="http://127.0.0.1:$port_a" HERALD_B="http://127.0.0.1:$port_b" HERALD_B_PID="${pid[herald-b]}" \
	ARTIFACTS="$work/artifacts" JWT_APP_URL="$app_jwt" HERALD_JWT_URL="http://127.0.0.1:$port_jwt/graphql" \
	HERALD_JWT_TEST_SECRET="$jwt_secret" # the tests sign short-lived tokens with it
rc=0
node --test --test-reporter=spec --test-concurrency=1 "$@" "$app"/test/*.test.mjs "$here"/*.test.mjs &
pid[tests]=$!
wait "${pid[tests]}" || rc=$?
unset 'pid[tests]'
if [ "$rc" != 0 ]; then
	log "FAIL: the browser tests failed (exit $rc)"
	exit "$rc"
fi
# Nothing is printed after node's summary on success: CI reads its closing lines.
