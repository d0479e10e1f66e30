#!/usr/bin/env bash
# Herald's cluster failure test: the production topology of deploy/compose.yaml
# as real processes on loopback, with parts of it killed and restarted while
# clients subscribe and publish through nginx. See deploy/README.md.
#
#   a 3-node NATS cluster with JetStream (nats-server built from the version
#       go.mod pins), the event log R3 streams in 3 partitions;
#   3 Herald replicas, each with --nats-url listing all three nodes;
#   nginx (Debian's) running the shipped deploy/nginx.conf, with loopback
#       versions of deploy/upstreams.conf and deploy/listen.conf;
#   deploy/cluster-test/clients: 30 WebSocket clients, 6 event-stream clients
#       (graphql-sse, a stream per room resumed by Last-Event-ID), 6 multipart
#       clients (Apollo's multipart subscriptions, a POST per room resubscribed
#       with $after set to the last cursor) and 6 publishers, all through
#       nginx, which judge that nothing was lost, duplicated or reordered.
#
# Failures, timed from the moment publishing starts:
#    +6s  SIGTERM replica 1 (drain; it must exit 0)
#   +12s  SIGKILL replica 2 (every client is now on replica 3)
#   +18s  restart replicas 1 and 2 (same ports)
#   +24s  SIGKILL the NATS node leading the first room's partition stream (posts stall
#         until JetStream elects a new leader, several seconds)
#   +32s  restart that NATS node (same ports and store directory)
#   +38s  SIGTERM replica 3 (its clients move to the restarted ones)
#   +42s  restart replica 3
# Publishing ends at +50s; the clients then check every subscription.
# Replicas are restarted when the stream has a leader: see deploy/README.md
# for what happens to a replica started during a leader election.
#
# Usage: deploy/cluster-test/run.sh [flags of the clients program, e.g. -clients 60]
#   (-resume=false makes clients resubscribe without their cursor: a negative
#   control of the judge, which must then fail)
# HERALD_CLUSTER_TEST_TIMEOUT bounds the whole run in seconds (default 300).
# HERALD_CLUSTER_TEST_KEEP=1 keeps the work directory (logs, data).
# Needs go, nginx (apt-get install -y nginx) and curl. Loopback only. It stops
# only the processes it started, by PID, and removes its temporary directory.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
deploy="$(dirname "$here")"
root="$(dirname "$deploy")"
budget="${HERALD_CLUSTER_TEST_TIMEOUT:-300}"
GO="${GO:-go}"
publish_seconds=50

t_start="${EPOCHREALTIME/./}"
elapsed() { local now="${EPOCHREALTIME/./}"; printf '%d.%d' $(((now - t_start) / 1000000)) $(((now - t_start) / 100000 % 10)); }
log() { echo "cluster-test [+$(elapsed)s]: $*" >&2; }
die() { log "FAIL: $*"; exit 1; }

NGINX="$(command -v nginx || true)"
[ -n "$NGINX" ] || { [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx; } || true
[ -n "$NGINX" ] || { log "nginx is not installed (Debian: apt-get install -y nginx)"; exit 1; }
for tool in "$GO" curl; do command -v "$tool" >/dev/null || { log "$tool is not installed"; exit 1; }; done

work="$(mktemp -d "${TMPDIR:-/tmp}/herald-cluster.XXXXXX")"
bin="$work/bin"
declare -A pid=()      # name -> PID of every process this script runs now
watchdog=""
show_logs=0

# shellcheck source=../../scripts/procs.sh
source "$root/scripts/procs.sh"

# stop PID...: SIGTERM, then SIGKILL whatever is still alive after 15s (a
# replica drains its sockets and then its NATS connection).
stop() { stop_within 15 "$@"; }

print_logs() {
	local f
	for f in herald1 herald2 herald3 nats1 nats2 nats3 nginx-error; do
		[ -f "$work/$f.log" ] || continue
		echo "----- $f.log (last 150 lines) -----" >&2
		tail -n 150 "$work/$f.log" >&2
	done
	if [ -f "$work/nginx-access.log" ]; then
		echo "----- nginx access log: requests not answered 200/101 (last 60) -----" >&2
		grep -Ev '" (200|101) ' "$work/nginx-access.log" | tail -n 60 >&2 || true
	fi
	echo "----- end of logs -----" >&2
}

cleanup() {
	local rc=$? p children=()
	trap - EXIT INT TERM
	if [ -n "$watchdog" ]; then kill -TERM "$watchdog" 2>/dev/null || true; fi
	# nginx's workers are its children: if the master had to be killed,
	# they would outlive it.
	if [ -n "${pid[nginx]:-}" ]; then
		while read -r p; do children+=("$p"); done < <(ps -o pid= --ppid "${pid[nginx]}" 2>/dev/null || true)
	fi
	# Outside in: the clients and nginx, then the replicas (which drain
	# their NATS connections), then NATS.
	local group name
	for group in "clients step nginx" "herald1 herald2 herald3" "nats1 nats2 nats3"; do
		local ps=()
		for name in $group; do if [ -n "${pid[$name]:-}" ]; then ps+=("${pid[$name]}"); fi; done
		if [ ${#ps[@]} -gt 0 ]; then stop "${ps[@]}"; fi
	done
	for p in ${children[@]+"${children[@]}"}; do if alive "$p"; then kill -KILL "$p" 2>/dev/null || true; fi; done
	if [ "$rc" != 0 ] || [ "$show_logs" = 1 ]; then print_logs; fi
	if [ "${HERALD_CLUSTER_TEST_KEEP:-}" = 1 ]; then
		log "kept $work (HERALD_CLUSTER_TEST_KEEP=1)"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

# The watchdog bounds the whole run: it signals this script, whose TERM trap
# cleans up.
(
	trap 'kill -TERM $sp 2>/dev/null; exit 0' TERM
	sleep "$budget" &
	sp=$!
	wait "$sp"
	echo "cluster-test: FAIL: the run took longer than ${budget}s (HERALD_CLUSTER_TEST_TIMEOUT); stopping it" >&2
	kill -TERM $$
) &
watchdog=$!

# step CMD...: run a command in the background and wait for it, so that a
# signal to this script is handled at once.
step() {
	"$@" &
	local p=$! rc=0
	pid[step]=$p
	wait "$p" || rc=$?
	unset 'pid[step]'
	return "$rc"
}

log "building herald, nats-server (the version go.mod pins) and the test clients"
mkdir -p "$bin"
step "$GO" build -C "$root" -o "$bin/" ./cmd/herald github.com/nats-io/nats-server/v2 ./deploy/cluster-test/clients
log "$("$bin/nats-server" --version)"

read -r -a ports < <("$bin/clients" ports 14)
nats_port=("" "${ports[0]}" "${ports[1]}" "${ports[2]}")
route_port=("" "${ports[3]}" "${ports[4]}" "${ports[5]}")
mon_port=("" "${ports[6]}" "${ports[7]}" "${ports[8]}")
herald_port=("" "${ports[9]}" "${ports[10]}" "${ports[11]}")
nginx_port="${ports[12]}"
nats_urls="nats://127.0.0.1:${nats_port[1]},nats://127.0.0.1:${nats_port[2]},nats://127.0.0.1:${nats_port[3]}"

# ---- NATS ----------------------------------------------------------------

start_nats() {
	local i="$1" routes=() j
	for j in 1 2 3; do [ "$j" = "$i" ] || routes+=("nats://127.0.0.1:${route_port[$j]}"); done
	mkdir -p "$work/nats$i"
	echo "===== cluster-test: starting nats$i at +$(elapsed)s =====" >>"$work/nats$i.log"
	"$bin/nats-server" -a 127.0.0.1 -p "${nats_port[$i]}" -m "${mon_port[$i]}" -n "nats$i" \
		-js -sd "$work/nats$i" --cluster_name herald --cluster "nats://127.0.0.1:${route_port[$i]}" \
		--routes "$(IFS=,; echo "${routes[*]}")" >>"$work/nats$i.log" 2>&1 &
	pid[nats$i]=$!
}

# wait_nats I: /healthz of the node is 200 (JetStream up and current).
wait_nats() {
	local i="$1" deadline=$((SECONDS + 30))
	while [ "$SECONDS" -lt "$deadline" ]; do
		alive "${pid[nats$i]}" || die "nats$i (pid ${pid[nats$i]}) exited"
		if curl -fsS --max-time 2 "http://127.0.0.1:${mon_port[$i]}/healthz" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	die "nats$i not healthy within 30s: $(curl -sS --max-time 2 "http://127.0.0.1:${mon_port[$i]}/healthz" 2>&1)"
}

# ---- Herald ----------------------------------------------------------------

clean_env=()
while read -r var; do clean_env+=(-u "$var"); done < <(compgen -e | grep '^HERALD_' || true)
partitions=3
herald_flags=(--auth dev --log-level info --nats-url "$nats_urls" --stream-replicas 3 --partitions "$partitions" --ws-ping-interval 5s)
if "$bin/herald" -h 2>&1 | grep -q -- '-drain-timeout'; then
	herald_flags+=(--drain-timeout 2s)
else
	log "note: this herald has no --drain-timeout flag; using its default drain"
fi

start_herald() {
	local i="$1"
	echo "===== cluster-test: starting herald$i at +$(elapsed)s =====" >>"$work/herald$i.log"
	env ${clean_env[@]+"${clean_env[@]}"} "$bin/herald" "${herald_flags[@]}" \
		--addr "127.0.0.1:${herald_port[$i]}" --data-dir "$work/herald$i" >>"$work/herald$i.log" 2>&1 &
	pid[herald$i]=$!
}

# wait_herald I: /readyz of the replica is 200. A slow start is reported with
# the last answer that was not.
wait_herald() {
	local i="$1" deadline=$((SECONDS + 30)) began="${EPOCHREALTIME/./}" body last=""
	while [ "$SECONDS" -lt "$deadline" ]; do
		alive "${pid[herald$i]}" || die "herald$i (pid ${pid[herald$i]}) exited before it was ready"
		body="$(curl -sS --max-time 2 -w ' (HTTP %{http_code})' "http://127.0.0.1:${herald_port[$i]}/readyz" 2>&1 || true)"
		if [[ "$body" == *"(HTTP 200)" ]]; then
			if [ $(("${EPOCHREALTIME/./}" - began)) -gt 2000000 ]; then
				log "note: herald$i took $(((${EPOCHREALTIME/./} - began) / 1000000))s to become ready; before that /readyz said: ${last:-nothing}"
			fi
			return 0
		fi
		last="$body"
		sleep 0.2
	done
	die "herald$i not ready within 30s: $(curl -sS --max-time 2 "http://127.0.0.1:${herald_port[$i]}/readyz" 2>&1)"
}

# reap NAME LIMIT: wait up to LIMIT seconds for NAME to exit; set status to
# its exit status, or to "still running".
status=""
reap() {
	local name="$1" p="${pid[$1]}" deadline=$((SECONDS + $2))
	while alive "$p" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
	if alive "$p"; then status="still running"; return; fi
	status=0
	# (the braces also silence bash's "Killed" notice for the job)
	{ wait "$p"; } 2>/dev/null || status=$?
	unset "pid[$name]"
}

# sigkill NAME: SIGKILL NAME and reap it (quietly: bash would report the job
# as "Killed").
sigkill() {
	{
		kill -KILL "${pid[$1]}"
		reap "$1" 5
	} 2>/dev/null
}

# ---- nginx ----------------------------------------------------------------

# The shipped nginx.conf, unchanged (a symlink), with loopback versions of its
# two includes derived from the shipped ones.
ngx="$work/nginx"
mkdir -p "$ngx/conf/conf.d" "$ngx/tmp"
ln -s "$deploy/nginx.conf" "$ngx/conf/nginx.conf"
sed -E -e '/^[[:space:]]*(#|$)/d' -e '/^[[:space:]]*resolver[[:space:]]/d' -e 's/[[:space:]]resolve([[:space:];])/\1/' \
	-e "s/\\bherald1:8080\\b/127.0.0.1:${herald_port[1]}/" \
	-e "s/\\bherald2:8080\\b/127.0.0.1:${herald_port[2]}/" \
	-e "s/\\bherald3:8080\\b/127.0.0.1:${herald_port[3]}/" \
	"$deploy/upstreams.conf" >"$ngx/conf/upstreams.conf"
[ "$(grep -cE "^server 127\\.0\\.0\\.1:[0-9]+ " "$ngx/conf/upstreams.conf")" = 3 ] && ! grep -qE 'herald[0-9]|resolve' "$ngx/conf/upstreams.conf" ||
	die "deploy/upstreams.conf no longer has the three 'server heraldN:8080 ...' lines this test maps to loopback:
$(cat "$ngx/conf/upstreams.conf")"
sed -E "s/^([[:space:]]*)listen[[:space:]]+8080;/\\1listen 127.0.0.1:$nginx_port;/" "$deploy/listen.conf" >"$ngx/conf/listen.conf"
grep -q "listen 127.0.0.1:$nginx_port;" "$ngx/conf/listen.conf" && [ "$(grep -c '^[[:space:]]*listen' "$ngx/conf/listen.conf")" = 1 ] ||
	die "deploy/listen.conf no longer is the single 'listen 8080;' this test maps to loopback"
# Temporary files in the test's directory, not Debian's /var/lib/nginx.
{
	for t in client_body proxy fastcgi uwsgi scgi; do echo "${t}_temp_path $ngx/tmp/$t;"; done
} >"$ngx/conf/conf.d/cluster-test-paths.conf"
# Workers may run as another user (nobody) when this runs as root.
chmod 711 "$work"
chmod 755 "$ngx" "$ngx/tmp"
nginx_args=(-p "$ngx/" -c conf/nginx.conf -e stderr -g "daemon off; pid $ngx/nginx.pid;")
"$NGINX" -t -q "${nginx_args[@]}" >"$work/nginx-test.log" 2>&1 || die "nginx -t rejects the shipped deploy/nginx.conf:
$(cat "$work/nginx-test.log")"

start_nginx() {
	"$NGINX" "${nginx_args[@]}" >"$work/nginx-access.log" 2>"$work/nginx-error.log" &
	pid[nginx]=$!
	local deadline=$((SECONDS + 15))
	while [ "$SECONDS" -lt "$deadline" ]; do
		alive "${pid[nginx]}" || die "nginx exited: $(cat "$work/nginx-error.log")"
		if curl -fsS --max-time 2 "http://127.0.0.1:$nginx_port/readyz" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	die "nginx did not answer /readyz within 15s"
}

# ---- the run ---------------------------------------------------------------

log "starting a 3-node NATS cluster (client ports ${nats_port[*]:1})"
for i in 1 2 3; do start_nats "$i"; done
for i in 1 2 3; do wait_nats "$i"; done
log "starting herald1 (creates the R3 stream), then herald2 and herald3 (ports ${herald_port[*]:1})"
start_herald 1
wait_herald 1
start_herald 2
start_herald 3
wait_herald 2
wait_herald 3
log "starting nginx on 127.0.0.1:$nginx_port with deploy/nginx.conf"
start_nginx

mon_urls=()
for i in 1 2 3; do mon_urls+=("http://127.0.0.1:${mon_port[$i]}"); done
direct="http://127.0.0.1:${herald_port[1]},http://127.0.0.1:${herald_port[2]},http://127.0.0.1:${herald_port[3]}"
client_deadline=$((budget - $(elapsed | cut -d. -f1) - 20))
[ "$client_deadline" -gt 60 ] || die "too little of the ${budget}s budget is left for the clients"
log "running the clients through nginx (bounded by ${client_deadline}s)"
"$bin/clients" -url "http://127.0.0.1:$nginx_port" -direct "$direct" -publish "${publish_seconds}s" -sse-clients 6 -multipart-clients 6 \
	-started-file "$work/started" -deadline "${client_deadline}s" "$@" > >(tee "$work/clients.log") 2>&1 &
pid[clients]=$!

# Wait until publishing starts (bounded), then run the schedule. If the
# clients stop early (a fatal violation), the schedule is abandoned.
deadline=$((SECONDS + 60))
until [ -f "$work/started" ]; do
	alive "${pid[clients]}" || break
	[ "$SECONDS" -lt "$deadline" ] || die "the clients did not start publishing within 60s"
	sleep 0.1
done
t0="${EPOCHREALTIME/./}"

# at SECONDS: sleep until t0+SECONDS; fails if the clients have ended.
at() {
	local target=$((t0 + $1 * 1000000))
	while [ "${EPOCHREALTIME/./}" -lt "$target" ]; do
		alive "${pid[clients]}" || return 1
		sleep 0.1
	done
	alive "${pid[clients]}"
}

schedule() {
	local leader k stream
	at 6 || return 0
	log "failure: SIGTERM herald1 (pid ${pid[herald1]})"
	kill -TERM "${pid[herald1]}"
	reap herald1 25
	[ "$status" = 0 ] || die "herald1 did not exit 0 within 25s of SIGTERM (status: $status)"
	log "herald1 exited 0 after SIGTERM"

	at 12 || return 0
	log "failure: SIGKILL herald2 (pid ${pid[herald2]})"
	sigkill herald2

	at 18 || return 0
	log "restart: herald1 and herald2 (same ports)"
	start_herald 1
	start_herald 2
	wait_herald 1
	wait_herald 2
	log "herald1 and herald2 are ready"

	at 24 || return 0
	# The stream of the first room's partition: its leader's death stalls
	# that room's posts until JetStream elects another.
	stream="$("$bin/clients" stream-of HERALD "$partitions" "$(sed -n 2p "$work/started")")"
	leader="$("$bin/clients" leader "$stream" "${mon_urls[@]}" 2>/dev/null || true)"
	k=2
	case "$leader" in nats[123]) k="${leader#nats}" ;; *) log "could not tell the leader of $stream; killing nats2" ;; esac
	log "failure: SIGKILL nats$k (pid ${pid[nats$k]})${leader:+, leader of stream $stream}"
	sigkill "nats$k"

	at 32 || return 0
	log "restart: nats$k (same ports and store directory)"
	start_nats "$k"
	wait_nats "$k"
	log "nats$k is healthy"

	at 38 || return 0
	log "failure: SIGTERM herald3 (pid ${pid[herald3]})"
	kill -TERM "${pid[herald3]}"
	reap herald3 25
	[ "$status" = 0 ] || die "herald3 did not exit 0 within 25s of SIGTERM (status: $status)"
	log "herald3 exited 0 after SIGTERM"

	at 42 || return 0
	log "restart: herald3"
	start_herald 3
	wait_herald 3
	log "herald3 is ready; every process has been restarted"
}
schedule

# The clients bound themselves (-deadline); the watchdog bounds this wait.
rc=0
wait "${pid[clients]}" || rc=$?
unset 'pid[clients]'
for name in herald1 herald2 herald3 nats1 nats2 nats3 nginx; do
	if [ -z "${pid[$name]:-}" ] || ! alive "${pid[$name]}"; then
		log "FAIL: $name is not running at the end of the run (it was not stopped by the test)"
		rc=1
	fi
done
if [ -f "$work/nginx-access.log" ]; then
	log "nginx answered: $(grep -oE '" [0-9]{3} ' "$work/nginx-access.log" | tr -d '" ' | sort | uniq -c |
		awk '{printf "%s%s ×%s", sep, $2, $1; sep=", "}'); requests tried on more than one replica: $(grep -c 'upstream=[^ ]*, ' "$work/nginx-access.log" || true)"
fi
if [ "$rc" != 0 ]; then
	log "FAIL (clients exit $rc); logs follow"
	exit 1
fi
log "PASS: no message lost, duplicated or reordered across the failures (run took $(elapsed)s)"
